// Elementwise ops: numbers against closed forms, std:: math and ONNX conformance-case values.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "ir/graph.h"
#include "op_test_util.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace gs {
namespace {

using namespace gs::test;  // NOLINT: shared op-test helpers

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

TEST(OpsElementwise, ArithmeticBroadcasts) {
  at::Tensor a = f32({1, 2, 3, 4, 5, 6}).reshape({2, 3});
  at::Tensor b = f32({10, 20, 40});
  EXPECT_TENSOR_EQ(run1("Add", {a, b}), f32({11, 22, 43, 14, 25, 46}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(run1("Sub", {a, b}), f32({-9, -18, -37, -6, -15, -34}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(run1("Mul", {b, a}), f32({10, 40, 120, 40, 100, 240}).reshape({2, 3}));
  EXPECT_TENSOR_NEAR(run1("Div", {a, b}),
                     f32({0.1f, 0.1f, 0.075f, 0.4f, 0.25f, 0.15f}).reshape({2, 3}), 1e-6);
  // 0-d with [2,1] -> [2,1]; [2,1] with [3] -> [2,3]
  EXPECT_TENSOR_EQ(run1("Add", {at::tensor(1.5f), f32({1, 2}).reshape({2, 1})}),
                   f32({2.5f, 3.5f}).reshape({2, 1}));
  EXPECT_TENSOR_EQ(run1("Mul", {f32({1, 2}).reshape({2, 1}), f32({1, 2, 3})}),
                   f32({1, 2, 3, 2, 4, 6}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(run1("Add", {u8({250, 3}), u8({10, 4})}), u8({4, 7}));  // uint8 wraps
}

TEST(OpsElementwise, IntegerDivTruncatesTowardZero) {
  EXPECT_TENSOR_EQ(run1("Div", {i32({7, -7, 7, -7, 6}), i32({2, 2, -2, -2, 3})}),
                   i32({3, -3, -3, 3, 2}));
  EXPECT_TENSOR_EQ(run1("Div", {i64({-9, 9}), i64({4, 4})}), i64({-2, 2}));
  EXPECT_TENSOR_EQ(run1("Div", {u8({200, 7}), u8({3, 2})}), u8({66, 3}));
  EXPECT_TENSOR_EQ(run1("Div", {f32({3, 4}), f32({1, 2})}), f32({3, 2}));  // test_div_example
  EXPECT_THROW(run1("Div", {i32({1}), i32({0})}), Error);
}

TEST(OpsElementwise, ModSignFollowsDivisorOrDividend) {
  // test_mod_mixed_sign_int32 / int8 (fmod=0: sign of the divisor).
  EXPECT_TENSOR_EQ(run1("Mod", {i32({-4, 7, 5, 4, -7, 8}), i32({2, -3, 8, -2, 3, 5})}),
                   i32({0, -2, 5, 0, 2, 3}));
  EXPECT_TENSOR_EQ(run1("Mod", {i8({-4, 7, 5, 4, -7, 8}), i8({2, -3, 8, -2, 3, 5})}),
                   i8({0, -2, 5, 0, 2, 3}));
  // test_mod_int64_fmod (fmod=1: sign of the dividend, like C).
  EXPECT_TENSOR_EQ(
      run1("Mod", {i64({-4, 7, 5, 4, -7, 8}), i64({2, -3, 8, -2, 3, 5})}, {{"fmod", 1}}),
      i64({0, 1, 5, 0, -1, 3}));
  // test_mod_mixed_sign_float32.
  EXPECT_TENSOR_NEAR(run1("Mod",
                          {f32({-4.3f, 7.2f, 5.0f, 4.3f, -7.2f, 8.0f}),
                           f32({2.1f, -3.4f, 8.0f, -2.1f, 3.4f, 5.0f})},
                          {{"fmod", 1}}),
                     f32({-0.10000038f, 0.39999962f, 5.0f, 0.10000038f, -0.39999962f, 3.0f}), 1e-6);
  // Broadcast divisor [1].
  EXPECT_TENSOR_EQ(run1("Mod", {i32({-10, 3, 15, -14}), i32({7})}), i32({4, 3, 1, 0}));
  EXPECT_THROW(run1("Mod", {i32({1}), i32({1})}, {{"fmod", 2}}), Error);
}

TEST(OpsElementwise, PowResultHasBaseDtype) {
  EXPECT_TENSOR_EQ(run1("Pow", {i32({1, 2, 3}), f32({4, 5, 6})}),
                   i32({1, 32, 729}));  // test_pow_types_int32_float32
  EXPECT_TENSOR_EQ(run1("Pow", {f32({1, 2, 3}), i64({4, 5, 6})}),
                   f32({1, 32, 729}));  // test_pow_types_float32_int64
  EXPECT_TENSOR_EQ(run1("Pow", {i64({2, 3, 10}), i64({3, 2, 0})}), i64({8, 9, 1}));
  EXPECT_TENSOR_EQ(run1("Pow", {i32({2, 3}), f32({0.5f, 0.5f})}), i32({1, 1}));  // sqrt truncated
  EXPECT_TENSOR_EQ(run1("Pow", {f32({1, 2, 3, 4, 5, 6}).reshape({2, 3}), f32({1, 2, 3})}),
                   f32({1, 4, 27, 4, 25, 216}).reshape({2, 3}));  // test_pow_bcast_array
  // One-element exponent: 0-d keeps the base shape; [1,1] broadcasts the rank up.
  EXPECT_TENSOR_EQ(run1("Pow", {f32({-2, 3}), at::tensor(2.0f)}), f32({4, 9}));
  EXPECT_TENSOR_EQ(run1("Pow", {f32({4, 9}), f32({0.5f}).reshape({1, 1})}),
                   f32({2, 3}).reshape({1, 2}));
  // Negative integer exponents: computed in double and truncated (ATen alone refuses them).
  EXPECT_TENSOR_EQ(run1("Pow", {i32({2, 1, -1, 4}), i32({-1})}), i32({0, 1, -1, 0}));
  EXPECT_TENSOR_EQ(run1("Pow", {i64({2, 3, -2}), i64({-1, 2, -2})}), i64({0, 9, 0}));
  at::Tensor h = run1("Pow", {f32({1.5f, 2.0f}).to(at::kHalf), f32({2, 3})});
  EXPECT_TENSOR_EQ(h, f32({2.25f, 8.0f}).to(at::kHalf));
}

TEST(OpsElementwise, UnaryMathMatchesStdMath) {
  struct Case {
    const char* op;
    std::function<double(double)> ref;
    std::function<double(double)> domain;  // maps a N(0,1) sample into the op's domain
  };
  auto id = [](double x) { return x; };
  auto pos = [](double x) { return std::abs(x) + 0.1; };
  auto unit = [](double x) { return std::tanh(x) * 0.95; };
  auto geq1 = [](double x) { return 1.0 + std::abs(x); };
  const std::vector<Case> cases = {
      {"Neg", [](double x) { return -x; }, id},
      {"Abs", [](double x) { return std::abs(x); }, id},
      {"Sqrt", [](double x) { return std::sqrt(x); }, pos},
      {"Exp", [](double x) { return std::exp(x); }, id},
      {"Log", [](double x) { return std::log(x); }, pos},
      {"Reciprocal", [](double x) { return 1.0 / x; }, pos},
      {"Floor", [](double x) { return std::floor(x); }, [](double x) { return 3 * x; }},
      {"Ceil", [](double x) { return std::ceil(x); }, [](double x) { return 3 * x; }},
      {"Sin", [](double x) { return std::sin(x); }, id},
      {"Cos", [](double x) { return std::cos(x); }, id},
      {"Tan", [](double x) { return std::tan(x); }, unit},
      {"Asin", [](double x) { return std::asin(x); }, unit},
      {"Acos", [](double x) { return std::acos(x); }, unit},
      {"Atan", [](double x) { return std::atan(x); }, id},
      {"Sinh", [](double x) { return std::sinh(x); }, id},
      {"Cosh", [](double x) { return std::cosh(x); }, id},
      {"Asinh", [](double x) { return std::asinh(x); }, id},
      {"Acosh", [](double x) { return std::acosh(x); }, geq1},
      {"Atanh", [](double x) { return std::atanh(x); }, unit},
      {"Erf", [](double x) { return std::erf(x); }, id},
  };
  at::Tensor z = test::randn({3, 7}, 11).to(at::kDouble);
  for (const Case& c : cases) {
    at::Tensor x = z.clone();
    double* p = x.data_ptr<double>();
    for (int64_t i = 0; i < x.numel(); ++i) p[i] = c.domain(p[i]);
    x = x.to(at::kFloat).to(at::kDouble);  // the reference sees the same float inputs
    at::Tensor want = x.clone();
    double* w = want.data_ptr<double>();
    for (int64_t i = 0; i < want.numel(); ++i) w[i] = c.ref(w[i]);
    SCOPED_TRACE(c.op);
    EXPECT_TENSOR_NEAR(run1(c.op, {x.to(at::kFloat)}), want.to(at::kFloat), 2e-6);
  }
}

TEST(OpsElementwise, HalfAndBFloat16Inputs) {
  // ATen 1.13 lacks CPU Half kernels for most float math; results must equal float32 math
  // rounded back to the input dtype.
  at::Tensor x = test::randn({2, 5}, 13).abs() * 0.9 + 0.05;  // inside every op's domain
  for (at::ScalarType st : {at::kHalf, at::kBFloat16}) {
    at::Tensor xl = x.to(st), xf = xl.to(at::kFloat);
    for (const char* op : {"Neg",  "Abs",   "Sqrt", "Exp",  "Log",   "Reciprocal", "Floor",
                           "Ceil", "Round", "Sign", "Sin",  "Cos",   "Tan",        "Asin",
                           "Acos", "Atan",  "Sinh", "Cosh", "Asinh", "Atanh",      "Erf"}) {
      SCOPED_TRACE(op);
      EXPECT_TENSOR_EQ(run1(op, {xl}), run1(op, {xf}).to(st));
    }
    EXPECT_TENSOR_EQ(run1("Acosh", {xl + 1}), run1("Acosh", {(xl + 1).to(at::kFloat)}).to(st));
    EXPECT_TENSOR_EQ(run1("Clip", {xl, at::tensor(0.3f).to(st), at::tensor(0.6f).to(st)}),
                     at::clamp(xf, 0.3f, 0.6f).to(st));
    EXPECT_TENSOR_EQ(run1("Max", {xl, at::tensor(0.5f).to(st)}), at::clamp_min(xf, 0.5f).to(st));
    EXPECT_TENSOR_EQ(run1("Mod", {xl, at::tensor(0.25f).to(st)}, {{"fmod", 1}}),
                     at::fmod(xf, 0.25f).to(st));
  }
}

TEST(OpsElementwise, RoundHalfToEvenAndSign) {
  // test_round
  EXPECT_TENSOR_EQ(run1("Round", {f32({0.1f, 0.5f, 0.9f, 1.2f, 1.5f, 1.8f, 2.3f, 2.5f, 2.7f, -1.1f,
                                       -1.5f, -1.9f, -2.2f, -2.5f, -2.8f})}),
                   f32({0, 0, 1, 1, 2, 2, 2, 2, 3, -1, -2, -2, -2, -2, -3}));
  EXPECT_TENSOR_EQ(run1("Sign", {f32({-5, -0.5f, 0, 2})}), f32({-1, -1, 0, 1}));
  EXPECT_TENSOR_EQ(run1("Sign", {i32({-7, 0, 9})}), i32({-1, 0, 1}));
  EXPECT_TENSOR_EQ(run1("Abs", {i64({-7, 0, 9})}), i64({7, 0, 9}));
  EXPECT_TENSOR_EQ(run1("Neg", {i8({-7, 0, 9})}), i8({7, 0, -9}));
}

TEST(OpsElementwise, VariadicBroadcastAndNaN) {
  at::Tensor a = f32({3, 2, 1}), b = f32({1, 4, 4}), c = f32({2, 5, 0});
  EXPECT_TENSOR_EQ(run1("Max", {a, b, c}), f32({3, 5, 4}));  // test_max_example (c[2] = 3 there)
  EXPECT_TENSOR_EQ(run1("Min", {a, b, c}), f32({1, 2, 0}));  // test_min_example
  EXPECT_TENSOR_EQ(run1("Sum", {f32({3, 0, 2}), f32({1, 3, 4}), f32({2, 6, 6})}), f32({6, 9, 12}));
  EXPECT_TENSOR_EQ(run1("Mean", {f32({3, 0, 2}), f32({1, 3, 4}), f32({2, 6, 6})}), f32({2, 3, 4}));
  // One input: identity.
  EXPECT_TENSOR_EQ(run1("Max", {a}), a);
  EXPECT_TENSOR_EQ(run1("Mean", {a}), a);
  // Broadcasting across three inputs: [2,1], [3], 0-d -> [2,3].
  at::Tensor col = f32({1, 10}).reshape({2, 1}), row = f32({0, 5, 20}), s = at::tensor(4.0f);
  EXPECT_TENSOR_EQ(run1("Max", {col, row, s}), f32({4, 5, 20, 10, 10, 20}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(run1("Min", {col, row, s}), f32({0, 1, 1, 0, 4, 4}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(run1("Sum", {col, row, s}), f32({5, 10, 25, 14, 19, 34}).reshape({2, 3}));
  EXPECT_TENSOR_NEAR(run1("Mean", {col, row, s}), f32({5, 10, 25, 14, 19, 34}).reshape({2, 3}) / 3,
                     1e-6);
  // NaN propagates in Max/Min, whichever side it is on.
  at::Tensor n1 = at::tensor({kNaN, 1.0, 2.0}).to(at::kFloat),
             n2 = at::tensor({0.0, kNaN, 3.0}).to(at::kFloat);
  EXPECT_TENSOR_EQ(run1("Max", {n1, n2}), at::tensor({kNaN, kNaN, 3.0}).to(at::kFloat));
  EXPECT_TENSOR_EQ(run1("Min", {n1, n2}), at::tensor({kNaN, kNaN, 2.0}).to(at::kFloat));
  // Integer dtypes.
  EXPECT_TENSOR_EQ(run1("Max", {i32({-3, 7}), i32({2, -9})}), i32({2, 7}));
  EXPECT_TENSOR_EQ(run1("Min", {u8({200, 7}), u8({3, 255})}), u8({3, 7}));
  EXPECT_TENSOR_EQ(run1("Sum", {i64({1, 2}), i64({10, 20}), i64({100, 200})}), i64({111, 222}));
}

TEST(OpsElementwise, ClipOptionalBoundsAndIntegers) {
  at::Tensor none;
  EXPECT_TENSOR_EQ(run1("Clip", {f32({-1, 0, 6}), at::tensor(-5.0f), at::tensor(5.0f)}),
                   f32({-1, 0, 5}));
  EXPECT_TENSOR_EQ(run1("Clip", {f32({-6, 0, 6}), at::tensor(-5.0f), at::tensor(5.0f)}),
                   f32({-5, 0, 5}));
  EXPECT_TENSOR_EQ(run1("Clip", {f32({-6, 0, 6}), none, at::tensor(1.0f)}),
                   f32({-6, 0, 1}));  // min omitted
  EXPECT_TENSOR_EQ(run1("Clip", {f32({-6, 0, 6}), at::tensor(-1.0f)}),
                   f32({-1, 0, 6}));                                   // max omitted
  EXPECT_TENSOR_EQ(run1("Clip", {f32({-6, 0, 6})}), f32({-6, 0, 6}));  // none: identity
  // min > max: every element becomes max.
  EXPECT_TENSOR_EQ(run1("Clip", {f32({-6, 0, 6}), at::tensor(3.0f), at::tensor(1.0f)}),
                   f32({1, 1, 1}));
  EXPECT_TENSOR_EQ(run1("Clip", {i8({-100, -3, 0, 127}), at::tensor(int8_t(0), at::kChar)}),
                   i8({0, 0, 0, 127}));
  EXPECT_TENSOR_EQ(
      run1("Clip", {i64({-100, 50, 7}), at::tensor(int64_t(-10)), at::tensor(int64_t(10))}),
      i64({-10, 10, 7}));
  EXPECT_THROW(run1("Clip", {f32({1}), f32({0, 1})}), Error);
}

TEST(OpsElementwise, ComparisonsReturnBool) {
  at::Tensor a = f32({1, 2, 3, 4, 5, 6}).reshape({2, 3}), b = f32({2, 2, 5});
  EXPECT_TENSOR_EQ(run1("Equal", {a, b}), bools({0, 1, 0, 0, 0, 0}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(run1("Less", {a, b}), bools({1, 0, 1, 0, 0, 0}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(run1("LessOrEqual", {a, b}), bools({1, 1, 1, 0, 0, 0}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(run1("Greater", {a, b}), bools({0, 0, 0, 1, 1, 1}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(run1("GreaterOrEqual", {a, b}), bools({0, 1, 0, 1, 1, 1}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(run1("Equal", {i32({1, 5, -3}), i32({5})}), bools({0, 1, 0}));
  EXPECT_TENSOR_EQ(run1("Equal", {bools({1, 0}), bools({1, 1})}), bools({1, 0}));
  // NaN compares false (and unequal to itself).
  at::Tensor n = at::tensor({kNaN}).to(at::kFloat);
  EXPECT_TENSOR_EQ(run1("Equal", {n, n}), bools({0}));
  EXPECT_TENSOR_EQ(run1("GreaterOrEqual", {n, n}), bools({0}));
}

TEST(OpsElementwise, LogicalOpsBroadcast) {
  at::Tensor a = bools({0, 1}).reshape({2, 1}), b = bools({0, 1, 1});
  EXPECT_TENSOR_EQ(run1("And", {a, b}), bools({0, 0, 0, 0, 1, 1}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(run1("Or", {a, b}), bools({0, 1, 1, 1, 1, 1}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(run1("Xor", {a, b}), bools({0, 1, 1, 1, 0, 0}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(run1("Not", {b}), bools({1, 0, 0}));
}

TEST(OpsElementwise, BitShiftUint8) {
  // test_bitshift_left_uint8 / test_bitshift_right_uint8, plus shifts >= 8 bits.
  EXPECT_TENSOR_EQ(run1("BitShift", {u8({16, 4, 1}), u8({1, 2, 3})}, {{"direction", "LEFT"}}),
                   u8({32, 16, 8}));
  EXPECT_TENSOR_EQ(run1("BitShift", {u8({16, 4, 1}), u8({1, 2, 3})}, {{"direction", "RIGHT"}}),
                   u8({8, 1, 0}));
  EXPECT_TENSOR_EQ(run1("BitShift", {u8({255, 255, 129}), u8({8, 40, 1})}, {{"direction", "LEFT"}}),
                   u8({0, 0, 2}));
  EXPECT_TENSOR_EQ(run1("BitShift", {u8({255, 255}), u8({8, 40})}, {{"direction", "RIGHT"}}),
                   u8({0, 0}));
  EXPECT_TENSOR_EQ(run1("BitShift", {u8({1, 2, 3}), u8({2})}, {{"direction", "LEFT"}}),
                   u8({4, 8, 12}));
  expectError(
      [&] {
        run1("BitShift", {u8({1}), u8({1})}, {{"direction", "UP"}});
      },
      "node 'n' (BitShift)");
}

TEST(OpsElementwise, IsNaNIsInfAttributes) {
  at::Tensor x = at::tensor({-1.7, kNaN, kInf, -3.6, -kInf, kInf}).to(at::kFloat);
  EXPECT_TENSOR_EQ(run1("IsNaN", {x}), bools({0, 1, 0, 0, 0, 0}));
  EXPECT_TENSOR_EQ(run1("IsInf", {x}), bools({0, 0, 1, 0, 1, 1}));
  EXPECT_TENSOR_EQ(run1("IsInf", {x}, {{"detect_positive", 0}}), bools({0, 0, 0, 0, 1, 0}));
  EXPECT_TENSOR_EQ(run1("IsInf", {x}, {{"detect_negative", 0}}), bools({0, 0, 1, 0, 0, 1}));
  EXPECT_TENSOR_EQ(run1("IsInf", {x}, {{"detect_negative", 0}, {"detect_positive", 0}}),
                   bools({0, 0, 0, 0, 0, 0}));
  EXPECT_TENSOR_EQ(run1("IsInf", {x.to(at::kDouble)}), bools({0, 0, 1, 0, 1, 1}));
}

TEST(OpsElementwise, WhereBroadcasts) {
  // test_where_example
  EXPECT_TENSOR_EQ(
      run1("Where", {bools({1, 0, 1, 1}).reshape({2, 2}), f32({1, 2, 3, 4}).reshape({2, 2}),
                     f32({9, 8, 7, 6}).reshape({2, 2})}),
      f32({1, 8, 3, 4}).reshape({2, 2}));
  // cond [3], x [2,1], y 0-d -> [2,3]; integer values.
  EXPECT_TENSOR_EQ(
      run1("Where", {bools({1, 0, 1}), i64({1, 2}).reshape({2, 1}), at::tensor(int64_t(-1))}),
      i64({1, -1, 1, 2, -1, 2}).reshape({2, 3}));
}

TEST(OpsElementwise, CastConversions) {
  const auto to = [](DType t) {
    return std::map<std::string, Attribute>{{"to", static_cast<int64_t>(t)}};
  };
  // float -> int truncates toward zero.
  EXPECT_TENSOR_EQ(run1("Cast", {f32({2.7f, -2.7f, 0.5f, -0.5f, 100.f})}, to(DType::Int32)),
                   i32({2, -2, 0, 0, 100}));
  EXPECT_TENSOR_EQ(run1("Cast", {f32({2.7f, -2.7f})}, to(DType::Int64)), i64({2, -2}));
  EXPECT_TENSOR_EQ(run1("Cast", {f32({3.9f, 0.2f})}, to(DType::UInt8)), u8({3, 0}));
  // Anything non-zero (NaN too) is true.
  EXPECT_TENSOR_EQ(
      run1("Cast", {at::tensor({0.0, -0.0, 0.5, kNaN, -3.0}).to(at::kFloat)}, to(DType::Bool)),
      bools({0, 0, 1, 1, 1}));
  EXPECT_TENSOR_EQ(run1("Cast", {i64({0, 36, -1})}, to(DType::Bool)), bools({0, 1, 1}));
  EXPECT_TENSOR_EQ(run1("Cast", {bools({1, 0})}, to(DType::Float32)), f32({1, 0}));
  EXPECT_TENSOR_EQ(run1("Cast", {i32({-3, 7})}, to(DType::Float64)),
                   at::tensor({-3.0, 7.0}, at::kDouble));
  // float16 rounds to nearest: 0.1f -> 0.0999755859375 (test_cast_FLOAT_to_FLOAT16 uses numpy's
  // astype).
  at::Tensor h = run1("Cast", {f32({0.1f, 1000.3f})}, to(DType::Float16));
  ASSERT_EQ(h.scalar_type(), at::kHalf);
  EXPECT_EQ(h.to(at::kDouble)[0].item<double>(), 0.0999755859375);
  EXPECT_EQ(h.to(at::kDouble)[1].item<double>(), 1000.5);
  // test_cast_FLOAT16_to_FLOAT: exact.
  at::Tensor hv = at::tensor({0.1182861328125, 0.64013671875}).to(at::kHalf);
  EXPECT_TENSOR_EQ(run1("Cast", {hv}, to(DType::Float32)), f32({0.1182861328125f, 0.64013671875f}));
  // CastLike takes the dtype of its second input.
  EXPECT_TENSOR_EQ(run1("CastLike", {f32({1.9f, -1.9f}), i8({0})}), i8({1, -1}));
  EXPECT_TENSOR_EQ(run1("CastLike", {i32({3}), at::tensor({0.0}, at::kDouble)}),
                   at::tensor({3.0}, at::kDouble));
}

TEST(OpsElementwise, CastAttributeErrorsNameTheNode) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{3});
  g.addOutput(g.addNode("Cast", {x}, 1, "cast_no_to")->output(0));
  std::string m = expectError([&] { Executor ex(g); }, "node 'cast_no_to' (Cast)");
  EXPECT_NE(m.find("'to'"), std::string::npos) << m;
  expectError(
      [&] {
        run1("Cast", {f32({1})}, {{"to", static_cast<int64_t>(DType::String)}});
      },
      "node 'n' (Cast)");
  EXPECT_THROW(run1("Cast", {f32({1})}, {{"to", int64_t{99}}}), Error);
  EXPECT_THROW(run1("Cast", {f32({1})}, {{"to", "float"}}), Error);
}

TEST(OpsElementwise, FrozenScalarInputs) {
  // Clip bounds and a Pow exponent held by frozen parameters (imported Constants) are read once.
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{4});
  Value* lo = g.addParam("lo", at::tensor(-1.0f), false);
  Value* hi = g.addParam("hi", at::tensor(2.0f), false);
  Value* e = g.addParam("e", f32({3}).reshape({1, 1}), false);  // rank-raising exponent
  Node* c = g.addNode("Clip", {x, lo, hi}, 1, "clip");
  Node* c2 = g.addNode("Clip", {x, nullptr, hi}, 1, "clip_max");
  Node* p = g.addNode("Pow", {c->output(0), e}, 1, "pow");
  g.addOutput(p->output(0));
  g.addOutput(c2->output(0));
  Executor ex(g);
  auto out = ex.run({f32({-3, 0.5f, 1.5f, 4})});
  EXPECT_TENSOR_EQ(out[0], f32({-1, 0.125f, 3.375f, 8}).reshape({1, 4}));
  EXPECT_TENSOR_EQ(out[1], f32({-3, 0.5f, 1.5f, 2}));
}

TEST(OpsElementwise, GradientsMatchFiniteDifferences) {
  at::Tensor x = at::tensor({0.3, 1.2, 0.45, 0.8, 0.6, 0.9}, at::kDouble).reshape({2, 3});
  at::Tensor b = at::tensor({0.7, 1.9, 0.35}, at::kDouble);
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean"}) {
    expectGradMatchesFiniteDiff(op, {x, b}, 0);
    expectGradMatchesFiniteDiff(op, {x, b}, 1);  // broadcast input: gradients are summed
  }
  for (const char* op : {"Neg", "Abs", "Sqrt", "Exp", "Log", "Reciprocal", "Sin", "Cos", "Tan",
                         "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Atanh", "Erf"})
    expectGradMatchesFiniteDiff(op, {x * 0.7}, 0);  // inside (-1, 1) for Asin/Acos/Atanh
  expectGradMatchesFiniteDiff("Acosh", {x + 1}, 0);
  expectGradMatchesFiniteDiff("Clip",
                              {x, at::tensor(0.5, at::kDouble), at::tensor(1.0, at::kDouble)}, 0);
  expectGradMatchesFiniteDiff("Where", {at::tensor({1, 0, 1}).to(at::kBool), x, b}, 1);
}

TEST(OpsElementwise, TrainModeGradients) {
  // d/dx sum(Clip(x/y, -1, 1) ^ 2) = 2 (x/y) / y inside the clip range, 0 outside.
  Graph g;
  at::Tensor xd = f32({1, 4, -6, 0.5f}).requires_grad_(true);
  Value* x = g.addParam("x", xd);
  Value* y = g.addInput("y", DType::Float32, std::vector<Dim>{4});
  Value* lo = g.addParam("lo", at::tensor(-1.0f), false);
  Value* hi = g.addParam("hi", at::tensor(1.0f), false);
  Value* two = g.addParam("two", at::tensor(2.0f), false);
  Node* d = g.addNode("Div", {x, y}, 1, "div");
  Node* c = g.addNode("Clip", {d->output(0), lo, hi}, 1, "clip");
  Node* p = g.addNode("Pow", {c->output(0), two}, 1, "pow");
  g.addOutput(p->output(0));
  Executor ex(g, {.training = true});
  at::Tensor yin = f32({2, 2, 2, 1});
  auto out = ex.run({yin});
  EXPECT_TENSOR_NEAR(out[0].detach(), f32({0.25f, 1, 1, 0.25f}), 1e-6);
  out[0].sum().backward();
  EXPECT_TENSOR_NEAR(xd.grad(), f32({0.5f, 0, 0, 1}), 1e-6);
}

}  // namespace
}  // namespace gs
