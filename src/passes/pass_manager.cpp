// Pass registry, PassManager (with the verifier hook) and the optimize() pipelines.
#include <sstream>

#include "ir/verifier.h"
#include "passes/passes.h"
#include "support/error.h"

namespace gs {

const std::vector<PassInfo>& passRegistry() {
  static const std::vector<PassInfo> passes{
      {"identity-removal", "remove Identity and eval-mode Dropout",
       [](Graph& g, RewriteListener* l) { return removeIdentities(g, l); }},
      {"constant-folding", "evaluate nodes whose inputs are all parameters",
       [](Graph& g, RewriteListener* l) { return foldConstants(g, {}, l); }},
      {"dce", "erase nodes and parameters that do not reach an output",
       [](Graph& g, RewriteListener* l) { return eliminateDeadCode(g, l); }},
      {"shape-inference", "fill value dtypes/shapes by probing the graph twice",
       [](Graph& g, RewriteListener* l) { return inferShapes(g, {}, l); }},
      {"bn-folding", "fold BatchNormalization into Conv/ConvTranspose/Gemm/MatMul",
       [](Graph& g, RewriteListener* l) { return foldBatchNorm(g, l); }},
      {"conv-act-fusion", "Conv+activation -> com.microsoft::FusedConv (ORT contrib op)",
       [](Graph& g, RewriteListener* l) { return fuseConvActivation(g, l); }},
      {"unfuse-conv-act", "com.microsoft::FusedConv -> Conv + activation (standard ONNX)",
       [](Graph& g, RewriteListener* l) { return unfuseConvActivation(g, l); }},
  };
  return passes;
}

const PassInfo& findPass(const std::string& name) {
  std::ostringstream known;
  for (const PassInfo& p : passRegistry()) {
    if (p.name == name) return p;
    known << (known.tellp() > 0 ? ", " : "") << p.name;
  }
  GS_FAIL("unknown pass '", name, "' (known: ", known.str(), ")");
}

namespace {
#ifdef NDEBUG
bool g_verify_default = false;
#else
bool g_verify_default = true;
#endif
}  // namespace

bool verifyPassesByDefault() { return g_verify_default; }
void setVerifyPassesByDefault(bool on) { g_verify_default = on; }

std::vector<PassManager::Step> PassManager::run(Graph& g) const {
  std::vector<Step> steps;
  for (const PassInfo* p : passes_) {
    Step s;
    s.nodes_before = g.numNodes();
    s.result = p->run(g, opts_.listener);
    s.result.pass = p->name;
    s.nodes_after = g.numNodes();
    if (opts_.verify) {
      VerifyOptions vo;
      vo.allow_unknown_ops = true;
      auto errs = verifyGraph(g, vo);
      GS_CHECK(errs.empty(), "pass ", p->name, " produced an invalid graph: ", errs[0],
               errs.size() > 1 ? " (and " + std::to_string(errs.size() - 1) + " more)" : "");
    }
    steps.push_back(std::move(s));
  }
  return steps;
}

std::vector<std::string> optimizationPipeline(int level) {
  GS_CHECK(level >= 0 && level <= 3, "optimization level must be 0-3, got ", level);
  std::vector<std::string> p;
  if (level >= 1) p = {"identity-removal", "constant-folding", "dce"};
  if (level >= 2) {
    p.insert(p.begin(), "shape-inference");
    p.push_back("bn-folding");
  }
  if (level >= 3) p.push_back("conv-act-fusion");
  if (level >= 2) p.push_back("dce");
  return p;
}

std::vector<PassManager::Step> optimize(Graph& g, int level, PassManagerOptions opts) {
  PassManager pm(opts);
  for (const std::string& name : optimizationPipeline(level)) pm.add(name);
  return pm.run(g);
}

}  // namespace gs
