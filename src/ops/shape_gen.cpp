// Tensor-generating and padding ops: ConstantOfShape, Range, OneHot, Trilu, EyeLike, Expand,
// Tile, Pad (constant / reflect / edge, negative pads crop).
#include <ATen/ATen.h>

#include <cmath>

#include "ir/dtype.h"
#include "ops/kernel_util.h"
#include "ops/registry.h"
#include "ops/shape_util.h"

namespace gs {
namespace {

using namespace shape_detail;
using Ins = std::vector<at::Tensor>;

Kernel constantOfShapeKernel(const Node& n) {
  at::Scalar value = 0.0f;
  at::ScalarType st = at::kFloat;
  if (const Attribute* a = n.findAttr("value")) {
    GS_CHECK(a->is(AttrKind::Tensor), n.describe(), ": attribute 'value' must be a tensor");
    GS_CHECK(a->t().numel() == 1, n.describe(), ": attribute 'value' must hold one element, has ",
             a->t().numel());
    value = a->t().item();
    st = a->t().scalar_type();
  }
  const std::string who = n.describe();
  auto cshape = constInts(n, 0);
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    std::vector<int64_t> shape = cshape ? *cshape : readInts(in[0]);
    for (int64_t s : shape) GS_CHECK(s >= 0, who, ": negative dimension ", s, " in shape");
    out[0] = at::full(shape, value, at::TensorOptions().dtype(st));
  };
}

// Range: n = max(ceil((limit - start) / delta), 0) elements start + i * delta.
Kernel rangeKernel(const Node& n) {
  const std::string who = n.describe();
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    const at::ScalarType st = in[0].scalar_type();
    GS_CHECK(in[1].scalar_type() == st && in[2].scalar_type() == st, who,
             ": start, limit and delta must have the same type");
    at::Scalar s = in[0].item(), l = in[1].item(), d = in[2].item();
    int64_t count;
    if (at::isIntegralType(st, false)) {
      const int64_t a = s.toLong(), b = l.toLong(), c = d.toLong();
      GS_CHECK(c != 0, who, ": delta must not be 0");
      const int64_t span = b - a;
      count = (span > 0) == (c > 0) && span != 0 ? (span + c + (c > 0 ? -1 : 1)) / c : 0;
    } else {
      const double c = d.toDouble();
      GS_CHECK(c != 0.0, who, ": delta must not be 0");
      count = static_cast<int64_t>(std::ceil((l.toDouble() - s.toDouble()) / c));
    }
    if (count <= 0) {
      out[0] = at::empty({0}, at::TensorOptions().dtype(st));
      return;
    }
    out[0] = at::arange(s, l, d, at::TensorOptions().dtype(st));
  };
}

// OneHot: compare indices (unsqueezed at `axis`) with an arange laid along `axis`; out-of-range
// indices match nothing and yield all off-values.
Kernel oneHotKernel(const Node& n) {
  const int64_t axis = n.attrInt("axis", -1);
  const std::string who = n.describe();
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    GS_CHECK(in[1].numel() == 1, who, ": depth must have one element");
    const int64_t depth = in[1].to(at::kDouble).item<double>();
    GS_CHECK(depth > 0, who, ": depth must be positive, got ", depth);
    GS_CHECK(in[2].numel() == 2, who, ": values must hold [off, on], got ", in[2].numel(),
             " elements");
    at::Tensor idx = in[0].to(at::kLong);
    const int64_t r = idx.dim() + 1;
    const int64_t ax = axisIn(who, axis, r);
    idx = at::where(idx < 0, idx + depth, idx).unsqueeze(ax);
    std::vector<int64_t> shape(r, 1);
    shape[ax] = depth;
    at::Tensor hit = at::eq(idx, at::arange(depth, at::kLong).view(shape));
    at::Tensor v = in[2].reshape({2});
    out[0] = at::where(hit, v.select(0, 1), v.select(0, 0));
  };
}

Kernel triluKernel(const Node& n) {
  const bool upper = n.attrInt("upper", 1) != 0;
  const std::string who = n.describe();
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    GS_CHECK(in[0].dim() >= 2, who, ": input must have rank >= 2");
    const int64_t k = in.size() > 1 && in[1].defined() ? in[1].item<int64_t>() : 0;
    out[0] = upper ? at::triu(in[0], k) : at::tril(in[0], k);
  };
}

Kernel eyeLikeKernel(const Node& n) {
  const int64_t k = n.attrInt("k", 0);
  const bool has_dtype = n.hasAttr("dtype");
  at::ScalarType st = at::kFloat;
  if (has_dtype) {
    const int64_t code = n.attrInt("dtype", 1);
    GS_CHECK(isKnownDTypeCode(static_cast<int32_t>(code)), n.describe(), ": unknown dtype ", code);
    st = toScalarType(static_cast<DType>(code));
  }
  const std::string who = n.describe();
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    GS_CHECK(in[0].dim() == 2, who, ": input must be 2-d, got rank ", in[0].dim());
    at::Tensor y =
        at::zeros(in[0].sizes(), at::TensorOptions().dtype(has_dtype ? st : in[0].scalar_type()));
    const int64_t rows = y.size(0), cols = y.size(1);
    if ((k >= 0 && k < cols) || (k < 0 && -k < rows)) y.diagonal(k).fill_(1);
    out[0] = y;
  };
}

// Expand: ONNX bidirectional broadcast of the input shape with `shape`; returns a stride-0 view.
Kernel expandKernel(const Node& n) {
  const std::string who = n.describe();
  auto cshape = constInts(n, 1);
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    std::vector<int64_t> shape = cshape ? *cshape : readInts(in[1]);
    at::IntArrayRef d = in[0].sizes();
    const size_t r = std::max(d.size(), shape.size());
    std::vector<int64_t> res(r);
    for (size_t i = 0; i < r; ++i) {
      const int64_t a = i + d.size() >= r ? d[i + d.size() - r] : 1;
      const int64_t b = i + shape.size() >= r ? shape[i + shape.size() - r] : 1;
      GS_CHECK(b >= 0 && (a == b || a == 1 || b == 1), who, ": cannot broadcast input ",
               dimsString(d), " to shape ", dimsString(shape));
      res[i] = a == 1 ? b : a;
    }
    out[0] = in[0].expand(res);
  };
}

Kernel tileKernel(const Node& n) {
  const std::string who = n.describe();
  auto crep = constInts(n, 1);
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    std::vector<int64_t> rep = crep ? *crep : readInts(in[1]);
    GS_CHECK(static_cast<int64_t>(rep.size()) == in[0].dim(), who, ": repeats has ", rep.size(),
             " entries for input rank ", in[0].dim());
    for (int64_t v : rep) GS_CHECK(v >= 0, who, ": negative repeat ", v);
    out[0] = in[0].repeat(rep);
  };
}

/// Source index along one axis for reflect/edge padding of a dim of size d (begin pad pb).
std::vector<int64_t> padIndex(int64_t d, int64_t pb, int64_t len, bool reflect) {
  std::vector<int64_t> idx(len);
  const int64_t period = 2 * (d - 1);
  for (int64_t i = 0; i < len; ++i) {
    int64_t s = i - pb;
    if (!reflect) {
      s = std::clamp<int64_t>(s, 0, d - 1);
    } else if (period == 0) {
      s = 0;
    } else {
      s %= period;
      if (s < 0) s += period;
      if (s >= d) s = period - s;
    }
    idx[i] = s;
  }
  return idx;
}

// Pad (opset 13 form + opset 18's optional axes input). Constant mode maps to constant_pad_nd
// (which crops on negative pads); reflect/edge gather along each padded axis, which handles any
// rank/dtype, crops, and reflections wider than the input. 4-d f32/f64 inputs padded
// non-negatively in H/W take ATen's fused reflection/replication kernels.
Kernel padKernel(const Node& n) {
  const std::string mode = n.attrString("mode", "constant");
  GS_CHECK(mode == "constant" || mode == "reflect" || mode == "edge", n.describe(),
           ": unsupported mode '", mode, "' (expected constant, reflect or edge)");
  const std::string who = n.describe();
  auto cpads = constInts(n, 1), caxes = constInts(n, 3);
  return [=](const KernelContext&, const Ins& in, Ins& out) {
    const at::Tensor& x = in[0];
    const int64_t r = x.dim();
    std::vector<int64_t> raw = cpads ? *cpads : readInts(in[1]);
    std::vector<int64_t> axes;
    if (caxes || (in.size() > 3 && in[3].defined())) {
      for (int64_t a : caxes ? *caxes : readInts(in[3])) axes.push_back(axisIn(who, a, r));
    } else {
      for (int64_t i = 0; i < r; ++i) axes.push_back(i);
    }
    const size_t m = axes.size();
    GS_CHECK(raw.size() == 2 * m, who, ": pads has ", raw.size(), " entries, expected ", 2 * m);
    std::vector<int64_t> pb(r, 0), pe(r, 0);
    for (size_t i = 0; i < m; ++i) {
      pb[axes[i]] = raw[i];
      pe[axes[i]] = raw[i + m];
      GS_CHECK(x.size(axes[i]) + raw[i] + raw[i + m] >= 0, who, ": pads ", dimsString(raw),
               " crop more than the input ", dimsString(x.sizes()));
    }
    if (mode == "constant") {
      std::vector<int64_t> tp;  // ATen order: last dim first, (begin, end) pairs
      for (int64_t i = r - 1; i >= 0; --i) {
        tp.push_back(pb[i]);
        tp.push_back(pe[i]);
      }
      at::Scalar v = 0;
      if (in.size() > 2 && in[2].defined() && in[2].numel() > 0) v = in[2].item();
      out[0] = at::constant_pad_nd(x, tp, v);
      return;
    }
    const bool reflect = mode == "reflect";
    const bool fused_ok = x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble;
    if (r == 4 && fused_ok && !pb[0] && !pe[0] && !pb[1] && !pe[1]) {
      bool ok = true;
      for (int64_t i = 2; i < 4; ++i)
        ok &= pb[i] >= 0 && pe[i] >= 0 && (!reflect || (pb[i] < x.size(i) && pe[i] < x.size(i)));
      if (ok) {
        std::vector<int64_t> tp{pb[3], pe[3], pb[2], pe[2]};
        out[0] = reflect ? at::reflection_pad2d(x, tp) : at::replication_pad2d(x, tp);
        return;
      }
    }
    at::Tensor y = x;
    for (int64_t i = 0; i < r; ++i) {
      if (!pb[i] && !pe[i]) continue;
      const int64_t d = x.size(i), len = d + pb[i] + pe[i];
      GS_CHECK(d > 0 || len == 0, who, ": cannot ", mode, "-pad an empty axis ", i);
      y = at::index_select(y, i, intsTensor(padIndex(d, pb[i], len, reflect)));
    }
    out[0] = y;
  };
}

}  // namespace

void registerShapeGenOps(OpRegistry& r) {
  r.add(OpDef("ConstantOfShape")
            .inputs(1)
            .attr("value", AttrKind::Tensor)
            .kernel(requiring(1, constantOfShapeKernel)));
  r.add(OpDef("Range").inputs(3).kernel(requiring(3, rangeKernel)));
  r.add(OpDef("OneHot").inputs(3).attr("axis", AttrKind::Int).kernel(requiring(3, oneHotKernel)));
  r.add(OpDef("Trilu").inputs(1, 2).attr("upper", AttrKind::Int).kernel(requiring(1, triluKernel)));
  r.add(OpDef("EyeLike")
            .inputs(1)
            .attr("dtype", AttrKind::Int)
            .attr("k", AttrKind::Int)
            .kernel(requiring(1, eyeLikeKernel)));
  r.add(OpDef("Expand").inputs(2).kernel(requiring(2, expandKernel)));
  r.add(OpDef("Tile").inputs(2).kernel(requiring(2, tileKernel)));
  // The 4th input (axes) is opset 18; accepted so that newer models need no rewrite.
  r.add(OpDef("Pad").inputs(2, 4).attr("mode", AttrKind::String).kernel(requiring(2, padKernel)));
}

}  // namespace gs
