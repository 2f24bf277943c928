// Real int8 kernels for the eval-time QDQ fusions: conv/linear on own AVX2 / scalar kernels
// (exact int32 accumulation, requantization bit-identical to ONNX Runtime's MLAS; see
// int8_gemm.h), residual add and max pooling on 8-bit tensors. Activations are plain uint8/int8 at::Tensors with per-tensor (scale, zero point).
#pragma once
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/int8_gemm.h"

namespace gs::int8 {

/// Per-tensor affine quantization of an activation: real = (q - zero_point) * scale, with q
/// uint8 (is_signed false) or int8.
struct QParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
  bool is_signed = false;
  int32_t qmin() const { return is_signed ? -128 : 0; }
  int32_t qmax() const { return is_signed ? 127 : 255; }
};

/// The conv / linear kernel path this machine uses (or GS_INT8_ISA forces): "gstick-avx512vnni",
/// "gstick-avx2" or "gstick-scalar". Every path computes the same bits.
std::string kernelPath();

/// Activation applied to the float result before requantization, folded into the integer
/// output as a clamp (Relu: q >= Q(0); Clip(lo, hi): Q(lo) <= q <= Q(hi)), which is exact
/// because quantization is monotone.
struct Activation {
  enum Kind { kNone, kRelu, kClip } kind = kNone;
  float lo = 0.0f, hi = 0.0f;  // kClip bounds (real values)
};

/// Weight of a conv or linear layer: int8 values (symmetric, zero point 0), float scale per
/// output channel (size O) or per tensor (one element), optional bias of size O: either float
/// (`bias`, added to the requantized real value) or int32 in accumulator units (`bias_acc`,
/// scale x_scale * w_scale, added to the int32 accumulator as ONNX Runtime's QLinearConv /
/// QGemm do). At most one of the two is defined.
struct QWeight {
  at::Tensor w;         // int8: conv [O, I/g, kh, kw]; linear [O, K]
  at::Tensor scale;     // float, numel 1 or O
  at::Tensor bias;      // float [O] or undefined
  at::Tensor bias_acc;  // int32 [O] or undefined
};

/// The requantization of one call of a layer with `o` output channels: the multipliers
/// x_scale * w_scale[c] / y_scale (float ops in ONNX Runtime's order) and the float biases
/// bias[c] / y_scale (when `bias` is given) are written into `mult` / `bias_f` (grown to o + 16
/// for the SIMD paths; the result points into them), the int32 bias `bias_acc` (or nullptr) is
/// referenced, and the output clamp is y's grid narrowed by `act`. The one definition shared by
/// the int8 kernels and the deploy-exact fake-quant layers (fq_exact_fusion.h).
detail::Requant makeRequant(const QParams& xq, const QParams& yq, const Activation& act, int64_t o,
                            const float* wscale, const float* bias, const int32_t* bias_acc,
                            std::vector<float>& mult, std::vector<float>& bias_f);

/// QLinearAdd's arithmetic (int8_kernels.cpp explains the two forms ONNX Runtime uses), shared by
/// the int8 residual Add and the deploy-exact fake-quant Add (fq_exact_fusion.h).
struct AddArgs {
  bool fused;                    ///< all tensors unsigned: MLAS's fused form
  float ra, rb, k;               ///< fused: sa / sy, sb / sy, zy - (ra * za + rb * zb)
  float sa, sb, sy, zy, za, zb;  ///< float-op form
  float lo, hi;                  ///< output clamp (codes), Relu folded into lo
  bool relu;
};
/// The constants of y = Add(a, b) [Relu] for 8-bit a, b, y.
AddArgs addArgs(const QParams& aq, const QParams& bq, const QParams& yq, bool relu);
/// One output code (a float holding the integer) from input codes a and b.
inline float addOne(float a, float b, const AddArgs& p) {
  float q;
  if (p.fused) {
    q = std::nearbyint(std::fma(a, p.ra, std::fma(b, p.rb, p.k)));
  } else {
    float fa = (a - p.za) * p.sa, fb = (b - p.zb) * p.sb;
    __asm__("" : "+x"(fa), "+x"(fb));  // rounded products, as the float ops
    q = std::nearbyint((fa + fb) / p.sy) + p.zy;
  }
  return std::clamp(q, p.lo, p.hi);
}

/// Requantization of a conv / linear output element with accumulator `acc` (exact int32 sum of
/// (x_q - x_zp) * w_q) in output channel c, as ONNX Runtime's MLAS computes it:
///   m = float(x_scale * w_scale[c]) / y_scale (float ops in this order),
///   v = float(acc + bias_acc[c]) * m  [+ bias[c] / y_scale for a float bias],
///   y = clamp(round_half_even(v), lo - y_zp, hi - y_zp) + y_zp,
/// with [lo, hi] the output type's range narrowed by the activation (Relu: lo = y_zp; Clip:
/// Q(lo), Q(hi) with QuantizeLinear's rounding).
///
/// A 2-D convolution with prepacked int8 weights. Depthwise convs (groups == C == O) run a
/// direct NHWC kernel, every other shape an im2col int16 GEMM (vpmaddwd, exact).
class QConv2d {
 public:
  /// Packs the weight; `pads` = {top, left} (symmetric padding only).
  QConv2d(const QWeight& w, std::vector<int64_t> strides, std::vector<int64_t> pads,
          std::vector<int64_t> dilations, int64_t groups);
  ~QConv2d();
  /// x: uint8/int8 [N, C, H, W] (any dense layout; channels-last avoids a reorder). Returns
  /// y as uint8/int8 (per `y.is_signed`), channels-last, saturated, ties rounded to even.
  at::Tensor run(const at::Tensor& x, const QParams& xq, const QParams& yq, const Activation& act) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A linear layer (y = x W^T + b) with prepacked int8 weights [O, K]; x has shape [..., K].
/// Same GEMM and requantization as QConv2d.
class QLinear {
 public:
  explicit QLinear(const QWeight& w);
  ~QLinear();
  /// y [..., O] uint8/int8 (per `yq.is_signed`).
  at::Tensor run(const at::Tensor& x, const QParams& xq, const QParams& yq, const Activation& act) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// QLinearAdd y = Q(act(DQ(a) + DQ(b))) rounded as ONNX Runtime computes the QDQ graph on x86:
/// - uint8 a, b, y: ORT fuses DQ -> Add -> Q into QLinearAdd, whose AVX2 MLAS kernel computes
///   ra = sa / sy, rb = sb / sy, k = zy - fma(ra, za, rb * zb) in float once, then per element
///   y = saturate(round_half_even(fma(a, ra, fma(b, rb, k)))): reproduced bit for bit;
/// - any int8 operand: ORT leaves the nodes unfused, i.e. float ops
///   y = saturate(round_half_even((float((a - za) * sa) + float((b - zb) * sb)) / sy) + zy):
///   reproduced bit for bit (the same as gstick's own unfused float kernels).
/// Relu folds as y >= zy. The two roundings differ only at near-ties (one step).
/// Shapes may broadcast (materialized first); one AVX2 pass over memory.
at::Tensor add(const at::Tensor& a, const QParams& aq, const at::Tensor& b, const QParams& bq,
               const QParams& yq, bool relu);

/// MaxPool2d on the 8-bit values (max commutes with the monotone dequantization; the caller
/// guarantees input and output quantization parameters are equal). `pads` = {top, left, bottom,
/// right}.
at::Tensor maxPool2d(const at::Tensor& x, const QParams& xq, std::vector<int64_t> kernel,
                     std::vector<int64_t> strides, std::vector<int64_t> pads,
                     std::vector<int64_t> dilations, bool ceil_mode);

}  // namespace gs::int8
