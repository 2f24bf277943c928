// Shape ops: Shape, Size, Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Concat, Split, Slice.
// Most return ATen views (no copy); all float paths go through ATen ops so autograd flows.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>

#include "ops/kernel_util.h"
#include "ops/registry.h"
#include "ops/shape_util.h"

namespace gs {
namespace {

using namespace shape_detail;
using Ins = std::vector<at::Tensor>;

// Shape(x)[start:end] as int64, with Python-style clamping of start/end (opset 15).
Kernel shapeKernel(const Node& n) {
  const int64_t start = n.attrInt("start", 0);
  const bool has_end = n.hasAttr("end");
  const int64_t end = n.attrInt("end", 0);
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    at::IntArrayRef d = in[0].sizes();
    const int64_t r = static_cast<int64_t>(d.size());
    auto clampIdx = [r](int64_t i) { return std::clamp(i < 0 ? i + r : i, int64_t{0}, r); };
    const int64_t s = clampIdx(start), e = has_end ? clampIdx(end) : r;
    std::vector<int64_t> v;
    if (e > s) v.assign(d.begin() + s, d.begin() + e);
    out[0] = intsTensor(v);
  };
}

Kernel sizeKernel(const Node&) {
  return [](const KernelContext&, const Ins& in, Ins& out) {
    out[0] = at::scalar_tensor(in[0].numel(), at::kLong);
  };
}

/// Target shape of Reshape: 0 copies the input dim (unless allowzero), -1 is inferred.
std::vector<int64_t> reshapeTarget(const std::string& who, at::IntArrayRef in_dims,
                                   std::vector<int64_t> shape, bool allowzero) {
  int64_t infer = -1, known = 1;
  bool has_zero = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    int64_t& s = shape[i];
    if (s == 0 && !allowzero) {
      GS_CHECK(i < in_dims.size(), who, ": shape entry ", i,
               " is 0 (copy input dim) but the input ", dimsString(in_dims), " has rank ",
               in_dims.size());
      s = in_dims[i];
    }
    if (s == -1) {
      GS_CHECK(infer < 0, who, ": shape ", dimsString(shape), " has more than one -1");
      infer = static_cast<int64_t>(i);
      continue;
    }
    GS_CHECK(s >= 0, who, ": invalid shape entry ", s);
    has_zero |= s == 0;
    known *= s;
  }
  const int64_t numel = prodDims(in_dims, 0, in_dims.size());
  if (infer >= 0) {
    GS_CHECK(!(allowzero && has_zero), who, ": shape ", dimsString(shape),
             " has both 0 and -1 with allowzero=1");
    GS_CHECK(known != 0 && numel % known == 0, who, ": cannot reshape ", dimsString(in_dims),
             " to ", dimsString(shape));
    shape[infer] = numel / known;
  } else {
    GS_CHECK(known == numel, who, ": cannot reshape ", dimsString(in_dims), " (", numel,
             " elements) to ", dimsString(shape), " (", known, " elements)");
  }
  return shape;
}

Kernel reshapeKernel(const Node& n) {
  const bool allowzero = n.attrInt("allowzero", 0) != 0;
  const std::string who = n.describe();
  auto cshape = constInts(n, 1);
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    auto target = reshapeTarget(who, in[0].sizes(), cshape ? *cshape : readInts(in[1]), allowzero);
    out[0] = at::reshape(in[0], target);  // a view whenever strides allow
  };
}

Kernel flattenKernel(const Node& n) {
  const int64_t axis = n.attrInt("axis", 1);
  const std::string who = n.describe();
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    at::IntArrayRef d = in[0].sizes();
    const int64_t r = static_cast<int64_t>(d.size());
    GS_CHECK(axis >= -r && axis <= r, who, ": axis ", axis, " out of range for rank ", r);
    const size_t a = static_cast<size_t>(axis < 0 ? axis + r : axis);
    out[0] = at::reshape(in[0], {prodDims(d, 0, a), prodDims(d, a, d.size())});
  };
}

Kernel transposeKernel(const Node& n) {
  const bool has_perm = n.hasAttr("perm");
  const std::vector<int64_t> perm = n.attrInts("perm");
  const std::string who = n.describe();
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    const int64_t r = in[0].dim();
    if (!has_perm) {
      std::vector<int64_t> p(r);
      for (int64_t i = 0; i < r; ++i) p[i] = r - 1 - i;
      out[0] = in[0].permute(p);
      return;
    }
    GS_CHECK(static_cast<int64_t>(perm.size()) == r, who, ": perm ", dimsString(perm),
             " does not match input rank ", r);
    out[0] = in[0].permute(perm);  // ATen rejects repeated / out-of-range entries
  };
}

Kernel squeezeKernel(const Node& n) {
  const std::string who = n.describe();
  auto caxes = constInts(n, 1);
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    at::IntArrayRef d = in[0].sizes();
    const int64_t r = static_cast<int64_t>(d.size());
    std::vector<int64_t> shape;
    // An empty axes tensor squeezes every size-1 dim, as when axes is omitted (ONNX Runtime).
    std::vector<int64_t> axes;
    if (caxes)
      axes = *caxes;
    else if (in.size() > 1 && in[1].defined())
      axes = readInts(in[1]);
    if (axes.empty()) {
      for (int64_t s : d)
        if (s != 1) shape.push_back(s);
    } else {
      std::vector<bool> drop(r, false);
      for (int64_t a : axes) {
        int64_t ax = axisIn(who, a, r);
        GS_CHECK(d[ax] == 1, who, ": cannot squeeze axis ", a, " of size ", d[ax], " (input ",
                 dimsString(d), ")");
        drop[ax] = true;
      }
      for (int64_t i = 0; i < r; ++i)
        if (!drop[i]) shape.push_back(d[i]);
    }
    out[0] = at::reshape(in[0], shape);
  };
}

Kernel unsqueezeKernel(const Node& n) {
  const std::string who = n.describe();
  auto caxes = constInts(n, 1);
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    at::IntArrayRef d = in[0].sizes();
    std::vector<int64_t> axes = caxes ? *caxes : readInts(in[1]);
    const int64_t r = static_cast<int64_t>(d.size() + axes.size());
    std::vector<bool> ins(r, false);
    for (int64_t a : axes) {
      int64_t ax = axisIn(who, a, r);  // negative axes count from the output's end
      GS_CHECK(!ins[ax], who, ": axis ", a, " repeated in axes ", dimsString(axes));
      ins[ax] = true;
    }
    std::vector<int64_t> shape(r);
    for (int64_t i = 0, j = 0; i < r; ++i) shape[i] = ins[i] ? 1 : d[j++];
    out[0] = at::reshape(in[0], shape);
  };
}

Kernel concatKernel(const Node& n) {
  const int64_t axis = n.attr("axis").i();
  const std::string who = n.describe();
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    const int64_t ax = axisIn(who, axis, in[0].dim());
    if (in.size() == 1) {
      out[0] = in[0];
      return;
    }
    // Shape arithmetic concatenates short int64 vectors; at::cat's dispatch costs more than the
    // copy, so join them directly.
    bool small_ints = true;
    int64_t total = 0;
    for (const at::Tensor& t : in) {
      small_ints &= t.dim() == 1 && t.scalar_type() == at::kLong && t.is_contiguous() && t.is_cpu();
      total += t.numel();
    }
    if (small_ints && total <= 64) {
      at::Tensor y = at::empty({total}, at::kLong);
      int64_t* p = y.data_ptr<int64_t>();
      for (const at::Tensor& t : in) {
        if (t.numel()) std::memcpy(p, t.data_ptr<int64_t>(), t.numel() * sizeof(int64_t));
        p += t.numel();
      }
      out[0] = y;
      return;
    }
    out[0] = at::cat(in, ax);
  };
}

// Split sizes: the `split` input when given, else equal parts (opset-18 rule for the remainder:
// the last chunk is smaller).
Kernel splitKernel(const Node& n) {
  const int64_t axis = n.attrInt("axis", 0);
  const int64_t num_outputs = n.attrInt("num_outputs", 0);
  const std::string who = n.describe();
  auto csplit = constInts(n, 1);
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    const int64_t ax = axisIn(who, axis, in[0].dim());
    const int64_t dim = in[0].size(ax);
    const int64_t k = static_cast<int64_t>(out.size());
    std::vector<int64_t> sizes;
    if (csplit || (in.size() > 1 && in[1].defined())) {
      sizes = csplit ? *csplit : readInts(in[1]);
      GS_CHECK(static_cast<int64_t>(sizes.size()) == k, who, ": split has ", sizes.size(),
               " entries for ", k, " outputs");
      int64_t sum = 0;
      for (int64_t s : sizes) {
        GS_CHECK(s >= 0, who, ": negative split size ", s);
        sum += s;
      }
      GS_CHECK(sum == dim, who, ": split ", dimsString(sizes), " sums to ", sum, " but axis ", ax,
               " has size ", dim);
    } else {
      GS_CHECK(num_outputs == 0 || num_outputs == k, who, ": num_outputs=", num_outputs,
               " but the node has ", k, " outputs");
      const int64_t chunk = (dim + k - 1) / k;
      GS_CHECK(chunk * (k - 1) <= dim, who, ": cannot split size ", dim, " into ", k, " parts");
      sizes.assign(k, chunk);
      sizes.back() = dim - chunk * (k - 1);
    }
    auto parts = at::split_with_sizes(in[0], sizes, ax);
    for (int64_t i = 0; i < k; ++i) out[i] = std::move(parts[i]);
  };
}

// ONNX Slice. ATen has no negative steps: a negative-step slice is taken as the positive-step
// slice over the same elements, then flipped.
Kernel sliceKernel(const Node& n) {
  const std::string who = n.describe();
  auto cstarts = constInts(n, 1), cends = constInts(n, 2), caxes = constInts(n, 3),
       csteps = constInts(n, 4);
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    const at::Tensor& x = in[0];
    const int64_t r = x.dim();
    auto opt = [&](size_t i, const std::optional<std::vector<int64_t>>& c) {
      if (c) return *c;
      return in.size() > i && in[i].defined() ? readInts(in[i]) : std::vector<int64_t>{};
    };
    const std::vector<int64_t> starts = opt(1, cstarts), ends = opt(2, cends);
    std::vector<int64_t> axes = opt(3, caxes), steps = opt(4, csteps);
    const size_t m = starts.size();
    GS_CHECK(ends.size() == m, who, ": starts has ", m, " entries, ends ", ends.size());
    if (axes.empty() && !(in.size() > 3 && in[3].defined()) && !caxes) {
      axes.resize(m);
      std::iota(axes.begin(), axes.end(), 0);
    }
    if (steps.empty() && !(in.size() > 4 && in[4].defined()) && !csteps) steps.assign(m, 1);
    GS_CHECK(axes.size() == m && steps.size() == m, who,
             ": starts/ends/axes/steps lengths differ (", m, ", ", ends.size(), ", ", axes.size(),
             ", ", steps.size(), ")");
    at::Tensor y = x;
    std::vector<int64_t> flips;
    std::vector<bool> seen(r, false);
    for (size_t i = 0; i < m; ++i) {
      const int64_t ax = axisIn(who, axes[i], r);
      GS_CHECK(!seen[ax], who, ": axis ", axes[i], " repeated in axes");
      seen[ax] = true;
      const int64_t d = x.size(ax);
      GS_CHECK(steps[i] != 0, who, ": step must not be 0");
      // A step longer than the axis takes at most one element; capping it keeps the arithmetic
      // below (and ATen's) free of overflow for steps like INT64_MIN.
      const int64_t step = std::clamp<int64_t>(steps[i], -(d + 1), d + 1);
      int64_t s = starts[i] < 0 ? starts[i] + d : starts[i];
      int64_t e = ends[i] < 0 ? ends[i] + d : ends[i];
      if (step > 0) {
        s = std::clamp<int64_t>(s, 0, d);
        e = std::clamp<int64_t>(e, 0, d);
        if (s == 0 && e == d && step == 1) continue;
        y = y.slice(ax, s, std::max(s, e), step);
        continue;
      }
      // Negative step: start clamps to [0, d-1], end to [-1, d-1] (-1 = through index 0).
      s = std::min(std::max<int64_t>(s, 0), d - 1);
      e = std::min(std::max<int64_t>(e, -1), d - 1);
      const int64_t cnt = s > e ? (s - e + (-step) - 1) / (-step) : 0;
      if (cnt == 0) {
        y = y.slice(ax, 0, 0);
        continue;
      }
      const int64_t last = s + (cnt - 1) * step;
      y = y.slice(ax, last, s + 1, -step);
      if (cnt > 1) flips.push_back(ax);
    }
    out[0] = flips.empty() ? y : at::flip(y, flips);
  };
}

}  // namespace

void registerShapeOps(OpRegistry& r) {
  r.add(OpDef("Shape")
            .inputs(1)
            .attr("start", AttrKind::Int)
            .attr("end", AttrKind::Int)
            .kernel(requiring(1, shapeKernel)));
  r.add(OpDef("Size").inputs(1).kernel(requiring(1, sizeKernel)));
  r.add(OpDef("Reshape")
            .inputs(2)
            .attr("allowzero", AttrKind::Int)
            .kernel(requiring(2, reshapeKernel)));
  r.add(OpDef("Flatten").inputs(1).attr("axis", AttrKind::Int).kernel(requiring(1, flattenKernel)));
  r.add(OpDef("Transpose")
            .inputs(1)
            .attr("perm", AttrKind::Ints)
            .kernel(requiring(1, transposeKernel)));
  r.add(OpDef("Squeeze").inputs(1, 2).kernel(requiring(1, squeezeKernel)));
  r.add(OpDef("Unsqueeze").inputs(2).kernel(requiring(2, unsqueezeKernel)));
  r.add(OpDef("Concat")
            .inputs(1, -1)
            .attr("axis", AttrKind::Int, true)
            .kernel(requiring(1, concatKernel)));
  // num_outputs is opset 18; accepted so that newer models need no rewrite.
  r.add(OpDef("Split")
            .inputs(1, 2)
            .outputs(1, -1)
            .attr("axis", AttrKind::Int)
            .attr("num_outputs", AttrKind::Int)
            .kernel(requiring(1, splitKernel)));
  r.add(OpDef("Slice").inputs(3, 5).kernel(requiring(3, sliceKernel)));
  registerShapeIndexOps(r);
  registerShapeGenOps(r);
}

}  // namespace gs
