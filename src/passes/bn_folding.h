// BatchNormalization folding math shared by the bn-folding pass, the quantizers' BN folding
// (quant/bn_fold.cpp, quant/simqat.cpp) and the executor's Conv+BatchNormalization fusion.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace gs {

/// Per-channel affine form of an inference BatchNormalization: BN(y) = y * s + t with
/// s = gamma / sqrt(var + eps) and t = beta - mean * s, both 1-D and in double (inputs of any
/// floating dtype and shape with C elements).
struct BnAffine {
  at::Tensor s, t;
};
BnAffine bnAffine(const at::Tensor& gamma, const at::Tensor& beta, const at::Tensor& mean,
                  const at::Tensor& var, double eps);

/// `w` with the slices along `axis` (its output-channel axis: Conv 0, Gemm transB 0 else 1)
/// multiplied by the per-channel `s` (w.size(axis) elements), computed in double and returned
/// in w's dtype.
at::Tensor scaleChannels(const at::Tensor& w, const at::Tensor& s, int64_t axis);

/// The bias of a layer followed by `bn`: b * s + t (= (b - mean) * s + beta), with an undefined
/// `b` read as 0 and a one-element `b` broadcast; 1-D, in double.
at::Tensor foldedBias(const at::Tensor& b, const BnAffine& bn);

}  // namespace gs
