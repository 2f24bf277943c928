// Misc ops: Constant, NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss, windows, NonMaxSuppression.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "op_test_util.h"
#include "runtime/executor.h"

namespace gs {
namespace {

using namespace gs::test;  // NOLINT: shared op-test helpers

TEST(OpsMisc, OnnxConformanceCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCase("test_constant", {.rtol = 1e-4, .atol = 1e-5}));
  EXPECT_TRUE(runConformanceCases({"test_nllloss_", "test_sce_", "test_nonmaxsuppression_"},
                                  {.rtol = 1e-4, .atol = 1e-5}));
  // ONNX 1.12 generated the window expectations with pi ~ 3.1415 (|error| <= 7.4e-5), so these
  // are compared at the ONNX backend runner's own tolerance only (rtol 1e-3, atol 1e-7); exact
  // values are checked in closed form below.
  EXPECT_TRUE(
      runConformanceCases({"test_hannwindow", "test_hammingwindow", "test_blackmanwindow"}));
}

TEST(OpsMisc, CaseComparisonDetectsDifferences) {
  EXPECT_TRUE(matchesExpected(f32({1.f, NAN}), f32({1.f, NAN})));
  EXPECT_FALSE(matchesExpected(f32({1.f, 2.f}), f32({1.f, 2.01f})));
  EXPECT_FALSE(matchesExpected(f32({1.f, NAN}), f32({1.f, 2.f})));
  EXPECT_FALSE(matchesExpected(i64({1, 2}), f32({1.f, 2.f})));
  EXPECT_FALSE(matchesExpected(i64({1, 2}), i64({1, 3})));
  EXPECT_FALSE(matchesExpected(i64({1, 2}), i64({1, 2}).reshape({2, 1})));
  // ONNX's bounds (rtol 1e-3, atol 1e-7) and a test's tighter ones.
  EXPECT_TRUE(matchesExpected(f32({1000.9f, 5e-8f}), f32({1000.f, 0.f})));
  EXPECT_FALSE(matchesExpected(f32({1000.9f}), f32({1000.f}), {.rtol = 1e-4, .atol = 1e-5}));
  EXPECT_FALSE(matchesExpected(f32({1.f + 1e-6f}), f32({1.f}), kExact));
  EXPECT_TRUE(matchesExpected(f32({INFINITY, NAN, 2.f}), f32({INFINITY, NAN, 2.f}), kExact));
  EXPECT_TRUE(matchesExpected(f32({2.f + 1e-6f}), f32({2.f}), {.max_rel_diff = 1e-6}));
  EXPECT_FALSE(matchesExpected(f32({2.f + 4e-6f}), f32({2.f}), {.max_rel_diff = 1e-6}));
}

TEST(OpsMisc, ConstantAttributeForms) {
  at::Tensor t = at::arange(6, at::kInt).reshape({2, 3});
  EXPECT_TRUE(at::equal(run1("Constant", {}, {{"value", t}}), t));
  at::Tensor vf = run1("Constant", {}, {{"value_float", 2.5f}});
  EXPECT_EQ(vf.dim(), 0);
  EXPECT_EQ(vf.scalar_type(), at::kFloat);
  EXPECT_EQ(vf.item<float>(), 2.5f);
  EXPECT_TRUE(at::equal(run1("Constant", {}, {{"value_floats", std::vector<float>{1.f, -2.f}}}), f32({1.f, -2.f})));
  at::Tensor vi = run1("Constant", {}, {{"value_int", int64_t{-7}}});
  EXPECT_EQ(vi.dim(), 0);
  EXPECT_EQ(vi.scalar_type(), at::kLong);
  EXPECT_EQ(vi.item<int64_t>(), -7);
  EXPECT_TRUE(at::equal(run1("Constant", {}, {{"value_ints", std::vector<int64_t>{3, 4, 5}}}), i64({3, 4, 5})));
  EXPECT_THROW(run1("Constant", {}, {}), Error);
  EXPECT_THROW(run1("Constant", {}, {{"value_int", 1}, {"value_float", 1.0f}}), Error);
  EXPECT_THROW(run1("Constant", {}, {{"value_string", "abc"}}), Error);
}

// The spec's worked example: N=2, C=3, d1=2.
at::Tensor nllInput() {
  return f32({1, 2, 2, 2, 3, 2, 0, 1, 2, 2, 1, 2}).reshape({2, 3, 2});
}

TEST(OpsMisc, NllLossReductionsWeightsAndIgnoreIndex) {
  at::Tensor x = nllInput(), t = i64({2, 1, 0, 2}).reshape({2, 2}), w = f32({0.2f, 0.3f, 0.1f});
  at::Tensor none = run1("NegativeLogLikelihoodLoss", {x, t}, {{"reduction", "none"}});
  EXPECT_TRUE(at::equal(none, f32({-3, -2, -0, -2}).reshape({2, 2})));
  at::Tensor sum = run1("NegativeLogLikelihoodLoss", {x, t, w}, {{"reduction", "sum"}});
  EXPECT_NEAR(sum.item<float>(), -1.1f, 1e-6);
  at::Tensor mean = run1("NegativeLogLikelihoodLoss", {x, t, w});  // default reduction: mean
  EXPECT_NEAR(mean.item<float>(), -1.1f / 0.7f, 1e-6);
  // ignore_index=2 drops (0,0) and (1,1): loss -2*0.3 and -0*0.2 over weight 0.3 + 0.2.
  std::map<std::string, Attribute> ii{{"ignore_index", 2}};
  EXPECT_NEAR(run1("NegativeLogLikelihoodLoss", {x, t, w}, ii).item<float>(), -0.6f / 0.5f, 1e-6);
  ii["reduction"] = "none";
  at::Tensor none_ii = run1("NegativeLogLikelihoodLoss", {x, t, w}, ii);
  EXPECT_TRUE(at::allclose(none_ii, f32({0, -0.6f, 0, 0}).reshape({2, 2})));
  // Negative ignore_index with int32 targets.
  at::Tensor tn = at::tensor({-1, 1, 0, 2}, at::kInt).reshape({2, 2});
  at::Tensor neg = run1("NegativeLogLikelihoodLoss", {x, tn}, {{"ignore_index", -1}});
  EXPECT_NEAR(neg.item<float>(), (-2.f - 0.f - 2.f) / 3.f, 1e-6);
  EXPECT_THROW(run1("NegativeLogLikelihoodLoss", {x, tn}), Error);  // -1 is not ignored: invalid
  EXPECT_THROW(run1("NegativeLogLikelihoodLoss", {x, t}, {{"reduction", "avg"}}), Error);
}

TEST(OpsMisc, SoftmaxCrossEntropyLogProbAndGradient) {
  at::Tensor s = test::randn({3, 4, 2}, 7);
  at::Tensor y = i64({0, 3, 1, 1, 2, 0}).reshape({3, 2});
  auto out = runOp("SoftmaxCrossEntropyLoss", {s, y}, {}, 2);
  at::Tensor sd = s.to(at::kDouble);
  at::Tensor logp = sd - sd.exp().sum(1, true).log();
  EXPECT_LT(test::maxRelDiff(out[1], logp), 1e-5);
  double want = 0;
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t d = 0; d < 2; ++d) want -= logp[n][y[n][d].item<int64_t>()][d].item<double>();
  EXPECT_NEAR(out[0].item<float>(), want / 6, 1e-5);

  Graph g;
  Value* p = g.addParam("scores", s.clone().requires_grad_(true));
  Value* lbl = g.addInput("labels", DType::Int64, std::vector<Dim>{3, 2});
  g.addOutput(g.addNode("SoftmaxCrossEntropyLoss", {p, lbl}, 1, "sce")->output(0));
  Executor ex(g, {.training = true});
  ex.run({y})[0].backward();
  // d mean(-log softmax[y]) / ds = (softmax - onehot(y)) / 6.
  at::Tensor onehot = at::zeros({3, 4, 2}, at::kDouble);
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t d = 0; d < 2; ++d) onehot[n][y[n][d].item<int64_t>()][d] = 1.0;
  EXPECT_LT(test::maxRelDiff(p->data().grad(), (logp.exp() - onehot) / 6), 1e-5);
}

TEST(OpsMisc, SoftmaxCrossEntropyHalfScores) {
  at::Tensor s = test::randn({4, 3}, 8);
  at::Tensor y = i64({0, 2, 1, 1});
  auto h = runOp("SoftmaxCrossEntropyLoss", {s.to(at::kHalf), y}, {{"reduction", "sum"}}, 2);
  auto f = runOp("SoftmaxCrossEntropyLoss", {s.to(at::kHalf).to(at::kFloat), y},
                 {{"reduction", "sum"}}, 2);
  EXPECT_EQ(h[0].scalar_type(), at::kHalf);
  EXPECT_EQ(h[1].scalar_type(), at::kHalf);
  EXPECT_LT(test::maxRelDiff(h[0], f[0]), 2e-3);
  EXPECT_LT(test::maxRelDiff(h[1], f[1]), 2e-3);
}

TEST(OpsMisc, WindowFunctionsClosedForm) {
  at::Tensor n4 = at::scalar_tensor(4, at::kLong), n5 = at::scalar_tensor(5, at::kInt);
  EXPECT_LT(test::maxRelDiff(run1("HannWindow", {n4}), f32({0.f, 0.5f, 1.f, 0.5f})), 1e-6);
  EXPECT_LT(test::maxRelDiff(run1("HannWindow", {n5}, {{"periodic", 0}}), f32({0.f, 0.5f, 1.f, 0.5f, 0.f})), 1e-6);
  const double a0 = 25.0 / 46.0, a1 = 1 - a0;
  at::Tensor ham = run1("HammingWindow", {n4});
  EXPECT_LT(test::maxRelDiff(ham, at::tensor({a0 - a1, a0, a0 + a1, a0})), 1e-6);
  at::Tensor bl = run1("BlackmanWindow", {at::scalar_tensor(3, at::kLong)},
                       {{"periodic", 0}, {"output_datatype", 11}});
  EXPECT_EQ(bl.scalar_type(), at::kDouble);
  EXPECT_LT((bl - at::tensor({0.0, 1.0, 0.0}, at::kDouble)).abs().max().item<double>(), 1e-6);
  at::Tensor blp = run1("BlackmanWindow", {n4});
  // n=1: 0.42 - 0.5 cos(pi/2) + 0.08 cos(pi) = 0.34.
  EXPECT_NEAR(blp[1].item<float>(), 0.34f, 1e-6);
}

TEST(OpsMisc, NonMaxSuppressionClosedForm) {
  // Corner form, two classes worth of scores; box 1 overlaps box 0 with IoU 0.9 / 1.1.
  at::Tensor boxes = f32({0, 0, 1, 1, 0, 0.1f, 1, 1.1f, 0, 2, 1, 3}).reshape({1, 3, 4});
  at::Tensor scores = f32({0.9f, 0.8f, 0.7f, 0.5f, 0.5f, 0.5f}).reshape({1, 2, 3});
  auto nms = [&](const at::Tensor& b, int64_t max_out, float iou, float st, int64_t cpb = 0) {
    return run1("NonMaxSuppression", {b, scores, i64({max_out}), f32({iou}), f32({st})},
                {{"center_point_box", cpb}});
  };
  EXPECT_TRUE(at::equal(nms(boxes, 3, 0.5f, 0.0f), i64({0, 0, 0, 0, 0, 2, 0, 1, 0, 0, 1, 2}).reshape({4, 3})));
  EXPECT_TRUE(at::equal(nms(boxes, 3, 0.95f, 0.0f),  // IoU 0.818 no longer suppresses; ties by index
                        i64({0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 1, 0, 0, 1, 1, 0, 1, 2}).reshape({6, 3})));
  EXPECT_TRUE(at::equal(nms(boxes, 1, 0.5f, 0.0f), i64({0, 0, 0, 0, 1, 0}).reshape({2, 3})));
  EXPECT_TRUE(at::equal(nms(boxes, 3, 0.5f, 0.75f), i64({0, 0, 0}).reshape({1, 3})));
  // Same boxes as (x_center, y_center, width, height).
  at::Tensor centers = f32({0.5f, 0.5f, 1, 1, 0.6f, 0.5f, 1, 1, 2.5f, 0.5f, 1, 1}).reshape({1, 3, 4});
  EXPECT_TRUE(at::equal(nms(centers, 3, 0.5f, 0.0f, 1), nms(boxes, 3, 0.5f, 0.0f)));
  // Omitted max_output_boxes_per_class selects nothing.
  at::Tensor none = run1("NonMaxSuppression", {boxes, scores});
  EXPECT_EQ(none.sizes(), (std::vector<int64_t>{0, 3}));
}

}  // namespace
}  // namespace gs
