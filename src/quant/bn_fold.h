// Folding inference-form BatchNormalization into the preceding Conv / ConvTranspose / Gemm.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "ir/graph.h"

namespace gs::quant {

/// Per-output-channel factors of an inference BatchNormalization node:
/// s = gamma / sqrt(var + eps) and t = beta - mean * s (so BN(y) = y * s + t), in double.
struct BnFactors {
  at::Tensor s, t;
};
/// Reads the factors of `bn` (inputs 1..4 must be parameters); throws naming the node otherwise.
BnFactors bnFactors(const Node& bn);

/// True when `bn` is an inference-form BatchNormalization (one output, parameter statistics)
/// whose input comes from a layer with output-channel axis (Conv, ConvTranspose with group 1,
/// Gemm) and has no other use; `need_param_weight` also requires the layer weight to be a
/// parameter (foldBatchNorms) rather than, e.g., a fake quantizer's output.
bool isFoldableBn(const Node& bn, bool need_param_weight = true);

/// Folds every `Conv -> BatchNormalization` (and ConvTranspose with group 1 / Gemm with a
/// parameter weight) whose intermediate has no other use and is not a graph output, BN in
/// inference form (one output, parameter statistics):
///   Conv(x, W, b) -> BN(g, beta, mu, var)  =>  Conv(x, W * s, (b - mu) * s + beta),
/// s = g / sqrt(var + eps). The folded weight / bias are new tensors (shared parameter data of
/// other graphs is untouched); a missing bias is added as "<node>.bias_folded". Returns the
/// number of BN nodes removed.
int64_t foldBatchNorms(Graph& g);

}  // namespace gs::quant
