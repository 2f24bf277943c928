// Constant folding: evaluates nodes whose inputs are all parameters with the registered kernels.
#include <ATen/ATen.h>

#include <set>

#include "ops/registry.h"
#include "passes/passes.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace gs {
namespace {

/// Ops whose result is not a function of their inputs (never folded).
const std::set<std::string>& nondeterministicOps() {
  static const std::set<std::string> ops{"RandomNormal", "RandomUniform", "RandomNormalLike",
                                         "RandomUniformLike", "Bernoulli", "Multinomial"};
  return ops;
}

}  // namespace

PassResult foldConstants(Graph& g, const ConstantFoldingOptions& opts, RewriteListener* listener) {
  PassResult res{"constant-folding", 0, {}};
  Rewriter rw(g);
  if (listener) rw.addListener(listener);
  const OpRegistry& reg = OpRegistry::global();
  // Names, not pointers: folding erases nodes (and dead producers) while we iterate.
  std::vector<std::string> names;
  for (const auto& n : g.nodes()) names.push_back(n->name());
  for (const std::string& name : names) {
    Node* n = g.findNode(name);
    if (!n || !n->domain().empty() || nondeterministicOps().count(n->opType())) continue;
    bool all_params = n->numInputs() > 0, trainable = false, any_output = false;
    for (const Value* v : n->inputs()) {
      if (!v) continue;
      if (!v->isParam()) {
        all_params = false;
        break;
      }
      trainable |= v->trainable();
    }
    if (!all_params || (trainable && !opts.fold_trainable)) continue;
    for (const Value* o : n->outputs()) {
      if (o && isGraphOutput(g, o)) any_output = true;
      if (o && staticNumel(o->shape()) > opts.max_output_elements) any_output = true;
    }
    if (any_output) {
      res.notes.push_back(n->describe() + ": not folded (graph output or too large)");
      continue;
    }
    const OpSchema* s = reg.find(n->domain(), n->opType());
    if (!s || !s->kernel) continue;
    // Dropout in eval mode is an identity: fold like any other op (mask output omitted/unused).
    std::vector<at::Tensor> in, out(n->numOutputs());
    for (const Value* v : n->inputs()) in.push_back(v ? v->data().detach() : at::Tensor());
    try {
      at::NoGradGuard no_grad;
      Kernel k = s->kernel(*n);
      k(KernelContext{}, in, out);
    } catch (const std::exception& e) {
      res.notes.push_back(n->describe() + ": not folded: " + firstLine(e.what()));
      continue;
    }
    bool ok = true;
    for (size_t k = 0; k < out.size(); ++k) {
      if (!n->output(k)) continue;
      if (!out[k].defined() || out[k].numel() > opts.max_output_elements) ok = false;
    }
    if (!ok) {
      res.notes.push_back(n->describe() + ": not folded (output too large or undefined)");
      continue;
    }
    std::vector<Value*> repl(n->numOutputs(), nullptr);
    std::vector<std::pair<Value*, std::string>> names_back;
    for (size_t k = 0; k < out.size(); ++k) {
      Value* o = n->output(k);
      if (!o || o->uses().empty()) continue;
      // Own storage: kernels may return views of parameter data.
      at::Tensor t = out[k].detach().clone();
      bool train = trainable && t.is_floating_point();
      repl[k] = rw.addParam(o->name() + ".folded", t, train);
      names_back.emplace_back(repl[k], o->name());
    }
    rw.replaceNode(n, repl);
    // The folded parameter takes over the output's name (free now that the node is gone).
    for (auto& [p, nm] : names_back)
      if (!g.findValue(nm)) rw.renameValue(p, nm);
    ++res.changes;
  }
  return res;
}

}  // namespace gs
