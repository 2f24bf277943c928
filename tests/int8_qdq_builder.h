// Minimal min/max QDQ quantizer producing ONNX QDQ graphs for the int8 runtime tests (the
// product's quantization algorithms live in src/quant; this one only needs to be simple and
// deterministic).
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <vector>

#include "ir/graph.h"

namespace gs::int8 {

struct QdqBuildOptions {
  /// Activations as int8 (zero point in [-128, 127]) instead of uint8.
  bool signed_activations = false;
  /// Biases as DequantizeLinear(int32 bias, x_scale * w_scale) (ONNX Runtime's quantizer
  /// style) instead of float initializers.
  bool int32_bias = false;
};

/// Returns a QDQ version of the fp32 graph `fp32` (which is not modified):
///  1. Conv -> BatchNormalization (inference form) folded into the conv weight and bias.
///  2. Per-tensor asymmetric activation ranges [min(0, min), max(0, max)] observed over `calib`
///     (each element: the graph inputs of one batch): scale = range / 255, zero point rounded.
///  3. Q -> DQ inserted on every float activation read by Conv/Gemm/MatMul/Add/MaxPool and on
///     their outputs (after a following Relu/Clip when that is the output's only user); MaxPool
///     outputs reuse the input's parameters. One DQ per tensor, shared by its consumers.
///  4. Conv/Gemm/MatMul weights quantized per output channel, symmetric int8 in [-127, 127],
///     scale = max|w| / 127, stored as int8 initializers behind DequantizeLinear.
/// Graph outputs keep their names (the quantized tensor's DQ takes the name).
std::unique_ptr<Graph> buildQdqGraph(const Graph& fp32,
                                     const std::vector<std::vector<at::Tensor>>& calib,
                                     const QdqBuildOptions& opts = {});

/// Folds inference-form Conv -> BatchNormalization pairs of `g` in place; returns the count.
int foldConvBatchNorm(Graph& g);

}  // namespace gs::int8
