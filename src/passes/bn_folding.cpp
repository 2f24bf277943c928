// BatchNorm folding into the preceding Conv / ConvTranspose / Gemm / MatMul (declarative patterns).
#include <ATen/ATen.h>

#include "passes/bn_folding.h"

#include <vector>

#include "passes/passes.h"
#include "rewrite/driver.h"
#include "support/error.h"

namespace gs {

BnAffine bnAffine(const at::Tensor& gamma, const at::Tensor& beta, const at::Tensor& mean,
                  const at::Tensor& var, double eps) {
  auto d = [](const at::Tensor& t) { return t.detach().to(at::kDouble).reshape({-1}); };
  BnAffine f;
  f.s = d(gamma) / (d(var) + eps).sqrt();
  f.t = d(beta) - d(mean) * f.s;
  return f;
}

at::Tensor scaleChannels(const at::Tensor& w, const at::Tensor& s, int64_t axis) {
  std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
  shape[static_cast<size_t>(axis)] = -1;
  return (w.detach().to(at::kDouble) * s.reshape(shape)).to(w.scalar_type());
}

at::Tensor foldedBias(const at::Tensor& b, const BnAffine& bn) {
  if (!b.defined()) return bn.t.clone();
  return b.detach().to(at::kDouble).reshape({-1}).expand_as(bn.s) * bn.s + bn.t;
}

namespace {

bool isParamOrOmitted(const Value& v) { return v.isParam(); }

BnAffine bnFactors(const Match& m) {
  auto d = [&](const char* k) { return m.value(k)->data(); };
  return bnAffine(d("scale"), d("beta"), d("mean"), d("var"), m.node("bn")->attrFloat("epsilon", 1e-5f));
}

/// The BatchNormalization half shared by every pattern: inference form, one used output, all four
/// statistics parameters. `producer` is the node whose output feeds it.
void addBn(Pattern& p, NodePat producer) {
  p.op("BatchNormalization",
       {producer.out().singleUse(), p.param("scale"), p.param("beta"), p.param("mean"),
        p.param("var")},
       "bn")
      .attrEqOrAbsent("training_mode", 0)
      .where(
          [](const Node& n) {
            for (size_t k = 1; k < n.numOutputs(); ++k)
              if (n.output(k) && !n.output(k)->uses().empty()) return false;
            return true;
          },
          "running-statistics outputs unused");
}

/// Writes `t` into parameter `p` in place when `node` is its only user, else into a new parameter.
Value* updatedParam(Rewriter& rw, Node* node, Value* p, const at::Tensor& t, const char* suffix) {
  at::Tensor data = t.to(p->data().scalar_type()).contiguous();
  if (p->uses().size() == 1) {
    rw.setParamData(p, data);
    return p;
  }
  return rw.addParam(node->name() + suffix, data, p->trainable());
}

/// The folded bias b' = (b - mean) * s + beta (b = 0 when absent) as a parameter of `node`.
Value* foldedBiasParam(Rewriter& rw, Node* node, Value* b, const BnAffine& f, at::ScalarType dt) {
  at::Tensor nb = foldedBias(b ? b->data() : at::Tensor(), f);
  if (b && b->data().numel() == f.s.numel()) return updatedParam(rw, node, b, nb, ".bias");
  return rw.addParam(node->name() + ".bias", nb.to(dt), b ? b->trainable() : true);
}

//  BN(g, beta, mu, var)(Conv(x, W, b))  =>  Conv(x, W * s, (b - mu) * s + beta)
//  s = g / sqrt(var + eps), per output channel (W axis 0; ConvTranspose: axis 1 within groups).
bool foldIntoConv(const Match& m, Rewriter& rw, std::string& why) {
  Node* conv = m.node("conv");
  Value* w = m.value("w");
  BnAffine f = bnFactors(m);
  at::Tensor wd = w->data().detach().to(at::kDouble);
  bool transposed = conv->opType() == "ConvTranspose";
  int64_t group = conv->attrInt("group", 1);
  int64_t cout = transposed ? wd.size(1) * group : wd.size(0);
  if (wd.dim() < 3 || f.s.numel() != cout) {
    why = "BatchNormalization has " + std::to_string(f.s.numel()) + " channels, the conv " +
          std::to_string(cout);
    return false;
  }
  at::Tensor nw;
  if (!transposed) {
    nw = scaleChannels(wd, f.s, 0);
  } else {
    // W: [Cin, Cout/group, k...] = [group, Cin/group, Cout/group, k...]; out channel g*(Cout/g)+j.
    std::vector<int64_t> gs_shape{group, wd.size(0) / group, wd.size(1)};
    std::vector<int64_t> s_shape{group, 1, wd.size(1)};
    for (int64_t d = 2; d < wd.dim(); ++d) {
      gs_shape.push_back(wd.size(d));
      s_shape.push_back(1);
    }
    nw = (wd.reshape(gs_shape) * f.s.reshape(s_shape)).reshape(wd.sizes());
  }
  rw.setInput(conv, 1, updatedParam(rw, conv, w, nw, ".weight"));
  Value* b = m.has("b") ? m.value("b") : nullptr;
  Value* nb = foldedBiasParam(rw, conv, b, f, w->data().scalar_type());
  rw.setInput(conv, 2, nb);
  if (b && b != nb) rw.eraseIfUnused(b);
  rw.replaceNode(m.node("bn"), {conv->output(0)});
  return true;
}

//  BN(Gemm(x, W, c))  =>  Gemm(x, W * s (rows if transB else columns), (c - mu) * s + beta)
//  (alpha = beta = 1 only).
bool foldIntoGemm(const Match& m, Rewriter& rw, std::string& why) {
  Node* gemm = m.node("conv");
  Value* w = m.value("w");
  if (!attrIsNumber(gemm->findAttr("alpha"), 1.0) && gemm->hasAttr("alpha")) {
    why = "Gemm alpha != 1";
    return false;
  }
  if (!attrIsNumber(gemm->findAttr("beta"), 1.0) && gemm->hasAttr("beta")) {
    why = "Gemm beta != 1";
    return false;
  }
  BnAffine f = bnFactors(m);
  at::Tensor wd = w->data().detach().to(at::kDouble);
  bool tb = gemm->attrInt("transB", 0) != 0;
  if (wd.dim() != 2 || wd.size(tb ? 0 : 1) != f.s.numel()) {
    why = "weight shape does not match the BatchNormalization channels";
    return false;
  }
  Value* c = m.has("b") ? m.value("b") : nullptr;
  if (c && c->data().numel() != 1 && c->data().numel() != f.s.numel()) {
    why = "Gemm bias is not per output feature";
    return false;
  }
  at::Tensor nw = scaleChannels(wd, f.s, tb ? 0 : 1);
  rw.setInput(gemm, 1, updatedParam(rw, gemm, w, nw, ".weight"));
  Value* nb = foldedBiasParam(rw, gemm, c, f, w->data().scalar_type());
  rw.setInput(gemm, 2, nb);
  if (c && c != nb) rw.eraseIfUnused(c);
  rw.replaceNode(m.node("bn"), {gemm->output(0)});
  return true;
}

//  BN(MatMul(x, W)) with x 2-D  =>  Gemm(x, W * s[None, :], -mu * s + beta)
bool foldIntoMatMul(const Match& m, Rewriter& rw, std::string& why) {
  Node* mm = m.node("conv");
  Value* x = m.value("x");
  Value* w = m.value("w");
  if (!x->shape() || x->shape()->size() != 2 || w->data().dim() != 2) {
    why = "MatMul input rank is not known to be 2 (run shape-inference first)";
    return false;
  }
  BnAffine f = bnFactors(m);
  at::Tensor wd = w->data().detach().to(at::kDouble);
  if (wd.size(1) != f.s.numel()) {
    why = "weight columns do not match the BatchNormalization channels";
    return false;
  }
  Node* bn = m.node("bn");
  Value* nw = updatedParam(rw, mm, w, scaleChannels(wd, f.s, 1), ".weight");
  Value* nb = foldedBiasParam(rw, mm, nullptr, f, w->data().scalar_type());
  Node* gemm = rw.insertBefore(bn, "Gemm", {x, nw, nb}, 1, mm->name() + ".gemm");
  gemm->output(0)->setDType(bn->output(0)->dtype());
  gemm->output(0)->setShape(bn->output(0)->shape());
  std::string name = mm->name();
  rw.replaceSubgraph({mm, bn}, {{bn->output(0), gemm->output(0)}});
  rw.rename(gemm, name);
  return true;
}

}  // namespace

/// The BN-folding patterns (Conv/ConvTranspose, Gemm, MatMul producers).
void populateBatchNormFoldingPatterns(PatternSet& set) {
  auto bias = [](Pattern& p) {
    return p.optional("b").where([](const Value& v) { return isParamOrOmitted(v); },
                                 "bias is a parameter");
  };
  {
    Pattern p;
    auto conv = p.op({"Conv", "ConvTranspose"}, {p.any("x"), p.param("w"), bias(p)}, "conv");
    addBn(p, conv);
    set.add("fold-batchnorm-into-conv", p, foldIntoConv);
  }
  {
    Pattern p;
    auto gemm = p.op("Gemm", {p.any("x"), p.param("w"), bias(p)}, "conv");
    addBn(p, gemm);
    set.add("fold-batchnorm-into-gemm", p, foldIntoGemm);
  }
  {
    Pattern p;
    auto mm = p.op("MatMul", {p.any("x"), p.param("w")}, "conv");
    addBn(p, mm);
    set.add("fold-batchnorm-into-matmul", p, foldIntoMatMul);
  }
}

PassResult foldBatchNorm(Graph& g, RewriteListener* listener) {
  PatternSet set;
  populateBatchNormFoldingPatterns(set);
  DriverOptions o;
  o.log_reasons = true;
  DriverResult r = applyPatternsGreedily(g, set, o, listener);
  return {"bn-folding", r.applied, r.reasons};
}

}  // namespace gs
