// Observer implementations: min-max, EMA, histogram-based percentile / MSE / KL.
#include "quant/observer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "support/error.h"

namespace gs::quant {

QParams Observer::qparams() const {
  auto [mn, mx] = range();
  return computeQParams(mn, mx, spec_);
}

// ------------------------------------------------------------------------------------ histogram

void Histogram::add(const at::Tensor& x_in) {
  at::Tensor x = x_in.detach().to(at::kDouble).reshape({-1});
  if (x.numel() == 0) return;
  auto mm = at::aminmax(x);
  double bmin = std::get<0>(mm).item<double>(), bmax = std::get<1>(mm).item<double>();
  GS_CHECK(std::isfinite(bmin) && std::isfinite(bmax), "histogram: non-finite values observed");
  if (empty()) {
    lo_ = std::min(bmin, 0.0);
    hi_ = std::max(bmax, 0.0);
    if (hi_ - lo_ < 1e-12) hi_ = lo_ + 1e-6;
    counts_ = at::zeros({bins_}, at::kDouble);
    dmin_ = bmin;
    dmax_ = bmax;
  }
  dmin_ = std::min(dmin_, bmin);
  dmax_ = std::max(dmax_, bmax);
  // Double the range until the batch fits, merging bin pairs (keeps edges aligned).
  while (bmin < lo_ || bmax > hi_) {
    double width = hi_ - lo_;
    at::Tensor merged = counts_.reshape({bins_ / 2, 2}).sum(1);
    at::Tensor z = at::zeros({bins_ / 2}, at::kDouble);
    if (bmax > hi_) {
      counts_ = at::cat({merged, z});
      hi_ = lo_ + 2 * width;
    } else {
      counts_ = at::cat({z, merged});
      lo_ = hi_ - 2 * width;
    }
  }
  double w = binWidth();
  at::Tensor idx = at::clamp(at::floor((x - lo_) / w), 0, static_cast<double>(bins_ - 1)).to(at::kLong);
  counts_ += at::bincount(idx, {}, bins_).to(at::kDouble);
}

at::Tensor Histogram::centres() const {
  double w = binWidth();
  return at::arange(bins_, at::kDouble) * w + (lo_ + 0.5 * w);
}

double Histogram::quantile(double q) const {
  GS_CHECK(!empty(), "histogram: no data observed");
  at::Tensor c = counts_.cumsum(0);
  double total = c[-1].item<double>();
  double target = q * total;
  const double* cp = c.data_ptr<double>();
  const double* hp = counts_.contiguous().data_ptr<double>();
  int64_t i = std::lower_bound(cp, cp + bins_, target) - cp;
  i = std::min(i, bins_ - 1);
  double before = i > 0 ? cp[i - 1] : 0.0;
  double frac = hp[i] > 0 ? (target - before) / hp[i] : 0.0;
  double v = lo_ + (static_cast<double>(i) + std::clamp(frac, 0.0, 1.0)) * binWidth();
  return std::clamp(v, dmin_, dmax_);
}

double klThreshold(const at::Tensor& abs_counts, double bin_width, int64_t levels) {
  at::Tensor hc = abs_counts.to(at::kDouble).contiguous();
  const int64_t nbins = hc.numel();
  const double* h = hc.data_ptr<double>();
  // Trailing empty bins never help; thresholds start at `levels` bins (one bin per level).
  int64_t last = nbins;
  while (last > 0 && h[last - 1] == 0) --last;
  if (last <= levels) return static_cast<double>(std::max<int64_t>(last, 1)) * bin_width;
  // Point masses (a constant image background through the first convolutions gives one per
  // channel) land within half a step on any grid that covers them, but the chunk averaging below
  // smears them and makes the search prefer one bin per level, i.e. heavy clipping. Replace each
  // spike by its neighbours' level and keep the threshold above it.
  std::vector<double> hv(h, h + nbins);
  double total = 0;
  for (int64_t k = 0; k < nbins; ++k) total += hv[k];
  int64_t min_i = levels;
  for (int64_t k = 0; k < last; ++k) {
    double nsum = 0;
    int64_t n = 0;
    for (int64_t j = std::max<int64_t>(0, k - 2); j <= std::min(last - 1, k + 2); ++j)
      if (j != k) nsum += h[j], ++n;
    double nmean = n > 0 ? nsum / static_cast<double>(n) : 0.0;
    if (h[k] > 0.002 * total && h[k] > 8 * nmean) {
      hv[k] = nmean;
      min_i = std::max(min_i, k + 1);
    }
  }
  h = hv.data();
  if (min_i > last) return static_cast<double>(last) * bin_width;
  // TensorRT's search, per candidate threshold i: P = h[0:i] with the outliers added to bin i-1;
  // Q = h[0:i] quantized into `levels` chunks, each chunk's mass spread over its non-empty bins.
  // KL(P || Q) = sum_k p_k log(p_k / q_k) over p_k > 0 (normalised). Within a chunk every
  // non-empty bin has the same q, so the chunk contributes (S log S-part) terms from prefix sums
  // of h, h log h and the non-empty count: O(levels) per candidate instead of O(i), which makes
  // fine histograms (the default 32768 bins) affordable.
  std::vector<double> c0(static_cast<size_t>(nbins) + 1, 0.0), cl(c0), cn(c0);
  for (int64_t k = 0; k < nbins; ++k) {
    c0[k + 1] = c0[k] + h[k];
    cl[k + 1] = cl[k] + (h[k] > 0 ? h[k] * std::log(h[k]) : 0.0);
    cn[k + 1] = cn[k] + (h[k] > 0 ? 1.0 : 0.0);
  }
  double best = std::numeric_limits<double>::infinity();
  int64_t best_i = last;
  for (int64_t i = min_i; i <= last; ++i) {
    const double qs = c0[i];
    const double ps = c0[nbins];           // all mass: P keeps the outliers
    const double tail = c0[nbins] - c0[i];  // outliers, added to bin i-1
    double kl = 0;
    for (int64_t j = 0; j < levels; ++j) {
      const int64_t s = j * i / levels, e = (j + 1) * i / levels;
      const double nz = cn[e] - cn[s];
      if (nz == 0) {
        // An empty chunk: only bin i-1 can have P mass there (the outliers), with Q ~ 0.
        if (e == i && tail > 0) kl += (tail / ps) * std::log((tail / ps) / 1e-12);
        continue;
      }
      const double sum = c0[e] - c0[s];
      const double lq = std::log(sum / nz / qs);  // log of the normalised q of the chunk's bins
      if (e == i && tail > 0) {
        // Bin i-1 carries the outliers: its P differs from h; handle it apart from the chunk.
        const double hl = h[i - 1];
        const double sl = cl[e] - cl[s] - (hl > 0 ? hl * std::log(hl) : 0.0);
        const double rest = sum - hl;  // the chunk's other bins
        kl += (sl - rest * std::log(ps)) / ps - (rest / ps) * lq;
        const double pl = (hl + tail) / ps;
        const double ql = hl > 0 ? std::exp(lq) : 1e-12;
        kl += pl * std::log(pl / ql);
      } else {
        // sum_k (h_k / ps) (log(h_k / ps) - lq) over the chunk's non-empty bins.
        kl += (cl[e] - cl[s] - sum * std::log(ps)) / ps - (sum / ps) * lq;
      }
    }
    if (kl < best) {
      best = kl;
      best_i = i;
    }
  }
  return static_cast<double>(best_i) * bin_width;
}

namespace {

void requirePerTensor(const QuantSpec& s, const char* kind) {
  GS_CHECK(s.granularity == Granularity::PerTensor, "observer '", kind,
           "' supports per-tensor quantization only (use minmax, ema or mse for ", s.str(), ")");
}

// ------------------------------------------------------------------------------------- kinds

class MinMaxObserver : public Observer {
 public:
  using Observer::Observer;
  void observe(const at::Tensor& x) override {
    auto [mn, mx] = reduceMinMax(x, spec_);
    if (count_++ == 0) {
      min_ = mn;
      max_ = mx;
    } else {
      merge(mn, mx);
    }
  }
  std::pair<at::Tensor, at::Tensor> range() const override {
    GS_CHECK(count_ > 0, "observer '", kind(), "': no data observed");
    return {min_, max_};
  }
  std::string kind() const override { return "minmax"; }

 protected:
  /// Folds a later batch's (min, max) into the running range.
  virtual void merge(const at::Tensor& mn, const at::Tensor& mx) {
    min_ = at::minimum(min_, mn);
    max_ = at::maximum(max_, mx);
  }
  at::Tensor min_, max_;
};

class EmaObserver : public MinMaxObserver {
 public:
  using MinMaxObserver::MinMaxObserver;
  std::string kind() const override { return "ema"; }

 protected:
  void merge(const at::Tensor& mn, const at::Tensor& mx) override {
    double c = opts_.averaging_constant;
    min_ = min_ + c * (mn - min_);
    max_ = max_ + c * (mx - max_);
  }
};

class PercentileObserver : public Observer {
 public:
  PercentileObserver(QuantSpec s, ObserverOptions o) : Observer(s, o), hist_(o.bins) {
    requirePerTensor(s, "percentile");
    GS_CHECK(o.percentile > 50 && o.percentile <= 100,
             "observer 'percentile': percentile must be in (50, 100], got ", o.percentile);
  }
  void observe(const at::Tensor& x) override {
    hist_.add(x);
    ++count_;
  }
  std::pair<at::Tensor, at::Tensor> range() const override {
    GS_CHECK(count_ > 0, "observer 'percentile': no data observed");
    double p = opts_.percentile / 100.0;
    double lo = hist_.quantile(1.0 - p), hi = hist_.quantile(p);
    return {at::scalar_tensor(lo, at::kFloat), at::scalar_tensor(hi, at::kFloat)};
  }
  std::string kind() const override { return "percentile"; }

 private:
  Histogram hist_;
};

/// Squared quantization error of each candidate range (rows) over weighted points `c` (cols).
at::Tensor candidateErrors(const at::Tensor& lo, const at::Tensor& hi, const at::Tensor& c,
                           const at::Tensor& w, const QuantSpec& spec) {
  QParams qp = computeQParams(lo, hi, spec);
  at::Tensor s = qp.scale.to(at::kDouble).unsqueeze(1), z = qp.zero_point.to(at::kDouble).unsqueeze(1);
  at::Tensor q = at::clamp(at::round(c.unsqueeze(0) / s) + z, static_cast<double>(spec.qmin()),
                           static_cast<double>(spec.qmax()));
  at::Tensor err = (q - z) * s - c.unsqueeze(0);
  return (err * err * w.unsqueeze(0)).sum(1);
}

class MseObserver : public MinMaxObserver {
 public:
  MseObserver(QuantSpec s, ObserverOptions o) : MinMaxObserver(s, o), hist_(o.bins) {}
  void observe(const at::Tensor& x) override {
    MinMaxObserver::observe(x);
    if (spec_.granularity == Granularity::PerTensor) hist_.add(x);
    else last_ = x.detach().to(at::kFloat);
  }
  std::pair<at::Tensor, at::Tensor> range() const override {
    GS_CHECK(count_ > 0, "observer 'mse': no data observed");
    at::Tensor ratios = at::arange(1, opts_.mse_steps + 1, at::kDouble) /
                        static_cast<double>(opts_.mse_steps);
    if (spec_.granularity == Granularity::PerTensor) {
      // Errors over histogram bin centres weighted by counts, one row per clip ratio.
      at::Tensor lo = ratios * std::min(hist_.dataMin(), 0.0);
      at::Tensor hi = ratios * std::max(hist_.dataMax(), 0.0);
      at::Tensor err = candidateErrors(lo, hi, hist_.centres(), hist_.counts(), spec_);
      int64_t k = err.argmin().item<int64_t>();
      return {lo[k].to(at::kFloat), hi[k].to(at::kFloat)};
    }
    // Per channel / group: search each channel's ratio on the last observed tensor (weights).
    at::Tensor best_err, best_lo, best_hi;
    QLayout l = QLayout::of(spec_);
    for (int64_t k = 0; k < ratios.numel(); ++k) {
      double r = ratios[k].item<double>();
      at::Tensor lo = min_ * r, hi = max_ * r;
      QParams qp = computeQParams(lo, hi, spec_);
      at::Tensor e = fakeQuantize(last_, qp.scale, qp.zero_point, l, "observer 'mse'") - last_;
      e = e * e;
      at::Tensor per;
      int64_t a = spec_.axis < 0 ? spec_.axis + last_.dim() : spec_.axis;
      if (spec_.granularity == Granularity::PerChannel) {
        per = e.movedim(a, 0).reshape({last_.size(a), -1}).sum(1);
      } else {
        std::vector<int64_t> shape(e.sizes().begin(), e.sizes().end());
        shape[static_cast<size_t>(a)] /= spec_.group_size;
        shape.insert(shape.begin() + a + 1, spec_.group_size);
        per = e.reshape(shape).sum({a + 1});
      }
      if (!best_err.defined()) {
        best_err = per;
        best_lo = lo;
        best_hi = hi;
      } else {
        at::Tensor better = per < best_err;
        best_err = at::where(better, per, best_err);
        best_lo = at::where(better, lo, best_lo);
        best_hi = at::where(better, hi, best_hi);
      }
    }
    return {best_lo, best_hi};
  }
  std::string kind() const override { return "mse"; }

 private:
  Histogram hist_;
  at::Tensor last_;
};

class KlObserver : public Observer {
 public:
  KlObserver(QuantSpec s, ObserverOptions o) : Observer(s, o), abs_(o.bins) {
    requirePerTensor(s, "kl");
  }
  void observe(const at::Tensor& x) override {
    at::Tensor xd = x.detach().to(at::kFloat);
    auto mm = at::aminmax(xd);
    double mn = std::get<0>(mm).item<double>(), mx = std::get<1>(mm).item<double>();
    dmin_ = count_ == 0 ? mn : std::min(dmin_, mn);
    dmax_ = count_ == 0 ? mx : std::max(dmax_, mx);
    // Exact zeros (ReLU outputs: often half the mass) are representable by every grid, so they
    // carry no quantization error. Left in the histogram they form a spike in the first bin that
    // any chunk wider than one bin smears, and the KL search then prefers one bin per level,
    // i.e. clipping at levels/nbins of the range (observed: 25-45 % of max on ResNet-20).
    at::Tensor nz = xd.masked_select(xd != 0);
    if (nz.numel() > 0) abs_.add(nz.abs());
    ++count_;
  }
  std::pair<at::Tensor, at::Tensor> range() const override {
    GS_CHECK(count_ > 0, "observer 'kl': no data observed");
    const int64_t grid = spec_.qmax() - spec_.qmin() + 1;
    // One-sided data on an asymmetric grid uses every level on [0, t]; otherwise half of them.
    bool one_sided = dmin_ >= 0 && !spec_.symmetric;
    int64_t levels = one_sided ? grid : grid / 2;
    // All observed values zero: nothing to clip.
    double t = abs_.empty() ? std::max(std::abs(dmin_), std::abs(dmax_))
                            : klThreshold(abs_.counts(), abs_.binWidth(), levels);
    double lo = std::max(dmin_, -t), hi = std::min(dmax_, t);
    return {at::scalar_tensor(lo, at::kFloat), at::scalar_tensor(hi, at::kFloat)};
  }
  std::string kind() const override { return "kl"; }

 private:
  Histogram abs_;
  double dmin_ = 0, dmax_ = 0;
};

}  // namespace

const std::vector<std::pair<std::string, std::string>>& observerKinds() {
  static const std::vector<std::pair<std::string, std::string>> k{
      {"minmax", "running min / max"},
      {"ema", "exponential moving average of per-batch min / max"},
      {"percentile", "histogram quantiles [100 - p, p]"},
      {"mse", "clip range minimising the quantization MSE"},
      {"kl", "TensorRT entropy calibration (KL divergence on the |x| histogram)"},
  };
  return k;
}

std::unique_ptr<Observer> makeObserver(const std::string& kind, const QuantSpec& spec,
                                       const ObserverOptions& opts) {
  spec.validate("observer '" + kind + "'");
  if (kind == "minmax") return std::make_unique<MinMaxObserver>(spec, opts);
  if (kind == "ema") return std::make_unique<EmaObserver>(spec, opts);
  if (kind == "percentile") return std::make_unique<PercentileObserver>(spec, opts);
  if (kind == "mse") return std::make_unique<MseObserver>(spec, opts);
  if (kind == "kl") return std::make_unique<KlObserver>(spec, opts);
  std::string names;
  for (const auto& [n, d] : observerKinds()) names += (names.empty() ? "" : ", ") + n;
  GS_FAIL("unknown observer '", kind, "' (expected one of: ", names, ")");
}

}  // namespace gs::quant
