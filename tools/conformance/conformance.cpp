// gstick_conformance: runs ONNX's node test cases through import + Executor and reports per op.
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <regex>
#include <string>

#include "conformance.h"
#include "ops/registry.h"
#include "support/error.h"
#include "support/file_util.h"

namespace {

constexpr const char* kDefaultDir = "/usr/share/libonnx-testdata/data/node";

void usage() {
  std::cout << "usage: gstick_conformance [CASES_DIR] [--filter REGEX] [--floor N] [--json FILE]\n"
               "                          [--timeout S] [--no-fork] [--verbose]\n"
               "  CASES_DIR   folder of case dirs (default " << kDefaultDir << ")\n"
               "  --filter    only cases whose name matches REGEX (std::regex_search)\n"
               "  --floor N   exit 1 if fewer than N cases pass\n"
               "  --json F    write a machine-readable summary to F\n"
               "  --timeout S kill a case after S seconds (default 60)\n"
               "  --no-fork   run cases in-process (a crash ends the run)\n"
               "  --verbose   print every case with its status and message\n";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace gs::conformance;
  std::string dir = kDefaultDir, filter, json;
  long floor = 0;
  int timeout = 60;
  bool verbose = false, fork = true;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&]() -> std::string {
        GS_CHECK(i + 1 < argc, a, " needs a value");
        return argv[++i];
      };
      if (a == "--filter") filter = next();
      else if (a == "--floor") floor = std::stol(next());
      else if (a == "--json") json = next();
      else if (a == "--timeout") timeout = std::stoi(next());
      else if (a == "--verbose") verbose = true;
      else if (a == "--no-fork") fork = false;
      else if (a == "-h" || a == "--help") { usage(); return 0; }
      else if (!a.empty() && a[0] == '-') GS_FAIL("unknown option ", a);
      else dir = a;
    }
    std::regex re(filter.empty() ? ".*" : filter);
    // Children inherit the built registry; intra-op threads only add overhead on tiny tensors.
    setenv("OMP_NUM_THREADS", "1", 0);
    (void)gs::OpRegistry::global();
    std::vector<std::string> cases;
    for (const std::string& c : listCases(dir))
      if (std::regex_search(c.substr(c.find_last_of('/') + 1), re)) cases.push_back(c);
    auto report = [&](const CaseResult& r) {
      if (verbose)
        std::cout << statusName(r.status) << "  " << r.name
                  << (r.message.empty() ? "" : "  " + r.message) << "\n" << std::flush;
    };
    std::vector<CaseResult> results;
    if (fork) {
      results = runCasesIsolated(cases, timeout, report);
    } else {
      for (const auto& c : cases) {
        results.push_back(runCase(c));
        report(results.back());
      }
    }
    for (size_t k = 0; k < cases.size(); ++k) results[k].op_type = caseOpType(cases[k]);
    std::cout << summaryTable(results);
    if (!json.empty()) gs::writeFileAtomic(json, summaryJson(results) + "\n");
    long passed = 0;
    for (const auto& r : results) passed += r.status == Status::Passed;
    if (passed < floor) {
      std::cerr << "gstick_conformance: " << passed << " cases passed, below the floor of "
                << floor << "\n";
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "gstick_conformance: " << e.what() << "\n";
    return 2;
  }
}
