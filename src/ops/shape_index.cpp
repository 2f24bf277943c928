// Indexing ops: Gather, GatherElements, GatherND, ScatterElements, Scatter, ScatterND, NonZero,
// Compress, ReverseSequence, Unique. Gathers/scatters map to index_select/gather/index_copy so
// gradients flow to data (and updates); index tensors are validated and wrapped on the CPU side.
#include <ATen/ATen.h>

#include <numeric>

#include "ops/kernel_util.h"
#include "ops/registry.h"
#include "ops/shape_util.h"

namespace gs {
namespace {

using namespace shape_detail;
using Ins = std::vector<at::Tensor>;

Kernel gatherKernel(const Node& n) {
  const int64_t axis = n.attrInt("axis", 0);
  const std::string who = n.describe();
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    const at::Tensor& x = in[0];
    const int64_t ax = axisIn(who, axis, x.dim());
    const int64_t d = x.size(ax);
    at::Tensor idx = wrapIndices(who, in[1], d);
    if (idx.dim() == 0) {  // scalar index: a view (the common Shape -> Gather(i) pattern)
      out[0] = x.select(ax, idx.item<int64_t>());
      return;
    }
    at::Tensor y = at::index_select(x, ax, idx.dim() == 1 ? idx : idx.reshape({-1}));
    if (idx.dim() == 1) {
      out[0] = std::move(y);
      return;
    }
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().begin() + ax);
    shape.insert(shape.end(), idx.sizes().begin(), idx.sizes().end());
    shape.insert(shape.end(), x.sizes().begin() + ax + 1, x.sizes().end());
    out[0] = y.reshape(shape);
  };
}

Kernel gatherElementsKernel(const Node& n) {
  const int64_t axis = n.attrInt("axis", 0);
  const std::string who = n.describe();
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    const int64_t ax = axisIn(who, axis, in[0].dim());
    GS_CHECK(in[1].dim() == in[0].dim(), who, ": indices rank ", in[1].dim(),
             " differs from data rank ", in[0].dim());
    out[0] = at::gather(in[0], ax, wrapIndices(who, in[1], in[0].size(ax)));
  };
}

/// Flat row numbers for ND indexing: `idx` is [M, k] (row-major, int64) into the first k dims
/// `d` of a tensor viewed as [prod(d), rest]; `base` is added to every row (batch offset).
void linearRows(const std::string& who, const int64_t* idx, int64_t m, at::IntArrayRef d,
                int64_t base, int64_t* out) {
  const int64_t k = static_cast<int64_t>(d.size());
  for (int64_t i = 0; i < m; ++i) {
    int64_t lin = 0;
    for (int64_t j = 0; j < k; ++j) {
      int64_t v = idx[i * k + j];
      GS_CHECK(v >= -d[j] && v < d[j], who, ": index ", v, " out of range for dim of size ", d[j]);
      lin = lin * d[j] + (v < 0 ? v + d[j] : v);
    }
    out[i] = base + lin;
  }
}

// GatherND with batch_dims b: data viewed as [B*P, R] with B = prod(batch dims), P the indexed
// dims, R the rest; each index row selects one of the P rows of its batch.
Kernel gatherNDKernel(const Node& n) {
  const int64_t b = n.attrInt("batch_dims", 0);
  const std::string who = n.describe();
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    const at::Tensor& x = in[0];
    at::Tensor idx = in[1].to(at::kLong).contiguous();
    const int64_t r = x.dim(), q = idx.dim();
    GS_CHECK(q >= 1 && b >= 0 && b < std::min(q, r), who, ": batch_dims ", b,
             " invalid for data rank ", r, " and indices rank ", q);
    const int64_t k = idx.size(q - 1);
    GS_CHECK(b + k <= r, who, ": indices last dim ", k, " + batch_dims ", b, " exceeds data rank ",
             r);
    for (int64_t i = 0; i < b; ++i)
      GS_CHECK(idx.size(i) == x.size(i), who, ": batch dim ", i, " differs (data ",
               dimsString(x.sizes()), ", indices ", dimsString(idx.sizes()), ")");
    at::IntArrayRef xd = x.sizes();
    const int64_t B = prodDims(xd, 0, b), P = prodDims(xd, b, b + k), R = prodDims(xd, b + k, r);
    const int64_t M = prodDims(idx.sizes(), b, q - 1);
    at::Tensor lin = at::empty({B * M}, at::kLong);
    const int64_t* ip = idx.data_ptr<int64_t>();
    for (int64_t bi = 0; bi < B; ++bi)
      linearRows(who, ip + bi * M * k, M, xd.slice(b, k), bi * P, lin.data_ptr<int64_t>() + bi * M);
    std::vector<int64_t> shape(idx.sizes().begin(), idx.sizes().end() - 1);
    shape.insert(shape.end(), xd.begin() + b + k, xd.end());
    out[0] = at::index_select(x.reshape({B * P, R}), 0, lin).reshape(shape);
  };
}

/// Parses `reduction` into ATen's scatter_reduce name ("" = plain overwrite, "sum" = add).
std::string scatterReduction(const Node& n) {
  const std::string red = n.attrString("reduction", "none");
  if (red == "none") return "";
  if (red == "add") return "sum";
  if (red == "mul") return "prod";
  if (red == "max") return "amax";
  if (red == "min") return "amin";
  GS_FAIL(n.describe(), ": unknown reduction '", red, "' (expected none, add, mul, max or min)");
}

/// scatter_reduce with include_self. Eval-mode products use scatter(reduce="multiply"), which
/// needs no autograd and avoids ATen's one-time "scatter_reduce is in beta" warning on stderr.
at::Tensor scatterReduce(const KernelContext& ctx, const at::Tensor& x, int64_t dim,
                         const at::Tensor& idx, const at::Tensor& src, const std::string& red) {
  if (red == "prod" && !ctx.training) return at::scatter(x, dim, idx, src, "multiply");
  return at::scatter_reduce(x, dim, idx, src, red, /*include_self=*/true);
}

Kernel scatterElementsKernel(const Node& n) {
  const int64_t axis = n.attrInt("axis", 0);
  const std::string red = n.opType() == "Scatter" ? "" : scatterReduction(n);
  const std::string who = n.describe();
  return [=](const KernelContext& ctx, const Ins& in, Ins& out) {
    const at::Tensor& x = in[0];
    const int64_t ax = axisIn(who, axis, x.dim());
    GS_CHECK(in[1].sizes() == in[2].sizes(), who, ": indices ", dimsString(in[1].sizes()),
             " and updates ", dimsString(in[2].sizes()), " differ in shape");
    at::Tensor idx = wrapIndices(who, in[1], x.size(ax));
    if (red.empty())
      out[0] = at::scatter(x, ax, idx, in[2]);
    else if (red == "sum")
      out[0] = at::scatter_add(x, ax, idx, in[2]);
    else
      out[0] = scatterReduce(ctx, x, ax, idx, in[2], red);
  };
}

// ScatterND: data viewed as [P, R] (P = first k dims), updates as [M, R]; rows are replaced or
// reduced into.
Kernel scatterNDKernel(const Node& n) {
  const std::string red = scatterReduction(n);
  const std::string who = n.describe();
  return [=](const KernelContext& ctx, const Ins& in, Ins& out) {
    const at::Tensor& x = in[0];
    at::Tensor idx = in[1].to(at::kLong).contiguous();
    const at::Tensor& upd = in[2];
    const int64_t r = x.dim(), q = idx.dim();
    GS_CHECK(q >= 1, who, ": indices must have rank >= 1");
    const int64_t k = idx.size(q - 1);
    GS_CHECK(k <= r, who, ": indices last dim ", k, " exceeds data rank ", r);
    at::IntArrayRef xd = x.sizes();
    std::vector<int64_t> ushape(idx.sizes().begin(), idx.sizes().end() - 1);
    ushape.insert(ushape.end(), xd.begin() + k, xd.end());
    GS_CHECK(upd.sizes() == at::IntArrayRef(ushape), who, ": updates shape ",
             dimsString(upd.sizes()), " should be ", dimsString(ushape));
    const int64_t P = prodDims(xd, 0, k), R = prodDims(xd, k, r);
    const int64_t M = prodDims(idx.sizes(), 0, q - 1);
    at::Tensor lin = at::empty({M}, at::kLong);
    linearRows(who, idx.data_ptr<int64_t>(), M, xd.slice(0, k), 0, lin.data_ptr<int64_t>());
    at::Tensor x2 = x.reshape({P, R}), u2 = upd.reshape({M, R}), y;
    if (red.empty())
      y = at::index_copy(x2, 0, lin, u2);
    else if (red == "sum")
      y = at::index_add(x2, 0, lin, u2);
    else
      y = scatterReduce(ctx, x2, 0, lin.unsqueeze(1).expand({M, R}), u2, red);
    out[0] = y.reshape(xd);
  };
}

Kernel nonZeroKernel(const Node&) {
  return [](const KernelContext&, const Ins& in, Ins& out) {
    // numpy (the ONNX reference) treats a 0-d input as 1-d.
    const at::Tensor& x = in[0].dim() == 0 ? in[0].reshape({1}) : in[0];
    out[0] = at::nonzero(x).t().contiguous();
  };
}

Kernel compressKernel(const Node& n) {
  const bool has_axis = n.hasAttr("axis");
  const int64_t axis = n.attrInt("axis", 0);
  const std::string who = n.describe();
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    at::Tensor x = has_axis ? in[0] : in[0].reshape({-1});
    const int64_t ax = has_axis ? axisIn(who, axis, x.dim()) : 0;
    at::Tensor c = in[1].to(at::kBool).contiguous();
    GS_CHECK(c.dim() == 1, who, ": condition must be 1-d, got ", dimsString(c.sizes()));
    const bool* p = c.data_ptr<bool>();
    std::vector<int64_t> keep;
    for (int64_t i = 0; i < c.numel(); ++i)
      if (p[i]) keep.push_back(i);
    GS_CHECK(keep.empty() || keep.back() < x.size(ax), who, ": condition selects index ",
             keep.empty() ? 0 : keep.back(), " beyond size ", x.size(ax));
    out[0] = at::index_select(x, ax, intsTensor(keep));
  };
}

// Reverses the first seq_len[b] steps of every batch entry: a gather along the time axis with
// an index that is broadcast (stride 0) over all other dims.
Kernel reverseSequenceKernel(const Node& n) {
  const int64_t batch_axis = n.attrInt("batch_axis", 1);
  const int64_t time_axis = n.attrInt("time_axis", 0);
  const std::string who = n.describe();
  GS_CHECK((batch_axis == 0 && time_axis == 1) || (batch_axis == 1 && time_axis == 0), who,
           ": batch_axis/time_axis must be 0/1 or 1/0, got ", batch_axis, "/", time_axis);
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    const at::Tensor& x = in[0];
    GS_CHECK(x.dim() >= 2, who, ": input must have rank >= 2");
    const int64_t B = x.size(batch_axis), T = x.size(time_axis);
    std::vector<int64_t> lens = readInts(in[1]);
    GS_CHECK(static_cast<int64_t>(lens.size()) == B, who, ": sequence_lens has ", lens.size(),
             " entries for batch size ", B);
    at::Tensor idx = at::empty({B, T}, at::kLong);
    int64_t* p = idx.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      const int64_t L = lens[b];
      GS_CHECK(L >= 0 && L <= T, who, ": sequence length ", L, " out of range [0, ", T, "]");
      for (int64_t t = 0; t < T; ++t) p[b * T + t] = t < L ? L - 1 - t : t;
    }
    if (batch_axis == 1) idx = idx.t();
    std::vector<int64_t> shape(x.dim(), 1);
    shape[0] = idx.size(0);
    shape[1] = idx.size(1);
    out[0] = at::gather(x, time_axis, idx.reshape(shape).expand(x.sizes()));
  };
}

// Unique via ATen's sorted unique; first-occurrence indices from a backward scan of the inverse;
// sorted=0 reorders everything by first occurrence (ONNX's unsorted order).
Kernel uniqueKernel(const Node& n) {
  const bool sorted = n.attrInt("sorted", 1) != 0;
  const bool has_axis = n.hasAttr("axis");
  const int64_t axis = n.attrInt("axis", 0);
  const std::string who = n.describe();
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    at::Tensor vals, inv, cnt;
    int64_t ax = 0;
    // ATen's CPU unique lacks f16/bf16; f32 holds them exactly, so unique there and cast back.
    const at::ScalarType st = in[0].scalar_type();
    const bool widen = st == at::kHalf || st == at::kBFloat16;
    const at::Tensor x = widen ? in[0].to(at::kFloat) : in[0];
    if (has_axis) {
      ax = axisIn(who, axis, x.dim());
      std::tie(vals, inv, cnt) = at::unique_dim(x, ax, true, true, true);
    } else {
      std::tie(vals, inv, cnt) = at::_unique2(x.reshape({-1}), true, true, true);
    }
    if (widen) vals = vals.to(st);
    inv = inv.reshape({-1});
    const int64_t len = inv.numel(), u = cnt.numel();
    inv = inv.contiguous();
    at::Tensor first = at::full({u}, len, at::kLong);
    const int64_t* ip = inv.data_ptr<int64_t>();
    int64_t* fp = first.data_ptr<int64_t>();
    for (int64_t i = len - 1; i >= 0; --i) fp[ip[i]] = i;  // last write = first occurrence
    if (!sorted) {
      at::Tensor perm = at::argsort(first);
      vals = vals.index_select(ax, perm);
      cnt = cnt.index_select(0, perm);
      first = first.index_select(0, perm);
      inv = at::argsort(perm).index_select(0, inv);
    }
    out[0] = vals;
    if (out.size() > 1) out[1] = first;
    if (out.size() > 2) out[2] = inv;
    if (out.size() > 3) out[3] = cnt;
  };
}

}  // namespace

void registerShapeIndexOps(OpRegistry& r) {
  r.add(OpDef("Gather").inputs(2).attr("axis", AttrKind::Int).kernel(requiring(2, gatherKernel)));
  r.add(OpDef("GatherElements")
            .inputs(2)
            .attr("axis", AttrKind::Int)
            .kernel(requiring(2, gatherElementsKernel)));
  r.add(OpDef("GatherND")
            .inputs(2)
            .attr("batch_dims", AttrKind::Int)
            .kernel(requiring(2, gatherNDKernel)));
  // reduction max/min are opset 18; accepted for newer models.
  r.add(OpDef("ScatterElements")
            .inputs(3)
            .attr("axis", AttrKind::Int)
            .attr("reduction", AttrKind::String)
            .kernel(requiring(3, scatterElementsKernel)));
  r.add(OpDef("Scatter")
            .inputs(3)
            .attr("axis", AttrKind::Int)
            .kernel(requiring(3, scatterElementsKernel)));
  r.add(OpDef("ScatterND")
            .inputs(3)
            .attr("reduction", AttrKind::String)
            .kernel(requiring(3, scatterNDKernel)));
  r.add(OpDef("NonZero").inputs(1).kernel(requiring(1, nonZeroKernel)));
  r.add(
      OpDef("Compress").inputs(2).attr("axis", AttrKind::Int).kernel(requiring(2, compressKernel)));
  r.add(OpDef("ReverseSequence")
            .inputs(2)
            .attr("batch_axis", AttrKind::Int)
            .attr("time_axis", AttrKind::Int)
            .kernel(requiring(2, reverseSequenceKernel)));
  r.add(OpDef("Unique")
            .inputs(1)
            .outputs(1, 4)
            .attr("sorted", AttrKind::Int)
            .attr("axis", AttrKind::Int)
            .kernel(requiring(1, uniqueKernel)));
}

}  // namespace gs
