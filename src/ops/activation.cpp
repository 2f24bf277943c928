// Activation ops (Relu family, Sigmoid/Tanh family, Gelu, Mish, Softmax/LogSoftmax/Hardmax),
// Dropout and Identity. Float paths are single ATen ops so autograd works in train mode.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/WrapDimUtils.h>

#include <string>

#include "ops/kernel_util.h"
#include "ops/registry.h"
#include "support/error.h"

namespace gs {
namespace {

using T = const at::Tensor&;

/// ATen 1.13 lacks CPU Half kernels for nearly every activation (and BFloat16 Mish): such inputs
/// are computed in float32 and rounded back, which is also at least as accurate.
bool lowPrecision(const at::Tensor& t) {
  return t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16;
}

/// Applies `f` to x, through float32 for Half/BFloat16.
template <typename F>
at::Tensor viaFloat(const F& f, const at::Tensor& x) {
  return lowPrecision(x) ? f(x.to(at::kFloat)).to(x.scalar_type()) : f(x);
}

/// Builds a factory whose kernel applies `f(x, node-derived params)`; `parse` runs once per node.
template <typename Parse>
KernelFactory paramKernel(Parse parse) {
  return [parse](const Node& n) -> Kernel {
    auto f = parse(n);
    return [f](const KernelContext&, const std::vector<at::Tensor>& in,
               std::vector<at::Tensor>& out) { out[0] = viaFloat(f, in[0]); };
  };
}

/// PRelu(x, slope): slope broadcasts unidirectionally to x. When the slope is one value or one
/// value per channel (dim 1, as exporters emit [C,1,1]), ATen's fused prelu kernel is used;
/// otherwise the where/mul formula handles any broadcastable slope and integer dtypes.
at::Tensor preluOp(const at::Tensor& x, const at::Tensor& s) {
  if (lowPrecision(x)) return preluOp(x.to(at::kFloat), s.to(at::kFloat)).to(x.scalar_type());
  if (at::isFloatingType(x.scalar_type()) && s.scalar_type() == x.scalar_type() && x.dim() >= 1 &&
      s.dim() <= x.dim()) {
    if (s.numel() == 1) return at::prelu(x, s.reshape({1}));
    const int64_t k = 1 - (x.dim() - s.dim());  // slope dim aligned with x's dim 1
    if (x.dim() >= 2 && k >= 0 && s.size(k) == x.size(1) && s.numel() == x.size(1))
      return at::prelu(x, s.reshape({-1}));
  }
  return at::where(x.lt(0), at::mul(x, s), x);
}

/// Shrink: y = x + bias if x < -lambd, x - bias if x > lambd, else 0. Integer inputs are
/// computed in double and converted back (the attributes are floats).
at::Tensor shrink(const at::Tensor& x, double bias, double lambd) {
  if (at::isFloatingType(x.scalar_type())) {
    if (bias == lambd && lambd >= 0) return at::softshrink(x, lambd);
    if (bias == 0 && lambd >= 0) return at::hardshrink(x, lambd);
    return at::where(x.lt(-lambd), at::add(x, bias),
                     at::where(x.gt(lambd), at::sub(x, bias), at::zeros_like(x)));
  }
  at::Tensor d = x.to(at::kDouble);
  at::Tensor y =
      at::where(d.lt(-lambd), d + bias, at::where(d.gt(lambd), d - bias, at::zeros_like(d)));
  return y.to(x.scalar_type());
}

/// Hardmax: one-hot of the first maximum along `axis` (opset-13 form: a single axis).
at::Tensor hardmax(const at::Tensor& x, int64_t axis) {
  const int64_t ax = at::maybe_wrap_dim(axis, x.dim());
  at::Tensor idx = at::argmax(x, ax, /*keepdim=*/true);
  return at::zeros_like(x).scatter_(ax, idx, 1);
}

KernelFactory axisKernel(at::Tensor (*f)(const at::Tensor&, int64_t)) {
  return [f](const Node& n) -> Kernel {
    const int64_t axis = n.attrInt("axis", -1);
    return [f, axis](const KernelContext&, const std::vector<at::Tensor>& in,
                     std::vector<at::Tensor>& out) {
      out[0] = viaFloat([&](const at::Tensor& x) { return f(x, axis); }, in[0]);
    };
  };
}

/// Dropout(data, ratio?, training_mode?) -> (output, mask?). Drops when the executor is in train
/// mode or training_mode is true; otherwise output = data and mask is all true. Kept elements are
/// scaled by 1/(1-ratio). With a `seed` the node owns a generator seeded once (its stream
/// continues across runs, as ONNX Runtime does); without one ATen's default generator is used.
KernelFactory dropoutFactory() {
  return [](const Node& n) -> Kernel {
    c10::optional<at::Generator> gen;
    if (n.hasAttr("seed"))
      gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(n.attrInt("seed", 0)));
    const bool want_mask = n.numOutputs() > 1 && n.output(1) != nullptr;
    return [gen, want_mask](const KernelContext& ctx, const std::vector<at::Tensor>& in,
                            std::vector<at::Tensor>& out) {
      const at::Tensor& x = in[0];
      bool train = ctx.training;
      if (in.size() > 2 && in[2].defined()) {
        GS_CHECK(in[2].numel() == 1, "Dropout 'training_mode' must be a scalar, got ",
                 in[2].numel(), " elements");
        train = train || in[2].item().toBool();
      }
      double ratio = 0.5;
      if (train && in.size() > 1 && in[1].defined()) {
        GS_CHECK(in[1].numel() == 1, "Dropout 'ratio' must be a scalar, got ", in[1].numel(),
                 " elements");
        ratio = in[1].item().toDouble();
      }
      if (!train || ratio == 0.0) {
        out[0] = x;
        if (want_mask) out[1] = at::ones(x.sizes(), x.options().dtype(at::kBool));
        return;
      }
      GS_CHECK(ratio > 0.0 && ratio <= 1.0, "Dropout ratio must be in [0, 1], got ", ratio);
      if (ratio == 1.0) {  // everything dropped; 1/(1-ratio) would be infinite
        out[0] = at::mul(x, 0);
        if (want_mask) out[1] = at::zeros(x.sizes(), x.options().dtype(at::kBool));
        return;
      }
      at::Tensor keep = at::empty(x.sizes(), x.options().dtype(at::kFloat));
      keep.bernoulli_(1.0 - ratio, gen);
      if (want_mask) out[1] = keep.to(at::kBool);
      out[0] = at::mul(x, keep.mul_(1.0 / (1.0 - ratio)).to(x.scalar_type()));
    };
  };
}

void addUnary(OpRegistry& r, const char* name, at::Tensor (*f)(T)) {
  r.add(OpDef(name).inputs(1).kernel(unaryKernel([f](T x) { return viaFloat(f, x); })));
}

}  // namespace

void registerActivationOps(OpRegistry& r) {
  addUnary(r, "Relu", [](T x) { return at::relu(x); });
  addUnary(r, "Sigmoid", [](T x) { return at::sigmoid(x); });
  addUnary(r, "Tanh", [](T x) { return at::tanh(x); });
  addUnary(r, "HardSwish", [](T x) { return at::hardswish(x); });
  // Softplus: ATen switches to the identity above x = 20, where log1p(exp(x)) - x < 3e-9.
  addUnary(r, "Softplus", [](T x) { return at::softplus(x); });
  addUnary(r, "Softsign", [](T x) { return at::div(x, at::add(at::abs(x), 1)); });
  addUnary(r, "Mish", [](T x) { return at::mish(x); });
  r.add(OpDef("Identity").inputs(1).kernel(unaryKernel([](T x) { return x; })));

  r.add(OpDef("LeakyRelu")
            .inputs(1)
            .attr("alpha", AttrKind::Float)
            .kernel(paramKernel([](const Node& n) {
              const double a = n.attrFloat("alpha", 0.01f);
              return [a](T x) { return at::leaky_relu(x, a); };
            })));
  r.add(OpDef("PRelu").inputs(2).kernel(binaryKernel(preluOp)));
  r.add(OpDef("Elu").inputs(1).attr("alpha", AttrKind::Float).kernel(paramKernel([](const Node& n) {
    const double a = n.attrFloat("alpha", 1.0f);
    return [a](T x) { return at::elu(x, a); };
  })));
  r.add(OpDef("Selu")
            .inputs(1)
            .attr("alpha", AttrKind::Float)
            .attr("gamma", AttrKind::Float)
            .kernel(paramKernel([](const Node& n) {
              // Defaults are the float32 values of the spec's constants.
              const double a = n.attrFloat("alpha", 1.67326319217681884765625f);
              const double g = n.attrFloat("gamma", 1.05070102214813232421875f);
              return [a, g](T x) { return at::elu(x, a, g, 1.0); };
            })));
  r.add(
      OpDef("Celu").inputs(1).attr("alpha", AttrKind::Float).kernel(paramKernel([](const Node& n) {
        const double a = n.attrFloat("alpha", 1.0f);
        GS_CHECK(a != 0.0, n.describe(), ": attribute 'alpha' must be non-zero");
        return [a](T x) { return at::celu(x, a); };
      })));
  r.add(OpDef("HardSigmoid")
            .inputs(1)
            .attr("alpha", AttrKind::Float)
            .attr("beta", AttrKind::Float)
            .kernel(paramKernel([](const Node& n) {
              const double a = n.attrFloat("alpha", 0.2f), b = n.attrFloat("beta", 0.5f);
              return [a, b](T x) { return at::clamp(at::add(at::mul(x, a), b), 0.0, 1.0); };
            })));
  r.add(OpDef("ThresholdedRelu")
            .inputs(1)
            .attr("alpha", AttrKind::Float)
            .kernel(paramKernel([](const Node& n) {
              const double a = n.attrFloat("alpha", 1.0f);
              return [a](T x) { return at::threshold(x, a, 0); };  // y = x if x > a else 0
            })));
  r.add(OpDef("Shrink")
            .inputs(1)
            .attr("bias", AttrKind::Float)
            .attr("lambd", AttrKind::Float)
            .kernel(paramKernel([](const Node& n) {
              const double b = n.attrFloat("bias", 0.0f), l = n.attrFloat("lambd", 0.5f);
              return [b, l](T x) { return shrink(x, b, l); };
            })));
  // Gelu is ONNX opset 20; registered because exporters emit it. "tanh" is the approximation
  // 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3))), as in ONNX and ATen.
  r.add(OpDef("Gelu")
            .inputs(1)
            .attr("approximate", AttrKind::String)
            .kernel(paramKernel([](const Node& n) {
              const std::string ap = n.attrString("approximate", "none");
              GS_CHECK(ap == "none" || ap == "tanh", n.describe(),
                       ": attribute 'approximate' must be \"none\" or \"tanh\", got \"", ap, "\"");
              return [ap](T x) { return at::gelu(x, ap); };
            })));

  r.add(
      OpDef("Softmax").inputs(1).attr("axis", AttrKind::Int).kernel(axisKernel([](T x, int64_t a) {
        return at::softmax(x, a);
      })));
  r.add(OpDef("LogSoftmax")
            .inputs(1)
            .attr("axis", AttrKind::Int)
            .kernel(axisKernel([](T x, int64_t a) { return at::log_softmax(x, a); })));
  r.add(OpDef("Hardmax").inputs(1).attr("axis", AttrKind::Int).kernel(axisKernel(hardmax)));

  r.add(OpDef("Dropout")
            .inputs(1, 3)
            .outputs(1, 2)
            .attr("seed", AttrKind::Int)
            .kernel(dropoutFactory()));
}

}  // namespace gs
