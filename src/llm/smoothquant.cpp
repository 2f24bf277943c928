// SmoothQuant smoothing factors and activation range statistics.
#include "llm/smoothquant.h"

#include <ATen/ATen.h>

#include "support/error.h"

namespace gs::llm {

void ChannelAbsMax::add(const at::Tensor& x) {
  at::Tensor m = std::get<0>(x.detach().reshape({-1, x.size(-1)}).abs().max(0)).to(at::kFloat);
  max_ = max_.defined() ? at::maximum(max_, m) : m;
}

at::Tensor smoothQuantScales(const at::Tensor& act_absmax, const std::vector<at::Tensor>& weights,
                             double alpha) {
  GS_CHECK(alpha >= 0 && alpha <= 1, "SmoothQuant: alpha must be in [0, 1], got ", alpha);
  GS_CHECK(!weights.empty() && act_absmax.defined(), "SmoothQuant: no statistics or weights");
  at::Tensor wmax;
  for (const at::Tensor& w : weights) {
    GS_CHECK(w.dim() == 2 && w.size(1) == act_absmax.size(0), "SmoothQuant: weight [", w.size(0),
             ", ", w.size(1), "] does not take ", act_absmax.size(0), " inputs");
    at::Tensor m = std::get<0>(w.to(at::kFloat).abs().max(0));
    wmax = wmax.defined() ? at::maximum(wmax, m) : m;
  }
  at::Tensor a = act_absmax.to(at::kFloat);
  at::Tensor s = at::pow(a, alpha) / at::pow(wmax, 1.0 - alpha);
  at::Tensor valid = (a > 0) & (wmax > 0);
  return at::where(valid, at::clamp_min(s, 1e-5), at::ones_like(s));
}

}  // namespace gs::llm
