// Quantization math: grids, qparams from ranges, closed-form (fake) quantization in every mode,
// PyTorch's own fake_quantize as reference, STE and LSQ gradients.
#include "quant/qparams.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "op_test_util.h"
#include "support/error.h"

namespace gs::quant {
namespace {

using test::f32;

QuantSpec spec(int bits, bool sgn, bool sym, bool narrow = false) {
  QuantSpec s;
  s.bits = bits;
  s.is_signed = sgn;
  s.symmetric = sym;
  s.narrow_range = narrow;
  return s;
}

TEST(QuantGrid, RangesForEveryBitWidth) {
  for (int b = 2; b <= 8; ++b) {
    int64_t h = int64_t{1} << (b - 1);
    EXPECT_EQ(spec(b, true, true).qmin(), -h);
    EXPECT_EQ(spec(b, true, true).qmax(), h - 1);
    EXPECT_EQ(spec(b, true, true, true).qmin(), -h + 1);
    EXPECT_EQ(spec(b, false, false).qmin(), 0);
    EXPECT_EQ(spec(b, false, false).qmax(), 2 * h - 1);
    EXPECT_EQ(spec(b, false, false, true).qmin(), 1);
  }
  EXPECT_THROW(spec(9, true, true).validate("x"), Error);
  EXPECT_THROW(spec(1, true, true).validate("x"), Error);
  QuantSpec g = spec(4, true, true);
  g.granularity = Granularity::PerGroup;
  EXPECT_THROW(g.validate("x"), Error);
  EXPECT_EQ(spec(8, true, true, true).str(), "int8-sym-narrow-per_tensor");
}

TEST(QuantParams, ClosedFormPerTensor) {
  at::Tensor mn = at::scalar_tensor(-1.0f), mx = at::scalar_tensor(2.0f);
  // int8 symmetric: scale = 2 / 127.5 (PyTorch's (qmax - qmin) / 2), zp = 0.
  QParams p = computeQParams(mn, mx, spec(8, true, true));
  EXPECT_FLOAT_EQ(p.scale.item<float>(), 2.0f / 127.5f);
  EXPECT_EQ(p.zero_point.item<float>(), 0.0f);
  // narrow: 2 / 127.
  p = computeQParams(mn, mx, spec(8, true, true, true));
  EXPECT_FLOAT_EQ(p.scale.item<float>(), 2.0f / 127.0f);
  // uint8 symmetric: zp = 128.
  p = computeQParams(mn, mx, spec(8, false, true));
  EXPECT_EQ(p.zero_point.item<float>(), 128.0f);
  // uint8 asymmetric on [-1, 3]: scale = 4 / 255, zp = round(255 / 4) = 64.
  p = computeQParams(mn, at::scalar_tensor(3.0f), spec(8, false, false));
  EXPECT_FLOAT_EQ(p.scale.item<float>(), 4.0f / 255.0f);
  EXPECT_EQ(p.zero_point.item<float>(), 64.0f);
  // int4 asymmetric on [-1, 2]: scale = 3 / 15, zp = -8 - round(-5) = -3.
  p = computeQParams(mn, mx, spec(4, true, false));
  EXPECT_FLOAT_EQ(p.scale.item<float>(), 0.2f);
  EXPECT_EQ(p.zero_point.item<float>(), -3.0f);
  // The range always contains 0: [0.5, 2] behaves as [0, 2] (uint8 asym: zp 0).
  p = computeQParams(at::scalar_tensor(0.5f), mx, spec(8, false, false));
  EXPECT_FLOAT_EQ(p.scale.item<float>(), 2.0f / 255.0f);
  EXPECT_EQ(p.zero_point.item<float>(), 0.0f);
  // Degenerate all-zero range: scale = float eps, not 0.
  p = computeQParams(at::scalar_tensor(0.0f), at::scalar_tensor(0.0f), spec(8, true, true));
  EXPECT_GT(p.scale.item<float>(), 0.0f);
}

TEST(QuantParams, MatchesPyTorchChooseQParams) {
  // ATen's own uint8 asymmetric qparams from a tensor's min / max.
  at::Tensor x = test::randn({1000}, 3) * 2 + 0.5;
  auto [s_ref, zp_ref] = at::_choose_qparams_per_tensor(x, false);
  auto [mn, mx] = reduceMinMax(x, spec(8, false, false));
  QParams p = computeQParams(mn, mx, spec(8, false, false));
  EXPECT_NEAR(p.scale.item<double>(), s_ref, 1e-7 * s_ref);
  EXPECT_EQ(static_cast<int64_t>(p.zero_point.item<float>()), zp_ref);
}

TEST(QuantCodes, RoundHalfEvenAndSaturation) {
  QLayout l;  // int8 per tensor
  at::Tensor x = f32({0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 300.0f, -300.0f});
  at::Tensor q = quantizeCodes(x, at::scalar_tensor(1.0f), at::scalar_tensor(0.0f), l);
  EXPECT_TENSOR_EQ(q, f32({0, 2, 2, -0.0f, -2, 127, -128}));
  // uint8 with a zero point: round(x / 0.5) + 10.
  QLayout u{.qmin = 0, .qmax = 255};
  q = quantizeCodes(f32({-5.0f, 0.26f, 1.0f, 200.0f}), at::scalar_tensor(0.5f),
                    at::scalar_tensor(10.0f), u);
  EXPECT_TENSOR_EQ(q, f32({0, 11, 12, 255}));
  EXPECT_TENSOR_EQ(dequantizeCodes(q, at::scalar_tensor(0.5f), at::scalar_tensor(10.0f), u),
                   f32({-5.0f, 0.5f, 1.0f, 122.5f}));
}

TEST(QuantCodes, PerChannelAnyAxisAndPerGroup) {
  // x [2, 3], per channel on axis 1 (scales 1, 0.5, 0.25) and on axis -2 (scales 1, 2).
  at::Tensor x = f32({1, 1, 1, 3, 3, 3}).reshape({2, 3});
  QLayout l{.axis = 1};
  at::Tensor q = quantizeCodes(x, f32({1, 0.5, 0.25}), at::zeros({3}), l);
  EXPECT_TENSOR_EQ(q, f32({1, 2, 4, 3, 6, 12}).reshape({2, 3}));
  l.axis = -2;
  q = quantizeCodes(x, f32({1, 2}), at::zeros({2}), l);
  EXPECT_TENSOR_EQ(q, f32({1, 1, 1, 2, 2, 2}).reshape({2, 3}));  // 3 / 2 = 1.5 -> 2 (half even)
  // Per group of 2 along axis 1 of a [2, 4] tensor: scale shape [2, 2].
  at::Tensor xg = f32({1, 2, 3, 4, 5, 6, 7, 8}).reshape({2, 4});
  QLayout g{.qmin = -8, .qmax = 7, .axis = 1, .group_size = 2};
  at::Tensor sg = f32({1, 0.5, 1, 2}).reshape({2, 2});
  q = quantizeCodes(xg, sg, at::zeros({2, 2}), g);
  EXPECT_TENSOR_EQ(q, f32({1, 2, 6, 7, 5, 6, 4, 4}).reshape({2, 4}));
  // The group layout is checked.
  EXPECT_THROW(quantizeCodes(xg, f32({1, 2}), at::Tensor(), g), Error);
  QuantSpec s = spec(4, true, true);
  s.granularity = Granularity::PerGroup;
  s.axis = 1;
  s.group_size = 2;
  auto [mn, mx] = reduceMinMax(xg, s);
  EXPECT_TENSOR_EQ(mx, f32({2, 4, 6, 8}).reshape({2, 2}));
  EXPECT_TENSOR_EQ(mn, f32({1, 3, 5, 7}).reshape({2, 2}));
}

TEST(FakeQuant, MatchesPyTorchFakeQuantize) {
  at::Tensor x = test::randn({4, 3, 5}, 7);
  // Per tensor uint8 (scale chosen so no value sits near a rounding tie).
  at::Tensor y = fakeQuantize(x, at::scalar_tensor(0.03f), at::scalar_tensor(120.0f),
                              QLayout{.qmin = 0, .qmax = 255});
  at::Tensor ref = at::fake_quantize_per_tensor_affine(x, 0.03, 120, 0, 255);
  EXPECT_LT((y - ref).abs().max().item<double>(), 1e-6);
  // Per channel int8 along axis 1.
  at::Tensor s = f32({0.02f, 0.05f, 0.011f});
  at::Tensor zp = at::zeros({3});
  y = fakeQuantize(x, s, zp, QLayout{.axis = 1});
  ref = at::fake_quantize_per_channel_affine(x, s, zp.to(at::kInt), 1, -128, 127);
  EXPECT_LT((y - ref).abs().max().item<double>(), 1e-6);
}

TEST(FakeQuant, StraightThroughGradientIsInRangeMask) {
  at::Tensor x = at::linspace(-3, 3, 61).requires_grad_(true);
  QLayout l{.qmin = -8, .qmax = 7};
  at::Tensor y = fakeQuantize(x, at::scalar_tensor(0.25f), at::scalar_tensor(0.0f), l);
  at::Tensor w = test::randn({61}, 1);
  (y * w).sum().backward();
  // In range iff -8 <= round(x / 0.25) <= 7, i.e. x in [-2.0, 1.75] here (grid points).
  at::Tensor xd = x.detach();
  at::Tensor q = at::round(xd / 0.25);
  at::Tensor mask = ((q >= -8) & (q <= 7)).to(at::kFloat);
  EXPECT_TENSOR_EQ(x.grad(), w * mask);
  // Same as PyTorch's fake_quantize backward.
  at::Tensor x2 = xd.clone().requires_grad_(true);
  (at::fake_quantize_per_tensor_affine(x2, 0.25, 0, -8, 7) * w).sum().backward();
  EXPECT_TENSOR_EQ(x.grad(), x2.grad());
  // The forward value is exact (no STE rounding residue).
  EXPECT_TENSOR_EQ(y.detach(), fakeQuantize(xd, at::scalar_tensor(0.25f), at::scalar_tensor(0.0f), l));
}

TEST(Lsq, ForwardAndGradientsMatchClosedForm) {
  at::Tensor x = (test::randn({3, 40}, 11) * 0.6).to(at::kDouble).requires_grad_(true);
  at::Tensor s = at::full({3}, 0.17, at::kDouble).requires_grad_(true);
  QLayout l{.qmin = -7, .qmax = 7, .axis = 0};
  at::Tensor y = lsqQuantize(x, s, l);
  at::Tensor w = test::randn({3, 40}, 12).to(at::kDouble);
  (y * w).sum().backward();
  at::Tensor xd = x.detach(), sb = s.detach().unsqueeze(1);
  at::Tensor v = xd / sb;
  at::Tensor inside = ((v >= -7) & (v <= 7)).to(at::kDouble);
  EXPECT_LT((y.detach() - at::round(at::clamp(v, -7, 7)) * sb).abs().max().item<double>(), 1e-12);
  EXPECT_LT((x.grad() - w * inside).abs().max().item<double>(), 1e-12);
  // dy/ds = g * (round(v) - v) inside, g * qmin / qmax outside; g = 1 / sqrt(40 * 7).
  double g = 1.0 / std::sqrt(40.0 * 7.0);
  at::Tensor ds = at::where(v < -7, at::full_like(v, -7.0),
                            at::where(v > 7, at::full_like(v, 7.0), at::round(v) - v));
  at::Tensor want = (w * ds).sum(1) * g;
  EXPECT_LT((s.grad() - want).abs().max().item<double>(), 1e-10);
  // Finite differences of LSQ's surrogate (round's offset frozen at s0) give the same gradient.
  double h = 1e-6;
  at::Tensor c = at::round(at::clamp(v, -7, 7)) - at::clamp(v, -7, 7);
  auto surrogate = [&](const at::Tensor& sv) {
    at::Tensor vv = at::clamp(xd / sv.unsqueeze(1), -7, 7);
    return ((vv + c) * sv.unsqueeze(1) * w).sum(1);
  };
  at::Tensor fd = (surrogate(s.detach() + h) - surrogate(s.detach() - h)) / (2 * h) * g;
  EXPECT_LT((s.grad() - fd).abs().max().item<double>(), 1e-6);
}

TEST(Lsq, InitStepIsTwiceMeanAbsOverSqrtQp) {
  at::Tensor w = f32({1, -1, 2, -2, 4, 0}).reshape({2, 3});
  QuantSpec s = spec(4, true, true, true);
  EXPECT_FLOAT_EQ(lsqInitStep(w, s).item<float>(), 2.0f * (10.0f / 6.0f) / std::sqrt(7.0f));
  s.granularity = Granularity::PerChannel;
  at::Tensor pc = lsqInitStep(w, s);
  EXPECT_FLOAT_EQ(pc[0].item<float>(), 2.0f * (4.0f / 3.0f) / std::sqrt(7.0f));
  EXPECT_FLOAT_EQ(pc[1].item<float>(), 2.0f * 2.0f / std::sqrt(7.0f));
}

}  // namespace
}  // namespace gs::quant
