// AWQ scale and clip search (AutoAWQ's auto_scale / auto_clip, scored on the layer group).
#include "llm/awq.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "support/error.h"

namespace gs::llm {

at::Tensor subsampleRows(const at::Tensor& x, int64_t max_rows) {
  at::Tensor r = x.reshape({-1, x.size(-1)}).to(at::kFloat);
  if (max_rows <= 0 || r.size(0) <= max_rows) return r;
  at::Tensor idx = at::linspace(0, r.size(0) - 1, max_rows, at::kDouble).round().to(at::kLong);
  return r.index_select(0, idx);
}

AwqInputStats::AwqInputStats(int64_t in)
    : abs_sum_(at::zeros({in}, at::kDouble)), xtx_(at::zeros({in, in}, at::kFloat)) {}

AwqInputStats AwqInputStats::of(const at::Tensor& x) {
  AwqInputStats s(x.size(-1));
  s.add(x);
  return s;
}

void AwqInputStats::add(const at::Tensor& x) {
  GS_CHECK(x.size(-1) == features(), "AWQ: expected inputs with ", features(),
           " features, got ", x.size(-1));
  const at::Tensor r = x.detach().reshape({-1, features()}).to(at::kFloat);
  if (r.size(0) == 0) return;
  // In place where allowed (the pipeline creates and adds to them in the inference mode of the
  // calibration forward; no [in, in] copy per chunk); an inference tensor outside it is replaced.
  if (xtx_.is_inference() && !c10::InferenceMode::is_enabled()) {
    abs_sum_ = abs_sum_ + r.abs().sum(0, false, at::kDouble);
    xtx_ = at::addmm(xtx_, r.t(), r);
  } else {
    abs_sum_ += r.abs().sum(0, false, at::kDouble);
    xtx_.addmm_(r.t(), r);
  }
  n_ += r.size(0);
}

void AwqInputStats::divideInputs(const at::Tensor& s) {
  abs_sum_ = abs_sum_ / s.to(at::kDouble);
  xtx_ = xtx_ / at::outer(s, s).to(at::kFloat);
}

at::Tensor AwqInputStats::absMean() const {
  return (abs_sum_ / static_cast<double>(std::max<int64_t>(1, n_))).to(at::kFloat);
}

at::Tensor AwqInputStats::gram() const {
  return xtx_ / static_cast<double>(std::max<int64_t>(1, n_));
}

AwqScaleResult awqSearchScales(const AwqInputStats& x, const std::vector<at::Tensor>& weights,
                               const AwqConfig& cfg, const AwqScorer& scorer) {
  GS_CHECK(!weights.empty(), "AWQ: no weights to scale");
  GS_CHECK(cfg.grid > 0, "AWQ: grid must be positive");
  GS_CHECK(x.rows() > 0, "AWQ: no calibration rows");
  const int64_t in = x.features();
  // Float and contiguous once: a transposed ([in, out]) weight view would otherwise be copied by
  // every candidate (no copy for the usual float [out, in] weights).
  std::vector<at::Tensor> wf;
  for (const at::Tensor& w : weights) {
    GS_CHECK(w.dim() == 2 && w.size(1) == in, "AWQ: weight [", w.size(0), ", ", w.size(1),
             "] does not take ", in, " inputs");
    wf.push_back(w.to(at::kFloat).contiguous());
  }
  // mean |x| per channel and the group-normalised mean |w| per channel (AutoAWQ's get_act_scale
  // and w_mean).
  const at::Tensor x_mean = x.absMean();
  std::vector<at::Tensor> wn;
  for (const at::Tensor& w : wf) {
    const int64_t gc = cfg.spec.groupCols(in);
    at::Tensor g = padColumns(w.abs(), cfg.spec).reshape({w.size(0), -1, gc});
    g = g / at::clamp_min(std::get<0>(g.max(2, true)), 1e-12);
    wn.push_back(g.reshape({w.size(0), -1}).narrow(1, 0, in));
  }
  at::Tensor w_mean = at::cat(wn, 0).mean(0);

  // One buffer per weight, rewritten by every candidate.
  std::vector<at::Tensor> wq(weights.size());
  at::Tensor gram;  // for the default score only
  auto score = [&](const at::Tensor& s) {
    for (size_t k = 0; k < weights.size(); ++k)
      wq[k] = rtnFakeQuantScaled(wf[k], s, cfg.spec, wq[k]);
    if (scorer) return scorer(wq);
    if (!gram.defined()) gram = x.gram();
    double e = 0;  // sum_k mean squared output error over the rows, tr(D G D^T) / out
    for (size_t k = 0; k < weights.size(); ++k) {
      const at::Tensor d = wq[k] - wf[k];
      e += (at::matmul(d, gram) * d).sum().item<double>() / static_cast<double>(d.size(0));
    }
    return e;
  };

  AwqScaleResult best;
  best.scales = at::ones({in}, at::kFloat);
  best.error_rtn = score(best.scales);
  best.error = best.error_rtn;
  best.alpha = -1;
  for (int64_t k = 0; k <= cfg.grid; ++k) {
    const double a = static_cast<double>(k) / cfg.grid;
    at::Tensor s = cfg.duo_scaling
                       ? at::pow(x_mean, a) / at::clamp_min(at::pow(w_mean, 1.0 - a), 1e-4)
                       : at::pow(x_mean, a);
    s = at::clamp_min(s, 1e-4);
    s = s / at::sqrt(s.max() * s.min());
    const double e = score(s);
    if (e < best.error) {
      best.error = e;
      best.alpha = a;
      best.scales = s;
    }
  }
  return best;
}

AwqScaleResult awqSearchScales(const at::Tensor& x, const std::vector<at::Tensor>& weights,
                               const AwqConfig& cfg, const AwqScorer& scorer) {
  return awqSearchScales(AwqInputStats::of(subsampleRows(x, cfg.max_tokens)), weights, cfg,
                         scorer);
}

at::Tensor awqClip(const AwqInputStats& x, const at::Tensor& w, const AwqConfig& cfg) {
  GS_CHECK(cfg.clip_grid > 0 && cfg.clip_refine > 0 && cfg.max_shrink >= 0 && cfg.max_shrink < 1,
           "AWQ: clip_grid and clip_refine must be positive and max_shrink in [0, 1)");
  const int64_t out = w.size(0), in = w.size(1);
  GS_CHECK(x.features() == in, "AWQ clip: input has ", x.features(), " features, weight takes ",
           in);
  GS_CHECK(x.rows() > 0, "AWQ clip: no calibration rows");
  const int64_t gc = cfg.spec.groupCols(in), ng = cfg.spec.numGroups(in);
  // Group g's output error over all rows, sum_n (x_g . d)^2 / n = d^T H_g d, with H_g the
  // diagonal [gc, gc] blocks of the Gram matrix; the ragged last group is zero-padded (zero
  // columns add nothing to outputs, and ranges contain 0).
  at::Tensor H = at::zeros({ng, gc, gc}, at::kFloat);
  {
    const at::Tensor gram = x.gram();
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t c0 = g * gc, c = std::min(gc, in - c0);
      H[g].narrow(0, 0, c).narrow(1, 0, c).copy_(gram.narrow(0, c0, c).narrow(1, c0, c));
    }
  }
  at::Tensor wg = padColumns(w.to(at::kFloat), cfg.spec).reshape({out, ng, gc}).permute({1, 0, 2});
  const int64_t steps = static_cast<int64_t>(std::floor(cfg.max_shrink * cfg.clip_grid));
  const double step = 1.0 / static_cast<double>(cfg.clip_grid);
  const double fine = step / static_cast<double>(cfg.clip_refine);
  const double r_min = 1.0 - cfg.max_shrink;
  // Asymmetric grids shrink each end on its own (a group's min and max are rarely equally
  // wasteful); symmetric grids are centred on zero, so one ratio shrinks both.
  const bool two_ends = !cfg.spec.symmetric;
  const WeightQuantSpec per_row{cfg.spec.bits, 0, cfg.spec.symmetric};
  at::Tensor result = at::empty({ng, out, gc}, at::kFloat);
  // Rows in blocks bound the [ng, rows, gc] temporaries to 4 MiB each: below the malloc mmap
  // threshold (32 MiB), so they are reused from the heap instead of page-faulted in afresh for
  // every candidate (which took more than half of the search time at 64 MiB).
  const int64_t rows = std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(1, ng * gc));
  for (int64_t r0 = 0; r0 < out; r0 += rows) {
    const at::Tensor wb = wg.narrow(1, r0, std::min(rows, out - r0)).contiguous();  // [ng, rows, gc]
    const at::Tensor lo0 = std::get<0>(wb.min(2, true)), hi0 = std::get<0>(wb.max(2, true));
    at::Tensor best_err = at::full_like(lo0, std::numeric_limits<float>::infinity());
    at::Tensor best_lo = at::ones_like(lo0), best_hi = at::ones_like(hi0);  // ratios
    // Keeps, per (group, row), the ratio pair with the least output error so far.
    auto consider = [&](const at::Tensor& r_lo, const at::Tensor& r_hi) {
      const at::Tensor lo = lo0 * r_lo, hi = hi0 * r_hi;
      const QuantParams p = paramsFromRange(lo, hi, per_row);
      const at::Tensor d = fakeQuantGroups(wb.view({-1, gc}), p.scale, p.zero, gc, per_row.maxq(),
                                           lo, hi, /*minus_w=*/true)
                               .view(wb.sizes());
      const at::Tensor err = (at::bmm(d, H) * d).sum(2, true);  // [ng, rows, 1]
      const at::Tensor better = err < best_err;
      best_err = at::where(better, err, best_err);
      best_lo = at::where(better, r_lo, best_lo);
      best_hi = at::where(better, r_hi, best_hi);
    };
    auto ratio = [&](double r) { return at::full_like(lo0, r); };
    // Coarse: every ratio pair on the grid 1, 1 - 1/clip_grid, ..., 1 - max_shrink.
    for (int64_t a = 0; a <= steps; ++a)
      for (int64_t b = 0; b <= (two_ends ? steps : 0); ++b) {
        const double r_hi = 1.0 - static_cast<double>(a) * step;
        consider(ratio(two_ends ? 1.0 - static_cast<double>(b) * step : r_hi), ratio(r_hi));
      }
    // Fine: clip_refine times finer, within one coarse step of each (group, row)'s best pair.
    if (cfg.clip_refine > 1) {
      const at::Tensor c_lo = best_lo.clone(), c_hi = best_hi.clone();
      const int64_t k = cfg.clip_refine;
      for (int64_t a = -k; a <= k; ++a)
        for (int64_t b = -k; b <= (two_ends ? k : -k); ++b) {
          if (a == 0 && (b == 0 || !two_ends)) continue;  // the coarse best itself
          const at::Tensor r_hi = at::clamp(c_hi + static_cast<double>(a) * fine, r_min, 1.0);
          consider(two_ends ? at::clamp(c_lo + static_cast<double>(b) * fine, r_min, 1.0) : r_hi, r_hi);
        }
    }
    result.narrow(1, r0, wb.size(1)).copy_(at::clamp(wb, lo0 * best_lo, hi0 * best_hi));
  }
  return result.permute({1, 0, 2}).reshape({out, ng * gc}).narrow(1, 0, in).to(w.scalar_type());
}

at::Tensor awqClip(const at::Tensor& x, const at::Tensor& w, const AwqConfig& cfg) {
  return awqClip(AwqInputStats::of(x), w, cfg);
}

}  // namespace gs::llm
