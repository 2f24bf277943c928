// Pooling ops: MaxPool (with ONNX Indices), AveragePool, LpPool, Global*Pool, MaxUnpool.
#include <ATen/ATen.h>

#include <limits>

#include "ops/kernel_util.h"
#include "ops/registry.h"
#include "ops/spatial_util.h"

namespace gs {
namespace {

/// Smallest input (elements) sent to oneDNN's max pool: below it the conversions dominate
/// (1x6x28x28: ATen 7 us, oneDNN 17 us; 32x16x10x10: ATen 160 us, oneDNN 32 us; 1 thread).
constexpr int64_t kOneDnnPoolMinElems = 16384;

/// ATen's pooling output size (pooling_output_shape with symmetric pad): with ceil_mode, a
/// window starting in the right padding is dropped.
int64_t atenPoolOut(int64_t in, int64_t k, int64_t pad, int64_t s, int64_t d, bool ceil) {
  int64_t out = floorDiv(in + 2 * pad - d * (k - 1) - 1 + (ceil ? s - 1 : 0), s) + 1;
  if (ceil && (out - 1) * s >= in + pad) --out;
  return out;
}

/// True if ATen's own padding/ceil handling reproduces ONNX's geometry exactly: symmetric pads
/// within ATen's limit (pad <= kernel/2) and the same output sizes.
bool atenCanPool(const WindowGeometry& g, at::IntArrayRef in, bool ceil) {
  if (!g.symmetric()) return false;
  for (size_t i = 0; i < in.size(); ++i) {
    if (g.pad_begin[i] > g.kernel[i] / 2) return false;
    if (atenPoolOut(in[i], g.kernel[i], g.pad_begin[i], g.stride[i], g.dilation[i], ceil) != g.out[i])
      return false;
  }
  return true;
}

/// Right-side extent (pad, or crop if negative) that makes a floor-mode, unpadded pool over the
/// begin-padded input produce exactly g.out windows.
DimVec exactRightPad(const WindowGeometry& g, at::IntArrayRef in) {
  DimVec r(in.size());
  for (size_t i = 0; i < in.size(); ++i)
    r[i] = (g.out[i] - 1) * g.stride[i] + (g.kernel[i] - 1) * g.dilation[i] + 1 - in[i] - g.pad_begin[i];
  return r;
}

void checkPoolInput(const Node& n, const WindowAttrs& a, const at::Tensor& x) {
  GS_CHECK(x.dim() >= 3, n.describe(), ": expected input of rank >= 3 (N x C x D1...), got ",
           x.sizes());
  a.checkRank(n, static_cast<size_t>(x.dim() - 2));
  GS_CHECK(a.kernel.size() == static_cast<size_t>(x.dim() - 2), n.describe(),
           ": kernel_shape has ", a.kernel.size(), " entries for ", x.dim() - 2, " spatial dims");
}

at::Tensor avgPoolNd(const at::Tensor& x, at::IntArrayRef k, at::IntArrayRef s, at::IntArrayRef p,
                     bool ceil, bool include_pad) {
  switch (k.size()) {
    case 1: return at::avg_pool1d(x, k, s, p, ceil, include_pad);
    case 2: return at::avg_pool2d(x, k, s, p, ceil, include_pad);
    case 3: return at::avg_pool3d(x, k, s, p, ceil, include_pad);
    default: GS_FAIL("pooling supports 1 to 3 spatial dims, got ", k.size());
  }
}

/// Max pool (values, and ATen's per-plane indices when `with_idx`).
std::tuple<at::Tensor, at::Tensor> maxPoolNd(const at::Tensor& x, const WindowGeometry& g,
                                            at::IntArrayRef pad, bool ceil, bool with_idx) {
  const auto& k = g.kernel;
  const auto& s = g.stride;
  const auto& d = g.dilation;
  switch (k.size()) {
    case 1:
      if (with_idx) return at::max_pool1d_with_indices(x, k, s, pad, d, ceil);
      return {at::max_pool1d(x, k, s, pad, d, ceil), at::Tensor()};
    case 2:
      if (with_idx) return at::max_pool2d_with_indices(x, k, s, pad, d, ceil);
      return {at::max_pool2d(x, k, s, pad, d, ceil), at::Tensor()};
    case 3:
      if (with_idx) return at::max_pool3d_with_indices(x, k, s, pad, d, ceil);
      return {at::max_pool3d(x, k, s, pad, d, ceil), at::Tensor()};
    default: GS_FAIL("pooling supports 1 to 3 spatial dims, got ", k.size());
  }
}

/// True for the float 2-D max pools that run faster on oneDNN: no gradient needed (oneDNN's
/// tensors do not record autograd), unit dilation, non-empty, and big enough that the layout
/// conversions pay off (ATen's loop is as fast on tiny tensors).
bool useOneDnnMaxPool(const at::Tensor& x, const WindowGeometry& g) {
  if (g.kernel.size() != 2 || x.scalar_type() != at::kFloat || !x.device().is_cpu() ||
      !at::globalContext().userEnabledMkldnn() || x.numel() < kOneDnnPoolMinElems)
    return false;
  if (at::GradMode::is_enabled() && x.requires_grad()) return false;
  for (int64_t d : g.dilation)
    if (d != 1) return false;
  return true;
}

/// Converts ATen's per-plane row-major indices over a plane of sizes `plane` (possibly padded by
/// `offset` at the beginning of each dim) into ONNX's indices over the whole unpadded N x C x ...
/// tensor of spatial sizes `in` (row major, or column major over the spatial dims).
at::Tensor onnxIndices(at::Tensor idx, at::IntArrayRef plane, at::IntArrayRef offset,
                       at::IntArrayRef in, bool column_major, int64_t n, int64_t c) {
  const size_t nd = in.size();
  bool trivial = !column_major;
  for (size_t i = 0; i < nd; ++i) trivial = trivial && offset[i] == 0 && plane[i] == in[i];
  int64_t plane_numel = 1;
  for (int64_t v : in) plane_numel *= v;
  if (!trivial) {
    std::vector<at::Tensor> coord(nd);
    at::Tensor rest = idx;
    for (size_t i = nd; i-- > 0;) {
      coord[i] = rest.remainder(plane[i]) - offset[i];
      rest = rest.div(plane[i], "floor");
    }
    at::Tensor lin = at::zeros_like(idx);
    if (column_major) {
      for (size_t i = nd; i-- > 0;) lin = lin * in[i] + coord[i];
    } else {
      for (size_t i = 0; i < nd; ++i) lin = lin * in[i] + coord[i];
    }
    idx = lin;
  }
  DimVec shape(idx.dim(), 1);
  shape[0] = n;
  shape[1] = c;
  at::Tensor base = at::arange(n * c, idx.options()).reshape(shape) * plane_numel;
  return idx + base;
}

/// MaxPool with auto_pad, asymmetric pads (padded with -inf), ceil_mode, dilations and the
/// optional Indices output (flattened N x C x D1... indices, storage_order row/column major).
Kernel makeMaxPool(const Node& n) {
  WindowAttrs a = WindowAttrs::parse(n, true);
  GS_CHECK(!a.kernel.empty(), n.describe(), ": kernel_shape is required");
  bool column_major = n.attrInt("storage_order", 0) != 0;
  bool want_idx = n.numOutputs() > 1 && n.output(1) != nullptr;
  return [a, column_major, want_idx, &n](const KernelContext&, const std::vector<at::Tensor>& in,
                                          std::vector<at::Tensor>& out) {
    const at::Tensor& x0 = in[0];
    checkPoolInput(n, a, x0);
    // ATen's CPU max pool is float-only; 8/16-bit integers are exact in float, wider in double.
    at::ScalarType st = x0.scalar_type();
    at::Tensor x = x0;
    if (!at::isFloatingType(st))
      x = x0.to(at::elementSize(st) <= 2 ? at::kFloat : at::kDouble);
    at::IntArrayRef sp = x.sizes().slice(2);
    WindowGeometry g = forwardGeometry(a, sp, a.kernel);
    std::tuple<at::Tensor, at::Tensor> r;
    DimVec plane, offset(sp.size(), 0);
    if (atenCanPool(g, sp, a.ceil_mode)) {
      if (!want_idx && useOneDnnMaxPool(x, g)) {
        // ATen 1.13's at::max_pool2d always computes indices with a scalar per-plane loop;
        // oneDNN's vectorised pooling is 3-5x faster even counting the layout conversions.
        at::Tensor y = at::mkldnn_max_pool2d(x.contiguous().to_mkldnn(), g.kernel, g.stride,
                                             g.pad_begin, g.dilation, a.ceil_mode);
        out[0] = y.to_dense();
        return;
      }
      r = maxPoolNd(x, g, g.pad_begin, a.ceil_mode, want_idx);
      plane.assign(sp.begin(), sp.end());
    } else {
      DimVec right = exactRightPad(g, sp);
      at::Tensor xp = at::constant_pad_nd(x, padList(g.pad_begin, right),
                                          -std::numeric_limits<double>::infinity());
      DimVec zeros(sp.size(), 0);
      r = maxPoolNd(xp, g, zeros, false, want_idx);
      plane.assign(xp.sizes().begin() + 2, xp.sizes().end());
      offset.assign(g.pad_begin.begin(), g.pad_begin.end());
    }
    out[0] = std::get<0>(r).scalar_type() == st ? std::get<0>(r) : std::get<0>(r).to(st);
    if (want_idx)
      out[1] = onnxIndices(std::get<1>(r), plane, offset, sp, column_major, x.size(0), x.size(1));
  };
}

/// AveragePool with auto_pad, asymmetric pads, ceil_mode and count_include_pad. The general
/// path divides window sums of the zero-padded input by window sums of a 0/1 mask that marks
/// the counted positions (input, plus explicit pads when count_include_pad).
Kernel makeAveragePool(const Node& n) {
  WindowAttrs a = WindowAttrs::parse(n, true);
  GS_CHECK(!a.kernel.empty(), n.describe(), ": kernel_shape is required");
  bool include_pad = n.attrInt("count_include_pad", 0) != 0;
  return [a, include_pad, &n](const KernelContext&, const std::vector<at::Tensor>& in,
                               std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    checkPoolInput(n, a, x);
    at::IntArrayRef sp = x.sizes().slice(2);
    WindowGeometry g = forwardGeometry(a, sp, a.kernel);
    if (atenCanPool(g, sp, a.ceil_mode)) {
      out[0] = avgPoolNd(x, g.kernel, g.stride, g.pad_begin, a.ceil_mode, include_pad);
      return;
    }
    const size_t nd = sp.size();
    DimVec right = exactRightPad(g, sp), zeros(nd, 0), beyond(nd), mshape(x.dim(), 1);
    for (size_t i = 0; i < nd; ++i) {
      beyond[i] = right[i] - g.pad_end[i];
      mshape[2 + i] = sp[i];
    }
    at::Tensor xp = at::constant_pad_nd(x, padList(g.pad_begin, right), 0);
    at::Tensor mask = at::ones(mshape, x.options().requires_grad(false));
    mask = at::constant_pad_nd(mask, padList(g.pad_begin, g.pad_end), include_pad ? 1 : 0);
    mask = at::constant_pad_nd(mask, padList(zeros, beyond), 0);
    at::Tensor sums = avgPoolNd(xp, g.kernel, g.stride, zeros, false, true);
    at::Tensor counts = avgPoolNd(mask, g.kernel, g.stride, zeros, false, true);
    out[0] = sums / counts;
  };
}

/// LpPool: (sum over the window of |x|^p)^(1/p), zero padding.
Kernel makeLpPool(const Node& n) {
  WindowAttrs a = WindowAttrs::parse(n, false);
  GS_CHECK(!a.kernel.empty(), n.describe(), ": kernel_shape is required");
  int64_t p = n.attrInt("p", 2);
  GS_CHECK(p >= 1, n.describe(), ": p must be >= 1, got ", p);
  return [a, p, &n](const KernelContext&, const std::vector<at::Tensor>& in,
                     std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    checkPoolInput(n, a, x);
    at::IntArrayRef sp = x.sizes().slice(2);
    WindowGeometry g = forwardGeometry(a, sp, a.kernel);
    DimVec right = exactRightPad(g, sp), zeros(sp.size(), 0);
    at::Tensor xp = p == 1 ? x.abs() : p == 2 ? x * x : x.abs().pow(static_cast<double>(p));
    xp = at::constant_pad_nd(xp, padList(g.pad_begin, right), 0);
    int64_t kn = 1;
    for (int64_t k : g.kernel) kn *= k;
    at::Tensor sums = avgPoolNd(xp, g.kernel, g.stride, zeros, false, true) * static_cast<double>(kn);
    out[0] = p == 1 ? sums : p == 2 ? sums.sqrt() : sums.pow(1.0 / static_cast<double>(p));
  };
}

DimVec spatialDims(const at::Tensor& x) {
  DimVec d;
  for (int64_t i = 2; i < x.dim(); ++i) d.push_back(i);
  return d;
}

/// MaxUnpool: scatters X into zeros at ONNX's flattened indices I; output spatial size from the
/// output_shape input or (in - 1) * stride + kernel - pads.
Kernel makeMaxUnpool(const Node& n) {
  WindowAttrs a = WindowAttrs::parse(n, false);
  GS_CHECK(!a.kernel.empty(), n.describe(), ": kernel_shape is required");
  return [a, &n](const KernelContext&, const std::vector<at::Tensor>& in,
                  std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    const at::Tensor& idx = in[1];
    checkPoolInput(n, a, x);
    GS_CHECK(idx.sizes() == x.sizes(), n.describe(), ": indices shape ", idx.sizes(),
             " differs from X shape ", x.sizes());
    const size_t nd = static_cast<size_t>(x.dim() - 2);
    DimVec shape{x.size(0), x.size(1)};
    if (in.size() > 2 && in[2].defined()) {
      std::vector<int64_t> os = toInts(in[2]);
      GS_CHECK(os.size() == static_cast<size_t>(x.dim()), n.describe(), ": output_shape has ",
               os.size(), " entries, expected ", x.dim());
      shape.assign(os.begin(), os.end());
    } else {
      for (size_t i = 0; i < nd; ++i) {
        int64_t s = a.strides.empty() ? 1 : a.strides[i];
        int64_t pad = a.pads.empty() ? 0 : a.pads[i] + a.pads[i + nd];
        shape.push_back((x.size(2 + i) - 1) * s + a.kernel[i] - pad);
      }
    }
    int64_t total = 1;
    for (int64_t v : shape) total *= v;
    at::Tensor flat_idx = idx.reshape({-1}).to(at::kLong);
    if (flat_idx.numel() > 0) {
      int64_t lo = flat_idx.min().item<int64_t>(), hi = flat_idx.max().item<int64_t>();
      GS_CHECK(lo >= 0 && hi < total, n.describe(), ": index ", lo < 0 ? lo : hi,
               " out of range for output of ", total, " elements");
    }
    at::Tensor y = at::zeros({total}, x.options().requires_grad(false));
    out[0] = y.scatter(0, flat_idx, x.reshape({-1})).reshape(shape);
  };
}

}  // namespace

void registerPoolOps(OpRegistry& r) {
  r.add(OpDef("MaxPool").inputs(1).outputs(1, 2)
            .attr("auto_pad", AttrKind::String)
            .attr("ceil_mode", AttrKind::Int)
            .attr("dilations", AttrKind::Ints)
            .attr("kernel_shape", AttrKind::Ints, true)
            .attr("pads", AttrKind::Ints)
            .attr("storage_order", AttrKind::Int)
            .attr("strides", AttrKind::Ints)
            .kernel(makeMaxPool));
  r.add(OpDef("AveragePool").inputs(1)
            .attr("auto_pad", AttrKind::String)
            .attr("ceil_mode", AttrKind::Int)
            .attr("count_include_pad", AttrKind::Int)
            .attr("kernel_shape", AttrKind::Ints, true)
            .attr("pads", AttrKind::Ints)
            .attr("strides", AttrKind::Ints)
            .kernel(makeAveragePool));
  r.add(OpDef("LpPool").inputs(1)
            .attr("auto_pad", AttrKind::String)
            .attr("kernel_shape", AttrKind::Ints, true)
            .attr("p", AttrKind::Int)
            .attr("pads", AttrKind::Ints)
            .attr("strides", AttrKind::Ints)
            .kernel(makeLpPool));
  r.add(OpDef("GlobalAveragePool").inputs(1).kernel([](const Node&) -> Kernel {
    return [](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
      DimVec d = spatialDims(in[0]);
      out[0] = d.empty() ? in[0] : in[0].mean(d, true);
    };
  }));
  r.add(OpDef("GlobalMaxPool").inputs(1).kernel([](const Node&) -> Kernel {
    return [](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
      DimVec d = spatialDims(in[0]);
      out[0] = d.empty() ? in[0] : in[0].amax(d, true);
    };
  }));
  r.add(OpDef("MaxUnpool").inputs(2, 3)
            .attr("kernel_shape", AttrKind::Ints, true)
            .attr("pads", AttrKind::Ints)
            .attr("strides", AttrKind::Ints)
            .kernel(makeMaxUnpool));
}

}  // namespace gs
