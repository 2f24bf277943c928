// Fuzz target: ONNX import of arbitrary bytes, then Executor construction and re-export.
// gs::Error is the only acceptable failure; anything else escaping is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "io/onnx.h"
#include "runtime/executor.h"
#include "support/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  gs::OnnxImportOptions opts;
  opts.max_tensor_bytes = int64_t{64} << 20;  // declared sizes beyond this must be refused early
  try {
    auto g = gs::importOnnxBytes(bytes, "fuzz-input", opts);
    try {
      gs::Executor ex(*g);
    } catch (const gs::Error&) {
    }
    gs::OnnxExportOptions eo;
    eo.check = true;
    (void)gs::exportOnnxBytes(*g, eo);
  } catch (const gs::Error&) {
  }
  return 0;
}
