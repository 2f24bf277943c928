// Quantization math shared by every quantization algorithm: integer ranges, scale / zero point
// from (min, max), per-tensor / per-channel / per-group parameter layout, (fake) quantization.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>

namespace gs::quant {

/// How many scale / zero-point pairs a tensor gets.
enum class Granularity {
  PerTensor,   ///< one pair
  PerChannel,  ///< one pair per index of `axis`
  PerGroup,    ///< one pair per `group_size` consecutive elements along `axis`, per other index
};

/// A quantization scheme: integer grid and parameter layout.
struct QuantSpec {
  int bits = 8;                ///< 2..8
  bool is_signed = true;       ///< int grid (true) or uint grid (false)
  bool symmetric = true;       ///< zero point fixed at the grid's centre (0 for signed grids)
  bool narrow_range = false;   ///< drop the most negative code (signed) / code 0 (unsigned)
  Granularity granularity = Granularity::PerTensor;
  int64_t axis = 0;            ///< channel / group axis (negative = from the end)
  int64_t group_size = 0;      ///< PerGroup only, > 0

  /// Smallest / largest integer code: signed [-2^(b-1) (+1 if narrow), 2^(b-1)-1],
  /// unsigned [0 (1 if narrow), 2^b-1].
  int64_t qmin() const;
  int64_t qmax() const;
  /// Throws gs::Error (prefixed by `what`) when bits or group size are out of range.
  void validate(const std::string& what) const;
  /// "int8-sym-narrow-per_channel(0)", "uint8-asym-per_tensor", "int4-sym-per_group(1,32)".
  std::string str() const;
  /// Short form used in policy strings: "per_tensor", "per_channel", "per_group(128)".
  std::string granularityStr() const;
};

/// Scale and zero point (both float32; the zero point holds integers) in reduced layout:
/// 0-d per tensor, [C] per channel, x's shape with dim `axis` = C / group_size per group.
struct QParams {
  at::Tensor scale;
  at::Tensor zero_point;
};

/// Per-tensor / per-channel / per-group min and max of `x` in QParams layout (no autograd).
std::pair<at::Tensor, at::Tensor> reduceMinMax(const at::Tensor& x, const QuantSpec& spec);

/// Scale / zero point covering [min, max] (the range is first widened to contain 0, as in
/// PyTorch and ONNX). Symmetric: scale = max(|min|, |max|) / ((qmax - qmin) / 2), zero point =
/// 0 (signed) or (qmin + qmax + 1) / 2 (unsigned). Asymmetric: scale = (max - min) / (qmax - qmin),
/// zero point = clamp(qmin - round(min / scale), qmin, qmax). Scales are at least float32 eps.
QParams computeQParams(const at::Tensor& min, const at::Tensor& max, const QuantSpec& spec);

/// Layout of a parameter tensor relative to the data it quantizes, for kernels (which see only
/// qmin / qmax / axis / group size, not the whole spec).
struct QLayout {
  int64_t qmin = -128, qmax = 127;
  int64_t axis = -1;        ///< channel / group axis of x; ignored when the scale has 1 element
  int64_t group_size = 0;   ///< > 0: per group along `axis`
  static QLayout of(const QuantSpec& s);
};

/// Reshapes / expands a reduced-layout parameter so it broadcasts elementwise against `x`.
/// Throws gs::Error (prefixed by `what`) when the parameter does not fit x's shape.
at::Tensor broadcastParam(const at::Tensor& p, const at::Tensor& x, const QLayout& l,
                          const std::string& what);

/// Integer codes clamp(round_half_even(x / scale) + zero_point, qmin, qmax), as float32 (exact
/// integers). The division is done in float32 like ONNX QuantizeLinear (not x * (1 / scale)).
at::Tensor quantizeCodes(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                         const QLayout& l, const std::string& what = "quantize");
/// (q - zero_point) * scale.
at::Tensor dequantizeCodes(const at::Tensor& q, const at::Tensor& scale,
                           const at::Tensor& zero_point, const QLayout& l,
                           const std::string& what = "dequantize");

/// Quantize-dequantize with the straight-through estimator of PyTorch's fake_quantize: the
/// forward value is exactly dequantize(quantize(x)); dy/dx = 1 where qmin <= round(x/s)+zp <= qmax
/// and 0 elsewhere; no gradient to scale / zero point.
at::Tensor fakeQuantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                        const QLayout& l, const std::string& what = "fake quantize");

/// LSQ (Esser et al. 2019) quantize-dequantize with a learnable step `step` (zero point 0):
/// y = round(clamp(x / s, qmin, qmax)) * s with s's gradient scaled by
/// g = 1 / sqrt(N * qmax), N = x.numel() / step.numel() (elements per step; with `per_sample`,
/// per sample: also divided by x.size(0), the paper's N_F for activations). Gradients:
/// dy/dx = 1 inside the clamp range, 0 outside; dy/ds = g * (round(x/s) - x/s) inside,
/// g * qmin / g * qmax below / above.
at::Tensor lsqQuantize(const at::Tensor& x, const at::Tensor& step, const QLayout& l,
                       const std::string& what = "lsq quantize", bool per_sample = false);

/// LSQ's step initialisation 2 * mean(|x|) / sqrt(qmax) in reduced layout of `spec`.
at::Tensor lsqInitStep(const at::Tensor& x, const QuantSpec& spec);

}  // namespace gs::quant
