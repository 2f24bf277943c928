// com.microsoft::FusedConv (ONNX Runtime contrib op): Conv + optional sum input + activation, the
// deployment marker written by the conv-activation fusion pass (src/passes).
#include <ATen/ATen.h>

#include <algorithm>

#include "ops/registry.h"
#include "support/error.h"

namespace gs {
namespace {

/// y = act(Conv(X, W, B) + Z). The Conv part reuses the registered Conv kernel (same attributes);
/// activation and activation_params follow ORT's contrib-op spec: Relu, Tanh, Sigmoid,
/// LeakyRelu [alpha], Clip [min, max], HardSigmoid [alpha, beta].
Kernel makeFusedConv(const Node& n) {
  const OpSchema* conv = OpRegistry::global().find("", "Conv");
  GS_ASSERT(conv && conv->kernel, "Conv kernel missing");
  Kernel ck = conv->kernel(n);
  std::string act = n.attrString("activation", "");
  std::vector<float> p = n.attrFloats("activation_params");
  auto need = [&](size_t k) {
    GS_CHECK(p.size() == k, n.describe(), ": activation ", act, " needs ", k,
             " activation_params, got ", p.size());
  };
  if (act == "LeakyRelu") {
    need(1);
  } else if (act == "Clip" || act == "HardSigmoid") {
    need(2);
  } else {
    GS_CHECK(act == "Relu" || act == "Tanh" || act == "Sigmoid" || act.empty(), n.describe(),
             ": unsupported activation '", act,
             "' (Relu, Tanh, Sigmoid, LeakyRelu, Clip, HardSigmoid)");
  }
  return [ck, act, p](const KernelContext& ctx, const std::vector<at::Tensor>& in,
                      std::vector<at::Tensor>& out) {
    std::vector<at::Tensor> cin(in.begin(), in.begin() + std::min<size_t>(in.size(), 3));
    ck(ctx, cin, out);
    at::Tensor y = out[0];
    if (in.size() > 3 && in[3].defined()) y = y + in[3];
    if (act == "Relu") {
      y = at::relu(y);
    } else if (act == "Tanh") {
      y = at::tanh(y);
    } else if (act == "Sigmoid") {
      y = at::sigmoid(y);
    } else if (act == "LeakyRelu") {
      y = at::leaky_relu(y, p[0]);
    } else if (act == "Clip") {
      y = at::clamp(y, p[0], p[1]);
    } else if (act == "HardSigmoid") {
      y = at::clamp(y * p[0] + p[1], 0.0, 1.0);
    }
    out[0] = y;
  };
}

}  // namespace

void registerFusedOps(OpRegistry& r) {
  r.add(OpDef("FusedConv", "com.microsoft")
            .inputs(2, 4)
            .attr("auto_pad", AttrKind::String)
            .attr("dilations", AttrKind::Ints)
            .attr("group", AttrKind::Int)
            .attr("kernel_shape", AttrKind::Ints)
            .attr("pads", AttrKind::Ints)
            .attr("strides", AttrKind::Ints)
            .attr("activation", AttrKind::String)
            .attr("activation_params", AttrKind::Floats)
            .kernel(makeFusedConv));
}

}  // namespace gs
