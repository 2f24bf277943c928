// Elementwise ops: numbers against closed forms, std:: math and ONNX conformance-case values.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "ir/graph.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "test_util.h"

namespace gs {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

/// Runs one node `op` on `ins` (undefined tensor = omitted optional input) and returns its outputs.
std::vector<at::Tensor> runOp(const std::string& op, const std::vector<at::Tensor>& ins,
                              std::map<std::string, Attribute> attrs = {}, size_t num_outputs = 1) {
  Graph g;
  std::vector<Value*> vs;
  std::vector<at::Tensor> given;
  for (size_t i = 0; i < ins.size(); ++i) {
    if (!ins[i].defined()) {
      vs.push_back(nullptr);
      continue;
    }
    vs.push_back(
        g.addInput("in" + std::to_string(i), fromScalarType(ins[i].scalar_type()), Shape()));
    given.push_back(ins[i]);
  }
  Node* n = g.addNode(op, vs, num_outputs, "n1", std::move(attrs));
  for (Value* o : n->outputs()) g.addOutput(o);
  Executor ex(g);
  return ex.run(given);
}

at::Tensor run1(const std::string& op, const std::vector<at::Tensor>& ins,
                std::map<std::string, Attribute> attrs = {}) {
  return runOp(op, ins, std::move(attrs))[0];
}

at::Tensor f32(std::vector<float> v) { return at::tensor(v, at::kFloat); }
at::Tensor i32(std::vector<int32_t> v) { return at::tensor(v, at::kInt); }
at::Tensor i64(std::vector<int64_t> v) { return at::tensor(v, at::kLong); }
at::Tensor i8(std::vector<int8_t> v) { return at::tensor(v, at::kChar); }
at::Tensor u8(std::vector<uint8_t> v) { return at::tensor(v, at::kByte); }
at::Tensor bools(std::vector<int> v) {
  return at::tensor(std::vector<int64_t>(v.begin(), v.end())).to(at::kBool);
}

/// Exact equality of dtype, shape and values (NaNs equal each other).
void expectSame(const at::Tensor& got, const at::Tensor& want) {
  ASSERT_EQ(got.scalar_type(), want.scalar_type()) << got;
  ASSERT_EQ(got.sizes(), want.sizes()) << got;
  at::Tensor gn = got.isnan(), wn = want.isnan();
  EXPECT_TRUE(at::equal(gn, wn) && at::equal(got.masked_fill(gn, 0), want.masked_fill(wn, 0)))
      << "got " << got << "\nwant " << want;
}

void expectClose(const at::Tensor& got, const at::Tensor& want, double tol = 1e-6) {
  ASSERT_EQ(got.scalar_type(), want.scalar_type());
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_LT(test::maxRelDiff(got, want), tol) << "got " << got << "\nwant " << want;
}

/// Checks train-mode autograd of op: the gradient of sum(w * op(ins)) with respect to input
/// `slot` (a trainable parameter) must match central finite differences of eval-mode runs.
/// Inputs are double so the differences are accurate.
void expectGradMatchesFiniteDiff(const std::string& op, std::vector<at::Tensor> ins, size_t slot,
                                 std::map<std::string, Attribute> attrs = {}) {
  SCOPED_TRACE(op);
  at::Tensor x0 = ins[slot].to(at::kDouble);
  auto forward = [&](const at::Tensor& xv, bool training) {
    Graph g;
    std::vector<Value*> vs;
    std::vector<at::Tensor> given;
    for (size_t i = 0; i < ins.size(); ++i) {
      if (i == slot) {
        vs.push_back(g.addParam("p", xv, true));
      } else {
        vs.push_back(
            g.addInput("in" + std::to_string(i), fromScalarType(ins[i].scalar_type()), Shape()));
        given.push_back(ins[i]);
      }
    }
    g.addOutput(g.addNode(op, vs, 1, "n1", attrs)->output(0));
    Executor ex(g, {.training = training});
    return ex.run(given)[0];
  };
  at::Tensor y0 = forward(x0, false);
  at::Tensor w = test::randn(y0.sizes(), 77).to(at::kDouble);
  at::Tensor xg = x0.clone().requires_grad_(true);
  (forward(xg, true) * w).sum().backward();
  ASSERT_TRUE(xg.grad().defined());
  at::Tensor fd = at::zeros_like(x0);
  const double h = 1e-6;
  for (int64_t i = 0; i < x0.numel(); ++i) {
    at::Tensor xp = x0.clone(), xm = x0.clone();
    xp.view(-1)[i] += h;
    xm.view(-1)[i] -= h;
    fd.view(-1)[i] = ((forward(xp, false) - forward(xm, false)) * w).sum() / (2 * h);
  }
  EXPECT_LT(test::maxRelDiff(xg.grad(), fd), 1e-5)
      << "autograd " << xg.grad() << "\nfinite diff " << fd;
}

TEST(OpsElementwise, ArithmeticBroadcasts) {
  at::Tensor a = f32({1, 2, 3, 4, 5, 6}).reshape({2, 3});
  at::Tensor b = f32({10, 20, 40});
  expectSame(run1("Add", {a, b}), f32({11, 22, 43, 14, 25, 46}).reshape({2, 3}));
  expectSame(run1("Sub", {a, b}), f32({-9, -18, -37, -6, -15, -34}).reshape({2, 3}));
  expectSame(run1("Mul", {b, a}), f32({10, 40, 120, 40, 100, 240}).reshape({2, 3}));
  expectClose(run1("Div", {a, b}), f32({0.1f, 0.1f, 0.075f, 0.4f, 0.25f, 0.15f}).reshape({2, 3}));
  // 0-d with [2,1] -> [2,1]; [2,1] with [3] -> [2,3]
  expectSame(run1("Add", {at::tensor(1.5f), f32({1, 2}).reshape({2, 1})}),
             f32({2.5f, 3.5f}).reshape({2, 1}));
  expectSame(run1("Mul", {f32({1, 2}).reshape({2, 1}), f32({1, 2, 3})}),
             f32({1, 2, 3, 2, 4, 6}).reshape({2, 3}));
  expectSame(run1("Add", {u8({250, 3}), u8({10, 4})}), u8({4, 7}));  // uint8 wraps
}

TEST(OpsElementwise, IntegerDivTruncatesTowardZero) {
  expectSame(run1("Div", {i32({7, -7, 7, -7, 6}), i32({2, 2, -2, -2, 3})}), i32({3, -3, -3, 3, 2}));
  expectSame(run1("Div", {i64({-9, 9}), i64({4, 4})}), i64({-2, 2}));
  expectSame(run1("Div", {u8({200, 7}), u8({3, 2})}), u8({66, 3}));
  expectSame(run1("Div", {f32({3, 4}), f32({1, 2})}), f32({3, 2}));  // test_div_example
  EXPECT_THROW(run1("Div", {i32({1}), i32({0})}), Error);
}

TEST(OpsElementwise, ModSignFollowsDivisorOrDividend) {
  // test_mod_mixed_sign_int32 / int8 (fmod=0: sign of the divisor).
  expectSame(run1("Mod", {i32({-4, 7, 5, 4, -7, 8}), i32({2, -3, 8, -2, 3, 5})}),
             i32({0, -2, 5, 0, 2, 3}));
  expectSame(run1("Mod", {i8({-4, 7, 5, 4, -7, 8}), i8({2, -3, 8, -2, 3, 5})}),
             i8({0, -2, 5, 0, 2, 3}));
  // test_mod_int64_fmod (fmod=1: sign of the dividend, like C).
  expectSame(run1("Mod", {i64({-4, 7, 5, 4, -7, 8}), i64({2, -3, 8, -2, 3, 5})}, {{"fmod", 1}}),
             i64({0, 1, 5, 0, -1, 3}));
  // test_mod_mixed_sign_float32.
  expectClose(run1("Mod",
                   {f32({-4.3f, 7.2f, 5.0f, 4.3f, -7.2f, 8.0f}),
                    f32({2.1f, -3.4f, 8.0f, -2.1f, 3.4f, 5.0f})},
                   {{"fmod", 1}}),
              f32({-0.10000038f, 0.39999962f, 5.0f, 0.10000038f, -0.39999962f, 3.0f}));
  // Broadcast divisor [1].
  expectSame(run1("Mod", {i32({-10, 3, 15, -14}), i32({7})}), i32({4, 3, 1, 0}));
  EXPECT_THROW(run1("Mod", {i32({1}), i32({1})}, {{"fmod", 2}}), Error);
}

TEST(OpsElementwise, PowResultHasBaseDtype) {
  expectSame(run1("Pow", {i32({1, 2, 3}), f32({4, 5, 6})}),
             i32({1, 32, 729}));  // test_pow_types_int32_float32
  expectSame(run1("Pow", {f32({1, 2, 3}), i64({4, 5, 6})}),
             f32({1, 32, 729}));  // test_pow_types_float32_int64
  expectSame(run1("Pow", {i64({2, 3, 10}), i64({3, 2, 0})}), i64({8, 9, 1}));
  expectSame(run1("Pow", {i32({2, 3}), f32({0.5f, 0.5f})}), i32({1, 1}));  // sqrt truncated
  expectSame(run1("Pow", {f32({1, 2, 3, 4, 5, 6}).reshape({2, 3}), f32({1, 2, 3})}),
             f32({1, 4, 27, 4, 25, 216}).reshape({2, 3}));  // test_pow_bcast_array
  // One-element exponent: 0-d keeps the base shape; [1,1] broadcasts the rank up.
  expectSame(run1("Pow", {f32({-2, 3}), at::tensor(2.0f)}), f32({4, 9}));
  expectSame(run1("Pow", {f32({4, 9}), f32({0.5f}).reshape({1, 1})}), f32({2, 3}).reshape({1, 2}));
  // Negative integer exponents: computed in double and truncated (ATen alone refuses them).
  expectSame(run1("Pow", {i32({2, 1, -1, 4}), i32({-1})}), i32({0, 1, -1, 0}));
  expectSame(run1("Pow", {i64({2, 3, -2}), i64({-1, 2, -2})}), i64({0, 9, 0}));
  at::Tensor h = run1("Pow", {f32({1.5f, 2.0f}).to(at::kHalf), f32({2, 3})});
  expectSame(h, f32({2.25f, 8.0f}).to(at::kHalf));
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
    expectClose(run1(c.op, {x.to(at::kFloat)}), want.to(at::kFloat), 2e-6);
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
      expectSame(run1(op, {xl}), run1(op, {xf}).to(st));
    }
    expectSame(run1("Acosh", {xl + 1}), run1("Acosh", {(xl + 1).to(at::kFloat)}).to(st));
    expectSame(run1("Clip", {xl, at::tensor(0.3f).to(st), at::tensor(0.6f).to(st)}),
               at::clamp(xf, 0.3f, 0.6f).to(st));
    expectSame(run1("Max", {xl, at::tensor(0.5f).to(st)}), at::clamp_min(xf, 0.5f).to(st));
    expectSame(run1("Mod", {xl, at::tensor(0.25f).to(st)}, {{"fmod", 1}}),
               at::fmod(xf, 0.25f).to(st));
  }
}

TEST(OpsElementwise, RoundHalfToEvenAndSign) {
  // test_round
  expectSame(run1("Round", {f32({0.1f, 0.5f, 0.9f, 1.2f, 1.5f, 1.8f, 2.3f, 2.5f, 2.7f, -1.1f, -1.5f,
                                 -1.9f, -2.2f, -2.5f, -2.8f})}),
             f32({0, 0, 1, 1, 2, 2, 2, 2, 3, -1, -2, -2, -2, -2, -3}));
  expectSame(run1("Sign", {f32({-5, -0.5f, 0, 2})}), f32({-1, -1, 0, 1}));
  expectSame(run1("Sign", {i32({-7, 0, 9})}), i32({-1, 0, 1}));
  expectSame(run1("Abs", {i64({-7, 0, 9})}), i64({7, 0, 9}));
  expectSame(run1("Neg", {i8({-7, 0, 9})}), i8({7, 0, -9}));
}

TEST(OpsElementwise, VariadicBroadcastAndNaN) {
  at::Tensor a = f32({3, 2, 1}), b = f32({1, 4, 4}), c = f32({2, 5, 0});
  expectSame(run1("Max", {a, b, c}), f32({3, 5, 4}));  // test_max_example (c[2] = 3 there)
  expectSame(run1("Min", {a, b, c}), f32({1, 2, 0}));  // test_min_example
  expectSame(run1("Sum", {f32({3, 0, 2}), f32({1, 3, 4}), f32({2, 6, 6})}), f32({6, 9, 12}));
  expectSame(run1("Mean", {f32({3, 0, 2}), f32({1, 3, 4}), f32({2, 6, 6})}), f32({2, 3, 4}));
  // One input: identity.
  expectSame(run1("Max", {a}), a);
  expectSame(run1("Mean", {a}), a);
  // Broadcasting across three inputs: [2,1], [3], 0-d -> [2,3].
  at::Tensor col = f32({1, 10}).reshape({2, 1}), row = f32({0, 5, 20}), s = at::tensor(4.0f);
  expectSame(run1("Max", {col, row, s}), f32({4, 5, 20, 10, 10, 20}).reshape({2, 3}));
  expectSame(run1("Min", {col, row, s}), f32({0, 1, 1, 0, 4, 4}).reshape({2, 3}));
  expectSame(run1("Sum", {col, row, s}), f32({5, 10, 25, 14, 19, 34}).reshape({2, 3}));
  expectClose(run1("Mean", {col, row, s}), f32({5, 10, 25, 14, 19, 34}).reshape({2, 3}) / 3);
  // NaN propagates in Max/Min, whichever side it is on.
  at::Tensor n1 = at::tensor({kNaN, 1.0, 2.0}).to(at::kFloat),
             n2 = at::tensor({0.0, kNaN, 3.0}).to(at::kFloat);
  expectSame(run1("Max", {n1, n2}), at::tensor({kNaN, kNaN, 3.0}).to(at::kFloat));
  expectSame(run1("Min", {n1, n2}), at::tensor({kNaN, kNaN, 2.0}).to(at::kFloat));
  // Integer dtypes.
  expectSame(run1("Max", {i32({-3, 7}), i32({2, -9})}), i32({2, 7}));
  expectSame(run1("Min", {u8({200, 7}), u8({3, 255})}), u8({3, 7}));
  expectSame(run1("Sum", {i64({1, 2}), i64({10, 20}), i64({100, 200})}), i64({111, 222}));
}

TEST(OpsElementwise, ClipOptionalBoundsAndIntegers) {
  at::Tensor none;
  expectSame(run1("Clip", {f32({-1, 0, 6}), at::tensor(-5.0f), at::tensor(5.0f)}), f32({-1, 0, 5}));
  expectSame(run1("Clip", {f32({-6, 0, 6}), at::tensor(-5.0f), at::tensor(5.0f)}), f32({-5, 0, 5}));
  expectSame(run1("Clip", {f32({-6, 0, 6}), none, at::tensor(1.0f)}),
             f32({-6, 0, 1}));                                                      // min omitted
  expectSame(run1("Clip", {f32({-6, 0, 6}), at::tensor(-1.0f)}), f32({-1, 0, 6}));  // max omitted
  expectSame(run1("Clip", {f32({-6, 0, 6})}), f32({-6, 0, 6}));  // none: identity
  // min > max: every element becomes max.
  expectSame(run1("Clip", {f32({-6, 0, 6}), at::tensor(3.0f), at::tensor(1.0f)}), f32({1, 1, 1}));
  expectSame(run1("Clip", {i8({-100, -3, 0, 127}), at::tensor(int8_t(0), at::kChar)}),
             i8({0, 0, 0, 127}));
  expectSame(run1("Clip", {i64({-100, 50, 7}), at::tensor(int64_t(-10)), at::tensor(int64_t(10))}),
             i64({-10, 10, 7}));
  EXPECT_THROW(run1("Clip", {f32({1}), f32({0, 1})}), Error);
}

TEST(OpsElementwise, ComparisonsReturnBool) {
  at::Tensor a = f32({1, 2, 3, 4, 5, 6}).reshape({2, 3}), b = f32({2, 2, 5});
  expectSame(run1("Equal", {a, b}), bools({0, 1, 0, 0, 0, 0}).reshape({2, 3}));
  expectSame(run1("Less", {a, b}), bools({1, 0, 1, 0, 0, 0}).reshape({2, 3}));
  expectSame(run1("LessOrEqual", {a, b}), bools({1, 1, 1, 0, 0, 0}).reshape({2, 3}));
  expectSame(run1("Greater", {a, b}), bools({0, 0, 0, 1, 1, 1}).reshape({2, 3}));
  expectSame(run1("GreaterOrEqual", {a, b}), bools({0, 1, 0, 1, 1, 1}).reshape({2, 3}));
  expectSame(run1("Equal", {i32({1, 5, -3}), i32({5})}), bools({0, 1, 0}));
  expectSame(run1("Equal", {bools({1, 0}), bools({1, 1})}), bools({1, 0}));
  // NaN compares false (and unequal to itself).
  at::Tensor n = at::tensor({kNaN}).to(at::kFloat);
  expectSame(run1("Equal", {n, n}), bools({0}));
  expectSame(run1("GreaterOrEqual", {n, n}), bools({0}));
}

TEST(OpsElementwise, LogicalOpsBroadcast) {
  at::Tensor a = bools({0, 1}).reshape({2, 1}), b = bools({0, 1, 1});
  expectSame(run1("And", {a, b}), bools({0, 0, 0, 0, 1, 1}).reshape({2, 3}));
  expectSame(run1("Or", {a, b}), bools({0, 1, 1, 1, 1, 1}).reshape({2, 3}));
  expectSame(run1("Xor", {a, b}), bools({0, 1, 1, 1, 0, 0}).reshape({2, 3}));
  expectSame(run1("Not", {b}), bools({1, 0, 0}));
}

TEST(OpsElementwise, BitShiftUint8) {
  // test_bitshift_left_uint8 / test_bitshift_right_uint8, plus shifts >= 8 bits.
  expectSame(run1("BitShift", {u8({16, 4, 1}), u8({1, 2, 3})}, {{"direction", "LEFT"}}),
             u8({32, 16, 8}));
  expectSame(run1("BitShift", {u8({16, 4, 1}), u8({1, 2, 3})}, {{"direction", "RIGHT"}}),
             u8({8, 1, 0}));
  expectSame(run1("BitShift", {u8({255, 255, 129}), u8({8, 40, 1})}, {{"direction", "LEFT"}}),
             u8({0, 0, 2}));
  expectSame(run1("BitShift", {u8({255, 255}), u8({8, 40})}, {{"direction", "RIGHT"}}), u8({0, 0}));
  expectSame(run1("BitShift", {u8({1, 2, 3}), u8({2})}, {{"direction", "LEFT"}}), u8({4, 8, 12}));
  try {
    run1("BitShift", {u8({1}), u8({1})}, {{"direction", "UP"}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("node 'n1' (BitShift)"), std::string::npos) << e.what();
  }
}

TEST(OpsElementwise, IsNaNIsInfAttributes) {
  at::Tensor x = at::tensor({-1.7, kNaN, kInf, -3.6, -kInf, kInf}).to(at::kFloat);
  expectSame(run1("IsNaN", {x}), bools({0, 1, 0, 0, 0, 0}));
  expectSame(run1("IsInf", {x}), bools({0, 0, 1, 0, 1, 1}));
  expectSame(run1("IsInf", {x}, {{"detect_positive", 0}}), bools({0, 0, 0, 0, 1, 0}));
  expectSame(run1("IsInf", {x}, {{"detect_negative", 0}}), bools({0, 0, 1, 0, 0, 1}));
  expectSame(run1("IsInf", {x}, {{"detect_negative", 0}, {"detect_positive", 0}}),
             bools({0, 0, 0, 0, 0, 0}));
  expectSame(run1("IsInf", {x.to(at::kDouble)}), bools({0, 0, 1, 0, 1, 1}));
}

TEST(OpsElementwise, WhereBroadcasts) {
  // test_where_example
  expectSame(run1("Where", {bools({1, 0, 1, 1}).reshape({2, 2}), f32({1, 2, 3, 4}).reshape({2, 2}),
                            f32({9, 8, 7, 6}).reshape({2, 2})}),
             f32({1, 8, 3, 4}).reshape({2, 2}));
  // cond [3], x [2,1], y 0-d -> [2,3]; integer values.
  expectSame(
      run1("Where", {bools({1, 0, 1}), i64({1, 2}).reshape({2, 1}), at::tensor(int64_t(-1))}),
      i64({1, -1, 1, 2, -1, 2}).reshape({2, 3}));
}

TEST(OpsElementwise, CastConversions) {
  const auto to = [](DType t) {
    return std::map<std::string, Attribute>{{"to", static_cast<int64_t>(t)}};
  };
  // float -> int truncates toward zero.
  expectSame(run1("Cast", {f32({2.7f, -2.7f, 0.5f, -0.5f, 100.f})}, to(DType::Int32)),
             i32({2, -2, 0, 0, 100}));
  expectSame(run1("Cast", {f32({2.7f, -2.7f})}, to(DType::Int64)), i64({2, -2}));
  expectSame(run1("Cast", {f32({3.9f, 0.2f})}, to(DType::UInt8)), u8({3, 0}));
  // Anything non-zero (NaN too) is true.
  expectSame(
      run1("Cast", {at::tensor({0.0, -0.0, 0.5, kNaN, -3.0}).to(at::kFloat)}, to(DType::Bool)),
      bools({0, 0, 1, 1, 1}));
  expectSame(run1("Cast", {i64({0, 36, -1})}, to(DType::Bool)), bools({0, 1, 1}));
  expectSame(run1("Cast", {bools({1, 0})}, to(DType::Float32)), f32({1, 0}));
  expectSame(run1("Cast", {i32({-3, 7})}, to(DType::Float64)),
             at::tensor({-3.0, 7.0}, at::kDouble));
  // float16 rounds to nearest: 0.1f -> 0.0999755859375 (test_cast_FLOAT_to_FLOAT16 uses numpy's
  // astype).
  at::Tensor h = run1("Cast", {f32({0.1f, 1000.3f})}, to(DType::Float16));
  ASSERT_EQ(h.scalar_type(), at::kHalf);
  EXPECT_EQ(h.to(at::kDouble)[0].item<double>(), 0.0999755859375);
  EXPECT_EQ(h.to(at::kDouble)[1].item<double>(), 1000.5);
  // test_cast_FLOAT16_to_FLOAT: exact.
  at::Tensor hv = at::tensor({0.1182861328125, 0.64013671875}).to(at::kHalf);
  expectSame(run1("Cast", {hv}, to(DType::Float32)), f32({0.1182861328125f, 0.64013671875f}));
  // CastLike takes the dtype of its second input.
  expectSame(run1("CastLike", {f32({1.9f, -1.9f}), i8({0})}), i8({1, -1}));
  expectSame(run1("CastLike", {i32({3}), at::tensor({0.0}, at::kDouble)}),
             at::tensor({3.0}, at::kDouble));
}

TEST(OpsElementwise, CastAttributeErrorsNameTheNode) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{3});
  g.addOutput(g.addNode("Cast", {x}, 1, "cast_no_to")->output(0));
  try {
    Executor ex(g);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("node 'cast_no_to' (Cast)"), std::string::npos) << m;
    EXPECT_NE(m.find("'to'"), std::string::npos) << m;
  }
  try {
    run1("Cast", {f32({1})}, {{"to", static_cast<int64_t>(DType::String)}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("node 'n1' (Cast)"), std::string::npos) << e.what();
  }
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
  expectSame(out[0], f32({-1, 0.125f, 3.375f, 8}).reshape({1, 4}));
  expectSame(out[1], f32({-3, 0.5f, 1.5f, 2}));
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
  expectClose(out[0].detach(), f32({0.25f, 1, 1, 0.25f}));
  out[0].sum().backward();
  expectClose(xd.grad(), f32({0.5f, 0, 0, 1}));
}

}  // namespace
}  // namespace gs
