// Minimal min/max QDQ quantizer for the int8 runtime's tests (see the header).
#include "int8_qdq_builder.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <unordered_map>

#include "rewrite/query.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace gs::int8 {
namespace {

bool isOp(const Node* n, const char* op) { return n && n->opType() == op && n->domain().empty(); }

bool isQuantizable(const Node* n) {
  return isOp(n, "Conv") || isOp(n, "Gemm") || isOp(n, "MatMul") || isOp(n, "Add") ||
         isOp(n, "MaxPool");
}

/// Output channel axis of the weight (input 1) of a Conv/Gemm/MatMul, or -1.
int64_t weightAxis(const Node* n) {
  if (isOp(n, "Conv")) return 0;
  if (isOp(n, "Gemm")) return n->attrInt("transB", 0) ? 0 : 1;
  if (isOp(n, "MatMul")) return 1;
  return -1;
}

struct Range {
  double lo = 0, hi = 0;
};

}  // namespace

int foldConvBatchNorm(Graph& g) {
  int folded = 0;
  std::vector<Node*> convs;
  for (const auto& n : g.nodes())
    if (isOp(n.get(), "Conv")) convs.push_back(n.get());
  for (Node* conv : convs) {
    Value* y = conv->output(0);
    if (!y || y->uses().size() != 1) continue;
    Node* bn = y->uses()[0].user;
    if (!isOp(bn, "BatchNormalization") || bn->input(0) != y || bn->attrInt("training_mode", 0))
      continue;
    Value* w = conv->input(1);
    bool ok = w && w->isParam() && w->uses().size() == 1;
    for (size_t i = 1; i <= 4; ++i) ok = ok && bn->input(i) && bn->input(i)->isParam();
    Value* b = conv->input(2);
    ok = ok && (!b || (b->isParam() && b->uses().size() == 1));
    if (!ok) continue;
    auto d = [](const Value* v) { return v->data().detach().to(at::kDouble).reshape({-1}); };
    double eps = bn->attrFloat("epsilon", 1e-5f);
    at::Tensor s = d(bn->input(1)) / (d(bn->input(4)) + eps).sqrt();
    at::Tensor w0 = w->data().detach();
    std::vector<int64_t> bshape(static_cast<size_t>(w0.dim()), 1);
    bshape[0] = -1;
    w->setData((w0.to(at::kDouble) * s.reshape(bshape)).to(w0.scalar_type()));
    at::Tensor b0 = b ? d(b) : at::zeros_like(s);
    at::Tensor nb = ((b0 - d(bn->input(3))) * s + d(bn->input(2))).to(w0.scalar_type());
    if (b) b->setData(nb);
    else {
      Value* nbv = g.addParam(g.uniqueValueName(conv->name() + ".bias"), nb);
      while (conv->numInputs() < 2) conv->addInput(nullptr);
      if (conv->numInputs() == 2) conv->addInput(nbv);
      else conv->setInput(2, nbv);
    }
    Value* out = bn->output(0);
    const auto& outs = g.outputs();
    for (size_t i = 0; i < outs.size(); ++i)
      if (outs[i] == out) g.setOutput(i, y);
    g.replaceAllUsesWith(out, y);
    g.eraseNode(bn);
    ++folded;
  }
  g.removeDeadValues();
  return folded;
}

std::unique_ptr<Graph> buildQdqGraph(const Graph& fp32,
                                     const std::vector<std::vector<at::Tensor>>& calib,
                                     const QdqBuildOptions& opts) {
  GS_CHECK(!calib.empty(), "buildQdqGraph: no calibration batches");
  std::unique_ptr<Graph> g = fp32.clone(true);
  foldConvBatchNorm(*g);

  // Values to quantize, and which value's parameters each reuses (MaxPool outputs).
  std::vector<Value*> order;
  std::set<Value*> marked;
  std::map<Value*, Value*> same_as;
  auto mark = [&](Value* v) {
    if (v && !v->isParam() && v->dtype() != DType::Int64 && marked.insert(v).second)
      order.push_back(v);
  };
  for (const auto& np : g->nodes()) {
    Node* n = np.get();
    if (!isQuantizable(n)) continue;
    int64_t wa = weightAxis(n);
    for (size_t i = 0; i < n->numInputs(); ++i) {
      if (wa >= 0 && i >= 1) break;  // weight and bias are handled below
      mark(n->input(i));
    }
    Value* o = n->output(0);
    if (o->uses().size() == 1 && (isOp(o->uses()[0].user, "Relu") || isOp(o->uses()[0].user, "Clip")))
      o = o->uses()[0].user->output(0);
    mark(o);
    if (isOp(n, "MaxPool")) same_as[o] = n->input(0);
  }

  // Calibration: min/max of every marked value.
  std::unordered_map<const Value*, Range> range;
  {
    Executor ex(*g);
    ex.setObserver([&](const Node& node, const std::vector<at::Tensor>& in,
                       const std::vector<at::Tensor>& out) {
      auto see = [&](const Value* v, const at::Tensor& t) {
        if (!v || !marked.count(const_cast<Value*>(v)) || !t.defined() || t.numel() == 0) return;
        auto mm = at::aminmax(t.to(at::kFloat));
        Range& r = range[v];
        r.lo = std::min(r.lo, std::get<0>(mm).item<double>());
        r.hi = std::max(r.hi, std::get<1>(mm).item<double>());
      };
      for (size_t k = 0; k < out.size(); ++k) see(node.output(k), out[k]);
      for (size_t k = 0; k < in.size(); ++k)
        if (node.input(k) && node.input(k)->isGraphInput()) see(node.input(k), in[k]);
    });
    for (const auto& batch : calib) ex.run(batch);
  }

  // Q -> DQ after every marked value, before its first user.
  std::map<Value*, std::pair<Value*, Value*>> qp;  // value -> (scale, zero point)
  const at::ScalarType zt = opts.signed_activations ? at::kChar : at::kByte;
  const double qmin = opts.signed_activations ? -128 : 0, qmax = qmin + 255;
  for (Value* v : order) {
    Value* src = same_as.count(v) ? same_as[v] : v;
    if (!qp.count(src) || src == v) {
      Range r = range[src];
      double scale = (r.hi - r.lo) / 255.0;
      if (!(scale > 0)) scale = 1.0;
      float fs = static_cast<float>(scale);
      double zp = std::clamp(std::nearbyint(qmin - r.lo / fs), qmin, qmax);
      Value* s = g->addParam(g->uniqueValueName(v->name() + ".scale"), at::scalar_tensor(fs, at::kFloat), false);
      Value* z = g->addParam(g->uniqueValueName(v->name() + ".zero_point"),
                             at::scalar_tensor(zp, at::kDouble).to(zt), false);
      qp[v] = {s, z};
    } else {
      qp[v] = qp[src];
    }
    auto [s, z] = qp[v];
    Node* first = firstUser(*g, v);
    std::vector<Use> uses = v->uses();
    bool is_out = std::find(g->outputs().begin(), g->outputs().end(), v) != g->outputs().end();
    std::string base = v->name();
    if (is_out) g->renameValue(v, g->uniqueValueName(base + ".float"));
    Node* q = g->addNodeNamedOutputs("QuantizeLinear", {v, s, z}, {g->uniqueValueName(base + ".q")},
                                     g->uniqueNodeName(base + ".quant"), {}, first);
    Node* dq = g->addNodeNamedOutputs("DequantizeLinear", {q->output(0), s, z},
                                      {is_out ? base : g->uniqueValueName(base + ".dq")},
                                      g->uniqueNodeName(base + ".dequant"), {}, first);
    for (const Use& u : uses) u.user->setInput(static_cast<size_t>(u.index), dq->output(0));
    for (size_t k = 0; k < g->outputs().size(); ++k)
      if (g->outputs()[k] == v) g->setOutput(k, dq->output(0));
    q->output(0)->setDType(opts.signed_activations ? DType::Int8 : DType::UInt8);
    dq->output(0)->setDType(DType::Float32);
    dq->output(0)->setShape(v->shape());
  }

  // Weights: per-channel symmetric int8 behind DequantizeLinear (and optionally int32 biases).
  std::vector<Node*> ops;
  for (const auto& n : g->nodes())
    if (weightAxis(n.get()) >= 0) ops.push_back(n.get());
  for (Node* n : ops) {
    Value* w = n->input(1);
    if (!w || !w->isParam() || !at::isFloatingType(w->data().scalar_type()) || w->data().dim() < 2)
      continue;
    const int64_t axis = weightAxis(n);
    at::Tensor wt = w->data().detach().to(at::kFloat);
    at::Tensor wm = wt.movedim(axis, 0).reshape({wt.size(axis), -1});
    at::Tensor scale = (std::get<0>(wm.abs().max(1)) / 127.0f).clamp_min(1e-12f);
    std::vector<int64_t> shape(static_cast<size_t>(wt.dim()), 1);
    shape[static_cast<size_t>(axis)] = -1;
    at::Tensor wq = at::clamp(at::round(wt / scale.reshape(shape)), -127, 127).to(at::kChar);
    std::string base = w->name();
    Value* qv = g->addParam(g->uniqueValueName(base + ".quantized"), wq, false);
    Value* sv = g->addParam(g->uniqueValueName(base + ".scale"), scale, false);
    Value* zv = g->addParam(g->uniqueValueName(base + ".zero_point"),
                            at::zeros({scale.numel()}, at::kChar), false);
    Node* dq = g->addNodeNamedOutputs("DequantizeLinear", {qv, sv, zv},
                                      {g->uniqueValueName(base + ".dq")},
                                      g->uniqueNodeName(base + ".dequant"), {{"axis", axis}}, n);
    dq->output(0)->setDType(DType::Float32);
    n->setInput(1, dq->output(0));
    Value* b = n->input(2);
    Node* xdq = n->input(0) ? n->input(0)->producer() : nullptr;
    if (opts.int32_bias && b && b->isParam() && isOp(xdq, "DequantizeLinear") &&
        !isOp(n, "MatMul")) {
      float xs = xdq->input(1)->data().item<float>();
      at::Tensor bs = scale * xs;
      at::Tensor bq = at::round(b->data().detach().to(at::kFloat) / bs).to(at::kInt);
      Value* bqv = g->addParam(g->uniqueValueName(b->name() + ".quantized"), bq, false);
      Value* bsv = g->addParam(g->uniqueValueName(b->name() + ".scale"), bs, false);
      Node* bdq = g->addNodeNamedOutputs("DequantizeLinear", {bqv, bsv},
                                         {g->uniqueValueName(b->name() + ".dq")},
                                         g->uniqueNodeName(b->name() + ".dequant"), {{"axis", int64_t{0}}}, n);
      bdq->output(0)->setDType(DType::Float32);
      n->setInput(2, bdq->output(0));
    }
  }
  g->removeDeadValues();
  return g;
}

}  // namespace gs::int8
