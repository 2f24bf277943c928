// SimQAT BN handling: one-conv / two-conv fold graph surgery, its deployment lowering, and BN
// folding through weight quantizers for no-fold training.
#include "quant/simqat.h"

#include <ATen/ATen.h>

#include <map>

#include "quant/bn_fold.h"
#include "quant/fake_quant_ops.h"
#include "support/error.h"

namespace gs::quant {

Node* foldableBnAfter(const Node& conv) {
  const Value* y = conv.output(0);
  if (!y || y->uses().size() != 1) return nullptr;
  Node* bn = y->uses()[0].user;
  return bn->opType() == "BatchNormalization" && isFoldableBn(*bn, false) ? bn : nullptr;
}

int64_t eraseDeadNodes(Graph& g) {
  int64_t erased = 0;
  for (bool changed = true; changed;) {
    changed = false;
    std::vector<Node*> dead;
    for (const auto& n : g.nodes()) {
      bool used = false;
      for (const Value* o : n->outputs()) {
        if (!o) continue;
        used = used || !o->uses().empty();
        for (const Value* go : g.outputs()) used = used || go == o;
      }
      if (!used) dead.push_back(n.get());
    }
    for (auto it = dead.rbegin(); it != dead.rend(); ++it) g.eraseNode(*it);
    erased += static_cast<int64_t>(dead.size());
    changed = !dead.empty();
  }
  g.removeDeadValues();
  return erased;
}

std::vector<ConvBnFold> insertBnFold(Graph& g, const std::vector<std::string>& convs,
                                     BnFoldKind kind, Value* frozen) {
  std::vector<ConvBnFold> res;
  for (const std::string& name : convs) {
    Node* conv = g.findNode(name);
    if (!conv || conv->opType() != "Conv" || !conv->input(1)) continue;
    // The weight is read by the conv, or by its weight quantizer (inserted before this rewrite).
    Node* wuser = conv;
    size_t wslot = 1;
    Node* p = conv->input(1)->producer();
    if (p && isQuantizer(*p)) {
      wuser = p;
      wslot = 0;
    }
    if (!wuser->input(wslot)->isParam()) continue;
    Node* bn = foldableBnAfter(*conv);
    if (!bn) continue;
    ConvBnFold f;
    f.conv = name;
    f.cell = bn->name();
    f.weight = wuser->input(wslot);
    f.bias = conv->input(2);
    auto add = [&](const std::string& op, std::vector<Value*> in, const std::string& tag, Node* before) {
      return g.addNode(op, in, 1, g.uniqueNodeName(name + ".bnfold." + tag), {}, before)->output(0);
    };
    Value* eps = g.addParam(g.uniqueValueName(name + ".bnfold.eps"),
                            at::scalar_tensor(bn->attrFloat("epsilon", 1e-5f)), false);
    Value* sd = add("Sqrt", {add("Add", {bn->input(4), eps}, "var_eps", wuser)}, "std", wuser);
    Value* sf = add("Div", {bn->input(1), sd}, "factor", wuser);
    std::vector<int64_t> wshape(static_cast<size_t>(f.weight->data().dim()), 1);
    wshape[0] = -1;
    std::vector<int64_t> oshape(wshape.size(), 1);
    oshape[1] = -1;  // output [N, C, spatial...] has the weight's rank
    Value* wsh = g.addParam(g.uniqueValueName(name + ".bnfold.wshape"), at::tensor(wshape, at::kLong), false);
    Value* sfw = add("Reshape", {sf, wsh}, "factor_w", wuser);
    f.folded_weight = add("Mul", {f.weight, sfw}, "weight", wuser);
    wuser->setInput(wslot, f.folded_weight);
    if (conv->numInputs() > 2) conv->truncateInputs(2);
    if (wuser != conv && wuser->opType() == "FakeQuant") {
      // Start the quantizer from the folded weight's range (train mode re-observes every step).
      at::Tensor wf = scaleChannels(f.weight->data(), bnFactors(*bn).s, 0);
      QuantSpec spec = specFromAttrs(*wuser);
      auto [mn, mx] = reduceMinMax(wf, spec);
      QParams qp = computeQParams(mn, mx, spec);
      wuser->input(1)->setData(qp.scale.reshape(wuser->input(1)->data().sizes()));
      wuser->input(2)->setData(qp.zero_point.reshape(wuser->input(2)->data().sizes()));
    }
    if (kind == BnFoldKind::TwoConv) {
      // Same inputs 0..4 and attributes as the BN, then the first conv's operands.
      std::map<std::string, Attribute> attrs{
          {"epsilon", Attribute(bn->attrFloat("epsilon", 1e-5f))},
          {"momentum", Attribute(bn->attrFloat("momentum", 0.9f))}};
      Node* corr = g.addNode("BnFoldCorrection",
                             {conv->output(0), bn->input(1), bn->input(2), bn->input(3), bn->input(4),
                              conv->input(0), f.weight, f.bias, frozen},
                             1, g.uniqueNodeName(name + ".bnfold.correction"), attrs, bn, "gs");
      g.replaceAllUsesWith(bn->output(0), corr->output(0));
      g.eraseNode(bn);
      f.cell = corr->name();
      res.push_back(f);
      continue;
    }
    // One-conv: divide the factor back out after the conv, add the original bias, real BN.
    Value* osh = g.addParam(g.uniqueValueName(name + ".bnfold.oshape"), at::tensor(oshape, at::kLong), false);
    Value* sfo = add("Reshape", {sf, osh}, "factor_o", bn);
    Value* y = add("Div", {conv->output(0), sfo}, "rescale", bn);
    if (f.bias) {
      Value* bo = add("Reshape", {f.bias, osh}, "bias_o", bn);
      y = add("Add", {y, bo}, "bias", bn);
    }
    bn->setInput(0, y);
    res.push_back(f);
  }
  return res;
}

void finishBnFold(Graph& g, const std::vector<ConvBnFold>& folds) {
  for (const ConvBnFold& f : folds) {
    Node* conv = g.findNode(f.conv);
    Node* cell = g.findNode(f.cell);
    GS_CHECK(conv && cell, "BN fold of '", f.conv, "': graph changed since apply()");
    BnAffine bf = bnFactors(*cell);
    at::Tensor wf = scaleChannels(f.weight->data(), bf.s, 0);
    at::Tensor nb = foldedBias(f.bias ? f.bias->data() : at::Tensor(), bf).to(wf.scalar_type());
    // The weight quantizer (or the conv itself) reads the folded weight: make it a parameter.
    Value* wp = g.addParam(g.uniqueValueName(f.conv + ".weight_folded"), wf, true);
    g.replaceAllUsesWith(f.folded_weight, wp);
    Value* bp = g.addParam(g.uniqueValueName(f.conv + ".bias_folded"), nb, true);
    conv->addInput(bp);
    g.replaceAllUsesWith(cell->output(0), conv->output(0));
    eraseDeadNodes(g);
  }
}

int64_t foldBatchNormsThroughQuantizers(Graph& g) {
  std::vector<Node*> bns;
  for (const auto& n : g.nodes())
    if (n->opType() == "BatchNormalization" && isFoldableBn(*n, false)) bns.push_back(n.get());
  int64_t folded = 0;
  for (Node* bn : bns) {
    Node* conv = bn->input(0)->producer();
    if (conv->opType() != "Conv") continue;
    Value* wv = conv->input(1);
    Node* fq = wv->producer();
    if (wv->isParam()) continue;  // plain conv: foldBatchNorms handles it
    if (!fq || !isQuantizer(*fq) || fq->opType() != "FakeQuant" || !fq->input(0)->isParam() ||
        wv->uses().size() != 1)
      continue;
    BnAffine bf = bnFactors(*bn);
    QuantSpec spec = specFromAttrs(*fq);
    at::Tensor wf = scaleChannels(fq->input(0)->data(), bf.s, 0);
    Value* scale = fq->input(1);
    Value* zp = fq->input(2);
    QParams qp;
    if (spec.symmetric && spec.granularity == Granularity::PerChannel && spec.axis == 0) {
      qp.scale = (scale->data().to(at::kDouble) * bf.s.abs()).to(at::kFloat);
      qp.zero_point = zp->data().clone();
    } else {
      auto [mn, mx] = reduceMinMax(wf, spec);
      qp = computeQParams(mn, mx, spec);
    }
    fq->setInput(0, g.addParam(g.uniqueValueName(conv->name() + ".weight_folded"), wf, true));
    fq->setInput(1, g.addParam(g.uniqueValueName(fq->name() + ".scale_folded"), qp.scale, false));
    fq->setInput(2, g.addParam(g.uniqueValueName(fq->name() + ".zero_point_folded"), qp.zero_point, false));
    at::Tensor nb = foldedBias(conv->input(2) ? conv->input(2)->data() : at::Tensor(), bf);
    Value* bp = g.addParam(g.uniqueValueName(conv->name() + ".bias_folded"),
                           nb.to(wf.scalar_type()), true);
    if (conv->numInputs() > 2) conv->setInput(2, bp);
    else conv->addInput(bp);
    g.replaceAllUsesWith(bn->output(0), conv->output(0));
    g.eraseNode(bn);
    ++folded;
  }
  g.removeDeadValues();
  return folded;
}

}  // namespace gs::quant
