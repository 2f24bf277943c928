// Convolution ops: Conv, ConvTranspose, ConvInteger (ONNX opset-17 semantics) on ATen kernels.
#include <ATen/ATen.h>

#include <optional>

#include "ops/kernel_util.h"
#include "ops/registry.h"
#include "ops/spatial_util.h"

namespace gs {
namespace {

/// Weight-derived spatial kernel sizes; checks kernel_shape (if given) against the weight.
DimVec kernelOf(const Node& n, const WindowAttrs& a, const at::Tensor& w) {
  DimVec k(w.sizes().begin() + 2, w.sizes().end());
  if (!a.kernel.empty())
    for (size_t i = 0; i < k.size(); ++i)
      GS_CHECK(a.kernel[i] == k[i], n.describe(), ": kernel_shape ", at::IntArrayRef(a.kernel),
               " does not match weight shape ", w.sizes());
  return k;
}

void checkConvInputs(const Node& n, const WindowAttrs& a, int64_t group, const at::Tensor& x,
                     const at::Tensor& w) {
  GS_CHECK(w.dim() >= 3 && x.dim() == w.dim(), n.describe(), ": expected X of rank ", w.dim(),
           " (N x C x D1...) and W of rank >= 3, got X ", x.sizes(), " and W ", w.sizes());
  a.checkRank(n, static_cast<size_t>(w.dim() - 2));
  GS_CHECK(group >= 1, n.describe(), ": group must be >= 1");
}

/// Forward convolution on float tensors with ONNX padding. Symmetric pads go to the conv
/// itself; only the asymmetric excess is materialised with constant_pad_nd.
at::Tensor convForward(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                       const WindowGeometry& g, int64_t group) {
  const size_t nd = g.kernel.size();
  at::Tensor xin = x;
  DimVec pad(nd);
  if (g.symmetric()) {
    pad.assign(g.pad_begin.begin(), g.pad_begin.end());
  } else {
    DimVec extra_b(nd), extra_e(nd);
    for (size_t i = 0; i < nd; ++i) {
      pad[i] = std::min(g.pad_begin[i], g.pad_end[i]);
      extra_b[i] = g.pad_begin[i] - pad[i];
      extra_e[i] = g.pad_end[i] - pad[i];
    }
    xin = at::constant_pad_nd(x, padList(extra_b, extra_e), 0);
  }
  // oneDNN's direct conv is 4-50x faster than ATen's own choice for small batches with k > 1
  // (ATen falls back to im2col slow_conv2d below batch 2 / 20480 input elements); it is
  // differentiable, so train mode uses it too. 1x1 kernels stay with ATen (GEMM, on par).
  bool pointwise = true;
  for (int64_t k : g.kernel) pointwise = pointwise && k == 1;
  if (!pointwise && xin.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat &&
      (!b || b->scalar_type() == at::kFloat) && xin.device().is_cpu() && xin.numel() > 0 &&
      nd <= 3 && at::globalContext().userEnabledMkldnn()) {
    if (nd == 1) {  // as a 2-D conv over a height-1 image (views, no copies)
      at::Tensor y = at::mkldnn_convolution(xin.unsqueeze(2), w.unsqueeze(2), b, {0, pad[0]},
                                            {1, g.stride[0]}, {1, g.dilation[0]}, group);
      return y.squeeze(2);
    }
    return at::mkldnn_convolution(xin, w, b, pad, g.stride, g.dilation, group);
  }
  DimVec zeros(nd, 0);
  return at::convolution(xin, w, b, g.stride, pad, g.dilation, false, zeros, group);
}

/// Conv: Y = conv(X, W) + B with auto_pad / asymmetric pads / dilations / groups.
Kernel makeConv(const Node& n) {
  WindowAttrs a = WindowAttrs::parse(n, false);
  int64_t group = n.attrInt("group", 1);
  // Constant weight and pads that do not depend on X (NOTSET / VALID): validate the attributes
  // against the weight once and fix the geometry here, so a run only checks X's rank.
  std::optional<WindowGeometry> fixed;
  const Value* wv = n.input(1);
  if (wv && wv->isParam() && a.auto_pad != AutoPad::SameUpper &&
      a.auto_pad != AutoPad::SameLower) {
    const at::Tensor& w = wv->data();
    GS_CHECK(w.dim() >= 3, n.describe(), ": weight must have rank >= 3, got ", w.sizes());
    a.checkRank(n, static_cast<size_t>(w.dim() - 2));
    GS_CHECK(group >= 1, n.describe(), ": group must be >= 1");
    DimVec k = kernelOf(n, a, w);
    fixed = forwardGeometry(a, k, k);  // pads/strides/dilations only; `out` is unused
  }
  return [a, group, fixed, &n](const KernelContext&, const std::vector<at::Tensor>& in,
                               std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    const at::Tensor& w = in[1];
    c10::optional<at::Tensor> b;
    if (in.size() > 2 && in[2].defined()) b = in[2];
    if (fixed && x.dim() == w.dim() && w.sizes().slice(2) == at::IntArrayRef(fixed->kernel)) {
      out[0] = convForward(x, w, b, *fixed, group);
      return;
    }
    checkConvInputs(n, a, group, x, w);
    DimVec k = kernelOf(n, a, w);
    WindowGeometry g = forwardGeometry(a, x.sizes().slice(2), k);
    out[0] = convForward(x, w, b, g, group);
  };
}

/// ConvTranspose: pads from attributes, output_shape or auto_pad (ONNX formulas); output_padding
/// and pads that ATen cannot express are applied by cropping/zero-extending the full result.
Kernel makeConvTranspose(const Node& n) {
  WindowAttrs a = WindowAttrs::parse(n, false);
  int64_t group = n.attrInt("group", 1);
  std::vector<int64_t> out_pad = n.attrInts("output_padding");
  std::vector<int64_t> out_shape = n.attrInts("output_shape");
  for (int64_t v : out_pad) GS_CHECK(v >= 0, n.describe(), ": output_padding must be >= 0");
  return [a, group, out_pad, out_shape, &n](const KernelContext&, const std::vector<at::Tensor>& in,
                                            std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    const at::Tensor& w = in[1];
    checkConvInputs(n, a, group, x, w);
    const size_t nd = static_cast<size_t>(w.dim() - 2);
    GS_CHECK(out_pad.empty() || out_pad.size() == nd, n.describe(), ": output_padding has ",
             out_pad.size(), " entries, expected ", nd);
    GS_CHECK(out_shape.empty() || out_shape.size() >= nd, n.describe(), ": output_shape has ",
             out_shape.size(), " entries, expected ", nd);
    DimVec k = kernelOf(n, a, w);
    DimVec stride(nd), dil(nd), op(nd), pb(nd), pe(nd), full(nd);
    bool direct = true;
    for (size_t i = 0; i < nd; ++i) {
      stride[i] = a.strides.empty() ? 1 : a.strides[i];
      dil[i] = a.dilations.empty() ? 1 : a.dilations[i];
      op[i] = out_pad.empty() ? 0 : out_pad[i];
      int64_t in_i = x.size(2 + i);
      full[i] = stride[i] * (in_i - 1) + (k[i] - 1) * dil[i] + 1;
      int64_t target = -1;
      if (!out_shape.empty()) target = out_shape[out_shape.size() - nd + i];
      else if (a.auto_pad == AutoPad::SameUpper || a.auto_pad == AutoPad::SameLower)
        target = in_i * stride[i];
      if (target >= 0) {
        int64_t total = full[i] + op[i] - target;
        int64_t half = floorDiv(total, 2);  // python-style floor, as ONNX's reference
        if (a.auto_pad == AutoPad::SameUpper) {
          pb[i] = half;
          pe[i] = total - half;
        } else {
          pb[i] = total - half;
          pe[i] = half;
        }
      } else if (a.auto_pad == AutoPad::NotSet && !a.pads.empty()) {
        pb[i] = a.pads[i];
        pe[i] = a.pads[i + nd];
      }
      if (pb[i] != pe[i] || pb[i] < 0 || op[i] >= std::max(stride[i], dil[i])) direct = false;
    }
    c10::optional<at::Tensor> b;
    if (in.size() > 2 && in[2].defined()) b = in[2];
    if (direct) {
      out[0] = at::convolution(x, w, b, stride, pb, dil, true, op, group);
      return;
    }
    DimVec zeros(nd, 0), lo(nd), hi(nd);
    at::Tensor y = at::convolution(x, w, c10::nullopt, stride, zeros, dil, true, zeros, group);
    for (size_t i = 0; i < nd; ++i) {
      lo[i] = -pb[i];
      hi[i] = op[i] - pe[i];
      GS_CHECK(full[i] + lo[i] + hi[i] > 0, n.describe(), ": computed output size ",
               full[i] + lo[i] + hi[i], " is not positive");
    }
    y = at::constant_pad_nd(y, padList(lo, hi), 0);
    if (b) {
      DimVec bshape(nd + 1, 1);
      bshape[0] = -1;
      y = y + b->reshape(bshape);
    }
    out[0] = y;
  };
}

/// ConvInteger: (X - x_zero_point) conv (W - w_zero_point) accumulated in int32. Computed in
/// float64, which is exact here (|products| < 2^16, sums far below 2^53), then cast.
Kernel makeConvInteger(const Node& n) {
  WindowAttrs a = WindowAttrs::parse(n, false);
  int64_t group = n.attrInt("group", 1);
  return [a, group, &n](const KernelContext&, const std::vector<at::Tensor>& in,
                        std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    const at::Tensor& w = in[1];
    checkConvInputs(n, a, group, x, w);
    auto is8 = [](const at::Tensor& t) {
      return t.scalar_type() == at::kByte || t.scalar_type() == at::kChar;
    };
    GS_CHECK(is8(x) && is8(w), n.describe(), ": ConvInteger expects int8/uint8 inputs, got ",
             x.scalar_type(), " and ", w.scalar_type());
    at::Tensor xd = x.to(at::kDouble), wd = w.to(at::kDouble);
    if (in.size() > 2 && in[2].defined()) {
      GS_CHECK(in[2].numel() == 1, n.describe(), ": x_zero_point must be a scalar");
      xd = xd - in[2].to(at::kDouble).reshape({});
    }
    if (in.size() > 3 && in[3].defined()) {
      const at::Tensor& wz = in[3];
      GS_CHECK(wz.numel() == 1 || wz.numel() == w.size(0), n.describe(),
               ": w_zero_point must be a scalar or have one entry per output channel");
      DimVec shape(w.dim(), 1);
      shape[0] = wz.numel();
      wd = wd - wz.to(at::kDouble).reshape(shape);
    }
    DimVec k = kernelOf(n, a, w);
    WindowGeometry g = forwardGeometry(a, x.sizes().slice(2), k);
    out[0] = convForward(xd, wd, c10::nullopt, g, group).round().to(at::kInt);
  };
}

}  // namespace

void registerConvOps(OpRegistry& r) {
  auto common = [](OpDef d) {
    return std::move(d.attr("auto_pad", AttrKind::String)
                         .attr("dilations", AttrKind::Ints)
                         .attr("group", AttrKind::Int)
                         .attr("kernel_shape", AttrKind::Ints)
                         .attr("pads", AttrKind::Ints)
                         .attr("strides", AttrKind::Ints));
  };
  r.add(common(OpDef("Conv").inputs(2, 3)).kernel(makeConv));
  r.add(common(OpDef("ConvTranspose").inputs(2, 3))
            .attr("output_padding", AttrKind::Ints)
            .attr("output_shape", AttrKind::Ints)
            .kernel(makeConvTranspose));
  r.add(common(OpDef("ConvInteger").inputs(2, 4)).kernel(makeConvInteger));
}

}  // namespace gs
