// Reduction ops: ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare, ArgMax/ArgMin,
// TopK and CumSum (opset-17 semantics).
#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "ops/kernel_util.h"
#include "ops/registry.h"

namespace gs {
namespace {

/// Reduces `x` over `dims` (already normalised, distinct, non-empty unless x is 0-d).
using ReduceFn = at::Tensor (*)(const at::Tensor& x, const std::vector<int64_t>& dims, bool keep);

bool isFloating(const at::Tensor& t) { return at::isFloatingType(t.scalar_type()); }

/// Runs `f` in double for integer inputs (ops whose result is not integral, e.g. L2, LogSum) and
/// casts back, so integer tensors keep their dtype as ONNX requires.
template <typename F>
at::Tensor viaDoubleIfIntegral(const at::Tensor& x, F f) {
  if (isFloating(x)) return f(x);
  return f(x.to(at::kDouble)).to(x.scalar_type());
}

/// True if any reduced dimension is empty (ATen's max/min/logsumexp reject those).
bool reducesEmpty(const at::Tensor& x, const std::vector<int64_t>& dims) {
  if (x.dim() == 0) return false;
  for (int64_t d : dims)
    if (x.size(d) == 0) return true;
  return false;
}

/// Output shape of a reduction (for filling the identity of an empty reduction).
std::vector<int64_t> reducedShape(const at::Tensor& x, const std::vector<int64_t>& dims, bool keep) {
  std::vector<int64_t> s;
  for (int64_t d = 0; d < x.dim(); ++d) {
    bool red = std::find(dims.begin(), dims.end(), d) != dims.end();
    if (!red) s.push_back(x.size(d));
    else if (keep) s.push_back(1);
  }
  return s;
}

/// Identity element of max (lowest) or min (highest) for x's dtype; ONNX defines an empty
/// max/min reduction as -inf/+inf (or the dtype's extreme for integers).
at::Scalar extreme(const at::Tensor& x, bool lowest) {
  if (isFloating(x))
    return lowest ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  at::Scalar r;
  AT_DISPATCH_INTEGRAL_TYPES(x.scalar_type(), "extreme", [&] {
    r = lowest ? std::numeric_limits<scalar_t>::lowest() : std::numeric_limits<scalar_t>::max();
  });
  return r;
}

at::Tensor reduceSum(const at::Tensor& x, const std::vector<int64_t>& d, bool k) {
  return at::sum(x, d, k, x.scalar_type());  // keep dtype: ATen would widen ints to int64
}

at::Tensor reduceMean(const at::Tensor& x, const std::vector<int64_t>& d, bool k) {
  if (isFloating(x)) return at::mean(x, d, k);
  int64_t n = 1;
  for (int64_t i : d) n *= x.size(i);
  GS_CHECK(n > 0, "integer mean over an empty set is undefined");
  return at::div(at::sum(x, d, k, at::kLong), n, "trunc").to(x.scalar_type());
}

at::Tensor reduceMax(const at::Tensor& x, const std::vector<int64_t>& d, bool k) {
  if (reducesEmpty(x, d)) return at::full(reducedShape(x, d, k), extreme(x, true), x.options());
  return at::amax(x, d, k);
}

at::Tensor reduceMin(const at::Tensor& x, const std::vector<int64_t>& d, bool k) {
  if (reducesEmpty(x, d)) return at::full(reducedShape(x, d, k), extreme(x, false), x.options());
  return at::amin(x, d, k);
}

at::Tensor reduceProd(const at::Tensor& x, const std::vector<int64_t>& d, bool k) {
  if (x.dim() == 0) return x.clone();
  if (!k && static_cast<int64_t>(d.size()) == x.dim()) return at::prod(x, x.scalar_type());
  // at::prod takes one dim; reduce from the highest so lower dim indices stay valid.
  std::vector<int64_t> s = d;
  std::sort(s.rbegin(), s.rend());
  at::Tensor y = x;
  for (int64_t i : s) y = at::prod(y, i, k, x.scalar_type());
  return y;
}

at::Tensor reduceL1(const at::Tensor& x, const std::vector<int64_t>& d, bool k) {
  return at::sum(at::abs(x), d, k, x.scalar_type());
}

at::Tensor reduceL2(const at::Tensor& x, const std::vector<int64_t>& d, bool k) {
  return viaDoubleIfIntegral(x, [&](const at::Tensor& v) {
    // linalg_vector_norm has a well-defined (zero) gradient at an all-zero slice.
    return at::linalg_vector_norm(v, 2, d.empty() ? at::OptionalIntArrayRef() : at::IntArrayRef(d), k);
  });
}

at::Tensor reduceLogSum(const at::Tensor& x, const std::vector<int64_t>& d, bool k) {
  return viaDoubleIfIntegral(x, [&](const at::Tensor& v) { return at::log(at::sum(v, d, k)); });
}

at::Tensor reduceLogSumExp(const at::Tensor& x, const std::vector<int64_t>& d, bool k) {
  if (reducesEmpty(x, d))
    return at::full(reducedShape(x, d, k), -std::numeric_limits<double>::infinity(),
                    isFloating(x) ? x.options() : x.options().dtype(at::kDouble)).to(x.scalar_type());
  return viaDoubleIfIntegral(x, [&](const at::Tensor& v) {
    if (v.dim() == 0) return v.clone();  // logsumexp of one element is the element
    return at::logsumexp(v, d, k);
  });
}

at::Tensor reduceSumSquare(const at::Tensor& x, const std::vector<int64_t>& d, bool k) {
  return at::sum(at::mul(x, x), d, k, x.scalar_type());
}

/// Reduce* factory. Axes come from the optional input 1 when given (ReduceSum's opset-13 form, and
/// every Reduce op's opset-18 form, so such graphs run unchanged), else from the `axes` attribute
/// (opset 13-17 form). No axes: reduce everything, or pass through with noop_with_empty_axes.
KernelFactory reduceKernel(ReduceFn fn) {
  return [fn](const Node& node) -> Kernel {
    std::vector<int64_t> attr_axes = node.attrInts("axes", {});
    bool keep = node.attrInt("keepdims", 1) != 0;
    bool noop = node.attrInt("noop_with_empty_axes", 0) != 0;
    const Node* np = &node;
    return [fn, attr_axes, keep, noop, np](const KernelContext&, const std::vector<at::Tensor>& in,
                                           std::vector<at::Tensor>& out) {
      const at::Tensor& x = in[0];
      std::vector<int64_t> axes = attr_axes;
      if (in.size() > 1 && in[1].defined()) axes = toInts(in[1]);
      int64_t r = x.dim();
      std::vector<int64_t> dims;
      if (axes.empty()) {
        if (noop) {
          out[0] = x;
          return;
        }
        for (int64_t i = 0; i < r; ++i) dims.push_back(i);
      } else {
        for (int64_t a : axes) {
          GS_CHECK(a >= -r && a < std::max<int64_t>(r, 1), np->describe(), ": axis ", a,
                   " out of range for rank ", r);
          int64_t n = a < 0 ? a + r : a;
          GS_CHECK(std::find(dims.begin(), dims.end(), n) == dims.end(), np->describe(), ": axis ", a,
                   " repeated in axes");
          if (r > 0) dims.push_back(n);
        }
      }
      // ATen 1.13 lacks CPU half kernels for prod/exp/cumsum/topk: compute those in float.
      out[0] = x.scalar_type() == at::kHalf ? fn(x.to(at::kFloat), dims, keep).to(at::kHalf)
                                            : fn(x, dims, keep);
    };
  };
}

/// ArgMax/ArgMin: int64 indices; select_last_index flips the axis so ATen's "first extreme"
/// becomes the last one.
KernelFactory argKernel(bool is_max) {
  return [is_max](const Node& node) -> Kernel {
    int64_t axis = node.attrInt("axis", 0);
    bool keep = node.attrInt("keepdims", 1) != 0;
    bool last = node.attrInt("select_last_index", 0) != 0;
    const Node* np = &node;
    return [=](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
      const at::Tensor& x = in[0];
      int64_t a = normAxis(*np, axis, x.dim());
      GS_CHECK(x.dim() == 0 || x.size(a) > 0, np->describe(), ": cannot take ",
               is_max ? "ArgMax" : "ArgMin", " over an empty axis");
      if (!last) {
        out[0] = is_max ? at::argmax(x, a, keep) : at::argmin(x, a, keep);
        return;
      }
      at::Tensor f = at::flip(x, {a});
      at::Tensor idx = is_max ? at::argmax(f, a, keep) : at::argmin(f, a, keep);
      int64_t n = x.dim() == 0 ? 1 : x.size(a);
      out[0] = at::sub(at::full_like(idx, n - 1), idx);
    };
  };
}

/// TopK with ONNX's tie rule (equal values: lower index first), which a stable sort guarantees
/// and at::topk does not. `sorted`=0 leaves the order unspecified; sorted output is valid.
Kernel topkKernel(const Node& node) {
  int64_t axis = node.attrInt("axis", -1);
  bool largest = node.attrInt("largest", 1) != 0;
  (void)node.attrInt("sorted", 1);
  const Node* np = &node;
  return [=](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
    bool half = in[0].scalar_type() == at::kHalf;
    at::Tensor x = half ? in[0].to(at::kFloat) : in[0];
    GS_CHECK(x.dim() > 0, np->describe(), ": input must have rank >= 1");
    int64_t a = normAxis(*np, axis, x.dim());
    std::vector<int64_t> kv = toInts(in[1]);
    GS_CHECK(kv.size() == 1, np->describe(), ": K must hold exactly one value, got ", kv.size());
    int64_t k = kv[0];
    GS_CHECK(k >= 0 && k <= x.size(a), np->describe(), ": K=", k, " out of range for axis size ",
             x.size(a));
    int64_t n = x.size(a);
    if (k > 0 && k * 4 < n) {
      // at::topk picks the right values but arbitrary indices among equal ones. That only
      // matters when values equal to the k-th one also lie outside the selection: then fall back
      // to a full stable sort. Otherwise reorder the k picks by (value, index).
      auto [v, i] = at::topk(x, k, a, largest, /*sorted=*/true);
      at::Tensor kth = v.narrow(a, k - 1, 1);
      at::Tensor reach = largest ? at::ge(x, kth) : at::le(x, kth);
      if (at::sum(reach, a).eq(k).all().item<bool>()) {
        auto [si, by_index] = at::sort(i, a);
        auto [sv, by_value] = at::sort(v.gather(a, by_index), /*stable=*/true, a, largest);
        out[0] = half ? sv.to(at::kHalf) : sv;
        out[1] = si.gather(a, by_value);
        return;
      }
    }
    auto [v, i] = at::sort(x, /*stable=*/true, a, /*descending=*/largest);
    out[0] = half ? v.narrow(a, 0, k).to(at::kHalf) : v.narrow(a, 0, k);
    out[1] = i.narrow(a, 0, k);
  };
}

/// CumSum: axis is a 0-d input; exclusive shifts by one (first element 0); reverse sums from the end.
Kernel cumsumKernel(const Node& node) {
  bool exclusive = node.attrInt("exclusive", 0) != 0;
  bool reverse = node.attrInt("reverse", 0) != 0;
  const Node* np = &node;
  return [=](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    std::vector<int64_t> av = toInts(in[1]);
    GS_CHECK(av.size() == 1, np->describe(), ": axis must be a scalar, got ", av.size(), " values");
    GS_CHECK(x.dim() > 0, np->describe(), ": input must have rank >= 1");
    int64_t a = normAxis(*np, av[0], x.dim());
    at::Tensor v = reverse ? at::flip(x, {a}) : x;
    bool half = x.scalar_type() == at::kHalf;
    at::Tensor y = at::cumsum(v, a, half ? at::kFloat : x.scalar_type());
    if (half) y = y.to(at::kHalf);
    int64_t n = x.size(a);
    if (exclusive && n > 0)
      y = at::cat({at::zeros_like(y.narrow(a, 0, 1)), y.narrow(a, 0, n - 1)}, a);
    out[0] = reverse ? at::flip(y, {a}) : y;
  };
}

void addReduce(OpRegistry& r, const char* name, ReduceFn fn) {
  r.add(OpDef(name).inputs(1, 2).attr("axes", AttrKind::Ints).attr("keepdims", AttrKind::Int)
            .attr("noop_with_empty_axes", AttrKind::Int).kernel(reduceKernel(fn)));
}

}  // namespace

void registerReduceOps(OpRegistry& r) {
  // ReduceSum's opset-13 form: axes is an optional input, no axes attribute.
  r.add(OpDef("ReduceSum").inputs(1, 2).attr("keepdims", AttrKind::Int)
            .attr("noop_with_empty_axes", AttrKind::Int).kernel(reduceKernel(reduceSum)));
  addReduce(r, "ReduceMean", reduceMean);
  addReduce(r, "ReduceMax", reduceMax);
  addReduce(r, "ReduceMin", reduceMin);
  addReduce(r, "ReduceProd", reduceProd);
  addReduce(r, "ReduceL1", reduceL1);
  addReduce(r, "ReduceL2", reduceL2);
  addReduce(r, "ReduceLogSum", reduceLogSum);
  addReduce(r, "ReduceLogSumExp", reduceLogSumExp);
  addReduce(r, "ReduceSumSquare", reduceSumSquare);
  for (bool is_max : {true, false})
    r.add(OpDef(is_max ? "ArgMax" : "ArgMin").inputs(1).attr("axis", AttrKind::Int)
              .attr("keepdims", AttrKind::Int).attr("select_last_index", AttrKind::Int)
              .kernel(argKernel(is_max)));
  r.add(OpDef("TopK").inputs(2).outputs(2).attr("axis", AttrKind::Int).attr("largest", AttrKind::Int)
            .attr("sorted", AttrKind::Int).kernel(topkKernel));
  r.add(OpDef("CumSum").inputs(2).attr("exclusive", AttrKind::Int).attr("reverse", AttrKind::Int)
            .kernel(cumsumKernel));
}

}  // namespace gs
