// Observers: closed-form min-max / EMA, histogram quantiles, MSE search against brute force,
// KL threshold behaviour, and PyTorch's MinMaxObserver formula (ATen's choose_qparams).
#include "quant/observer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <cmath>

#include "op_test_util.h"
#include "support/error.h"

namespace gs::quant {
namespace {

using test::f32;

QuantSpec u8asym() {
  QuantSpec s;
  s.is_signed = false;
  s.symmetric = false;
  return s;
}

TEST(Observer, MinMaxAcrossBatchesAndPerChannel) {
  auto o = makeObserver("minmax", u8asym());
  o->observe(f32({-1, 0.5, 2}));
  o->observe(f32({-0.5, 3}));
  auto [mn, mx] = o->range();
  EXPECT_EQ(mn.item<float>(), -1.0f);
  EXPECT_EQ(mx.item<float>(), 3.0f);
  QParams p = o->qparams();
  EXPECT_FLOAT_EQ(p.scale.item<float>(), 4.0f / 255.0f);
  EXPECT_EQ(p.zero_point.item<float>(), 64.0f);
  // PyTorch's MinMaxObserver (quint8, per_tensor_affine) over the same data.
  auto [s_ref, zp_ref] = at::_choose_qparams_per_tensor(f32({-1, 0.5, 2, -0.5, 3}), false);
  EXPECT_NEAR(p.scale.item<double>(), s_ref, 1e-7);
  EXPECT_EQ(p.zero_point.item<float>(), static_cast<float>(zp_ref));

  QuantSpec pc;
  pc.granularity = Granularity::PerChannel;
  pc.axis = 0;
  auto c = makeObserver("minmax", pc);
  c->observe(f32({1, -2, 3, -4}).reshape({2, 2}));
  auto [cmn, cmx] = c->range();
  EXPECT_TENSOR_EQ(cmn, f32({-2, -4}));
  EXPECT_TENSOR_EQ(cmx, f32({1, 3}));
  EXPECT_TENSOR_EQ(c->qparams().scale, f32({2.0f / 127.5f, 4.0f / 127.5f}));
}

TEST(Observer, EmaFollowsMovingAverageFormula) {
  ObserverOptions o;
  o.averaging_constant = 0.1;
  auto e = makeObserver("ema", u8asym(), o);
  e->observe(f32({-1, 1}));
  e->observe(f32({-3, 5}));
  e->observe(f32({0, 2}));
  auto [mn, mx] = e->range();
  // min: -1 -> -1 + 0.1 * (-3 + 1) = -1.2 -> -1.2 + 0.1 * (0 + 1.2) = -1.08
  EXPECT_NEAR(mn.item<double>(), -1.08, 1e-6);
  // max: 1 -> 1.4 -> 1.4 + 0.1 * (2 - 1.4) = 1.46
  EXPECT_NEAR(mx.item<double>(), 1.46, 1e-6);
  EXPECT_THROW(makeObserver("nope", u8asym()), Error);
  EXPECT_THROW(makeObserver("ema", u8asym())->range(), Error);
}

TEST(Observer, HistogramGrowsAndKeepsCounts) {
  Histogram h(8);
  h.add(f32({0.1f, 0.9f}));  // range [0, 0.9]
  h.add(f32({3.0f}));         // doubles twice to [0, 3.6]
  EXPECT_DOUBLE_EQ(h.lo(), 0.0);
  EXPECT_NEAR(h.hi(), 3.6, 1e-6);  // 4 x float(0.9)
  EXPECT_EQ(h.counts().sum().item<double>(), 3.0);
  // 0.9 sat in the last bin of [0, 0.9] (top edge), which merges into bin 1 of [0, 3.6].
  EXPECT_EQ(h.counts()[0].item<double>(), 1.0);
  EXPECT_EQ(h.counts()[1].item<double>(), 1.0);
  EXPECT_EQ(h.counts()[6].item<double>(), 1.0);
  h.add(f32({-2.0f}));  // doubles downwards
  EXPECT_NEAR(h.lo(), -3.6, 1e-6);
  EXPECT_EQ(h.counts().sum().item<double>(), 4.0);
}

TEST(Observer, PercentileMatchesQuantileWithinOneBin) {
  at::Tensor x = test::randn({20000}, 5);
  ObserverOptions o;
  o.percentile = 99.0;
  auto p = makeObserver("percentile", u8asym(), o);
  p->observe(x.slice(0, 0, 10000));
  p->observe(x.slice(0, 10000));
  auto [lo, hi] = p->range();
  double w = (x.max().item<double>() - x.min().item<double>()) / 2048 * 2;  // bins at most 2x
  EXPECT_NEAR(hi.item<double>(), at::quantile(x, 0.99).item<double>(), w);
  EXPECT_NEAR(lo.item<double>(), at::quantile(x, 0.01).item<double>(), w);
  QuantSpec pc;
  pc.granularity = Granularity::PerChannel;
  EXPECT_THROW(makeObserver("percentile", pc), Error);
}

/// Quantization MSE of x with the range [lo, hi].
double mseOf(const at::Tensor& x, double lo, double hi, const QuantSpec& s) {
  QParams p = computeQParams(at::scalar_tensor(lo), at::scalar_tensor(hi), s);
  at::Tensor y = fakeQuantize(x, p.scale, p.zero_point, QLayout::of(s));
  return (y - x).pow(2).mean().item<double>();
}

TEST(Observer, MseFindsNearBruteForceOptimum) {
  QuantSpec s;
  s.bits = 4;  // coarse grid: clipping matters
  at::Tensor x = test::randn({50000}, 9);
  auto m = makeObserver("mse", s);
  m->observe(x);
  auto [lo, hi] = m->range();
  double got = mseOf(x, lo.item<double>(), hi.item<double>(), s);
  double best = 1e30, mn = x.min().item<double>(), mx = x.max().item<double>();
  for (int k = 1; k <= 400; ++k) best = std::min(best, mseOf(x, mn * k / 400.0, mx * k / 400.0, s));
  double full = mseOf(x, mn, mx, s);
  EXPECT_LT(got, best * 1.02);  // histogram approximation within 2% of the raw-data optimum
  EXPECT_LT(got, full * 0.7);   // and much better than min-max for a 4-bit grid
  // Per channel on raw data: each channel's ratio is the brute-force best over the same grid.
  QuantSpec pc = s;
  pc.granularity = Granularity::PerChannel;
  at::Tensor w = test::randn({3, 500}, 10) * f32({1, 0.1f, 3}).unsqueeze(1);
  auto mc = makeObserver("mse", pc);
  mc->observe(w);
  auto [clo, chi] = mc->range();
  for (int64_t c = 0; c < 3; ++c) {
    at::Tensor row = w[c];
    double rmn = row.min().item<double>(), rmx = row.max().item<double>(), rb = 1e30;
    for (int k = 1; k <= 100; ++k) rb = std::min(rb, mseOf(row, rmn * k / 100.0, rmx * k / 100.0, s));
    EXPECT_NEAR(mseOf(row, clo[c].item<double>(), chi[c].item<double>(), s), rb, rb * 1e-4);
  }
}

TEST(Observer, KlClipsOutliersButKeepsTheBulk) {
  QuantSpec s;  // int8 symmetric
  at::Tensor x = test::randn({100000}, 13);
  x[0] = 60.0f;  // one huge outlier
  auto k = makeObserver("kl", s);
  k->observe(x);
  double t = k->range().second.item<double>();
  EXPECT_LT(t, 10.0);  // the outlier is clipped
  EXPECT_GT(t, 2.5);   // but the Gaussian bulk (|x| < ~4.4) mostly kept
  // Uniform one-sided data on an asymmetric uint8 grid: nothing to clip.
  auto u = makeObserver("kl", u8asym());
  u->observe(at::rand({100000}, at::kFloat));
  EXPECT_GT(u->range().second.item<double>(), 0.95);
  EXPECT_GE(u->range().first.item<double>(), 0.0);
}

TEST(Observer, KlIgnoresExactZerosAndPointMasses) {
  // ReLU output: half the mass is exactly zero. Zeros are exact on any grid, so the threshold must
  // be the one of the positive part alone (it was ~0.35 of it when zeros formed a spike).
  at::Tensor g = test::randn({200000}, 21).abs();
  at::Tensor relu = at::cat({g, at::zeros({200000})});
  auto pos = makeObserver("kl", u8asym());
  pos->observe(g);
  auto withz = makeObserver("kl", u8asym());
  withz->observe(relu);
  double tp = pos->range().second.item<double>(), tz = withz->range().second.item<double>();
  EXPECT_DOUBLE_EQ(tz, tp);
  EXPECT_GT(tp, 3.0);  // |N(0,1)| with 256 levels keeps nearly all of the bulk
  // A constant background (40 % of the values at 2.5) plus a Gaussian bulk: the point mass is kept
  // inside the range instead of pulling the threshold down to one bin per level.
  at::Tensor bg = at::cat({test::randn({60000}, 22).abs() * 0.8, at::full({40000}, 2.5f)});
  auto b = makeObserver("kl", u8asym());
  b->observe(bg);
  EXPECT_GE(b->range().second.item<double>(), 2.5 * (1 - 1e-3));
}

/// TensorRT's entropy calibration written out bin by bin (O(i) per candidate threshold i), on a
/// histogram without point masses: KL(P || Q) of every candidate from `levels` bins on.
std::vector<double> klCurve(const std::vector<double>& h, int64_t levels) {
  const int64_t n = static_cast<int64_t>(h.size());
  std::vector<double> curve;
  for (int64_t i = levels; i <= n; ++i) {
    std::vector<double> p(h.begin(), h.begin() + i), q(static_cast<size_t>(i), 0.0);
    for (int64_t k = i; k < n; ++k) p[i - 1] += h[k];
    for (int64_t j = 0; j < levels; ++j) {
      const int64_t s = j * i / levels, e = (j + 1) * i / levels;
      double sum = 0;
      int64_t nz = 0;
      for (int64_t k = s; k < e; ++k) sum += h[k], nz += h[k] != 0;
      for (int64_t k = s; k < e && nz > 0; ++k)
        if (h[k] != 0) q[k] = sum / static_cast<double>(nz);
    }
    double ps = 0, qs = 0, kl = 0;
    for (int64_t k = 0; k < i; ++k) ps += p[k], qs += q[k];
    for (int64_t k = 0; k < i; ++k)
      if (p[k] > 0) kl += p[k] / ps * std::log((p[k] / ps) / (q[k] > 0 ? q[k] / qs : 1e-12));
    curve.push_back(kl);
  }
  return curve;
}

TEST(Observer, KlThresholdIsTheMinimumOfTheBinByBinSearch) {
  // Smooth-ish random histograms (no spikes), with gaps and an empty-tailed or outlier-tailed end.
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    at::Tensor x = test::randn({200000}, seed).abs() * 50.0;
    at::Tensor h = at::histc(x, 600, 0, 300).to(at::kDouble);
    if (seed % 3 == 0) h.narrow(0, 100, 20).zero_();  // an empty stretch inside the bulk
    if (seed % 2 == 0) h[590] = 1.0;                  // a lone outlier far out
    std::vector<double> hv(h.data_ptr<double>(), h.data_ptr<double>() + h.numel());
    while (!hv.empty() && hv.back() == 0) hv.pop_back();
    const int64_t levels = seed % 4 == 0 ? 128 : 64;
    if (static_cast<int64_t>(hv.size()) <= levels) continue;
    const std::vector<double> curve = klCurve(hv, levels);
    const double best = *std::min_element(curve.begin(), curve.end());
    const double t = klThreshold(h, 0.5, levels);
    const int64_t i = static_cast<int64_t>(std::llround(t / 0.5));
    ASSERT_GE(i, levels) << seed;
    ASSERT_LE(i, static_cast<int64_t>(hv.size())) << seed;
    EXPECT_LE(curve[static_cast<size_t>(i - levels)], best * (1 + 1e-9) + 1e-15)
        << "seed " << seed << ": threshold bin " << i;
  }
}

TEST(Observer, KlThresholdOnHandHistogram) {
  // Flat mass in the first 256 bins, nothing after: the best threshold is the end of the mass.
  at::Tensor h = at::zeros({1024}, at::kDouble);
  h.slice(0, 0, 256).fill_(10.0);
  EXPECT_DOUBLE_EQ(klThreshold(h, 0.5, 128), 128.0);
}

}  // namespace
}  // namespace gs::quant
