// Conv + activation -> com.microsoft::FusedConv deployment marker, and its removal.
#include <ATen/ATen.h>

#include <limits>

#include "passes/passes.h"
#include "rewrite/driver.h"
#include "support/error.h"

namespace gs {
namespace {

const char* kMs = "com.microsoft";

/// Scalar value of a one-element parameter input, or nullopt (absent input -> `def`).
std::optional<float> scalarInput(const Node& n, size_t i, float def) {
  const Value* v = n.input(i);
  if (!v) return def;
  if (!v->isParam() || v->data().numel() != 1) return std::nullopt;
  return v->data().detach().to(at::kFloat).item<float>();
}

//  act(Conv(x, W, b))  =>  com.microsoft::FusedConv(x, W, b) {activation=act, activation_params}
bool fuse(const Match& m, Rewriter& rw, std::string& why) {
  Node* conv = m.node("conv");
  Node* act = m.node("act");
  std::vector<float> params;
  const std::string& op = act->opType();
  if (op == "LeakyRelu") {
    params = {act->attrFloat("alpha", 0.01f)};
  } else if (op == "HardSigmoid") {
    params = {act->attrFloat("alpha", 0.2f), act->attrFloat("beta", 0.5f)};
  } else if (op == "Clip") {
    auto lo = scalarInput(*act, 1, -std::numeric_limits<float>::infinity());
    auto hi = scalarInput(*act, 2, std::numeric_limits<float>::infinity());
    if (!lo || !hi) {
      why = "Clip bounds are not constant scalars";
      return false;
    }
    params = {*lo, *hi};
  }
  auto attrs = conv->attrs();
  attrs["activation"] = op;
  if (!params.empty()) attrs["activation_params"] = params;
  Graph& g = rw.graph();
  g.opsets.emplace(kMs, 1);
  std::vector<Value*> ins(conv->inputs().begin(), conv->inputs().end());
  Node* fused = rw.insertBefore(act, "FusedConv", ins, 1, conv->name() + ".fused", attrs, kMs);
  fused->output(0)->setDType(act->output(0)->dtype());
  fused->output(0)->setShape(act->output(0)->shape());
  std::string name = conv->name();
  rw.replaceSubgraph({conv, act}, {{act->output(0), fused->output(0)}});
  rw.rename(fused, name);
  return true;
}

}  // namespace

/// The Conv+activation fusion pattern.
void populateConvActivationFusionPatterns(PatternSet& set) {
  Pattern p;
  auto conv = p.op("Conv", {p.any("x"), p.any("w"), p.optional("b")}, "conv");
  p.op({"Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "Clip"}, {conv.out().singleUse()},
       "act")
      .allowExtraInputs()
      .where([](const Node& n) { return n.output(0)->dtype() != DType::Float64; },
             "not float64 (ORT's FusedConv is float only)");
  set.add("fuse-conv-activation", p, fuse);
}

PassResult fuseConvActivation(Graph& g, RewriteListener* listener) {
  PatternSet set;
  populateConvActivationFusionPatterns(set);
  DriverOptions o;
  o.log_reasons = true;
  DriverResult r = applyPatternsOnce(g, set, o, listener);
  return {"conv-act-fusion", r.applied, r.reasons};
}

PassResult unfuseConvActivation(Graph& g, RewriteListener* listener) {
  PassResult res{"unfuse-conv-act", 0, {}};
  Rewriter rw(g);
  if (listener) rw.addListener(listener);
  std::vector<std::string> names;
  for (const auto& n : g.nodes())
    if (n->domain() == kMs && n->opType() == "FusedConv") names.push_back(n->name());
  for (const std::string& name : names) {
    Node* f = g.findNode(name);
    GS_CHECK(!f->input(3), f->describe(), ": cannot unfuse a FusedConv with a sum input (Z)");
    std::string act = f->attrString("activation", "");
    std::vector<float> p = f->attrFloats("activation_params");
    auto attrs = f->attrs();
    attrs.erase("activation");
    attrs.erase("activation_params");
    std::vector<Value*> ins(f->inputs().begin(), f->inputs().end());
    Node* conv = rw.insertBefore(f, "Conv", ins, 1, name + ".conv", attrs);
    Value* y = conv->output(0);
    y->setDType(f->output(0)->dtype());
    y->setShape(f->output(0)->shape());
    if (!act.empty()) {
      std::map<std::string, Attribute> aa;
      std::vector<Value*> ai{y};
      if (act == "LeakyRelu") aa["alpha"] = p.at(0);
      if (act == "HardSigmoid") {
        aa["alpha"] = p.at(0);
        aa["beta"] = p.at(1);
      }
      if (act == "Clip") {
        ai.push_back(rw.addParam(name + ".clip_min", at::scalar_tensor(p.at(0), at::kFloat), false));
        ai.push_back(rw.addParam(name + ".clip_max", at::scalar_tensor(p.at(1), at::kFloat), false));
      }
      Node* a = rw.insertBefore(f, act, ai, 1, name + "." + act, aa);
      a->output(0)->setDType(f->output(0)->dtype());
      a->output(0)->setShape(f->output(0)->shape());
      y = a->output(0);
    }
    rw.replaceNode(f, {y});
    rw.rename(conv, name);
    ++res.changes;
  }
  bool any = false;
  for (const auto& n : g.nodes()) any |= n->domain() == kMs;
  if (!any) g.opsets.erase(kMs);
  return res;
}

}  // namespace gs
