// Activation ops, Softmax family, Dropout, Identity: numbers against closed forms and ONNX cases.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numbers>

#include "ir/graph.h"
#include "op_test_util.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace gs {
namespace {

using namespace gs::test;  // NOLINT: shared op-test helpers

/// Applies a scalar reference function elementwise in double.
at::Tensor mapRef(const at::Tensor& x, const std::function<double(double)>& f) {
  at::Tensor y = x.to(at::kDouble).contiguous().clone();
  double* p = y.data_ptr<double>();
  for (int64_t i = 0; i < y.numel(); ++i) p[i] = f(p[i]);
  return y.to(x.scalar_type());
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double softplus(double x) { return std::log1p(std::exp(x)); }

TEST(OpsActivation, PointwiseMatchesClosedForms) {
  struct Case {
    const char* op;
    Attrs attrs;
    std::function<double(double)> ref;
  };
  const double selu_a = 1.67326319217681884765625, selu_g = 1.05070102214813232421875;
  const std::vector<Case> cases = {
      {"Relu", {}, [](double x) { return x > 0 ? x : 0; }},
      {"LeakyRelu", {}, [](double x) { return x >= 0 ? x : double(0.01f) * x; }},
      {"LeakyRelu", {{"alpha", 0.1f}}, [](double x) { return x >= 0 ? x : double(0.1f) * x; }},
      {"Elu", {}, [](double x) { return x >= 0 ? x : std::expm1(x); }},
      {"Elu", {{"alpha", 2.0f}}, [](double x) { return x >= 0 ? x : 2 * std::expm1(x); }},
      {"Selu", {}, [=](double x) { return selu_g * (x > 0 ? x : selu_a * std::expm1(x)); }},
      {"Selu",
       {{"alpha", 2.0f}, {"gamma", 3.0f}},
       [](double x) { return 3 * (x > 0 ? x : 2 * std::expm1(x)); }},
      {"Celu", {}, [](double x) { return std::max(0.0, x) + std::min(0.0, std::expm1(x)); }},
      {"Celu",
       {{"alpha", 2.0f}},
       [](double x) { return std::max(0.0, x) + std::min(0.0, 2 * std::expm1(x / 2)); }},
      {"Sigmoid", {}, sigmoid},
      {"HardSigmoid", {}, [](double x) { return std::clamp(double(0.2f) * x + 0.5, 0.0, 1.0); }},
      {"HardSigmoid",
       {{"alpha", 0.5f}, {"beta", 0.6f}},
       [](double x) { return std::clamp(0.5 * x + double(0.6f), 0.0, 1.0); }},
      {"HardSwish", {}, [](double x) { return x * std::clamp(x / 6 + 0.5, 0.0, 1.0); }},
      {"Tanh", {}, [](double x) { return std::tanh(x); }},
      {"Softplus", {}, softplus},
      {"Softsign", {}, [](double x) { return x / (1 + std::abs(x)); }},
      {"ThresholdedRelu", {}, [](double x) { return x > 1 ? x : 0; }},
      {"ThresholdedRelu", {{"alpha", 0.5f}}, [](double x) { return x > 0.5 ? x : 0; }},
      {"Shrink", {}, [](double x) { return x < -0.5  ? x
                                           : x > 0.5 ? x
                                                     : 0; }},
      {"Shrink",
       {{"bias", 0.3f}, {"lambd", 0.5f}},
       [](double x) { return x < -0.5  ? x + double(0.3f)
                             : x > 0.5 ? x - double(0.3f)
                                       : 0; }},
      {"Gelu", {}, [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }},
      {"Gelu",
       {{"approximate", "tanh"}},
       [](double x) {
         return 0.5 * x *
                (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
       }},
      {"Mish", {}, [](double x) { return x * std::tanh(softplus(x)); }},
      {"Identity", {}, [](double x) { return x; }},
  };
  at::Tensor x = test::randn({4, 9}, 5) * 2.5;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.op);
    EXPECT_TENSOR_NEAR(run1(c.op, {x}, c.attrs), mapRef(x, c.ref), 2e-6);
  }
  // Double precision path.
  at::Tensor xd = x.to(at::kDouble);
  EXPECT_TENSOR_NEAR(
      run1("Gelu", {xd}),
      mapRef(xd, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }), 1e-12);
}

TEST(OpsActivation, HalfAndBFloat16Inputs) {
  // ATen 1.13 has no CPU Half kernels for these; results must equal float32 math rounded back.
  at::Tensor x = test::randn({2, 3, 4}, 6);
  for (at::ScalarType st : {at::kHalf, at::kBFloat16}) {
    at::Tensor xl = x.to(st), xf = xl.to(at::kFloat);
    for (const char* op : {"Relu", "Sigmoid", "Tanh", "HardSwish", "Softplus", "Mish", "Gelu",
                           "Elu", "Selu", "Celu", "LeakyRelu", "HardSigmoid", "ThresholdedRelu",
                           "Shrink", "Softsign", "Softmax", "LogSoftmax", "Hardmax"}) {
      SCOPED_TRACE(op);
      at::Tensor got = run1(op, {xl});
      ASSERT_EQ(got.scalar_type(), st);
      EXPECT_TENSOR_EQ(got, run1(op, {xf}).to(st));
    }
    at::Tensor slope = f32({0.5f, -1.0f, 2.0f}).reshape({3, 1}).to(st);
    EXPECT_TENSOR_EQ(run1("PRelu", {xl, slope}), run1("PRelu", {xf, slope.to(at::kFloat)}).to(st));
  }
}

TEST(OpsActivation, OnnxExamples) {
  at::Tensor x = f32({-1, 0, 1});
  EXPECT_TENSOR_NEAR(run1("Selu", {x}, {{"alpha", 2.0f}, {"gamma", 3.0f}}),
                     f32({-3.7927236557f, 0, 3}), 1e-6);
  EXPECT_TENSOR_NEAR(run1("Elu", {x}, {{"alpha", 2.0f}}), f32({-1.2642412185f, 0, 1}), 1e-6);
  EXPECT_TENSOR_NEAR(run1("LeakyRelu", {x}, {{"alpha", 0.1f}}), f32({-0.1f, 0, 1}), 1e-6);
  EXPECT_TENSOR_NEAR(run1("HardSigmoid", {x}, {{"alpha", 0.5f}, {"beta", 0.6f}}),
                     f32({0.10000002384f, 0.6f, 1}), 1e-6);
  EXPECT_TENSOR_NEAR(run1("Softplus", {x}), f32({0.31326165795f, 0.69314718246f, 1.31326174736f}),
                     1e-6);
  EXPECT_TENSOR_NEAR(run1("Softsign", {x}), f32({-0.5f, 0, 0.5f}), 1e-6);
  EXPECT_TENSOR_EQ(run1("ThresholdedRelu", {f32({-1.5f, 0, 1.2f, 2, 2.2f})}, {{"alpha", 2.0f}}),
                   f32({0, 0, 0, 0, 2.2f}));
  at::Tensor s = f32({-2, -1, 0, 1, 2});
  EXPECT_TENSOR_EQ(run1("Shrink", {s}, {{"lambd", 1.5f}}), f32({-2, 0, 0, 0, 2}));  // shrink_hard
  EXPECT_TENSOR_EQ(run1("Shrink", {s}, {{"bias", 1.5f}, {"lambd", 1.5f}}),
                   f32({-0.5f, 0, 0, 0, 0.5f}));  // shrink_soft
  // test_hardswish first elements.
  EXPECT_TENSOR_NEAR(run1("HardSwish", {f32({1.764052391f, 0.400157213f, -0.977277875f})}),
                     f32({1.400673032f, 0.226766244f, -0.329460263f}), 1e-6);
}

TEST(OpsActivation, IntegerInputs) {
  EXPECT_TENSOR_EQ(run1("Relu", {i32({-3, 0, 5})}), i32({0, 0, 5}));
  EXPECT_TENSOR_EQ(run1("Shrink", {i32({-3, -1, 0, 2, 7})}, {{"bias", 1.0f}, {"lambd", 1.5f}}),
                   i32({-2, 0, 0, 1, 6}));
  EXPECT_TENSOR_EQ(run1("PRelu", {i32({-3, 4, -5}), i32({2})}), i32({-6, 4, -10}));
  EXPECT_TENSOR_EQ(run1("Identity", {i32({-3, 4})}), i32({-3, 4}));
  EXPECT_TENSOR_EQ(run1("Identity", {at::tensor(std::vector<int64_t>{0, 1}).to(at::kBool)}),
                   at::tensor(std::vector<int64_t>{0, 1}).to(at::kBool));
}

TEST(OpsActivation, PReluSlopeBroadcastsUnidirectionally) {
  at::Tensor x = test::randn({2, 3, 4, 5}, 7);
  auto ref = [&](const at::Tensor& slope) {
    // Explicit loop over the broadcast slope.
    at::Tensor s = slope.expand(x.sizes()).contiguous();
    at::Tensor y = x.clone();
    float* py = y.data_ptr<float>();
    const float* ps = s.data_ptr<float>();
    for (int64_t i = 0; i < y.numel(); ++i)
      if (py[i] < 0) py[i] *= ps[i];
    return y;
  };
  at::Tensor per_channel = f32({0.1f, -0.5f, 2.0f}).reshape({3, 1, 1});  // ATen prelu fast path
  EXPECT_TENSOR_NEAR(run1("PRelu", {x, per_channel}), ref(per_channel), 1e-6);
  at::Tensor one = f32({0.25f});
  EXPECT_TENSOR_NEAR(run1("PRelu", {x, one}), ref(one), 1e-6);
  at::Tensor last = test::randn({5}, 8);  // test_prelu_broadcast layout: slope on the last axis
  EXPECT_TENSOR_NEAR(run1("PRelu", {x, last}), ref(last), 1e-6);
  at::Tensor full = test::randn({3, 4, 5}, 9);
  EXPECT_TENSOR_NEAR(run1("PRelu", {x, full}), ref(full), 1e-6);
  at::Tensor ch4 = test::randn({1, 3, 1, 1}, 10);  // channel slope with full rank
  EXPECT_TENSOR_NEAR(run1("PRelu", {x, ch4}), ref(ch4), 1e-6);
  // test_prelu_broadcast values.
  EXPECT_TENSOR_NEAR(
      run1("PRelu", {f32({1.764052391f, -0.977277875f, -0.151357204f}).reshape({1, 3}),
                     f32({-0.672460437f, -0.359553158f, -0.813146293f})}),
      f32({1.764052391f, 0.351383359f, 0.123075552f}).reshape({1, 3}), 1e-6);
}

TEST(OpsActivation, PReluGradientsInTrainMode) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{2, 3, 2});
  at::Tensor slope = f32({0.1f, 0.2f, 0.3f}).reshape({3, 1}).requires_grad_(true);
  Value* s = g.addParam("slope", slope);
  g.addOutput(g.addNode("PRelu", {x, s}, 1, "prelu")->output(0));
  Executor ex(g, {.training = true});
  at::Tensor xin = test::randn({2, 3, 2}, 12);
  ex.run({xin})[0].sum().backward();
  // d/dslope_c = sum of the negative x in channel c.
  at::Tensor want =
      at::where(xin.lt(0), xin, at::zeros_like(xin)).sum(at::IntArrayRef{0, 2}).reshape({3, 1});
  EXPECT_TENSOR_NEAR(slope.grad(), want, 1e-6);
}

TEST(OpsActivation, SoftmaxFamilyAxes) {
  // test_softmax_example / test_logsoftmax_example_1
  at::Tensor e = f32({-1, 0, 1}).reshape({1, 3});
  EXPECT_TENSOR_NEAR(run1("Softmax", {e}),
                     f32({0.090030573f, 0.244728461f, 0.665240943f}).reshape({1, 3}), 1e-6);
  EXPECT_TENSOR_NEAR(run1("LogSoftmax", {e}),
                     f32({-2.407606125f, -1.407606006f, -0.407606006f}).reshape({1, 3}), 1e-6);
  at::Tensor x = test::randn({3, 4, 5}, 21).to(at::kDouble) * 3;
  for (int64_t axis : {0, 1, 2, -1, -3}) {
    SCOPED_TRACE(axis);
    const int64_t a = axis < 0 ? axis + 3 : axis;
    at::Tensor ex = (x - std::get<0>(x.max(a, true))).exp();
    at::Tensor soft = ex / ex.sum(a, true);
    EXPECT_TENSOR_NEAR(run1("Softmax", {x}, {{"axis", axis}}), soft, 1e-12);
    EXPECT_TENSOR_NEAR(run1("LogSoftmax", {x}, {{"axis", axis}}), soft.log(), 1e-12);
  }
  // Default axis is the last one; large inputs stay finite (test_softmax_large_number).
  at::Tensor big = f32({10000, 10001, 10002, 10003});
  EXPECT_TENSOR_NEAR(run1("Softmax", {big}),
                     f32({0.032058604f, 0.087144318f, 0.236882818f, 0.643914260f}), 1e-6);
  EXPECT_THROW(run1("Softmax", {x}, {{"axis", 3}}), Error);
}

TEST(OpsActivation, HardmaxFirstMaximum) {
  // test_hardmax_example and test_hardmax_one_hot (ties pick the first).
  EXPECT_TENSOR_EQ(
      run1("Hardmax", {f32({3, 0, 1, 2, 2, 5, 1, 0, 0, 1, 3, 2, 0, 1, 2, 3}).reshape({4, 4})}),
      at::eye(4, at::kFloat));
  EXPECT_TENSOR_EQ(run1("Hardmax", {f32({3, 3, 3, 1}).reshape({1, 4})}),
                   f32({1, 0, 0, 0}).reshape({1, 4}));
  at::Tensor x = f32({1, 9, 4, 7, 2, 8}).reshape({2, 3});
  EXPECT_TENSOR_EQ(run1("Hardmax", {x}, {{"axis", 0}}), f32({0, 1, 0, 1, 0, 1}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(run1("Hardmax", {x}, {{"axis", -2}}), f32({0, 1, 0, 1, 0, 1}).reshape({2, 3}));
  EXPECT_TENSOR_EQ(run1("Hardmax", {x}), f32({0, 1, 0, 0, 0, 1}).reshape({2, 3}));
}

TEST(OpsActivation, DropoutEvalIsIdentity) {
  at::Tensor x = test::randn({3, 4, 5}, 30);
  auto out = runOp("Dropout", {x}, {}, 2);
  EXPECT_TENSOR_EQ(out[0], x);
  EXPECT_TENSOR_EQ(out[1], at::ones({3, 4, 5}, at::kBool));
  // A ratio alone does not switch training on.
  out = runOp("Dropout", {x, at::tensor(0.75f)}, {}, 2);
  EXPECT_TENSOR_EQ(out[0], x);
  // training_mode true with ratio 0 is the identity too (test_training_dropout_zero_ratio_mask).
  out = runOp("Dropout", {x, at::tensor(0.0f), at::full({}, true, at::kBool)},
              {{"seed", int64_t{0}}}, 2);
  EXPECT_TENSOR_EQ(out[0], x);
  EXPECT_TENSOR_EQ(out[1], at::ones({3, 4, 5}, at::kBool));
  EXPECT_TENSOR_EQ(run1("Dropout", {x}), x);  // mask output omitted
}

TEST(OpsActivation, DropoutTrainingDropsAndScales) {
  at::Tensor x = at::rand({200, 100}) + 1.0;  // strictly positive: zeros in y come from dropping
  const double ratio = 0.3;
  for (bool via_ctx : {false, true}) {
    SCOPED_TRACE(via_ctx);
    std::vector<at::Tensor> ins = {x, at::tensor(float(ratio))};
    if (!via_ctx) ins.push_back(at::full({}, true, at::kBool));
    auto out = runOp("Dropout", ins, {}, 2, "", {.training = via_ctx});
    at::Tensor y = out[0].detach(), mask = out[1];
    ASSERT_EQ(mask.scalar_type(), at::kBool);
    // Kept elements are scaled by 1/(1-ratio); dropped ones are 0; the mask says which.
    EXPECT_TENSOR_NEAR(at::where(mask, y, at::zeros_like(y)),
                       at::where(mask, x / (1 - ratio), at::zeros_like(x)), 1e-6);
    EXPECT_TRUE(at::equal(y.ne(0), mask));
    const double kept = mask.to(at::kDouble).mean().item<double>();
    EXPECT_NEAR(kept, 1 - ratio, 0.02);  // 20000 Bernoulli draws: sd ~ 0.0032
  }
  // Default ratio 0.5 in train mode.
  auto out = runOp("Dropout", {x}, {}, 2, "", {.training = true});
  EXPECT_NEAR(out[1].to(at::kDouble).mean().item<double>(), 0.5, 0.02);
  // ratio 1 drops everything.
  out = runOp("Dropout", {x, at::tensor(1.0f), at::full({}, true, at::kBool)}, {}, 2);
  EXPECT_EQ(out[0].abs().sum().item<float>(), 0.0f);
  EXPECT_FALSE(out[1].any().item<bool>());
}

TEST(OpsActivation, DropoutSeedIsReproducible) {
  at::Tensor x = at::ones({1000});
  Attrs seed{{"seed", int64_t{42}}};
  auto a = runOp("Dropout", {x, at::tensor(0.5f), at::full({}, true, at::kBool)}, seed, 2);
  auto b = runOp("Dropout", {x, at::tensor(0.5f), at::full({}, true, at::kBool)}, seed, 2);
  auto c = runOp("Dropout", {x, at::tensor(0.5f), at::full({}, true, at::kBool)},
                 {{"seed", int64_t{43}}}, 2);
  EXPECT_TENSOR_EQ(a[1], b[1]);
  EXPECT_FALSE(at::equal(a[1], c[1]));
}

TEST(OpsActivation, DropoutGradientFlowsThroughKeptElements) {
  Graph g;
  at::Tensor w = at::ones({500}).requires_grad_(true);
  Value* wv = g.addParam("w", w);
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{500});
  Node* m = g.addNode("Mul", {x, wv}, 1, "mul");
  Node* d = g.addNodeNamedOutputs("Dropout", {m->output(0)}, {"y", "mask"}, "drop");
  g.addOutput(d->output(0));
  g.addOutput(d->output(1));
  Executor ex(g, {.training = true});
  at::Tensor xin = at::full({500}, 3.0f);
  auto out = ex.run({xin});
  out[0].sum().backward();
  // dy/dw = x * mask / (1 - 0.5)
  EXPECT_TENSOR_NEAR(w.grad(), at::where(out[1], at::full({500}, 6.0f), at::zeros({500})), 1e-6);
}

TEST(OpsActivation, GradientsMatchFiniteDifferences) {
  // Values kept away from the kinks (0, +-lambd, alpha, +-3) where one-sided slopes differ.
  at::Tensor x = at::tensor({-2.3, -1.2, -0.4, 0.3, 0.8, 2.6}, at::kDouble).reshape({2, 3});
  for (const char* op : {"Relu", "Sigmoid", "Tanh", "HardSwish", "Softplus", "Softsign", "Mish",
                         "Gelu", "Elu", "Selu", "Celu", "LeakyRelu", "HardSigmoid",
                         "ThresholdedRelu", "Shrink", "Softmax", "LogSoftmax", "Identity"})
    expectGradMatchesFiniteDiff(op, {x}, 0);
  expectGradMatchesFiniteDiff("Gelu", {x}, 0, {{"approximate", "tanh"}});
  expectGradMatchesFiniteDiff("Softmax", {x}, 0, {{"axis", 0}});
  at::Tensor slope = at::tensor({0.2, -0.5}, at::kDouble).reshape({2, 1});
  expectGradMatchesFiniteDiff("PRelu", {x, slope}, 0);
  expectGradMatchesFiniteDiff("PRelu", {x, slope}, 1);
}

TEST(OpsActivation, BadAttributesNameTheNode) {
  expectError([&] { run1("Gelu", {f32({1})}, {{"approximate", "erf"}}); }, "node 'n' (Gelu)");
  expectError([&] { run1("LeakyRelu", {f32({1})}, {{"alpha", "big"}}); }, "node 'n' (LeakyRelu)");
}

}  // namespace
}  // namespace gs
