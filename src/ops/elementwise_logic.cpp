// Elementwise comparison, logical, bit-shift, NaN/Inf tests, Where, Cast and CastLike ops.
#include <ATen/ATen.h>

#include "ir/dtype.h"
#include "ops/kernel_util.h"
#include "ops/registry.h"
#include "support/error.h"

namespace gs {

void registerElementwiseLogicOps(OpRegistry& r);

namespace {

using T = const at::Tensor&;

/// ONNX logical ops take bool tensors; a non-bool input (not valid ONNX, but cheap to accept)
/// is read as "non-zero is true".
at::Tensor asBool(const at::Tensor& t) { return t.scalar_type() == at::kBool ? t : t.ne(0); }

KernelFactory isInfFactory() {
  return [](const Node& n) -> Kernel {
    const bool neg = n.attrInt("detect_negative", 1) != 0;
    const bool pos = n.attrInt("detect_positive", 1) != 0;
    return [neg, pos](const KernelContext&, const std::vector<at::Tensor>& in,
                      std::vector<at::Tensor>& out) {
      const at::Tensor& x = in[0];
      if (neg && pos)
        out[0] = at::isinf(x);
      else if (pos)
        out[0] = at::isposinf(x);
      else if (neg)
        out[0] = at::isneginf(x);
      else
        out[0] = at::zeros(x.sizes(), x.options().dtype(at::kBool));
    };
  };
}

/// BitShift on unsigned ints. ATen holds uint8 only (uint16/32/64 are rejected when tensors
/// are loaded); shifting by >= the bit width yields 0, as for unsigned C shifts done in a
/// wider type and truncated.
KernelFactory bitShiftFactory() {
  return [](const Node& n) -> Kernel {
    const std::string dir = n.attr("direction").s();
    GS_CHECK(dir == "LEFT" || dir == "RIGHT", n.describe(),
             ": attribute 'direction' must be \"LEFT\" or \"RIGHT\", got \"", dir, "\"");
    const bool left = dir == "LEFT";
    return [left](const KernelContext&, const std::vector<at::Tensor>& in,
                  std::vector<at::Tensor>& out) {
      const at::Tensor& x = in[0];
      const at::Tensor& s = in[1];
      at::Tensor y = left ? at::bitwise_left_shift(x, s) : at::bitwise_right_shift(x, s);
      const int64_t bits = static_cast<int64_t>(x.element_size()) * 8;
      // Shift counts >= width are undefined in C++; define them as 0 (all bits shifted out).
      out[0] = at::where(s.ge(bits), at::zeros({}, y.options()), y);
    };
  };
}

/// Where(cond, X, Y); cond is bool in valid ONNX.
at::Tensor whereOp(const at::Tensor& c, const at::Tensor& x, const at::Tensor& y) {
  return at::where(asBool(c), x, y);
}

/// Cast(x, to): C-style conversion. float->int truncates toward zero; any non-zero (and NaN)
/// becomes true in bool; float->float16/bfloat16 rounds to nearest even.
KernelFactory castFactory() {
  return [](const Node& n) -> Kernel {
    const Attribute& a = n.attr("to");  // throws naming the node when missing
    GS_CHECK(a.is(AttrKind::Int), n.describe(), ": attribute 'to' must be int, got ",
             attrKindName(a.kind()));
    const int64_t to = a.i();
    GS_CHECK(to >= 0 && to <= INT32_MAX && isKnownDTypeCode(static_cast<int32_t>(to)), n.describe(),
             ": attribute 'to' = ", to, " is not an ONNX data type");
    at::ScalarType st;
    try {
      st = toScalarType(static_cast<DType>(to));
    } catch (const Error& e) {
      GS_FAIL(n.describe(), ": cannot cast: ", e.what());
    }
    return [st](const KernelContext&, const std::vector<at::Tensor>& in,
                std::vector<at::Tensor>& out) { out[0] = in[0].to(st); };
  };
}

void addBinary(OpRegistry& r, const char* name, at::Tensor (*f)(T, T)) {
  r.add(OpDef(name).inputs(2).kernel(binaryKernel(f)));
}

}  // namespace

void registerElementwiseLogicOps(OpRegistry& r) {
  // Comparisons return kBool.
  addBinary(r, "Equal", [](T a, T b) { return at::eq(a, b); });
  addBinary(r, "Less", [](T a, T b) { return at::lt(a, b); });
  addBinary(r, "Greater", [](T a, T b) { return at::gt(a, b); });
  addBinary(r, "LessOrEqual", [](T a, T b) { return at::le(a, b); });
  addBinary(r, "GreaterOrEqual", [](T a, T b) { return at::ge(a, b); });

  addBinary(r, "And", [](T a, T b) { return at::logical_and(asBool(a), asBool(b)); });
  addBinary(r, "Or", [](T a, T b) { return at::logical_or(asBool(a), asBool(b)); });
  addBinary(r, "Xor", [](T a, T b) { return at::logical_xor(asBool(a), asBool(b)); });
  r.add(OpDef("Not").inputs(1).kernel(unaryKernel([](T x) { return at::logical_not(x); })));
  r.add(OpDef("BitShift")
            .inputs(2)
            .attr("direction", AttrKind::String, true)
            .kernel(bitShiftFactory()));

  r.add(OpDef("IsNaN").inputs(1).kernel(unaryKernel([](T x) { return at::isnan(x); })));
  r.add(OpDef("IsInf")
            .inputs(1)
            .attr("detect_negative", AttrKind::Int)
            .attr("detect_positive", AttrKind::Int)
            .kernel(isInfFactory()));

  r.add(OpDef("Where").inputs(3).kernel([](const Node&) -> Kernel {
    return [](const KernelContext&, const std::vector<at::Tensor>& in,
              std::vector<at::Tensor>& out) { out[0] = whereOp(in[0], in[1], in[2]); };
  }));

  r.add(OpDef("Cast").inputs(1).attr("to", AttrKind::Int, true).kernel(castFactory()));
  r.add(OpDef("CastLike").inputs(2).kernel(binaryKernel([](T x, T like) {
    return x.to(like.scalar_type());
  })));
}

}  // namespace gs
