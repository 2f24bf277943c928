// Inference-time fusion patterns (Conv+BatchNormalization folding, Conv+Relu, erf-GELU) for Executor.
#include "runtime/fusion.h"

#include <ATen/ATen.h>

#include <array>
#include <cmath>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "passes/bn_folding.h"
#include "runtime/fq_exact_fusion.h"
#include "runtime/int8_fusion.h"
#include "support/error.h"

namespace gs {
namespace {

/// Graph facts the matchers need: which values are graph outputs, which nodes are taken.
struct MatchContext {
  std::unordered_set<const Value*> graph_outputs;
  std::unordered_set<const Node*> claimed;

  /// True if `v` is consumed only by `user` (once) and is not a graph output, i.e. a private edge.
  bool privateEdge(const Value* v, const Node* user) const {
    return v && !graph_outputs.count(v) && v->uses().size() == 1 && v->uses()[0].user == user;
  }
  /// The single consumer of `v` when the edge is private and the consumer is a free ONNX `op`.
  const Node* soleUser(const Value* v, const char* op) const {
    if (!v || graph_outputs.count(v) || v->uses().size() != 1) return nullptr;
    const Node* u = v->uses()[0].user;
    if (!u || u->opType() != op || !u->domain().empty() || claimed.count(u)) return nullptr;
    return u;
  }
};

bool isOp(const Node* n, const char* op) { return n && n->opType() == op && n->domain().empty(); }

/// Only node outputs 1.. that are absent: fused nodes must have exactly one produced value.
bool singleOutput(const Node* n) {
  if (!n->output(0)) return false;
  for (size_t k = 1; k < n->numOutputs(); ++k)
    if (n->output(k)) return false;
  return true;
}

Kernel kernelFor(const Node& n) {
  const OpSchema* s = OpRegistry::global().find(n.domain(), n.opType());
  GS_CHECK(s && s->kernel, n.describe(), ": unsupported op '", n.opType(), "'");
  return s->kernel(n);
}

// ---------------------------------------------------------------- Conv (+ BatchNormalization) (+ Relu)

/// Folded conv weight/bias, rebuilt when any source parameter changed.
struct FoldedConvBn {
  double eps = 1e-5;
  std::array<TensorStamp, 6> stamps;  // W, B, scale, beta, mean, var
  bool valid = false;
  at::Tensor w, b;

  /// `in` = [x, W, B (may be undefined), scale, beta, mean, var].
  void refresh(const std::vector<at::Tensor>& in) {
    std::array<TensorStamp, 6> now;
    for (size_t i = 0; i < 6; ++i) now[i] = TensorStamp::of(in[i + 1]);
    if (valid && now == stamps) return;
    BnAffine f = bnAffine(in[3], in[4], in[5], in[6], eps);
    w = scaleChannels(in[1], f.s, 0).contiguous();
    b = foldedBias(in[2], f).to(in[1].scalar_type());
    stamps = now;
    valid = true;
  }
};

/// BatchNormalization in inference form whose parameters can be folded into conv weight `w`.
bool foldableBn(const Node* bn, const Value* w) {
  if (!singleOutput(bn) || bn->numInputs() != 5 || bn->attrInt("training_mode", 0) != 0) return false;
  if (!w || !w->isParam() || !w->data().defined() || w->data().dim() < 3 ||
      !at::isFloatingType(w->data().scalar_type()))
    return false;
  const int64_t m = w->data().size(0);
  for (size_t i = 1; i <= 4; ++i) {
    const Value* p = bn->input(i);
    if (!p || !p->isParam() || !p->data().defined() || p->data().numel() != m ||
        !at::isFloatingType(p->data().scalar_type()))
      return false;
  }
  return true;
}

void matchConv(const Node* conv, MatchContext& mc, std::vector<FusedGroup>& groups) {
  if (!singleOutput(conv) || conv->numInputs() < 2 || conv->numInputs() > 3) return;
  const Value* cur = conv->output(0);
  const Node* bn = mc.soleUser(cur, "BatchNormalization");
  if (bn && (bn->input(0) != cur || !foldableBn(bn, conv->input(1)))) bn = nullptr;
  if (bn) cur = bn->output(0);
  const Node* relu = mc.soleUser(cur, "Relu");
  if (relu && (relu->input(0) != cur || !singleOutput(relu))) relu = nullptr;
  if (!bn && !relu) return;

  FusedGroup fg;
  fg.anchor = conv;
  fg.nodes.push_back(conv);
  fg.kind = "Conv";
  for (size_t i = 0; i < 3; ++i) fg.inputs.push_back(conv->input(i));
  std::shared_ptr<FoldedConvBn> fold;
  if (bn) {
    fg.nodes.push_back(bn);
    fg.kind += "+BatchNormalization";
    for (size_t i = 1; i <= 4; ++i) fg.inputs.push_back(bn->input(i));
    fold = std::make_shared<FoldedConvBn>();
    fold->eps = bn->attrFloat("epsilon", 1e-5f);  // float attribute widened, as the BN kernel does
  }
  if (relu) {
    fg.nodes.push_back(relu);
    fg.kind += "+Relu";
  }
  fg.outputs.push_back(fg.nodes.back()->output(0));
  Kernel conv_k = kernelFor(*conv);
  const bool with_relu = relu != nullptr;
  fg.kernel = [conv_k, fold, with_relu](const KernelContext& ctx, const std::vector<at::Tensor>& in,
                                        std::vector<at::Tensor>& out) {
    std::vector<at::Tensor> y(1);
    if (fold) {
      fold->refresh(in);
      conv_k(ctx, {in[0], fold->w, fold->b}, y);
    } else {
      conv_k(ctx, in, y);
    }
    // The conv result is a fresh tensor nobody else sees (the edge is private): safe in place.
    if (with_relu) at::relu_(y[0]);
    out[0] = std::move(y[0]);
  };
  for (const Node* n : fg.nodes) mc.claimed.insert(n);
  groups.push_back(std::move(fg));
}

// ---------------------------------------------------------------- erf-GELU

/// Value of a one-element floating parameter of rank <= 1, or NaN.
double constValue(const Value* v) {
  if (!v || !v->isParam() || !v->data().defined() || v->data().numel() != 1 ||
      v->data().dim() > 1 || !at::isFloatingType(v->data().scalar_type()))
    return std::nan("");
  return v->data().to(at::kDouble).item<double>();
}

bool near(double v, double target) { return std::abs(v - target) <= 1e-6 * std::abs(target); }

/// The operand of binary node `n` other than `v` (nullptr if `v` is not an operand).
const Value* otherOperand(const Node* n, const Value* v) {
  if (n->numInputs() != 2) return nullptr;
  if (n->input(0) == v) return n->input(1);
  if (n->input(1) == v) return n->input(0);
  return nullptr;
}

/// Binary node `n` as x op c with a constant c close to `target`: returns x, or nullptr.
/// `commutes` allows c op x.
const Value* splitConst(const Node* n, double target, bool commutes) {
  if (n->numInputs() != 2 || !singleOutput(n)) return nullptr;
  if (near(constValue(n->input(1)), target)) return n->input(0);
  if (commutes && near(constValue(n->input(0)), target)) return n->input(1);
  return nullptr;
}

void matchGelu(const Node* erf, MatchContext& mc, std::vector<FusedGroup>& groups) {
  if (!singleOutput(erf) || erf->numInputs() != 1 || !erf->input(0)) return;
  const Node* scale = erf->input(0)->producer();
  if (!scale || mc.claimed.count(scale) || !mc.privateEdge(scale->output(0), erf)) return;
  const Value* x = nullptr;
  if (isOp(scale, "Div")) x = splitConst(scale, std::sqrt(2.0), false);
  else if (isOp(scale, "Mul")) x = splitConst(scale, std::sqrt(0.5), true);
  if (!x) return;
  const Node* add = mc.soleUser(erf->output(0), "Add");
  if (!add || !near(constValue(otherOperand(add, erf->output(0))), 1.0) || !singleOutput(add)) return;
  const Node* m1 = mc.soleUser(add->output(0), "Mul");
  if (!m1 || !singleOutput(m1)) return;
  const Value* o = otherOperand(m1, add->output(0));
  if (!o) return;
  std::vector<const Node*> nodes{scale, erf, add};
  if (o == x) {  // (x * (1 + erf)) * 0.5
    const Node* m2 = mc.soleUser(m1->output(0), "Mul");
    if (!m2 || splitConst(m2, 0.5, true) != m1->output(0)) return;
    nodes.push_back(m1);
    nodes.push_back(m2);
  } else {  // (x * 0.5) * (1 + erf)
    const Node* h = o->producer();
    if (!isOp(h, "Mul") || mc.claimed.count(h) || !mc.privateEdge(o, m1) ||
        splitConst(h, 0.5, true) != x)
      return;
    nodes.push_back(h);
    nodes.push_back(m1);
  }

  // Kernel inputs: x, then every constant operand of the covered nodes (for the exact fallback).
  FusedGroup fg;
  fg.kind = "Gelu";
  fg.anchor = erf;
  fg.nodes = nodes;
  fg.inputs.push_back(x);
  std::unordered_map<const Value*, int> index{{x, 0}};
  struct Sub {
    Kernel k;
    std::vector<int> in;  // indices into [inputs..., sub outputs...]
  };
  std::vector<Sub> subs;
  std::vector<const Value*> consts;
  for (const Node* n : nodes)
    for (const Value* v : n->inputs())
      if (v && v->isParam() && !index.count(v)) {
        index.emplace(v, static_cast<int>(fg.inputs.size()));
        fg.inputs.push_back(v);
        consts.push_back(v);
      }
  const int num_in = static_cast<int>(fg.inputs.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    Sub s{kernelFor(*nodes[i]), {}};
    for (const Value* v : nodes[i]->inputs()) s.in.push_back(index.at(v));
    index.emplace(nodes[i]->output(0), num_in + static_cast<int>(i));
    subs.push_back(std::move(s));
  }
  // `nodes` follows the data flow (the x * 0.5 node, which reads only x, precedes its user).
  fg.outputs.push_back(nodes.back()->output(0));
  int64_t const_rank = 0;
  for (const Value* c : consts) const_rank = std::max<int64_t>(const_rank, c->data().dim());
  fg.kernel = [subs, num_in, const_rank](const KernelContext& ctx, const std::vector<at::Tensor>& in,
                                         std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    const at::ScalarType st = x.scalar_type();
    if ((st == at::kFloat || st == at::kDouble) && x.dim() >= const_rank) {
      out[0] = at::gelu(x);  // exact (erf-based) GELU, approximate="none"
      return;
    }
    // Other dtypes or rank-raising constants: run the original nodes for exact semantics.
    std::vector<at::Tensor> vals(in.begin(), in.end());
    vals.resize(static_cast<size_t>(num_in) + subs.size());
    std::vector<at::Tensor> a, r(1);
    for (size_t i = 0; i < subs.size(); ++i) {
      a.clear();
      for (int j : subs[i].in) a.push_back(vals[static_cast<size_t>(j)]);
      subs[i].k(ctx, a, r);
      vals[static_cast<size_t>(num_in) + i] = std::move(r[0]);
    }
    out[0] = std::move(vals.back());
  };
  for (const Node* n : fg.nodes) mc.claimed.insert(n);
  groups.push_back(std::move(fg));
}

}  // namespace

std::vector<FusedGroup> findFusions(const Graph& g) {
  MatchContext mc;
  for (const Value* v : g.outputs()) mc.graph_outputs.insert(v);
  // QDQ islands first: their Conv/Gemm/MatMul nodes run as int8 kernels (runtime/int8_fusion.h).
  std::vector<FusedGroup> groups = findInt8Fusions(g);
  for (const FusedGroup& fg : groups)
    for (const Node* n : fg.nodes) mc.claimed.insert(n);
  // Fake-quant layers next: they compute on integer codes (runtime/fq_exact_fusion.h).
  for (FusedGroup& fg : findExactFakeQuantFusions(g, mc.claimed)) {
    for (const Node* n : fg.nodes) mc.claimed.insert(n);
    groups.push_back(std::move(fg));
  }
  for (const auto& n : g.nodes()) {
    if (mc.claimed.count(n.get())) continue;
    if (isOp(n.get(), "Conv")) matchConv(n.get(), mc, groups);
    else if (isOp(n.get(), "Erf")) matchGelu(n.get(), mc, groups);
  }
  return groups;
}

}  // namespace gs
