// GPTQ implementation following the reference algorithm (AutoGPTQ's GPTQ.fasterquant).
#include "llm/gptq.h"

#include <ATen/ATen.h>

#include "support/error.h"

namespace gs::llm {

HessianAccumulator::HessianAccumulator(int64_t in) : h_(at::zeros({in, in}, at::kFloat)) {}

void HessianAccumulator::add(const at::Tensor& x) {
  const int64_t in = h_.size(0);
  GS_CHECK(x.size(-1) == in, "GPTQ Hessian: expected inputs with ", in, " features, got ",
           x.size(-1));
  at::Tensor r = x.detach().reshape({-1, in}).to(at::kFloat);
  const int64_t m = r.size(0);
  if (m == 0) return;
  // H_new = H * n / (n + m) + 2 / (n + m) * r^T r.
  const double tot = static_cast<double>(n_ + m);
  h_.mul_(static_cast<double>(n_) / tot);
  h_.addmm_(r.t(), r, 1.0, 2.0 / tot);
  n_ += m;
}

void GptqConfig::validate(int64_t in) const {
  spec.validate(in);
  GS_CHECK(damp_percent >= 0 && damp_percent < 1, "GPTQ: damp_percent must be in [0, 1), got ",
           damp_percent);
  GS_CHECK(block_size > 0, "GPTQ: block_size must be positive, got ", block_size);
  GS_CHECK(spec.group_size >= 0, "GPTQ quantizes per channel or per group, not per tensor");
}

GptqResult gptqQuantize(const at::Tensor& w0, at::Tensor h0, const GptqConfig& cfg) {
  GS_CHECK(w0.dim() == 2, "GPTQ: weight must be 2-D [out, in], got ", w0.dim(), "-D");
  const int64_t rows = w0.size(0), cols = w0.size(1);
  GS_CHECK(h0.dim() == 2 && h0.size(0) == cols && h0.size(1) == cols, "GPTQ: Hessian must be [",
           cols, ", ", cols, "]");
  cfg.validate(cols);
  const WeightQuantSpec& spec = cfg.spec;
  const int64_t maxq = spec.maxq();
  const int64_t gcols = spec.groupCols(cols);
  const bool grouped = spec.group_size > 0;

  at::Tensor W = w0.to(at::kFloat).clone();
  // H in float64, stored column-major (a transposed view of an [in, in] buffer): LAPACK then
  // factorises it in place through the out= forms below, so one float64 [in, in] matrix is alive
  // instead of four (H, L, H^-1, U: 1 GB for a 5632-wide layer). Same LAPACK calls on the same
  // values as the allocating forms, so the factors are bit-identical.
  auto columnMajor = [cols](const at::Tensor& src) {
    at::Tensor m = at::empty({cols, cols}, at::kDouble).t();
    m.copy_(src);
    return m;
  };
  at::Tensor H = columnMajor(h0);
  h0 = at::Tensor();  // frees the float32 H if the caller handed it over
  at::Tensor dead = H.diagonal() == 0;
  H.diagonal().masked_fill_(dead, 1.0);
  W.index_put_({at::indexing::Slice(), dead}, 0.0);

  // Per-channel parameters (and static groups) come from the original (dead-zeroed) W.
  QuantParams whole;
  std::vector<QuantParams> static_params;
  if (!grouped) whole = computeParams(W, spec);
  if (grouped && cfg.static_groups) {
    for (int64_t g = 0; g < cols; g += gcols)
      static_params.push_back(computeParams(W.narrow(1, g, gcols), {spec.bits, 0, spec.symmetric}));
  }

  at::Tensor perm, invperm;
  if (cfg.act_order) {
    perm = at::argsort(H.diagonal(), 0, /*descending=*/true);
    W = W.index_select(1, perm);
    H = H.index_select(0, perm);
    H = columnMajor(H.index_select(1, perm));
    invperm = at::argsort(perm);
  }

  const double damp = cfg.damp_percent * H.diagonal().mean().item<double>();
  H.diagonal().add_(damp);
  at::Tensor info = at::empty({}, at::kInt);
  at::linalg_cholesky_ex_out(H, info, H, /*upper=*/false, /*check_errors=*/false);  // H = L
  GS_CHECK(info.item<int64_t>() == 0, "GPTQ: Hessian is not positive definite after dampening "
           "(damp_percent ", cfg.damp_percent, "); increase damp_percent");
  at::cholesky_inverse_out(H, H, /*upper=*/false);  // H = H^-1
  at::linalg_cholesky_ex_out(H, info, H, /*upper=*/true, /*check_errors=*/false);  // H = U
  GS_CHECK(info.item<int64_t>() == 0, "GPTQ: inverse Hessian is not positive definite; increase "
           "damp_percent");
  at::Tensor Hu = at::empty({cols, cols}, at::kFloat);  // row-major, as the updates expect
  Hu.copy_(H);
  H = at::Tensor();

  // Codes are integers in [0, maxq]: stored as uint8 straight away (exact), not as float.
  at::Tensor Q = at::zeros(W.sizes(), at::kByte);
  // Parameters per (permuted) group in quantization order; used for g_idx / scale tensors.
  const int64_t ngroups = spec.numGroups(cols);
  at::Tensor scales = at::zeros({rows, ngroups}, at::kFloat);
  at::Tensor zeros = at::zeros({rows, ngroups}, at::kFloat);
  at::Tensor gidx = at::zeros({cols}, at::kLong);  // group of every column, original order
  auto* perm_ptr = cfg.act_order ? perm.data_ptr<int64_t>() : nullptr;
  auto* gidx_ptr = gidx.data_ptr<int64_t>();
  double total_err = 0;

  at::Tensor cur_scale, cur_zero;  // [rows, 1]
  if (!grouped) {
    cur_scale = whole.scale;
    cur_zero = whole.zero;
    scales.copy_(whole.scale);
    zeros.copy_(whole.zero);
  }
  // The block is processed transposed (W1t [count, rows]): column j of W1 is then a contiguous
  // row, so the per-column quantization and the rank-1 updates stream memory instead of striding
  // by the block width. Every element is computed by the same operations as in the reference
  // (a rank-1 update element is one product, the lazy update the same sgemm), so the results are
  // identical to the column-major formulation.
  for (int64_t i1 = 0; i1 < cols; i1 += cfg.block_size) {
    const int64_t i2 = std::min(i1 + cfg.block_size, cols), count = i2 - i1;
    at::Tensor W1t = W.narrow(1, i1, count).t().contiguous();  // [count, rows]
    at::Tensor Q1t = at::empty_like(W1t);
    at::Tensor Err1t = at::empty_like(W1t);
    at::Tensor Hinv1 = Hu.narrow(0, i1, count).narrow(1, i1, count);
    auto hacc = Hinv1.accessor<float, 2>();
    for (int64_t i = 0; i < count; ++i) {
      const int64_t col = i1 + i;                                 // position in quantization order
      const int64_t orig = perm_ptr ? perm_ptr[col] : col;        // original column index
      if (grouped) {
        if (cfg.static_groups) {
          const int64_t g = orig / gcols;
          cur_scale = static_params[g].scale;
          cur_zero = static_params[g].zero;
          scales.narrow(1, g, 1).copy_(cur_scale);
          zeros.narrow(1, g, 1).copy_(cur_zero);
          gidx_ptr[orig] = g;
        } else {
          const int64_t g = col / gcols;
          if (col % gcols == 0) {
            // As the reference: the group's columns as they stood at the start of this block
            // (in-block updates live in W1t until the block is flushed).
            at::Tensor grp = W.narrow(1, col, std::min(gcols, cols - col));
            QuantParams p = computeParams(grp, {spec.bits, 0, spec.symmetric});
            cur_scale = p.scale;
            cur_zero = p.zero;
            scales.narrow(1, g, 1).copy_(cur_scale);
            zeros.narrow(1, g, 1).copy_(cur_zero);
          }
          gidx_ptr[orig] = g;
        }
      }
      at::Tensor w = W1t.select(0, i).unsqueeze(1);  // [rows, 1], contiguous
      const float d = hacc[i][i];
      at::Tensor q = quantizeValues(w, cur_scale, cur_zero, maxq);
      Q1t.select(0, i).copy_(q.squeeze(1));
      at::Tensor err = (w - dequantizeValues(q, cur_scale, cur_zero)) / d;  // [rows, 1]
      total_err += err.square().sum().item<double>() / 2.0;
      if (i + 1 < count) {
        // w_k -= e * U_jk for the block's later columns: the outer product U_j,(j,count) x e.
        at::Tensor hrow = Hinv1.narrow(0, i, 1).narrow(1, i + 1, count - i - 1);  // [1, k]
        W1t.narrow(0, i + 1, count - i - 1).sub_(hrow.t().mm(err.t()));
      }
      Err1t.select(0, i).copy_(err.squeeze(1));
    }
    Q.narrow(1, i1, count).copy_(Q1t.t());
    if (i2 < cols)
      W.narrow(1, i2, cols - i2).sub_(Err1t.t().contiguous().mm(Hu.narrow(0, i1, count).narrow(1, i2, cols - i2)));
  }
  if (cfg.act_order) Q = Q.index_select(1, invperm);
  GptqResult r;
  r.weight.spec = spec;
  r.weight.q = Q;
  r.weight.scale = scales;
  r.weight.zero = zeros;
  r.weight.g_idx = gidx;
  r.error = total_err;
  return r;
}

}  // namespace gs::llm
