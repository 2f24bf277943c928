// Weight and activation quantization primitives for LLM PTQ: RTN (round-to-nearest) per tensor,
// channel or group, symmetric or asymmetric, and fake-quant of activations per tensor or token.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace gs::llm {

/// How a weight matrix W [out, in] is quantized. Integers are stored unsigned in [0, 2^bits - 1]
/// with a zero point, as GPTQ / ONNX Runtime's MatMulNBits do: w ~= scale * (q - zero).
/// Symmetric: zero = 2^(bits-1) and scale = absmax / (2^(bits-1) - 1) (int8: absmax / 127, so
/// q - 128 is the usual signed int8). Asymmetric: scale = (max - min) / (2^bits - 1) over a range
/// that always contains 0, zero = round(-min / scale).
struct WeightQuantSpec {
  int bits = 4;               ///< 2..8
  int64_t group_size = 128;   ///< > 0: groups of consecutive input columns; 0: per output
                              ///< channel; -1: one scale for the whole tensor
  bool symmetric = false;
  /// Largest integer, 2^bits - 1.
  int64_t maxq() const { return (int64_t{1} << bits) - 1; }
  /// Number of scale groups along the input axis for `in` columns.
  int64_t numGroups(int64_t in) const;
  /// Columns per group for `in` columns (in for per-channel / per-tensor).
  int64_t groupCols(int64_t in) const;
  /// "W4 g128 asym", "W8 per-channel sym", ...
  std::string describe() const;
  /// Throws gs::Error for bits outside 2..8 or group_size < -1. A last group shorter than
  /// group_size (in % group_size != 0) is allowed, as ONNX Runtime's MatMulNBits allows it.
  void validate(int64_t in = 0) const;
};

/// Scale and zero point per (output row, group): both float [out, groups] (zero holds integers).
struct QuantParams {
  at::Tensor scale, zero;
};

/// Scale / zero for ranges [lo, hi] (any shape, broadcast together) under `spec`'s bits and
/// symmetry. The range is widened to contain 0; a zero-width range gets scale 1.
QuantParams paramsFromRange(const at::Tensor& lo, const at::Tensor& hi, const WeightQuantSpec& spec);
/// w [..., in] with zero columns appended up to numGroups(in) * groupCols(in).
at::Tensor padColumns(const at::Tensor& w, const WeightQuantSpec& spec);
/// Min/max scale parameters of a whole matrix W [out, in] under `spec` ([out, groups]).
QuantParams computeParams(const at::Tensor& w, const WeightQuantSpec& spec);

/// q = clamp(round(w / scale) + zero, 0, maxq) (float tensor holding integers); scale/zero
/// broadcast against w.
at::Tensor quantizeValues(const at::Tensor& w, const at::Tensor& scale, const at::Tensor& zero,
                          int64_t maxq);
/// scale * (q - zero).
at::Tensor dequantizeValues(const at::Tensor& q, const at::Tensor& scale, const at::Tensor& zero);

/// dequantizeValues(quantizeValues(clamp(w, lo, hi), scale, zero, maxq), scale, zero) [- w] in
/// one pass (fake_quant_kernel.cpp; AVX2 where available), bit-identical to that ATen
/// expression. w [rows, in]; scale, zero and the optional clamp bounds lo, hi hold one value per
/// (row, group) ([rows, groups] elements), group k covering columns [k * group_cols,
/// min(in, (k + 1) * group_cols)). `minus_w` returns the error Q(w) - w instead. Float32 result.
at::Tensor fakeQuantGroups(const at::Tensor& w, const at::Tensor& scale, const at::Tensor& zero,
                           int64_t group_cols, int64_t maxq, const at::Tensor& lo = {},
                           const at::Tensor& hi = {}, bool minus_w = false);

/// A quantized weight: integer codes, per-group parameters and the group of every input column
/// (g_idx, as GPTQ checkpoints store it; i / group_size unless act-order regrouped the columns).
struct QuantizedWeight {
  WeightQuantSpec spec;
  at::Tensor q;      ///< uint8 [out, in], values in [0, maxq]
  at::Tensor scale;  ///< float [out, groups]
  at::Tensor zero;   ///< float [out, groups] (integers)
  at::Tensor g_idx;  ///< int64 [in]
  /// The float weight the codes represent, [out, in].
  at::Tensor dequantize() const;
};

/// Round-to-nearest quantization of W [out, in] (min/max ranges per group).
QuantizedWeight rtnQuantize(const at::Tensor& w, const WeightQuantSpec& spec);
/// rtnQuantize(w, spec).dequantize(), in w's dtype (fused: fake_quant_kernel.cpp, bit-identical).
at::Tensor rtnFakeQuant(const at::Tensor& w, const WeightQuantSpec& spec);
/// rtnFakeQuant(w * col_scale, spec) / col_scale (col_scale [in]: one factor per input column,
/// AWQ's candidate scales) in one pass, float32, bit-identical to that expression. Writes into
/// `out` when it is a contiguous float32 tensor of w's shape (reused across candidates, so large
/// weights do not take fresh pages every time).
at::Tensor rtnFakeQuantScaled(const at::Tensor& w, const at::Tensor& col_scale,
                              const WeightQuantSpec& spec, at::Tensor out = {});

/// Symmetric int-`bits` fake quant of activations x [..., C] with one dynamic scale per token
/// (per row over the last axis): s = max|x_row| / (2^(bits-1) - 1), x ~= s * clamp(round(x / s)).
at::Tensor fakeQuantPerToken(const at::Tensor& x, int bits = 8);
/// Symmetric fake quant with a fixed (static) scale tensor broadcast against x: values clamp to
/// [-2^(bits-1), 2^(bits-1) - 1] as ONNX QuantizeLinear int8 does.
at::Tensor fakeQuantStatic(const at::Tensor& x, const at::Tensor& scale, int bits = 8);

}  // namespace gs::llm
