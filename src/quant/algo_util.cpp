// Quantization CompAlgo helpers: specs, policy text, layer storage, quantization delay.
#include "quant/algo_util.h"

#include <ATen/ATen.h>

#include <set>

#include "quant/fake_quant_ops.h"
#include "quant/quantizer.h"
#include "support/error.h"

namespace gs::quant {

QuantSpec makeSpec(int64_t bits, bool is_signed, bool symmetric, bool narrow,
                   const std::string& granularity, int64_t group_size) {
  QuantSpec s;
  s.bits = static_cast<int>(bits);
  s.is_signed = is_signed;
  s.symmetric = symmetric;
  s.narrow_range = narrow;
  if (granularity == "per_channel") s.granularity = Granularity::PerChannel;
  else if (granularity == "per_group") s.granularity = Granularity::PerGroup;
  else GS_CHECK(granularity == "per_tensor", "unknown granularity '", granularity, "'");
  s.group_size = group_size;
  if (s.granularity == Granularity::PerGroup) s.axis = -1;  // along the input (K) dimension
  return s;
}

std::string policyText(const QuantSpec* w, const QuantSpec* a, const std::string& act_suffix) {
  std::string s;
  if (w) s = "W" + std::to_string(w->bits) + "-" + w->granularityStr();
  if (a) {
    if (!s.empty()) s += "-";
    s += "A" + std::to_string(a->bits) + act_suffix + "-" +
         (act_suffix == "dyn" ? std::string("per_token") : a->granularityStr());
  }
  return s.empty() ? "fp32" : s;
}

std::pair<int64_t, int64_t> quantizedLayerStorage(const Node& layer) {
  int64_t elems = 0, bytes = 0;
  std::set<const Value*> seen;
  auto addParam = [&](const Value* v, double bytes_per_elem) {
    if (!v || !v->isParam() || !seen.insert(v).second) return;
    elems += v->data().numel();
    bytes += static_cast<int64_t>(static_cast<double>(v->data().numel()) * bytes_per_elem + 0.999);
  };
  for (const Value* v : layer.inputs()) {
    if (!v) continue;
    const Node* p = v->producer();
    if (p && isQuantizer(*p) && p->input(0)->isParam()) {
      QuantSpec s = specFromAttrs(*p);
      addParam(p->input(0), s.bits / 8.0);
      for (size_t i = 1; i < 3; ++i) addParam(p->input(i), 4.0);
    } else if (p && p->opType() == "DequantizeLinear" && p->input(0)->isParam()) {
      addParam(p->input(0), static_cast<double>(p->input(0)->data().element_size()));
      addParam(p->input(1), 4.0);
      addParam(p->input(2), static_cast<double>(p->input(2) ? p->input(2)->data().element_size() : 0));
    } else {
      if (v->isParam()) addParam(v, static_cast<double>(v->data().element_size()));
    }
  }
  return {elems, bytes};
}

void QuantDelayCallback::update(TrainContext& ctx) {
  GS_ASSERT(ctx.graph, "quant delay callback without a graph");
  for (const auto& [name, delay] : delays_) {
    Value* v = ctx.graph->findValue(name);
    GS_CHECK(v && v->isParam(), "quantization delay: no parameter '", name, "' in the trained graph");
    float on = ctx.step >= delay ? 1.0f : 0.0f;
    if (v->data().item<float>() != on) v->setData(at::scalar_tensor(on));
  }
}

void QuantDelayCallback::onTrainEnd(TrainContext& ctx) {
  // Deployment always quantizes, however short the training was.
  for (const auto& [name, delay] : delays_)
    if (Value* v = ctx.graph->findValue(name)) v->setData(at::scalar_tensor(1.0f));
}

}  // namespace gs::quant
