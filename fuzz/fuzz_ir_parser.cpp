// Fuzz target for the IR text parser: never crash or hang, and print(parse(x)) is a fixed point.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ir/graph_diff.h"
#include "ir/text.h"
#include "ir/verifier.h"
#include "support/error.h"

namespace gs::fuzz {

/// Empty if `data` is handled correctly: either rejected with gs::Error, or parsed into a
/// structurally valid graph whose printed form parses back to an equal graph that prints
/// byte-identically. Otherwise a description of the bug.
inline std::string checkIrParserInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::unique_ptr<Graph> g;
  try {
    g = parseGraph(text, "fuzz");
  } catch (const Error&) {
    return "";  // rejected cleanly
  }
  auto errs = verifyGraph(*g, {.check_schemas = false});
  if (!errs.empty()) return "parsed graph is structurally invalid: " + errs[0];
  std::string p1 = printGraph(*g);
  std::unique_ptr<Graph> h;
  try {
    h = parseGraph(p1, "printed");
  } catch (const Error& e) {
    return std::string("printed graph does not parse: ") + e.what();
  }
  std::string diff = graphDiff(*g, *h);
  if (!diff.empty()) return "round trip changed the graph: " + diff;
  if (printGraph(*h) != p1) return "second print differs from the first";
  return "";
}

}  // namespace gs::fuzz

#ifndef GS_FUZZ_NO_ENTRY_POINT
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!gs::fuzz::checkIrParserInput(data, size).empty()) __builtin_trap();
  return 0;
}
#endif
