// Post-training quantization: insert, calibrate (executor node observer), set qparams, correct bias.
#include "quant/ptq.h"

#include <ATen/ATen.h>

#include <chrono>
#include <map>
#include <memory>
#include <unordered_map>

#include "quant/bn_fold.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "support/log.h"

namespace gs::quant {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// Running per-channel sum of a layer's input (channel dim 1), for bias correction.
struct ChannelMean {
  size_t act_index = 0;  // the layer input whose mean is taken
  at::Tensor sum;
  double count = 0;
  void add(const at::Tensor& x) {
    at::Tensor xd = x.detach().to(at::kDouble);
    if (xd.dim() < 2) return;
    std::vector<int64_t> dims;
    for (int64_t d = 0; d < xd.dim(); ++d)
      if (d != 1) dims.push_back(d);
    at::Tensor s = xd.sum(dims);
    sum = sum.defined() ? sum + s : s;
    count += static_cast<double>(xd.numel() / xd.size(1));
  }
  at::Tensor mean() const { return sum / count; }
};

void setParam(Value* v, const at::Tensor& t) { v->setData(t.to(at::kFloat).reshape(v->data().sizes()).contiguous()); }

/// E[(Wq - W) x] per output channel of a Conv / Gemm given the input channel means, or undefined
/// when the layer form is not supported.
at::Tensor biasShift(const Node& n, const at::Tensor& w, const at::Tensor& wq, const at::Tensor& mean) {
  at::Tensor dw = (wq.to(at::kDouble) - w.to(at::kDouble));
  if (n.opType() == "Conv") {
    int64_t groups = n.attrInt("group", 1);
    int64_t o = dw.size(0), ig = dw.size(1);
    if (mean.numel() != ig * groups) return {};
    at::Tensor dws = dw.reshape({o, ig, -1}).sum(2);                       // [O, I/G]
    at::Tensor m = mean.reshape({groups, ig}).repeat_interleave(o / groups, 0);  // [O, I/G]
    return (dws * m).sum(1);
  }
  if (n.opType() == "Gemm") {
    if (n.attrInt("transA", 0)) return {};
    double alpha = n.attrFloat("alpha", 1.0f), beta = n.attrFloat("beta", 1.0f);
    if (beta == 0) return {};
    at::Tensor d = n.attrInt("transB", 0) ? at::matmul(dw, mean) : at::matmul(mean, dw);
    return d * (alpha / beta);
  }
  return {};
}

}  // namespace

std::vector<Quantizer> ptqQuantize(Graph& g, const std::vector<LayerQuantConfig>& layers,
                                   const PtqOptions& opts, const BatchFn& batch,
                                   int64_t num_batches, PtqReport* report) {
  auto t_start = Clock::now();
  PtqReport rep;
  if (opts.fold_bn) rep.bn_folded = foldBatchNorms(g);
  Value* act_enable = g.addParam(g.uniqueValueName("quant.act_enable"), at::scalar_tensor(0.0f), false);
  Value* w_enable = g.addParam(g.uniqueValueName("quant.weight_enable"), at::scalar_tensor(0.0f), false);
  InsertOptions io;
  io.act_enable = act_enable;
  io.weight_enable = w_enable;
  io.quantize_outputs = opts.quantize_outputs;
  std::map<std::string, size_t> act_index;  // roles are read before quantizers hide the weights
  for (const auto& l : layers)
    if (Node* n = g.findNode(l.node))
      if (auto lio = quantizableLayer(*n)) act_index[l.node] = static_cast<size_t>(lio->act_index);
  std::vector<Quantizer> qs = insertQuantizers(g, layers, io);
  std::map<std::string, const LayerQuantConfig*> cfg_of;
  for (const auto& l : layers) cfg_of[l.node] = &l;

  // Observers of static activation quantizers; channel means of layers with weight quantizers.
  std::unordered_map<const Node*, std::unique_ptr<Observer>> obs;
  for (const Quantizer& q : qs)
    if (!q.is_weight && q.kind == FqKind::Static)
      obs[q.node] = makeObserver(cfg_of.at(q.layer)->act_observer, q.spec, opts.observer);
  std::unordered_map<const Node*, ChannelMean> means;
  if (opts.bias_correction)
    for (const Quantizer& q : qs)
      if (q.is_weight) means[g.findNode(q.layer)].act_index = act_index.at(q.layer);
  bool need_data = !obs.empty() || !means.empty();
  GS_CHECK(!need_data || num_batches > 0,
           "post-training quantization needs calibration data (static activations or bias "
           "correction) but got no batches");
  if (need_data) {
    auto t0 = Clock::now();
    Executor ex(g);
    ex.setObserver([&](const Node& n, const std::vector<at::Tensor>& in,
                       const std::vector<at::Tensor>&) {
      auto it = obs.find(&n);
      if (it != obs.end()) it->second->observe(in[0]);
      auto mt = means.find(&n);
      if (mt != means.end()) mt->second.add(in[mt->second.act_index]);
    });
    for (int64_t b = 0; b < num_batches; ++b) ex.run(batch(b));
    rep.batches = num_batches;
    rep.calibration_seconds = since(t0);
  }
  for (Quantizer& q : qs) {
    if (q.is_weight) {
      auto o = makeObserver(cfg_of.at(q.layer)->weight_observer, q.spec, opts.observer);
      o->observe(q.node->input(0)->data());
      QParams p = o->qparams();
      setParam(q.scale, p.scale);
      setParam(q.zero_point, p.zero_point);
    } else if (q.kind == FqKind::Static) {
      QParams p = obs.at(q.node)->qparams();
      setParam(q.scale, p.scale);
      setParam(q.zero_point, p.zero_point);
    }
  }
  // Bias correction: b -= E[(Wq - W) x] with E[x] from calibration (Nagel et al. 2019).
  for (const Quantizer& q : qs) {
    if (!q.is_weight || !opts.bias_correction) continue;
    Node* n = g.findNode(q.layer);
    auto mt = means.find(n);
    if (mt == means.end() || !mt->second.sum.defined()) continue;
    at::Tensor w = q.node->input(0)->data();
    at::Tensor wq = fakeQuantize(w, q.scale->data(), q.zero_point->data(), QLayout::of(q.spec));
    at::Tensor shift = biasShift(*n, w, wq, mt->second.mean());
    if (!shift.defined()) continue;
    if (n->input(2) && n->input(2)->isParam()) {
      Value* b = n->input(2);
      if (b->data().numel() != shift.numel()) continue;
      at::Tensor nb = (b->data().to(at::kDouble) - shift.reshape(b->data().sizes())).to(b->data().scalar_type());
      n->setInput(2, g.addParam(g.uniqueValueName(n->name() + ".bias_corrected"), nb, b->trainable()));
    } else if (!n->input(2)) {
      Value* nb = g.addParam(g.uniqueValueName(n->name() + ".bias_corrected"), (-shift).to(at::kFloat), true);
      if (n->numInputs() < 3) n->addInput(nb);
      else n->setInput(2, nb);
    } else {
      continue;
    }
    ++rep.bias_corrected;
  }
  act_enable->setData(at::scalar_tensor(1.0f));
  w_enable->setData(at::scalar_tensor(1.0f));
  g.removeDeadValues();
  rep.quantizers = static_cast<int64_t>(qs.size());
  rep.total_seconds = since(t_start);
  if (report) *report = rep;
  return qs;
}

}  // namespace gs::quant
