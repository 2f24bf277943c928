// Kernels of gs::FakeQuant (observer-driven quantize-dequantize, STE) and gs::LsqQuant.
#include "quant/fake_quant_ops.h"

#include <ATen/ATen.h>

#include <cmath>

#include "ops/kernel_util.h"
#include "support/error.h"

namespace gs {
namespace quant {

QuantSpec specFromAttrs(const Node& n) {
  int64_t qmin = n.attr("quant_min").i(), qmax = n.attr("quant_max").i();
  GS_CHECK(qmin < qmax && qmax - qmin <= 255 && qmin >= -128 && qmax <= 255, n.describe(),
           ": quant_min / quant_max [", qmin, ", ", qmax, "] are not a grid of 2..8 bits");
  QuantSpec s;
  s.is_signed = qmin < 0;
  s.narrow_range = s.is_signed ? qmin == -qmax : qmin == 1;
  int64_t levels = qmax - qmin + 1 + (s.narrow_range ? 1 : 0);
  s.bits = 0;
  while ((int64_t{1} << s.bits) < levels) ++s.bits;
  GS_CHECK((int64_t{1} << s.bits) == levels && s.qmin() == qmin && s.qmax() == qmax,
           n.describe(), ": quant_min / quant_max [", qmin, ", ", qmax,
           "] are not a signed or unsigned 2..8-bit grid");
  s.symmetric = n.attrInt("symmetric", 0) != 0;
  s.group_size = n.attrInt("group_size", 0);
  s.axis = n.attrInt("axis", 0);
  s.granularity = s.group_size > 0 ? Granularity::PerGroup
                  : n.hasAttr("axis") ? Granularity::PerChannel
                                      : Granularity::PerTensor;
  return s;
}

}  // namespace quant

namespace {

using quant::QLayout;
using quant::QuantSpec;

bool disabled(const std::vector<at::Tensor>& in, size_t i) {
  return in.size() > i && in[i].defined() && in[i].item<double>() == 0.0;
}

Kernel fakeQuantKernel(const Node& node) {
  QuantSpec spec = quant::specFromAttrs(node);
  QLayout l = QLayout::of(spec);
  std::string obs = node.attrString("observer", "none");
  GS_CHECK(obs == "none" || obs == "minmax" || obs == "ema" || obs == "dynamic" ||
               obs == "dynamic_per_token",
           node.describe(), ": unknown observer '", obs,
           "' (expected none, minmax, ema, dynamic, dynamic_per_token)");
  double c = node.attrFloat("averaging_constant", 0.01f);
  bool dynamic = obs.rfind("dynamic", 0) == 0;
  GS_CHECK(dynamic || (node.hasInput(1) && node.hasInput(2)), node.describe(),
           ": scale and zero_point inputs are required unless observer is dynamic");
  GS_CHECK(obs != "ema" || (node.hasInput(4) && node.hasInput(5)), node.describe(),
           ": observer 'ema' needs running_min and running_max inputs (4, 5)");
  std::string what = node.describe();
  return [=](const KernelContext& ctx, const std::vector<at::Tensor>& in,
             std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    if (dynamic) {
      at::NoGradGuard ng;
      QuantSpec ds = spec;
      QLayout dl = l;
      at::Tensor mn, mx;
      if (obs == "dynamic_per_token") {
        at::Tensor xd = x.detach();
        mn = std::get<0>(at::aminmax(xd, -1, /*keepdim=*/true));
        mx = std::get<1>(at::aminmax(xd, -1, true));
        // keepdim layout broadcasts directly: treat as per-tensor for broadcastParam.
        quant::QParams qp = quant::computeQParams(mn, mx, ds);
        at::Tensor s = qp.scale, z = qp.zero_point;
        at::Tensor q = at::clamp(at::round(at::div(xd, s)) + z, static_cast<double>(l.qmin),
                                 static_cast<double>(l.qmax));
        at::Tensor y = (q - z) * s;
        out[0] = x.requires_grad() ? y + (x - x.detach()) : y;
        return;
      }
      ds.granularity = quant::Granularity::PerTensor;
      dl.axis = -1;
      auto mm = quant::reduceMinMax(x, ds);
      quant::QParams qp = quant::computeQParams(mm.first, mm.second, ds);
      out[0] = quant::fakeQuantize(x, qp.scale, qp.zero_point, dl, what);
      return;
    }
    if (ctx.training && obs != "none") {
      at::NoGradGuard ng;
      auto [mn, mx] = quant::reduceMinMax(x, spec);
      if (obs == "ema") {
        at::Tensor rmin = in[4], rmax = in[5];
        bool fresh = at::equal(rmin, rmax);
        if (fresh) {
          rmin.copy_(mn.reshape(rmin.sizes()));
          rmax.copy_(mx.reshape(rmax.sizes()));
        } else {
          rmin.add_(c * (mn.reshape(rmin.sizes()) - rmin));
          rmax.add_(c * (mx.reshape(rmax.sizes()) - rmax));
        }
        mn = rmin;
        mx = rmax;
      }
      quant::QParams qp = quant::computeQParams(mn, mx, spec);
      in[1].copy_(qp.scale.reshape(in[1].sizes()));
      in[2].copy_(qp.zero_point.reshape(in[2].sizes()));
    }
    if (disabled(in, 3)) {
      out[0] = x;
      return;
    }
    out[0] = quant::fakeQuantize(x, in[1], in[2], l, what);
  };
}

Kernel lsqQuantKernel(const Node& node) {
  QuantSpec spec = quant::specFromAttrs(node);
  QLayout l = QLayout::of(spec);
  std::string what = node.describe();
  bool per_sample = node.attrInt("per_sample", 0) != 0;
  return [=](const KernelContext&, const std::vector<at::Tensor>& in,
             std::vector<at::Tensor>& out) {
    if (disabled(in, 2)) {
      out[0] = in[0];
      return;
    }
    out[0] = quant::lsqQuantize(in[0], in[1], l, what, per_sample);
  };
}

}  // namespace

void registerGsQuantOps(OpRegistry& r) {
  r.add(OpDef("FakeQuant", "gs")
            .inputs(1, 6)
            .attr("quant_min", AttrKind::Int, true)
            .attr("quant_max", AttrKind::Int, true)
            .attr("symmetric", AttrKind::Int)
            .attr("axis", AttrKind::Int)
            .attr("group_size", AttrKind::Int)
            .attr("observer", AttrKind::String)
            .attr("averaging_constant", AttrKind::Float)
            .kernel(fakeQuantKernel));
  r.add(OpDef("LsqQuant", "gs")
            .inputs(2, 3)
            .attr("quant_min", AttrKind::Int, true)
            .attr("quant_max", AttrKind::Int, true)
            .attr("symmetric", AttrKind::Int)
            .attr("axis", AttrKind::Int)
            .attr("group_size", AttrKind::Int)
            .attr("per_sample", AttrKind::Int)
            .kernel(lsqQuantKernel));
}

}  // namespace gs
