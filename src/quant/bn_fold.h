// BatchNormalization folding for the quantization algorithms: BN factors of a node, the
// foldability test SimQAT's fold variants use, and the bn-folding pass as a count.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "ir/graph.h"
#include "passes/bn_folding.h"

namespace gs::quant {

/// Per-output-channel factors of an inference BatchNormalization node (gs::bnAffine):
/// s = gamma / sqrt(var + eps) and t = beta - mean * s (so BN(y) = y * s + t), in double.
/// Reads inputs 1..4 (must be parameters; throws naming the node otherwise) and `epsilon`, so it
/// also serves nodes laid out like BN (gs::BnFoldCorrection).
BnAffine bnFactors(const Node& bn);

/// True when `bn` is an inference-form BatchNormalization (one output, parameter statistics)
/// whose input comes from a layer with output-channel axis (Conv, ConvTranspose with group 1,
/// Gemm) and has no other use; `need_param_weight` also requires the layer weight to be a
/// parameter (foldBatchNorms) rather than, e.g., a fake quantizer's output.
bool isFoldableBn(const Node& bn, bool need_param_weight = true);

/// Runs the bn-folding pass (gs::foldBatchNorm: Conv / ConvTranspose / Gemm / MatMul followed
/// by an inference BN whose intermediate has no other use):
///   Conv(x, W, b) -> BN(g, beta, mu, var)  =>  Conv(x, W * s, (b - mu) * s + beta),
/// s = g / sqrt(var + eps). Folded weights / biases are new tensors (parameter data shared with
/// other graphs is untouched). Returns the number of BN nodes removed.
int64_t foldBatchNorms(Graph& g);

}  // namespace gs::quant
