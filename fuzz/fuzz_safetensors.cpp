// Fuzz target: safetensors files of arbitrary bytes (header length, JSON header, dtypes, shapes,
// offsets, data section). The reader memory-maps a path, so each input is written to a private
// temporary file first. Every tensor that opens is read in full, re-serialised and read back.
// gs::Error is the only acceptable failure; anything else escaping is a bug.
#include <ATen/ATen.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "io/safetensors.h"
#include "support/error.h"

namespace {

/// Created once; removed at exit (the string is never destroyed, so the exit handler can read it).
const std::string& scratchPath() {
  static const std::string& p = *new std::string([] {
    std::string t = (std::filesystem::temp_directory_path() / "gs-fuzz-st-XXXXXX").string();
    const int fd = mkstemp(t.data());
    if (fd >= 0) close(fd);
    std::atexit([] { std::filesystem::remove(scratchPath()); });
    return t;
  }());
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = scratchPath();
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  try {
    gs::TensorFile f = gs::readSafetensors(path);
    for (const auto& [name, t] : f.tensors) {
      // Touch every element (the mapping must cover the tensor's bytes).
      if (t.numel() > 0 && at::isFloatingType(t.scalar_type())) (void)t.to(at::kDouble).sum();
      else if (t.numel() > 0) (void)t.to(at::kLong).sum();
    }
    gs::writeSafetensors(path, f.tensors, f.metadata);
    gs::TensorFile back = gs::readSafetensors(path);
    GS_ASSERT(back.tensors.size() == f.tensors.size(), "safetensors round trip lost tensors");
    for (const auto& [name, t] : f.tensors) {
      const at::Tensor& b = back.tensors.at(name);
      GS_ASSERT(b.sizes() == t.sizes() && b.scalar_type() == t.scalar_type(),
                "safetensors round trip changed '", name, "'");
    }
  } catch (const gs::Error& e) {
    if (std::string(e.what()).rfind("internal error", 0) == 0) throw;
  }
  return 0;
}
