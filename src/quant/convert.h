// Lowering of gs fake quantizers to standard ONNX QDQ (QuantizeLinear / DequantizeLinear).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "ir/graph.h"

namespace gs::quant {

/// What lowerToQdq produced.
struct QdqReport {
  int64_t weights = 0;      ///< weight quantizers stored as int8 / uint8 initializers + DQ
  int64_t activations = 0;  ///< activation quantizers lowered to (Clip ->) Q -> DQ
  int64_t dynamic = 0;      ///< dynamic per-token quantizers lowered to a standard-op subgraph
  int64_t weight_bytes = 0; ///< bytes of the integer weight initializers
  int64_t int32_biases = 0; ///< biases stored as int32 accumulator-unit initializers
};

/// Options of lowerToQdq.
struct QdqOptions {
  /// Conv / Gemm biases whose input and weight are both quantized become
  /// DequantizeLinear(int32 round(b / (x_scale * w_scale)), x_scale * w_scale) (zero point 0,
  /// per output channel), the form ONNX Runtime's quantizer writes: runtimes then add the bias
  /// in the int32 accumulator and run integer-only kernels (QLinearConv / QGemm).
  bool int32_bias = false;
};

/// The bias of a layer that can hold it in the int32 accumulator: a Conv, or a Gemm with
/// alpha = beta = 1 and transA = 0, whose third input is a 1-D parameter; else nullptr.
Value* accumulatorBias(const Node& layer);

/// Step of the int32 accumulator of each of `channels` output channels: x_scale * w_scale, with
/// x_scale one element and w_scale one element or `channels`; undefined when the sizes disagree.
/// Both the int32 bias export and PTQ's fake-quant bias rounding use this grid.
at::Tensor accumulatorStep(const at::Tensor& x_scale, const at::Tensor& w_scale, int64_t channels);

/// The int32 codes convert stores for `bias` on the accumulator grid `step`: round(bias / step)
/// (half to even), as int32; undefined when a code falls outside int32 (degenerate scales: the
/// bias then stays float). The deploy-exact fake-quant layers (runtime/fq_exact_fusion.h) use it
/// to compute what the export will store.
at::Tensor int32BiasCodes(const at::Tensor& bias, const at::Tensor& step);

/// Replaces every gs::FakeQuant / gs::LsqQuant of `g` (which must be parameters-only on their
/// scale / zero-point / step inputs) by standard ops, in place:
///  - parameter input (weights): the integer codes become an int8 (signed grid) or uint8
///    initializer `<quantizer>.quantized`, read by DequantizeLinear(codes, scale, zp, axis);
///    per-group weights become per-axis DQ over a [C/g * rest, g] view followed by Reshape.
///  - other inputs: QuantizeLinear -> DequantizeLinear with int8 / uint8 zero points (per tensor
///    or per axis); grids narrower than the 8-bit type get a Clip / Min-Max to the grid's range
///    first, so the result equals the fake quantizer's exactly.
///  - dynamic_per_token: Reduce{Min,Max} over the last axis and elementwise ops computing the
///    same scale / zero point / rounding.
/// Disabled quantizers (enable = 0) are removed. The "gs" opset is dropped when unused.
QdqReport lowerToQdq(Graph& g, const QdqOptions& opts = {});

}  // namespace gs::quant
