// Observers: collect statistics of a tensor over calibration batches and choose its clipping
// range, from which qparams follow (min-max, EMA min-max, percentile, MSE-optimal, histogram KL).
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "quant/qparams.h"

namespace gs::quant {

/// Observer settings (fields unused by a kind are ignored).
struct ObserverOptions {
  double averaging_constant = 0.01;  ///< ema: new = (1 - c) * old + c * batch
  double percentile = 99.99;         ///< percentile: keep [100 - p, p] percent of the mass
  int64_t bins = 32768;              ///< histogram kinds (percentile, mse per tensor, kl)
  int64_t mse_steps = 100;           ///< mse: candidate clip ratios k / steps, k = 1..steps
};

/// Accumulates statistics of the tensors passed to observe() and turns them into a range.
class Observer {
 public:
  Observer(QuantSpec spec, ObserverOptions opts) : spec_(spec), opts_(opts) {}
  virtual ~Observer() = default;
  /// Adds one batch (no autograd). Per-channel / per-group specs reduce in spec's layout.
  virtual void observe(const at::Tensor& x) = 0;
  /// The chosen clipping range (min, max) in QParams layout; throws if nothing was observed.
  virtual std::pair<at::Tensor, at::Tensor> range() const = 0;
  /// computeQParams(range(), spec).
  QParams qparams() const;
  bool empty() const { return count_ == 0; }
  const QuantSpec& spec() const { return spec_; }
  /// "minmax", "ema", ...
  virtual std::string kind() const = 0;

 protected:
  QuantSpec spec_;
  ObserverOptions opts_;
  int64_t count_ = 0;
};

/// Observer kinds accepted by makeObserver, with one-line descriptions.
const std::vector<std::pair<std::string, std::string>>& observerKinds();

/// Creates an observer: "minmax" (running min / max), "ema" (exponential moving average of
/// per-batch min / max, as PyTorch's MovingAverageMinMaxObserver), "percentile" (histogram
/// quantiles), "mse" (clip range minimising the quantization MSE), "kl" (TensorRT entropy
/// calibration on the histogram). Histogram kinds are per tensor, except "mse" which searches per
/// channel / group on the raw tensor (weights). Throws gs::Error for an unknown kind.
std::unique_ptr<Observer> makeObserver(const std::string& kind, const QuantSpec& spec,
                                       const ObserverOptions& opts = {});

/// A growable histogram over [lo, hi] (bins of equal width); when new data falls outside the
/// range, the range doubles around the old one and old counts are merged pairwise, so bins stay
/// aligned and no count is smeared.
class Histogram {
 public:
  explicit Histogram(int64_t bins) : bins_(bins) {}
  void add(const at::Tensor& x);
  bool empty() const { return !counts_.defined(); }
  /// Counts (double, [bins]), bin i covering [lo + i*w, lo + (i+1)*w).
  const at::Tensor& counts() const { return counts_; }
  double lo() const { return lo_; }
  double hi() const { return hi_; }
  double binWidth() const { return (hi_ - lo_) / static_cast<double>(bins_); }
  /// Bin centres (double, [bins]).
  at::Tensor centres() const;
  /// Observed min / max of the data (tighter than lo / hi).
  double dataMin() const { return dmin_; }
  double dataMax() const { return dmax_; }
  /// Value below which `q` (0..1) of the mass lies, interpolated linearly within a bin.
  double quantile(double q) const;

 private:
  int64_t bins_;
  at::Tensor counts_;
  double lo_ = 0, hi_ = 0, dmin_ = 0, dmax_ = 0;
};

/// TensorRT's entropy calibration threshold for a histogram of |x| (counts over [0, t_max] in
/// equal bins): the threshold bin edge minimising KL(P || Q), P the clipped reference
/// distribution (outliers added to the last bin), Q its `levels`-level quantization.
double klThreshold(const at::Tensor& abs_counts, double bin_width, int64_t levels);

}  // namespace gs::quant
