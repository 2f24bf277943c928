// Fuzz target: .npy parsing of arbitrary bytes, then re-serialisation of what was parsed.
// gs::Error is the only acceptable failure; anything else escaping is a bug.
#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "io/npy.h"
#include "support/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    at::Tensor t = gs::parseNpy(bytes, "fuzz-input");
    std::string again = gs::serializeNpy(t);
    at::Tensor back = gs::parseNpy(again, "fuzz-reserialized");
    GS_ASSERT(back.sizes() == t.sizes() && back.scalar_type() == t.scalar_type(),
              "npy round trip changed shape or dtype");
  } catch (const gs::Error& e) {
    if (std::string(e.what()).rfind("internal error", 0) == 0) throw;
  }
  return 0;
}
