// BatchNormalization folding into Conv / ConvTranspose / Gemm weights and biases.
#include "quant/bn_fold.h"

#include <ATen/ATen.h>

#include <vector>

#include "support/error.h"

namespace gs::quant {

BnFactors bnFactors(const Node& bn) {
  for (size_t i = 1; i <= 4; ++i)
    GS_CHECK(bn.input(i) && bn.input(i)->isParam(), bn.describe(),
             ": folding needs parameter scale / bias / mean / var");
  double eps = bn.attrFloat("epsilon", 1e-5f);
  at::Tensor g = bn.input(1)->data().to(at::kDouble), beta = bn.input(2)->data().to(at::kDouble);
  at::Tensor mu = bn.input(3)->data().to(at::kDouble), var = bn.input(4)->data().to(at::kDouble);
  BnFactors f;
  f.s = g / at::sqrt(var + eps);
  f.t = beta - mu * f.s;
  return f;
}

namespace {

/// The axis of the weight that indexes output channels, or -1 when the layer can't be folded.
int64_t outAxis(const Node& n) {
  if (n.opType() == "Conv") return 0;
  if (n.opType() == "ConvTranspose") return n.attrInt("group", 1) == 1 ? 1 : -1;
  if (n.opType() == "Gemm") return n.attrInt("transB", 0) ? 0 : 1;
  return -1;
}

}  // namespace

bool isFoldableBn(const Node& bn, bool need_param_weight) {
  if (bn.opType() != "BatchNormalization" || !bn.domain().empty()) return false;
  if (bn.attrInt("training_mode", 0) != 0) return false;
  for (size_t i = 1; i < bn.numOutputs(); ++i)
    if (bn.output(i)) return false;
  for (size_t i = 1; i <= 4; ++i)
    if (!bn.input(i) || !bn.input(i)->isParam()) return false;
  const Value* y = bn.input(0);
  const Node* p = y->producer();
  if (!p || !p->domain().empty() || outAxis(*p) < 0) return false;
  if (!p->input(1) || (need_param_weight && !p->input(1)->isParam())) return false;
  if (p->opType() == "Gemm" && p->attrFloat("beta", 1.0f) != 1.0f) return false;
  if (p->opType() == "Gemm" && p->input(2) && !p->input(2)->isParam()) return false;
  if (p->opType() != "Gemm" && p->input(2) && !p->input(2)->isParam()) return false;
  if (y->uses().size() != 1) return false;
  for (const Value* o : y->graph()->outputs())
    if (o == y) return false;
  return true;
}

int64_t foldBatchNorms(Graph& g) {
  std::vector<Node*> bns;
  for (const auto& n : g.nodes())
    if (isFoldableBn(*n)) bns.push_back(n.get());
  for (Node* bn : bns) {
    Node* conv = bn->input(0)->producer();
    BnFactors f = bnFactors(*bn);
    int64_t axis = outAxis(*conv);
    Value* wv = conv->input(1);
    at::Tensor w = wv->data();
    std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
    shape[static_cast<size_t>(axis)] = w.size(axis);
    GS_CHECK(f.s.numel() == w.size(axis), bn->describe(), ": has ", f.s.numel(),
             " channels but ", conv->describe(), " produces ", w.size(axis));
    at::Tensor nw = (w.to(at::kDouble) * f.s.reshape(shape)).to(w.scalar_type());
    at::Tensor b = conv->input(2) ? conv->input(2)->data().to(at::kDouble)
                                  : at::zeros({w.size(axis)}, at::kDouble);
    GS_CHECK(b.numel() == f.s.numel(), conv->describe(), ": bias of ", b.numel(),
             " elements cannot absorb ", bn->describe());
    at::Tensor nb = (b.reshape({-1}) * f.s + f.t).to(w.scalar_type());
    // New params (the old ones may be shared with other layers or graphs).
    Value* nwv = g.addParam(g.uniqueValueName(wv->name() + "_bnfold"), nw, wv->trainable());
    conv->setInput(1, nwv);
    Value* nbv = g.addParam(g.uniqueValueName(conv->name() + ".bias_folded"), nb, true);
    if (conv->numInputs() < 3) conv->addInput(nbv);
    else conv->setInput(2, nbv);
    Value* out = bn->output(0);
    g.replaceAllUsesWith(out, conv->output(0));
    g.eraseNode(bn);
  }
  g.removeDeadValues();
  return static_cast<int64_t>(bns.size());
}

}  // namespace gs::quant
