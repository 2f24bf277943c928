// Linear quantization ops: QuantizeLinear, DequantizeLinear (per-tensor and per-axis),
// DynamicQuantizeLinear.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "ops/kernel_util.h"
#include "ops/quant_util.h"
#include "ops/registry.h"

namespace gs {

at::Tensor alignToAxis(const at::Tensor& p, int64_t axis, int64_t rank) {
  if (p.numel() == 1) return p.reshape({});
  std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
  shape[static_cast<size_t>(axis)] = p.numel();
  return p.reshape(shape);
}

at::Tensor quantizeRounded(const at::Tensor& x_over_scale, const at::Tensor& zero_point,
                           at::ScalarType qt) {
  at::Tensor q = at::round(x_over_scale);  // nearbyint: ties to even
  if (zero_point.defined()) q = at::add(q, zero_point.to(q.scalar_type()));
  double lo = qt == at::kByte ? 0.0 : -128.0, hi = qt == at::kByte ? 255.0 : 127.0;
  return at::clamp(q, lo, hi).to(qt);
}

namespace {

/// Checks a scale / zero point against x for per-tensor (one element) or per-axis (1-D, size of
/// x's axis) use and returns it shaped for broadcasting.
at::Tensor checkedParam(const Node& n, const char* what, const at::Tensor& p, const at::Tensor& x,
                        int64_t axis) {
  if (p.numel() == 1) return p.reshape({});
  GS_CHECK(p.dim() == 1, n.describe(), ": ", what, " must be a scalar or 1-D, got rank ", p.dim());
  int64_t a = normAxis(n, axis, x.dim());
  GS_CHECK(x.dim() > 0 && p.size(0) == x.size(a), n.describe(), ": per-axis ", what, " has ",
           p.size(0), " elements but axis ", a, " of the input has size ",
           x.dim() > 0 ? x.size(a) : 0);
  return alignToAxis(p, a, x.dim());
}

/// QuantizeLinear: y = saturate(round_half_even(x / y_scale) + y_zero_point); uint8 when the zero
/// point is omitted. The division is done in float32 like the reference (not x * (1/scale)).
Kernel quantizeKernel(const Node& node) {
  int64_t axis = node.attrInt("axis", 1);
  const Node* np = &node;
  return [axis, np](const KernelContext&, const std::vector<at::Tensor>& in,
                    std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    at::Tensor scale = checkedParam(*np, "y_scale", in[1], x, axis);
    at::Tensor zp;
    at::ScalarType qt = at::kByte;
    if (in.size() > 2 && in[2].defined()) {
      qt = in[2].scalar_type();
      GS_CHECK(qt == at::kByte || qt == at::kChar, np->describe(),
               ": y_zero_point must be uint8 or int8, got ", qt);
      GS_CHECK(in[2].numel() == in[1].numel(), np->describe(),
               ": y_zero_point and y_scale must have the same shape");
      zp = checkedParam(*np, "y_zero_point", in[2], x, axis);
    }
    at::ScalarType ft = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    out[0] = quantizeRounded(at::div(x.to(ft), scale.to(ft)), zp, qt);
  };
}

/// DequantizeLinear: y = (x - x_zero_point) * x_scale, the difference taken exactly in int32.
/// Stays differentiable with respect to the scale (QDQ graphs trained with learnable scales).
Kernel dequantizeKernel(const Node& node) {
  int64_t axis = node.attrInt("axis", 1);
  const Node* np = &node;
  return [axis, np](const KernelContext&, const std::vector<at::Tensor>& in,
                    std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    at::Tensor scale = checkedParam(*np, "x_scale", in[1], x, axis);
    at::Tensor d = x.to(at::kInt);
    if (in.size() > 2 && in[2].defined()) {
      GS_CHECK(in[2].scalar_type() == x.scalar_type(), np->describe(),
               ": x_zero_point must have the type of x");
      GS_CHECK(in[2].numel() == in[1].numel(), np->describe(),
               ": x_zero_point and x_scale must have the same shape");
      d = at::sub(d, checkedParam(*np, "x_zero_point", in[2], x, axis).to(at::kInt));
    }
    out[0] = at::mul(d.to(scale.scalar_type()), scale);
  };
}

/// DynamicQuantizeLinear (uint8): range [min(0, min x), max(0, max x)], scale = range / 255,
/// zero point = round(saturate(0 - min / scale)), y = QuantizeLinear(x, scale, zero point).
/// An all-zero range gives scale 1 (ONNX Runtime's choice; the spec formula would divide by 0).
Kernel dynamicQuantizeKernel(const Node&) {
  return [](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
    at::Tensor x = in[0].to(at::kFloat);
    float lo = 0.0f, hi = 0.0f;
    if (x.numel() > 0) {
      auto mm = at::aminmax(x);
      lo = std::min(0.0f, std::get<0>(mm).item<float>());
      hi = std::max(0.0f, std::get<1>(mm).item<float>());
    }
    float scale = hi == lo ? 1.0f : (hi - lo) / 255.0f;
    float zpf = std::nearbyint(std::clamp(0.0f - lo / scale, 0.0f, 255.0f));
    at::Tensor s = at::scalar_tensor(scale, x.options());
    at::Tensor zp = at::scalar_tensor(zpf, x.options()).to(at::kByte);
    out[0] = quantizeRounded(at::div(x, s), zp, at::kByte);
    out[1] = s;
    if (out.size() > 2) out[2] = zp;
  };
}

}  // namespace

void registerQuantOps(OpRegistry& r) {
  r.add(OpDef("QuantizeLinear").inputs(2, 3).attr("axis", AttrKind::Int).kernel(quantizeKernel));
  r.add(OpDef("DequantizeLinear").inputs(2, 3).attr("axis", AttrKind::Int).kernel(dequantizeKernel));
  r.add(OpDef("DynamicQuantizeLinear").inputs(1).outputs(3).kernel(dynamicQuantizeKernel));
  registerQLinearConv(r);
}

}  // namespace gs
