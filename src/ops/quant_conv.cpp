// QLinearConv: 8-bit convolution with requantized output (exact integer accumulation).
#include <ATen/ATen.h>

#include "ops/kernel_util.h"
#include "ops/quant_util.h"
#include "ops/registry.h"

namespace gs {
namespace {

struct QConvAttrs {
  std::string auto_pad;
  std::vector<int64_t> dilations, kernel_shape, pads, strides;
  int64_t group = 1;
};

/// Begin/end padding per spatial dim (ONNX pads layout: all begins, then all ends).
std::vector<int64_t> resolvePads(const Node& n, const QConvAttrs& a, const at::Tensor& x,
                                 const std::vector<int64_t>& k) {
  size_t s = k.size();
  std::vector<int64_t> p(2 * s, 0);
  if (a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER") {
    for (size_t i = 0; i < s; ++i) {
      int64_t in = x.size(static_cast<int64_t>(i) + 2);
      int64_t out = (in + a.strides[i] - 1) / a.strides[i];
      int64_t total = std::max<int64_t>(0, (out - 1) * a.strides[i] + (k[i] - 1) * a.dilations[i] + 1 - in);
      int64_t small = total / 2, big = total - small;
      p[i] = a.auto_pad == "SAME_UPPER" ? small : big;
      p[i + s] = a.auto_pad == "SAME_UPPER" ? big : small;
    }
  } else if (a.auto_pad != "VALID" && !a.pads.empty()) {
    GS_CHECK(a.pads.size() == 2 * s, n.describe(), ": pads has ", a.pads.size(), " values, expected ",
             2 * s);
    p = a.pads;
  }
  return p;
}

/// y = saturate(round((x - x_zp) * (w - w_zp) + B) * x_scale * w_scale / y_scale) + y_zp), with
/// w_scale / w_zp per output channel or per tensor. Padding is with zero in the shifted domain,
/// i.e. with x_zero_point in the quantized one.
Kernel qlinearConvKernel(const Node& node) {
  QConvAttrs a;
  a.auto_pad = node.attrString("auto_pad", "NOTSET");
  GS_CHECK(a.auto_pad == "NOTSET" || a.auto_pad == "VALID" || a.auto_pad == "SAME_UPPER" ||
               a.auto_pad == "SAME_LOWER",
           node.describe(), ": unknown auto_pad '", a.auto_pad, "'");
  a.dilations = node.attrInts("dilations", {});
  a.kernel_shape = node.attrInts("kernel_shape", {});
  a.pads = node.attrInts("pads", {});
  a.strides = node.attrInts("strides", {});
  a.group = node.attrInt("group", 1);
  GS_CHECK(a.group >= 1, node.describe(), ": group must be >= 1");
  const Node* np = &node;
  return [a, np](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
    const at::Tensor &x = in[0], &xs = in[1], &xz = in[2], &w = in[3], &ws = in[4], &wz = in[5],
                     &ys = in[6], &yz = in[7];
    GS_CHECK(x.dim() >= 3 && w.dim() == x.dim(), np->describe(), ": x and w must have equal rank >= 3");
    size_t s = static_cast<size_t>(x.dim() - 2);
    std::vector<int64_t> k(w.sizes().begin() + 2, w.sizes().end());
    GS_CHECK(a.kernel_shape.empty() || a.kernel_shape == k, np->describe(),
             ": kernel_shape does not match the weight shape");
    QConvAttrs r = a;
    if (r.strides.empty()) r.strides.assign(s, 1);
    if (r.dilations.empty()) r.dilations.assign(s, 1);
    GS_CHECK(r.strides.size() == s && r.dilations.size() == s, np->describe(),
             ": strides/dilations must have one value per spatial dim");
    int64_t terms = w.size(1);
    for (int64_t d : k) terms *= d;
    at::ScalarType ct = exactAccumType(terms);
    at::Tensor xf = x.to(ct);
    if (xz.defined()) xf = at::sub(xf, xz.to(ct).reshape({}));
    at::Tensor wf = w.to(ct);
    if (wz.defined()) wf = at::sub(wf, alignToAxis(wz.to(ct), 0, w.dim()));
    std::vector<int64_t> p = resolvePads(*np, r, x, k);
    std::vector<int64_t> sym(s);
    bool symmetric = true;
    for (size_t i = 0; i < s; ++i) {
      sym[i] = p[i];
      symmetric = symmetric && p[i] == p[i + s];
    }
    if (!symmetric) {
      std::vector<int64_t> pad_nd;  // constant_pad_nd: last dim first, (begin, end) pairs
      for (size_t i = s; i-- > 0;) {
        pad_nd.push_back(p[i]);
        pad_nd.push_back(p[i + s]);
      }
      xf = at::constant_pad_nd(xf, pad_nd, 0);
      std::fill(sym.begin(), sym.end(), 0);
    }
    c10::optional<at::Tensor> bias;
    if (in.size() > 8 && in[8].defined()) bias = in[8].to(ct);
    at::Tensor acc = at::convolution(xf, wf, bias, r.strides, sym, r.dilations, false,
                                     std::vector<int64_t>(s, 0), r.group);
    at::Tensor mult = at::div(at::mul(xs.to(at::kFloat).reshape({}),
                                      alignToAxis(ws.to(at::kFloat), 1, acc.dim())),
                              ys.to(at::kFloat).reshape({}));
    GS_CHECK(yz.defined(), np->describe(), ": y_zero_point is required (it fixes the output type)");
    out[0] = quantizeRounded(at::mul(acc.to(at::kFloat), mult), yz.reshape({}), yz.scalar_type());
  };
}

}  // namespace

void registerQLinearConv(OpRegistry& r) {
  r.add(OpDef("QLinearConv").inputs(8, 9).attr("auto_pad", AttrKind::String)
            .attr("dilations", AttrKind::Ints).attr("group", AttrKind::Int)
            .attr("kernel_shape", AttrKind::Ints).attr("pads", AttrKind::Ints)
            .attr("strides", AttrKind::Ints).kernel(qlinearConvKernel));
}

}  // namespace gs
