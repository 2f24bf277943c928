// LLM PTQ math on tensors: RTN bounds, GPTQ against a closed-form 2-column case and RTN, AWQ scale
// and clip search, SmoothQuant factors, Hessian accumulation, PTQ config validation.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <optional>

#include "llm/awq.h"
#include "llm/gptq.h"
#include "llm/ptq_config.h"
#include "llm/quantizer.h"
#include "llm/smoothquant.h"
#include "support/error.h"
#include "test_util.h"

namespace gs::llm {
namespace {

using test::randn;

// mean_x ||(W - Q) x||^2 with x the rows of X (independent of the Hessian code path).
double outErr(const at::Tensor& x, const at::Tensor& w, const at::Tensor& q) {
  return (at::matmul(x.to(at::kDouble), (w - q).to(at::kDouble).t())).square().sum(1).mean().item<double>();
}

// Correlated inputs with a few large channels, like LLM activations.
at::Tensor llmLikeInputs(int64_t n, int64_t in, uint64_t seed) {
  at::Tensor mix = randn({in, in}, seed + 1) / std::sqrt(static_cast<double>(in)) +
                   at::eye(in);
  at::Tensor x = at::matmul(randn({n, in}, seed), mix);
  x.select(1, 3).mul_(8.0);
  x.select(1, in / 2).mul_(5.0);
  return x;
}

TEST(LlmRtn, ErrorWithinHalfStepForEveryScheme) {
  at::Tensor w = randn({16, 128}, 1);
  for (int bits : {8, 4, 3}) {
    for (int64_t gs : {-1, 0, 32, 64, 128}) {
      for (bool sym : {true, false}) {
        WeightQuantSpec s{bits, gs, sym};
        QuantizedWeight q = rtnQuantize(w, s);
        ASSERT_EQ(q.scale.size(1), s.numGroups(128));
        EXPECT_LE(q.q.max().item<int>(), s.maxq());
        at::Tensor err = (q.dequantize() - w).abs();
        at::Tensor step = q.scale.index_select(1, q.g_idx);
        // Symmetric ranges cover [-amax*(2^(b-1))/(2^(b-1)-1), amax]: nothing clips.
        EXPECT_TRUE((err <= step * 0.5 + 1e-6).all().item<bool>()) << s.describe();
        // Symmetric: quantizing a dequantized weight again is the identity (absmax is on the
        // grid, so the scale is unchanged).
        at::Tensor dq = q.dequantize();
        if (sym) EXPECT_LT((rtnFakeQuant(dq, s) - dq).abs().max().item<float>(), 1e-5) << s.describe();
      }
    }
  }
}

TEST(LlmRtn, FusedFakeQuantIsBitIdenticalToTheTensorExpression) {
  // fakeQuantGroups (AVX2 and scalar loops) against the ATen expression it replaced, on a ragged
  // last group (300 = 128 + 128 + 44 columns: vector and scalar tails), exact ties (k + 0.5 steps:
  // round half to even), clipped ranges and the error form.
  at::Tensor w = randn({37, 300}, 11) * 0.05;
  w.select(0, 0).copy_(at::arange(300, at::kFloat) * 0.5 - 75.0);  // every half step of scale 1
  for (const char* scalar : {"0", "1"}) {
    setenv("GS_NBITS_SCALAR", scalar, 1);
    for (int bits : {8, 4, 3}) {
      for (int64_t gs : {-1, 0, 128}) {
        for (bool sym : {true, false}) {
          const WeightQuantSpec s{bits, gs, sym};
          const int64_t gc = s.groupCols(300), ng = s.numGroups(300);
          const QuantParams p = computeParams(w, s);
          const at::Tensor g_idx = at::div(at::arange(300, at::kLong), gc, "floor");
          const at::Tensor sc = p.scale.index_select(1, g_idx), ze = p.zero.index_select(1, g_idx);
          const at::Tensor ref = dequantizeValues(quantizeValues(w, sc, ze, s.maxq()), sc, ze);
          EXPECT_TRUE(at::equal(rtnFakeQuant(w, s), ref)) << s.describe() << " scalar " << scalar;
          // AWQ's candidate Q(w * c) / c with per-column factors c.
          const at::Tensor c = at::exp(randn({300}, 12) * 0.5);
          const QuantParams pw = computeParams(w * c, s);
          const at::Tensor sw = pw.scale.index_select(1, g_idx), zw = pw.zero.index_select(1, g_idx);
          const at::Tensor ref_s = dequantizeValues(quantizeValues(w * c, sw, zw, s.maxq()), sw, zw) / c;
          at::Tensor buf = at::empty({37, 300});
          EXPECT_TRUE(at::equal(rtnFakeQuantScaled(w, c, s, buf), ref_s)) << s.describe();
          if (gs >= 0) EXPECT_EQ(rtnFakeQuantScaled(w, c, s, buf).data_ptr(), buf.data_ptr());
          // Clipped to 70-90 % of each group's range, minus w (AWQ's clip candidates).
          const at::Tensor wg = padColumns(w, s).view({37, ng, gc});
          const at::Tensor lo = std::get<0>(wg.min(2)) * 0.7, hi = std::get<0>(wg.max(2)) * 0.9;
          const QuantParams pc = paramsFromRange(lo, hi, s);
          const at::Tensor lo_c = lo.index_select(1, g_idx), hi_c = hi.index_select(1, g_idx);
          const at::Tensor sc_c = pc.scale.index_select(1, g_idx), ze_c = pc.zero.index_select(1, g_idx);
          const at::Tensor ref_c =
              dequantizeValues(quantizeValues(at::clamp(w, lo_c, hi_c), sc_c, ze_c, s.maxq()),
                               sc_c, ze_c) - w;
          EXPECT_TRUE(at::equal(fakeQuantGroups(w, pc.scale, pc.zero, gc, s.maxq(), lo, hi, true),
                                ref_c))
              << s.describe() << " scalar " << scalar;
        }
      }
    }
  }
  unsetenv("GS_NBITS_SCALAR");
}

TEST(LlmRtn, RaggedLastGroup) {
  // 48 columns in groups of 32: the second group holds 16 columns and quantizes like a
  // per-channel RTN of those columns alone; GPTQ with an identity Hessian agrees.
  at::Tensor w = randn({4, 48}, 2);
  WeightQuantSpec s{4, 32, false};
  at::Tensor q = rtnFakeQuant(w, s);
  EXPECT_TRUE(at::allclose(q.narrow(1, 32, 16), rtnFakeQuant(w.narrow(1, 32, 16).contiguous(), {4, 0, false})));
  EXPECT_TRUE(at::allclose(q.narrow(1, 0, 32), rtnFakeQuant(w.narrow(1, 0, 32).contiguous(), {4, 0, false})));
  GptqConfig cfg;
  cfg.spec = s;
  EXPECT_TRUE(at::allclose(gptqQuantize(w, at::eye(48, at::kDouble), cfg).weight.dequantize(), q, 1e-5, 1e-6));
}

TEST(LlmRtn, Int8SymmetricIsAbsmaxOver127) {
  at::Tensor w = at::tensor({1.0f, -2.54f, 0.5f, 0.0f, 3.0f, -1.0f, 0.25f, 0.1f}).reshape({2, 4});
  QuantizedWeight q = rtnQuantize(w, {8, 0, true});
  EXPECT_NEAR(q.scale[0][0].item<float>(), 2.54f / 127, 1e-7);
  EXPECT_NEAR(q.scale[1][0].item<float>(), 3.0f / 127, 1e-7);
  EXPECT_EQ(q.zero[0][0].item<float>(), 128);
  EXPECT_EQ(q.q[0][1].item<int>(), 128 - 127);       // -2.54 -> -127
  EXPECT_EQ(q.q[1][1].item<int>(), 128 - 42);        // -1 / (3/127) = -42.33
  // 4-bit asymmetric range [-2.54, 1.0]: scale 3.54 / 15, zero round(2.54 / scale) = 11.
  QuantizedWeight a = rtnQuantize(w, {4, 0, false});
  EXPECT_NEAR(a.scale[0][0].item<float>(), 3.54f / 15, 1e-6);
  EXPECT_EQ(a.zero[0][0].item<float>(), 11);
}

TEST(LlmRtn, ActivationFakeQuant) {
  at::Tensor x = at::tensor({0.5f, -1.0f, 0.25f, 2.0f, 0.0f, 4.0f}).reshape({2, 3});
  at::Tensor y = fakeQuantPerToken(x);
  // Row 0: scale 1/127; row 1: scale 4/127; 2.0 -> round(63.5) = 64 (half to even) * 4/127.
  EXPECT_NEAR(y[0][0].item<float>(), std::round(0.5f * 127) / 127, 1e-7);
  EXPECT_NEAR(y[1][0].item<float>(), 64 * 4.0f / 127, 1e-6);
  EXPECT_NEAR(y[1][2].item<float>(), 4.0f, 1e-6);
  at::Tensor z = fakeQuantStatic(x, at::scalar_tensor(0.01f));
  EXPECT_NEAR(z[1][2].item<float>(), 1.27f, 1e-6);  // clips at 127 * 0.01
  EXPECT_NEAR(z[0][1].item<float>(), -1.0f, 1e-6);
}

TEST(LlmGptq, HessianIsTwiceMeanOuterProduct) {
  at::Tensor x = randn({10, 6}, 3);
  HessianAccumulator h(6);
  h.add(x.narrow(0, 0, 3));
  h.add(x.narrow(0, 3, 7).reshape({7, 1, 6}));
  at::Tensor ref = 2.0 * at::matmul(x.t(), x).to(at::kDouble) / 10.0;
  EXPECT_LT((h.hessian().to(at::kDouble) - ref).abs().max().item<double>(), 1e-5);
  EXPECT_EQ(h.samples(), 10);
}

// Two columns, per-channel 4-bit symmetric parameters fixed from the original W (as GPTQ does),
// no dampening. Column 1 quantizes to q1 = Q(w1); the optimal update of column 2 given the error
// d1 = w1 - q1 minimises [d1 d2] H [d1 d2]^T over d2: d2 = -(b / c) d1 for H = [[a, b], [b, c]],
// i.e. w2' = w2 + (b / c) (w1 - q1), then q2 = Q(w2'). (numpy check of the same numbers:
// H = [[2, 1.2], [1.2, 1.5]], w = [0.37, -0.81]: scale = 0.81 / 7, q1 = round(0.37 / s) s =
// 3 s = 0.347143, w2' = -0.81 + 0.8 * 0.022857 = -0.791714, q2 = round(-6.842) s = -7 s = -0.81.)
TEST(LlmGptq, ClosedFormTwoColumns) {
  const double a = 2.0, b = 1.2, c = 1.5;
  at::Tensor H = at::tensor({a, b, b, c}, at::kDouble).reshape({2, 2});
  for (auto [w1, w2] : std::vector<std::pair<float, float>>{{0.37f, -0.81f}, {0.9f, 0.2f}, {-0.33f, 0.6f}}) {
    at::Tensor W = at::tensor({w1, w2}).reshape({1, 2});
    WeightQuantSpec spec{4, 0, true};
    GptqConfig cfg;
    cfg.spec = spec;
    cfg.damp_percent = 0;
    GptqResult r = gptqQuantize(W, H, cfg);
    const double s = std::max(std::abs(w1), std::abs(w2)) / 7.0;
    auto Q = [&](double v) { return std::clamp(std::nearbyint(v / s), -8.0, 7.0) * s; };
    const double q1 = Q(w1);
    const double q2 = Q(w2 + (b / c) * (w1 - q1));
    at::Tensor dq = r.weight.dequantize();
    EXPECT_NEAR(dq[0][0].item<double>(), q1, 1e-6);
    EXPECT_NEAR(dq[0][1].item<double>(), q2, 1e-6) << w1 << " " << w2;
  }
  // The worked numbers of the comment.
  GptqConfig cfg;
  cfg.spec = {4, 0, true};
  cfg.damp_percent = 0;
  at::Tensor dq = gptqQuantize(at::tensor({0.37f, -0.81f}).reshape({1, 2}), H, cfg).weight.dequantize();
  EXPECT_NEAR(dq[0][0].item<float>(), 0.347143f, 1e-5);
  EXPECT_NEAR(dq[0][1].item<float>(), -0.81f, 1e-5);
}

TEST(LlmGptq, IdentityHessianIsRtn) {
  at::Tensor w = randn({8, 64}, 4);
  at::Tensor H = at::eye(64, at::kDouble);
  for (int64_t gs : {0, 16}) {
    GptqConfig cfg;
    cfg.spec = {4, gs, false};
    cfg.block_size = 24;  // not a multiple of the group: exercises the lazy-batch boundaries
    at::Tensor g = gptqQuantize(w, H, cfg).weight.dequantize();
    EXPECT_LT((g - rtnFakeQuant(w, cfg.spec)).abs().max().item<float>(), 1e-6) << gs;
  }
}

TEST(LlmGptq, BeatsRtnOnCorrelatedInputsInEveryMode) {
  const int64_t in = 128;
  at::Tensor x = llmLikeInputs(2048, in, 5);
  at::Tensor w = randn({32, in}, 6) * 0.05;
  HessianAccumulator h(in);
  h.add(x);
  for (int bits : {4, 3}) {
    for (int64_t gs : {0, 32}) {
      for (int mode = 0; mode < 3; ++mode) {
        GptqConfig cfg;
        cfg.spec = {bits, gs, false};
        cfg.act_order = mode >= 1;
        cfg.static_groups = mode == 2 && gs > 0;
        cfg.block_size = 32;
        GptqResult r = gptqQuantize(w, h.hessian(), cfg);
        at::Tensor dq = r.weight.dequantize();
        const double e_gptq = outErr(x, w, dq), e_rtn = outErr(x, w, rtnFakeQuant(w, cfg.spec));
        EXPECT_LT(e_gptq, 0.8 * e_rtn) << bits << " g" << gs << " mode " << mode;
        // Codes + g_idx reproduce the weights; static groups keep g_idx = i / group.
        if (gs > 0 && (mode != 1)) {
          at::Tensor expect = at::div(at::arange(in, at::kLong), gs, "floor");
          EXPECT_TRUE(at::equal(r.weight.g_idx, expect));
        }
        if (gs > 0 && mode == 1) {
          // act-order groups: every group holds exactly gs columns.
          at::Tensor counts = at::bincount(r.weight.g_idx);
          EXPECT_TRUE((counts == gs).all().item<bool>());
        }
      }
    }
  }
}

TEST(LlmGptq, DeadColumnsAreZeroed) {
  at::Tensor x = randn({256, 16}, 7);
  x.select(1, 5).zero_();
  HessianAccumulator h(16);
  h.add(x);
  GptqConfig cfg;
  cfg.spec = {4, 0, false};
  at::Tensor dq = gptqQuantize(randn({4, 16}, 8), h.hessian(), cfg).weight.dequantize();
  EXPECT_EQ(dq.select(1, 5).abs().max().item<float>(), 0.0f);
}

TEST(LlmGptq, RejectsBadInput) {
  GptqConfig cfg;
  cfg.spec = {4, 32, false};
  cfg.spec = {4, 0, false};
  EXPECT_THROW(gptqQuantize(randn({4, 8}, 1), at::eye(6, at::kDouble), cfg), Error);
}

TEST(LlmAwq, ScaleSearchProtectsSalientChannels) {
  const int64_t in = 128;
  at::Tensor x = llmLikeInputs(1024, in, 9);
  std::vector<at::Tensor> ws{randn({48, in}, 10) * 0.05, randn({16, in}, 11) * 0.05};
  AwqConfig cfg;
  cfg.spec = {4, 32, false};
  AwqScaleResult r = awqSearchScales(x, ws, cfg);
  EXPECT_GE(r.alpha, 0.0);  // some grid point beats plain RTN
  EXPECT_LT(r.error, 0.9 * r.error_rtn);
  // The reported score is the output MSE of the scaled quantization, recomputed here.
  double e = 0;
  for (const at::Tensor& w : ws) {
    at::Tensor q = rtnFakeQuant(w * r.scales, cfg.spec) / r.scales;
    e += (at::matmul(x, w.t()) - at::matmul(x, q.t())).square().mean().item<double>();
  }
  EXPECT_NEAR(e, r.error, 1e-6 * std::max(1.0, e));
  // Salient (large-activation) channels get larger scales than the median.
  EXPECT_GT(r.scales[3].item<float>(), r.scales.median().item<float>());
}

// A scorer replaces the per-layer output MSE: it receives Q(W_k * s) / s for every layer, once
// for the identity and once per grid point, and its minimum decides.
TEST(LlmAwq, ScaleSearchUsesTheGivenScorer) {
  const int64_t in = 64;
  at::Tensor x = llmLikeInputs(256, in, 14);
  std::vector<at::Tensor> ws{randn({16, in}, 15) * 0.05, randn({8, in}, 16) * 0.05};
  AwqConfig cfg;
  cfg.spec = {4, 32, false};
  cfg.grid = 10;
  // Re-implementing the default score through the scorer gives the default's choice.
  int calls = 0;
  AwqScaleResult mse = awqSearchScales(x, ws, cfg, [&](const std::vector<at::Tensor>& wq) {
    ++calls;
    EXPECT_EQ(wq.size(), ws.size());
    double e = 0;
    for (size_t k = 0; k < ws.size(); ++k)
      e += (at::matmul(x, ws[k].t()) - at::matmul(x, wq[k].t())).square().mean().item<double>();
    return e;
  });
  EXPECT_EQ(calls, cfg.grid + 2);
  AwqScaleResult ref = awqSearchScales(x, ws, cfg);
  EXPECT_DOUBLE_EQ(mse.alpha, ref.alpha);
  EXPECT_TRUE(at::allclose(mse.scales, ref.scales));
  // A scorer that only likes the largest grid point (alpha = 1: the strongest scaling) picks it.
  AwqScaleResult last = awqSearchScales(x, ws, cfg, [&, k = 0](const std::vector<at::Tensor>&) mutable {
    return ++k == cfg.grid + 2 ? 0.0 : 1.0;
  });
  EXPECT_DOUBLE_EQ(last.alpha, 1.0);
}

// The pipeline keeps statistics of the calibration rows, not the rows: accumulated chunk by
// chunk they equal those of all rows at once, and both searches choose the same from either.
// (That the statistics' scores are the rows' output errors is checked against explicit row
// computations by ScaleSearchProtectsSalientChannels, ScaleSearchUsesTheGivenScorer and
// ClipPicksTheBestRangePerRowAndGroup.)
TEST(LlmAwq, InputStatisticsReplaceTheRows) {
  const int64_t in = 96;  // ragged: groups of 64 and 32
  at::Tensor x = llmLikeInputs(600, in, 21);
  AwqInputStats st(in);
  st.add(x.narrow(0, 0, 250));
  st.add(x.narrow(0, 250, 350).reshape({5, 70, in}));
  EXPECT_EQ(st.rows(), 600);
  EXPECT_TRUE(at::allclose(st.absMean(), x.abs().mean(0), 1e-5, 1e-7));
  EXPECT_TRUE(at::allclose(st.gram(), at::matmul(x.t(), x) / 600.0, 1e-4, 1e-6));
  const at::Tensor s = randn({in}, 25).abs() + 0.5;
  AwqInputStats folded = AwqInputStats::of(x);
  folded.divideInputs(s);
  const AwqInputStats direct = AwqInputStats::of(x / s);
  EXPECT_TRUE(at::allclose(folded.absMean(), direct.absMean(), 1e-5, 1e-7));
  EXPECT_TRUE(at::allclose(folded.gram(), direct.gram(), 1e-4, 1e-6));

  std::vector<at::Tensor> ws{randn({40, in}, 22) * 0.05, randn({24, in}, 23) * 0.05};
  AwqConfig cfg;
  cfg.spec = {4, 64, false};
  cfg.max_tokens = 600;
  const AwqScaleResult rows = awqSearchScales(x, ws, cfg), stats = awqSearchScales(st, ws, cfg);
  EXPECT_DOUBLE_EQ(stats.alpha, rows.alpha);
  EXPECT_NEAR(stats.error, rows.error, 1e-4 * rows.error);
  EXPECT_NEAR(stats.error_rtn, rows.error_rtn, 1e-4 * rows.error_rtn);
  EXPECT_TRUE(at::allclose(stats.scales, rows.scales, 1e-5, 1e-7));
  cfg.spec = {3, 64, false};
  cfg.clip_refine = 5;
  const at::Tensor clip_rows = awqClip(x, ws[0], cfg), clip_stats = awqClip(st, ws[0], cfg);
  EXPECT_TRUE(at::allclose(clip_stats, clip_rows, 1e-5, 1e-7));
  EXPECT_LT(outErr(x, ws[0], rtnFakeQuant(clip_stats, cfg.spec)),
            outErr(x, ws[0], rtnFakeQuant(ws[0], cfg.spec)));
  EXPECT_THROW(awqClip(AwqInputStats(in), ws[0], cfg), Error);  // no rows
  EXPECT_THROW(st.add(randn({4, in + 1}, 24)), Error);
  // Created in inference mode (as the calibration forward does), updated outside it.
  std::optional<AwqInputStats> inf;
  {
    c10::InferenceMode guard;
    inf.emplace(in);
    inf->add(x.narrow(0, 0, 300));
  }
  inf->add(x.narrow(0, 300, 300));
  inf->divideInputs(s);
  EXPECT_TRUE(at::allclose(inf->gram(), direct.gram(), 1e-4, 1e-6));
}

TEST(LlmAwq, ClipNeverIncreasesGroupError) {
  const int64_t in = 64;
  at::Tensor x = llmLikeInputs(512, in, 12);
  at::Tensor w = randn({8, in}, 13) * 0.05;
  w[2][7] = 0.9;  // an outlier weight: clipping its group trades range for resolution
  AwqConfig cfg;
  cfg.spec = {3, 32, false};
  at::Tensor wc = awqClip(x, w, cfg);
  EXPECT_LE(outErr(x, w, rtnFakeQuant(wc, cfg.spec)), outErr(x, w, rtnFakeQuant(w, cfg.spec)) + 1e-9);
  // Clipping only shrinks ranges.
  EXPECT_LE(wc.abs().max().item<float>(), w.abs().max().item<float>());
}

// Output error mean (x_g d)^2 of weight group w_g clipped to [min * r_lo, max * r_hi] and
// quantized by an asymmetric quantizer with levels 0..maxq written out here, independent of
// the library's (the range always contains 0, as the library's does).
double clippedGroupError(const at::Tensor& wg, const at::Tensor& xg, double r_lo, double r_hi,
                         double maxq) {
  const double lo = std::min(0.0, wg.min().item<double>() * r_lo);
  const double hi = std::max(0.0, wg.max().item<double>() * r_hi);
  const double scale = (hi - lo) / maxq, zero = std::nearbyint(-lo / scale);
  const at::Tensor q = at::clamp(at::round(at::clamp(wg, lo, hi) / scale) + zero, 0, maxq);
  return at::matmul(xg, wg - (q - zero) * scale).square().mean().item<double>();
}

// Brute force over every (lower, upper) shrink pair with an independent asymmetric quantizer
// and the group's output error on every row: awqClip's choice must be the minimum, and on
// one-sided outliers a pair with unequal ratios must beat every equal-ratio range.
TEST(LlmAwq, ClipPicksTheBestRangePerRowAndGroup) {
  const int64_t in = 48, gc = 16, out = 6;
  at::Tensor x = llmLikeInputs(300, in, 21).to(at::kDouble);
  at::Tensor w = randn({out, in}, 22) * 0.05;
  for (int64_t o = 0; o < out; ++o) w[o][(5 * o) % in] = 0.4 + 0.1 * static_cast<double>(o);  // one-sided
  AwqConfig cfg;
  cfg.spec = {3, gc, false};
  cfg.clip_grid = 10;
  cfg.max_shrink = 0.5;
  const at::Tensor wq = rtnFakeQuant(awqClip(x.to(at::kFloat), w, cfg), cfg.spec).to(at::kDouble);
  const double maxq = 7;
  auto groupErr = [&](const at::Tensor& wrow, const at::Tensor& xg) {
    return at::matmul(xg, wrow).square().mean().item<double>();
  };
  int unequal_wins = 0;
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t g = 0; g < in / gc; ++g) {
      const at::Tensor wg = w[o].narrow(0, g * gc, gc).to(at::kDouble);
      const at::Tensor xg = x.narrow(1, g * gc, gc);
      double best = 1e30, best_equal = 1e30;
      for (int a = 0; a <= 5; ++a) {
        for (int b = 0; b <= 5; ++b) {
          const double e = clippedGroupError(wg, xg, 1 - a / 10.0, 1 - b / 10.0, maxq);
          best = std::min(best, e);
          if (a == b) best_equal = std::min(best_equal, e);
        }
      }
      const double got = groupErr(wg - wq[o].narrow(0, g * gc, gc), xg);
      EXPECT_LE(got, best * (1 + 1e-4) + 1e-12) << "row " << o << " group " << g;
      unequal_wins += got < best_equal * (1 - 1e-3);
    }
  }
  EXPECT_GT(unequal_wins, 0);
  // Symmetric grids shrink both ends alike: the clipped range stays centred on zero.
  cfg.spec = {3, gc, true};
  const at::Tensor ws = awqClip(x.to(at::kFloat), w, cfg).reshape({out, in / gc, gc});
  EXPECT_LE(outErr(x.to(at::kFloat), w, rtnFakeQuant(ws.reshape({out, in}), cfg.spec)),
            outErr(x.to(at::kFloat), w, rtnFakeQuant(w, cfg.spec)) + 1e-9);
}

// clip_refine k: around each (row, group)'s best coarse pair, every pair within one coarse step
// on a k times finer grid. Brute force of both passes with an independent quantizer: the result
// must be the fine window's minimum, never worse than the coarse search, and better somewhere.
TEST(LlmAwq, ClipRefinementSearchesAFinerGridAroundTheCoarseBest) {
  const int64_t in = 64, gc = 16, out = 8;
  at::Tensor x = llmLikeInputs(400, in, 31).to(at::kDouble);
  at::Tensor w = randn({out, in}, 32) * 0.05;
  for (int64_t o = 0; o < out; ++o) w[o][(7 * o) % in] = -0.3 - 0.05 * static_cast<double>(o);
  AwqConfig cfg;
  cfg.spec = {3, gc, false};
  cfg.clip_grid = 10;
  cfg.max_shrink = 0.5;
  const at::Tensor coarse = rtnFakeQuant(awqClip(x.to(at::kFloat), w, cfg), cfg.spec).to(at::kDouble);
  cfg.clip_refine = 4;
  const at::Tensor fine = rtnFakeQuant(awqClip(x.to(at::kFloat), w, cfg), cfg.spec).to(at::kDouble);
  const double maxq = 7;
  int better = 0;
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t g = 0; g < in / gc; ++g) {
      const at::Tensor wg = w[o].narrow(0, g * gc, gc).to(at::kDouble);
      const at::Tensor xg = x.narrow(1, g * gc, gc);
      auto err = [&](double r_lo, double r_hi) { return clippedGroupError(wg, xg, r_lo, r_hi, maxq); };
      double best = 1e30, c_lo = 1, c_hi = 1;
      for (int a = 0; a <= 5; ++a)
        for (int b = 0; b <= 5; ++b)
          if (const double e = err(1 - b / 10.0, 1 - a / 10.0); e < best) best = e, c_lo = 1 - b / 10.0, c_hi = 1 - a / 10.0;
      double best_fine = best;
      for (int a = -4; a <= 4; ++a)
        for (int b = -4; b <= 4; ++b)
          best_fine = std::min(best_fine, err(std::clamp(c_lo + b / 40.0, 0.5, 1.0),
                                              std::clamp(c_hi + a / 40.0, 0.5, 1.0)));
      const double got_coarse = at::matmul(xg, wg - coarse[o].narrow(0, g * gc, gc)).square().mean().item<double>();
      const double got = at::matmul(xg, wg - fine[o].narrow(0, g * gc, gc)).square().mean().item<double>();
      EXPECT_NEAR(got_coarse, best, best * 1e-4 + 1e-12) << "row " << o << " group " << g;
      EXPECT_NEAR(got, best_fine, best_fine * 1e-4 + 1e-12) << "row " << o << " group " << g;
      better += got < got_coarse * (1 - 1e-3);
    }
  }
  EXPECT_GT(better, out * in / gc / 4);
}

TEST(LlmSmoothQuant, FactorsFollowTheFormula) {
  at::Tensor amax = at::tensor({4.0f, 1.0f, 0.0f, 9.0f});
  at::Tensor w1 = at::tensor({0.5f, -2.0f, 1.0f, 0.25f}).reshape({1, 4});
  at::Tensor w2 = at::tensor({-1.0f, 0.5f, 3.0f, 0.0f}).reshape({1, 4});
  at::Tensor s = smoothQuantScales(amax, {w1, w2}, 0.5);
  EXPECT_NEAR(s[0].item<float>(), std::sqrt(4.0f) / std::sqrt(1.0f), 1e-6);
  EXPECT_NEAR(s[1].item<float>(), std::sqrt(1.0f) / std::sqrt(2.0f), 1e-6);
  EXPECT_EQ(s[2].item<float>(), 1.0f);  // no activation range
  EXPECT_NEAR(s[3].item<float>(), std::sqrt(9.0f) / std::sqrt(0.25f), 1e-5);
  at::Tensor s8 = smoothQuantScales(amax, {w1}, 0.8);
  EXPECT_NEAR(s8[0].item<float>(), std::pow(4.0, 0.8) / std::pow(0.5, 0.2), 1e-5);
  ChannelAbsMax m;
  m.add(at::tensor({1.0f, -5.0f}).reshape({1, 2}));
  m.add(at::tensor({-3.0f, 2.0f, 0.5f, 0.5f}).reshape({2, 1, 2}));
  EXPECT_TRUE(at::equal(m.value(), at::tensor({3.0f, 5.0f})));
}

TEST(LlmPtqConfig, JsonRoundTripAndInvalidCombinations) {
  PtqConfig c = ptqConfigFromJson(nlohmann::json::parse(R"({"weight_dtype": "int3",
      "group_size": 64, "outlier_suppression": "awq", "precision_recovery": "gptq",
      "layer_policies": [{"pattern": "down_proj", "weight_dtype": "int8", "group_size": 0},
                         {"pattern": "layers\\.0\\.", "skip": true}],
      "blacklist": ["model.layers.1.mlp.up_proj"]})"));
  EXPECT_EQ(c.weight_bits, 3);
  PtqConfig back = ptqConfigFromJson(ptqConfigToJson(c));
  EXPECT_EQ(ptqConfigToJson(back), ptqConfigToJson(c));
  EXPECT_EQ(c.weightSpecFor("model.layers.2.mlp.down_proj")->bits, 8);
  EXPECT_EQ(c.weightSpecFor("model.layers.2.mlp.down_proj")->group_size, 0);
  EXPECT_FALSE(c.weightSpecFor("model.layers.0.self_attn.q_proj").has_value());
  EXPECT_FALSE(c.weightSpecFor("model.layers.1.mlp.up_proj").has_value());
  EXPECT_EQ(c.weightSpecFor("model.layers.1.mlp.gate_proj")->bits, 3);
  auto bad = [](const char* j, const char* needle) {
    try {
      ptqConfigFromJson(nlohmann::json::parse(j));
      ADD_FAILURE() << "accepted " << j;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  bad(R"({"weight_dtype": "int4", "act_dtype": "int8"})", "W4A8");
  bad(R"({"weight_dtype": "int4", "outlier_suppression": "smooth"})", "needs act_dtype int8");
  bad(R"({"weight_dtype": "int8", "group_size": 0, "act_dtype": "int8", "outlier_suppression": "awq"})", "weight-only");
  bad(R"({"weight_dtype": "int2"})", "is not one of");
  bad(R"({"weigth_dtype": "int4"})", "unknown key 'weigth_dtype'");
  bad(R"({"group_size": -1, "precision_recovery": "gptq"})", "per-channel or per-group");
  bad(R"({"layer_policies": [{"pattern": "(("}]})", "not a valid regex");
  bad(R"({"weight_dtype": "none"})", "nothing to quantize");
  bad(R"({"act_order": "yes"})", "wrong type");
  bad(R"({"awq_clip": "yes"})", "'awq_clip' = \"yes\" is not true, false or \"auto\"");
}

// awq_clip unset ("auto") clips unless GPTQ follows; an explicit value wins either way, and
// all three forms survive the JSON round trip.
TEST(LlmPtqConfig, AwqClipAutoIsOffOnlyUnderGptq) {
  auto parse = [](const char* j) { return ptqConfigFromJson(nlohmann::json::parse(j)); };
  EXPECT_TRUE(parse(R"({"outlier_suppression": "awq"})").awqClips());
  EXPECT_FALSE(parse(R"({"outlier_suppression": "awq", "precision_recovery": "gptq"})").awqClips());
  EXPECT_TRUE(
      parse(R"({"outlier_suppression": "awq", "precision_recovery": "gptq", "awq_clip": true})").awqClips());
  EXPECT_FALSE(parse(R"({"outlier_suppression": "awq", "awq_clip": "false"})").awqClips());
  EXPECT_TRUE(parse(R"({"outlier_suppression": "awq", "awq_clip": false, "awq_clip": "auto"})").awqClips());
  for (const char* v : {R"("auto")", "true", "false"}) {
    const PtqConfig c = parse((std::string(R"({"awq_clip": )") + v + "}").c_str());
    EXPECT_EQ(ptqConfigToJson(c)["awq_clip"].dump(), v);
    EXPECT_EQ(ptqConfigFromJson(ptqConfigToJson(c)).awq_clip, c.awq_clip);
  }
}

}  // namespace
}  // namespace gs::llm
