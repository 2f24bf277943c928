// SmoothQuant (Xiao et al., 2023): migrate activation outliers into the weights with per-channel
// smoothing factors s_j = max|X_j|^alpha / max|W_j|^(1 - alpha).
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

namespace gs::llm {

/// Running per-channel max |x| over calibration inputs x [..., C].
class ChannelAbsMax {
 public:
  void add(const at::Tensor& x);
  /// float [C]; undefined before any add.
  const at::Tensor& value() const { return max_; }

 private:
  at::Tensor max_;
};

/// Smoothing factors for layers W_k [out_k, in] sharing an input whose per-channel max |x| is
/// `act_absmax` [in]: s_j = max|X_j|^alpha / max_k,i |W_k[i, j]|^(1 - alpha), clamped to >= 1e-5;
/// channels with a zero activation or weight range get s_j = 1. Dividing the input by s and
/// multiplying W's columns by s leaves x W^T unchanged.
at::Tensor smoothQuantScales(const at::Tensor& act_absmax, const std::vector<at::Tensor>& weights,
                             double alpha);

}  // namespace gs::llm
