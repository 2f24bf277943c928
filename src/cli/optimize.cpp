// `gstick optimize MODEL.onnx -o OUT.onnx [--passes a,b,c] [--level N] [--no-verify]`.
#include <cstdio>
#include <sstream>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "io/onnx.h"
#include "ir/verifier.h"
#include "passes/passes.h"
#include "support/error.h"

namespace gs::cli {
namespace {

struct OptimizeOptions {
  std::string model, output, passes;
  int level = 2;
  bool no_verify = false;
};

std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

int runOptimize(const OptimizeOptions& o) {
  // Resolve pass names before loading, so a typo fails fast.
  std::vector<std::string> names =
      o.passes.empty() ? optimizationPipeline(o.level) : splitList(o.passes);
  PassManagerOptions pmo;
  pmo.verify = !o.no_verify;
  PassManager pm(pmo);
  for (const std::string& n : names) pm.add(n);
  auto g = loadModel(o.model);
  size_t before = g->numNodes(), params_before = g->params().size();
  auto steps = pm.run(*g);
  std::printf("%-18s %8s %8s %8s\n", "pass", "changes", "nodes", "->");
  for (const auto& s : steps)
    std::printf("%-18s %8lld %8zu %8zu\n", s.result.pass.c_str(),
                static_cast<long long>(s.result.changes), s.nodes_before, s.nodes_after);
  std::printf("nodes %zu -> %zu, parameters %zu -> %zu\n", before, g->numNodes(), params_before,
              g->params().size());
  exportOnnxFile(*g, o.output);
  std::printf("wrote %s\n", o.output.c_str());
  return 0;
}

}  // namespace

Command addOptimizeCommand(CLI::App& app) {
  auto o = std::make_shared<OptimizeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "optimize", "Apply graph passes (constant folding, DCE, BN folding, ...) and write ONNX");
  cmd->add_option("model", o->model, "ONNX model file")->required()->type_name("MODEL.onnx");
  cmd->add_option("-o,--output", o->output, "Output ONNX file (written atomically)")
      ->required()
      ->type_name("OUT.onnx");
  std::string names;
  for (const PassInfo& p : passRegistry()) names += (names.empty() ? "" : ", ") + p.name;
  cmd->add_option("--passes", o->passes, "Comma-separated passes to run in order: " + names)
      ->type_name("a,b,c");
  cmd->add_option("--level", o->level,
                  "Pipeline when --passes is not given: 1 cleanup, 2 + shape inference and BN "
                  "folding (standard ONNX), 3 + FusedConv markers (ONNX Runtime contrib op)")
      ->check(CLI::Range(0, 3))
      ->capture_default_str();
  cmd->add_flag("--no-verify", o->no_verify, "Skip the IR verifier after each pass");
  return {cmd, [o] { return runOptimize(*o); }};
}

}  // namespace gs::cli
