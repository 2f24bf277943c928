// AWQ (Lin et al., 2023): activation-aware per-input-channel weight scaling searched over a grid
// of alpha, then a per-group clipping search, both scored by output reconstruction error.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "llm/quantizer.h"

namespace gs::llm {

/// AWQ options (as AutoAWQ's defaults).
struct AwqConfig {
  WeightQuantSpec spec;
  int64_t grid = 20;        ///< alpha in {0, 1/grid, ..., 1}
  bool duo_scaling = true;  ///< s = mean|x|^a / mean|w|^(1-a) instead of mean|x|^a
  int64_t clip_grid = 20;   ///< shrink ratios 1 - k/clip_grid ...
  double max_shrink = 0.5;  ///< ... down to 1 - max_shrink
  int64_t clip_refine = 1;  ///< then clip_refine times finer around each best pair (1 = off)
  int64_t max_tokens = 65536;  ///< calibration rows the scale search scores on (strided subsample)
};

/// What the AWQ searches need of a group's calibration inputs x [n, in], accumulated chunk by
/// chunk so that the rows themselves are not kept (at AutoAWQ's 65,536 tokens the rows of a
/// 5632-wide input are 1.4 GiB, its statistics 121 MiB): the mean |x| per channel (the scales'
/// activation term) and the Gram matrix G = x^T x / n, from which the mean squared output error
/// of any weight change D [out, in] over the rows is tr(D G D^T) / out, and a clip candidate's
/// per-group error d^T G_g d.
class AwqInputStats {
 public:
  explicit AwqInputStats(int64_t in);
  /// The statistics of x [..., in].
  static AwqInputStats of(const at::Tensor& x);
  /// Adds the rows of x [..., in].
  void add(const at::Tensor& x);
  /// The inputs become x / s (scales folded into the producer): |x| / s, G / (s s^T).
  void divideInputs(const at::Tensor& s);
  int64_t rows() const { return n_; }
  int64_t features() const { return xtx_.size(0); }
  at::Tensor absMean() const;  ///< float [in]
  at::Tensor gram() const;     ///< float [in, in]

 private:
  at::Tensor abs_sum_;  ///< double [in]
  at::Tensor xtx_;      ///< float [in, in], the sum of x^T x over the rows
  int64_t n_ = 0;
};

/// Result of the scale search for one group of linear layers sharing an input.
struct AwqScaleResult {
  at::Tensor scales;      ///< float [in]; the layers' inputs are divided by it, W columns * it
  double alpha = 0;       ///< best grid point (-1 = identity scales won)
  double error = 0;       ///< output MSE at the best point (summed over the layers)
  double error_rtn = 0;   ///< output MSE of plain RTN (scales = 1)
};

/// Scores candidate weights of a group: given Q(W_k * s) / s for every layer k (float
/// [out_k, in]), the error of the output the group is judged by (lower is better). The tensors
/// are rewritten in place by the next candidate: a scorer that keeps one must copy it.
using AwqScorer = std::function<double(const std::vector<at::Tensor>& wq)>;

/// Searches s for layers W_k [out_k, in] fed by the same input x [n, in]: for each alpha, with
/// s = mean|x|^a / mean|w|^(1-a) (duo; w normalised per group) or mean|x|^a, normalised by
/// sqrt(max s * min s), scores the candidate weights Q(W_k * s) / s with `scorer` (AutoAWQ
/// scores the module the group feeds, e.g. the whole attention for q/k/v), or, without one,
/// by sum_k mean((x W_k^T - x (Q(W_k * s) / s)^T)^2), computed from the inputs' statistics as
/// tr(D_k G D_k^T) / out_k, D_k = Q(W_k s) / s - W_k. The identity (plain RTN) is also a
/// candidate, so the result never scores worse than RTN. cfg.max_tokens is up to whoever
/// gathered the statistics.
AwqScaleResult awqSearchScales(const AwqInputStats& x, const std::vector<at::Tensor>& weights,
                               const AwqConfig& cfg, const AwqScorer& scorer = {});
/// The same on the statistics of at most cfg.max_tokens strided rows of x.
AwqScaleResult awqSearchScales(const at::Tensor& x, const std::vector<at::Tensor>& weights,
                               const AwqConfig& cfg, const AwqScorer& scorer = {});

/// Per-(row, group) clip search for W [out, in] given its calibration inputs' statistics: candidate
/// ranges [min * r_lo, max * r_hi] per group, r in {1, 1 - 1/clip_grid, ..., 1 - max_shrink};
/// asymmetric grids try every (r_lo, r_hi) pair, symmetric ones r_lo = r_hi. With clip_refine
/// k > 1 a second pass tries, around each (row, group)'s best pair, every pair within one coarse
/// step on a k times finer grid (clamped to the same interval). Keeps, per row and group, the
/// range minimising the group's output error over all n rows, computed exactly as d^T H_g d
/// (d = w_g - Q(clip(w_g)), H_g = x_g^T x_g / n: the diagonal blocks of the Gram matrix).
/// AutoAWQ shrinks both ends alike on the coarse grid and scores 512 sampled rows; measured in
/// docs/ptq.md. Returns the clipped W (not yet quantized; RTN of it under the same spec
/// reproduces the chosen ranges).
at::Tensor awqClip(const AwqInputStats& x, const at::Tensor& w, const AwqConfig& cfg);
/// The same on the statistics of all rows of x [n, in].
at::Tensor awqClip(const at::Tensor& x, const at::Tensor& w, const AwqConfig& cfg);

/// At most `max_rows` rows of x [..., in] flattened to [n, in], evenly strided.
at::Tensor subsampleRows(const at::Tensor& x, int64_t max_rows);

}  // namespace gs::llm
