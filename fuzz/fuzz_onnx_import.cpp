// Fuzz target: ONNX import of arbitrary bytes, then Executor construction and re-export.
// gs::Error is the only acceptable failure; anything else escaping is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "io/onnx.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace {
/// With GS_FUZZ_STATS set, how far inputs get is printed at exit (to judge the corpus).
struct Stats {
  long inputs = 0, imported = 0, executable = 0, exported = 0;
  ~Stats() {
    if (std::getenv("GS_FUZZ_STATS"))
      std::fprintf(stderr, "fuzz_onnx_import: %ld inputs, %ld imported, %ld executable, %ld exported\n",
                   inputs, imported, executable, exported);
  }
} stats;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ++stats.inputs;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  gs::OnnxImportOptions opts;
  opts.max_tensor_bytes = int64_t{64} << 20;  // declared sizes beyond this must be refused early
  try {
    auto g = gs::importOnnxBytes(bytes, "fuzz-input", opts);
    ++stats.imported;
    try {
      gs::Executor ex(*g);
      ++stats.executable;
    } catch (const gs::Error&) {
    }
    gs::OnnxExportOptions eo;
    eo.check = true;
    (void)gs::exportOnnxBytes(*g, eo);
    ++stats.exported;
  } catch (const gs::Error&) {
  }
  return 0;
}
