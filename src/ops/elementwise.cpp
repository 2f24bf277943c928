// Elementwise arithmetic and math ops: Add..Div, Pow, Mod, unary math, variadic Sum/Mean/Max/Min,
// Clip (ONNX multidirectional broadcasting, opset-17 semantics).
#include <ATen/ATen.h>

#include "ops/kernel_util.h"
#include "ops/registry.h"
#include "support/error.h"

namespace gs {

// Comparison, logical, bit-shift, Where and Cast ops live in elementwise_logic.cpp; they are part
// of this family and registered from registerElementwiseOps below.
void registerElementwiseLogicOps(OpRegistry& r);

namespace {

/// ATen 1.13 lacks CPU Half kernels for most float math (and some BFloat16 ones): such inputs are
/// computed in float32 and rounded back, which is also at least as accurate.
bool lowPrecision(const at::Tensor& t) {
  return t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16;
}

bool isIntegral(const at::Tensor& t) {
  return at::isIntegralType(t.scalar_type(), /*includeBool=*/true);
}

/// Div: integer division truncates toward zero like C (ATen's true division would return float).
at::Tensor divide(const at::Tensor& a, const at::Tensor& b) {
  if (isIntegral(a) && isIntegral(b)) return at::div(a, b, "trunc");
  return at::div(a, b);
}

/// The value of input `i` when it is a frozen one-element parameter (a constant for the life of
/// the executor, e.g. an imported Constant), so kernels need not read it on every run.
c10::optional<at::Scalar> frozenScalar(const Node& n, size_t i) {
  const Value* v = n.input(i);
  if (v && v->isParam() && !v->trainable() && v->data().defined() && v->data().numel() == 1)
    return v->data().item();
  return c10::nullopt;
}

/// Pow(X, Y): Y may have another dtype than X; the result always has X's dtype.
/// An integer base with a floating or negative exponent is computed in double and truncated (as
/// C's static_cast of std::pow does, where ATen would refuse negative integer powers). A
/// one-element exponent that does not raise the rank goes through the Scalar overload, which has
/// fast paths (x^2, x^0.5, ...) and skips broadcasting; `fixed` is its value if it is frozen.
at::Tensor power(const at::Tensor& base, const at::Tensor& ex,
                 const c10::optional<at::Scalar>& fixed) {
  const at::ScalarType bt = base.scalar_type();
  c10::optional<at::Scalar> s;
  if (ex.numel() == 1 && ex.dim() <= base.dim() && !ex.requires_grad())
    s = fixed ? *fixed : ex.item();
  if (at::isIntegralType(bt, /*includeBool=*/true)) {
    const bool via_double =
        at::isFloatingType(ex.scalar_type()) ||
        (s ? s->toDouble() < 0 : at::isSignedType(ex.scalar_type()) && ex.lt(0).any().item<bool>());
    if (via_double) {
      at::Tensor b = base.to(at::kDouble);
      return (s ? at::pow(b, s->toDouble()) : at::pow(b, ex.to(at::kDouble))).to(bt);
    }
  }
  at::Tensor r = s ? at::pow(base, *s) : at::pow(base, ex);
  return r.scalar_type() == bt ? r : r.to(bt);
}

KernelFactory powFactory() {
  return [](const Node& n) -> Kernel {
    c10::optional<at::Scalar> fixed = frozenScalar(n, 1);
    return [fixed](const KernelContext&, const std::vector<at::Tensor>& in,
                   std::vector<at::Tensor>& out) { out[0] = power(in[0], in[1], fixed); };
  };
}

KernelFactory modFactory() {
  return [](const Node& n) -> Kernel {
    int64_t fmod = n.attrInt("fmod", 0);
    GS_CHECK(fmod == 0 || fmod == 1, n.describe(), ": attribute 'fmod' must be 0 or 1, got ", fmod);
    if (fmod == 1)  // C fmod: the remainder has the sign of the dividend.
      return [](const KernelContext&, const std::vector<at::Tensor>& in,
                std::vector<at::Tensor>& out) { out[0] = at::fmod(in[0], in[1]); };
    // Integer mod: the remainder has the sign of the divisor (Python/NumPy %). The spec asks
    // fmod=1 for floats; for fmod=0 on floats we follow numpy.mod rather than reject the model.
    return [](const KernelContext&, const std::vector<at::Tensor>& in,
              std::vector<at::Tensor>& out) { out[0] = at::remainder(in[0], in[1]); };
  };
}

/// Variadic op folding a binary function over all inputs with broadcasting.
template <typename F>
KernelFactory variadicKernel(F f) {
  return [f](const Node&) -> Kernel {
    return
        [f](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
          at::Tensor r = in[0];
          for (size_t i = 1; i < in.size(); ++i) r = f(r, in[i]);
          out[0] = r;
        };
  };
}

KernelFactory meanFactory() {
  return [](const Node&) -> Kernel {
    return
        [](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
          if (in.size() == 1) {
            out[0] = in[0];
            return;
          }
          at::Tensor r = at::add(in[0], in[1]);
          for (size_t i = 2; i < in.size(); ++i) r = at::add(r, in[i]);
          out[0] = at::div(r, static_cast<double>(in.size()));
        };
  };
}

/// Reads an optional one-element bound input of Clip as a Scalar of the tensor's own type.
c10::optional<at::Scalar> clipBound(const std::vector<at::Tensor>& in, size_t i,
                                    const c10::optional<at::Scalar>& fixed, const char* what) {
  if (fixed) return fixed;
  if (in.size() <= i || !in[i].defined()) return c10::nullopt;
  GS_CHECK(in[i].numel() == 1, "Clip '", what, "' must be a scalar, got ", in[i].numel(),
           " elements");
  return in[i].item();
}

/// Clip(x, min?, max?): min/max are optional scalar inputs (read once if frozen); when
/// min > max every element becomes max (clamp applies min first, then max), as the spec says.
KernelFactory clipFactory() {
  return [](const Node& n) -> Kernel {
    const c10::optional<at::Scalar> fixed_lo = frozenScalar(n, 1), fixed_hi = frozenScalar(n, 2);
    return [fixed_lo, fixed_hi](const KernelContext&, const std::vector<at::Tensor>& in,
                                std::vector<at::Tensor>& out) {
      const c10::optional<at::Scalar> lo = clipBound(in, 1, fixed_lo, "min"),
                                      hi = clipBound(in, 2, fixed_hi, "max");
      const at::Tensor& x = in[0];
      if (!lo && !hi) {
        out[0] = x;
        return;
      }
      out[0] = lowPrecision(x) ? at::clamp(x.to(at::kFloat), lo, hi).to(x.scalar_type())
                               : at::clamp(x, lo, hi);
    };
  };
}

using Unary = at::Tensor (*)(const at::Tensor&);

/// Registers a unary float op; Half/BFloat16 inputs go through float32 (see lowPrecision).
void addUnary(OpRegistry& r, const char* name, Unary f) {
  r.add(OpDef(name).inputs(1).kernel(unaryKernel([f](const at::Tensor& x) {
    return lowPrecision(x) ? f(x.to(at::kFloat)).to(x.scalar_type()) : f(x);
  })));
}

}  // namespace

void registerElementwiseOps(OpRegistry& r) {
  using T = const at::Tensor&;
  r.add(OpDef("Add").inputs(2).kernel(binaryKernel([](T a, T b) { return at::add(a, b); })));
  r.add(OpDef("Sub").inputs(2).kernel(binaryKernel([](T a, T b) { return at::sub(a, b); })));
  r.add(OpDef("Mul").inputs(2).kernel(binaryKernel([](T a, T b) { return at::mul(a, b); })));
  r.add(OpDef("Div").inputs(2).kernel(binaryKernel(divide)));
  r.add(OpDef("Pow").inputs(2).kernel(powFactory()));
  r.add(OpDef("Mod").inputs(2).attr("fmod", AttrKind::Int).kernel(modFactory()));

  addUnary(r, "Neg", [](T x) { return at::neg(x); });
  addUnary(r, "Abs", [](T x) { return at::abs(x); });
  addUnary(r, "Sqrt", [](T x) { return at::sqrt(x); });
  addUnary(r, "Exp", [](T x) { return at::exp(x); });
  addUnary(r, "Log", [](T x) { return at::log(x); });
  addUnary(r, "Reciprocal", [](T x) { return at::reciprocal(x); });
  addUnary(r, "Floor", [](T x) { return at::floor(x); });
  addUnary(r, "Ceil", [](T x) { return at::ceil(x); });
  // at::round uses nearbyint: halves round to even, as ONNX Round requires.
  addUnary(r, "Round", [](T x) { return at::round(x); });
  addUnary(r, "Sign", [](T x) { return at::sign(x); });
  addUnary(r, "Sin", [](T x) { return at::sin(x); });
  addUnary(r, "Cos", [](T x) { return at::cos(x); });
  addUnary(r, "Tan", [](T x) { return at::tan(x); });
  addUnary(r, "Asin", [](T x) { return at::asin(x); });
  addUnary(r, "Acos", [](T x) { return at::acos(x); });
  addUnary(r, "Atan", [](T x) { return at::atan(x); });
  addUnary(r, "Sinh", [](T x) { return at::sinh(x); });
  addUnary(r, "Cosh", [](T x) { return at::cosh(x); });
  addUnary(r, "Asinh", [](T x) { return at::asinh(x); });
  addUnary(r, "Acosh", [](T x) { return at::acosh(x); });
  addUnary(r, "Atanh", [](T x) { return at::atanh(x); });
  addUnary(r, "Erf", [](T x) { return at::erf(x); });

  // Max/Min propagate NaN (at::maximum/minimum, like numpy.maximum and ONNX's reference).
  r.add(OpDef("Sum").inputs(1, -1).kernel(variadicKernel([](T a, T b) { return at::add(a, b); })));
  r.add(OpDef("Mean").inputs(1, -1).kernel(meanFactory()));
  r.add(OpDef("Max").inputs(1, -1).kernel(
      variadicKernel([](T a, T b) { return at::maximum(a, b); })));
  r.add(OpDef("Min").inputs(1, -1).kernel(
      variadicKernel([](T a, T b) { return at::minimum(a, b); })));
  r.add(OpDef("Clip").inputs(1, 3).kernel(clipFactory()));

  registerElementwiseLogicOps(r);
}

}  // namespace gs
