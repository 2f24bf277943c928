// Normalization kernels against ONNX's expected outputs and closed-form references.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "op_test_util.h"
#include "runtime/executor.h"

namespace gs {
namespace {

using namespace gs::test;  // NOLINT: shared op-test helpers

TEST(OpsNorm, OnnxBatchNormCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCaseList(
      {"test_batchnorm_epsilon", "test_batchnorm_example", "test_batchnorm_epsilon_training_mode",
       "test_batchnorm_example_training_mode"},
      {.max_rel_diff = 1e-5}));
}

TEST(OpsNorm, OnnxLayerNormCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCaseList(
      {"test_layer_normalization_2d_axis0", "test_layer_normalization_2d_axis1",
       "test_layer_normalization_2d_axis_negative_1", "test_layer_normalization_2d_axis_negative_2",
       "test_layer_normalization_3d_axis0_epsilon", "test_layer_normalization_3d_axis1_epsilon",
       "test_layer_normalization_3d_axis2_epsilon",
       "test_layer_normalization_3d_axis_negative_1_epsilon",
       "test_layer_normalization_3d_axis_negative_2_epsilon",
       "test_layer_normalization_3d_axis_negative_3_epsilon", "test_layer_normalization_4d_axis0",
       "test_layer_normalization_4d_axis1", "test_layer_normalization_4d_axis2",
       "test_layer_normalization_4d_axis3", "test_layer_normalization_4d_axis_negative_1",
       "test_layer_normalization_4d_axis_negative_2", "test_layer_normalization_4d_axis_negative_3",
       "test_layer_normalization_4d_axis_negative_4", "test_layer_normalization_default_axis"},
      {.max_rel_diff = 1e-4}));
}

TEST(OpsNorm, OnnxInstanceNormLrnMvnCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCaseList({"test_instancenorm_epsilon", "test_instancenorm_example",
                                      "test_lrn", "test_lrn_default", "test_mvn"},
                                     {.max_rel_diff = 1e-5}));
}

TEST(OpsNorm, BatchNormEvalUsesRunningStats) {
  at::Tensor x = test::randn({3, 4, 5}, 1), s = test::randn({4}, 2), b = test::randn({4}, 3);
  at::Tensor m = test::randn({4}, 4), v = test::randn({4}, 5).abs() + 0.5;
  auto y = runOp("BatchNormalization", {x, s, b, m, v}, {{"epsilon", 1e-3f}}, 1, "",
                 {.params = {1, 2, 3, 4}});
  at::Tensor ref = (x - m.reshape({4, 1})) / (v.reshape({4, 1}) + 1e-3).sqrt() * s.reshape({4, 1}) +
                   b.reshape({4, 1});
  EXPECT_LT(test::maxRelDiff(y[0], ref), 1e-5);
}

TEST(OpsNorm, BatchNormTrainModeUpdatesRunningStatsInPlace) {
  at::Tensor x = test::randn({4, 3, 2, 2}, 6) * 2 + 1;
  at::Tensor s = test::randn({3}, 7).requires_grad_(true),
             b = test::randn({3}, 8).requires_grad_(true);
  at::Tensor m0 = test::randn({3}, 9), v0 = test::randn({3}, 10).abs() + 0.5;
  at::Tensor m = m0.clone(), v = v0.clone();
  Graph g;
  Value* xi = g.addInput("x", DType::Float32, Shape());
  Value* sp = g.addParam("bn.weight", s, true);
  Value* bp = g.addParam("bn.bias", b, true);
  Value* mp = g.addParam("bn.running_mean", m, false);
  Value* vp = g.addParam("bn.running_var", v, false);
  Node* n = g.addNode("BatchNormalization", {xi, sp, bp, mp, vp}, 1, "bn",
                      {{"momentum", 0.8f}, {"epsilon", 1e-5f}});
  g.addOutput(n->output(0));
  Executor ex(g, {.training = true});
  auto y = ex.run({x});
  at::Tensor bm = x.mean({0, 2, 3}), bv_pop = x.var({0, 2, 3}, false),
             bv_unb = x.var({0, 2, 3}, true);
  at::Tensor ref = (x - bm.reshape({3, 1, 1})) / (bv_pop.reshape({3, 1, 1}) + 1e-5).sqrt() *
                       s.detach().reshape({3, 1, 1}) +
                   b.detach().reshape({3, 1, 1});
  EXPECT_LT(test::maxRelDiff(y[0], ref), 1e-5);
  // torch semantics: running = (1 - 0.2) * running + 0.2 * batch (0.2 = 1 - ONNX momentum),
  // unbiased var.
  EXPECT_LT(test::maxRelDiff(mp->data(), m0 * 0.8 + bm * 0.2), 1e-6);
  EXPECT_LT(test::maxRelDiff(vp->data(), v0 * 0.8 + bv_unb * 0.2), 1e-6);
  y[0].sum().backward();
  ASSERT_TRUE(b.grad().defined());
  EXPECT_LT(test::maxRelDiff(b.grad(), at::full({3}, 16.0)), 1e-6);
  // Back in eval mode the updated statistics are used.
  ex.setTraining(false);
  auto ye = ex.run({x});
  at::Tensor refe = (x - mp->data().reshape({3, 1, 1})) /
                        (vp->data().reshape({3, 1, 1}) + 1e-5).sqrt() *
                        s.detach().reshape({3, 1, 1}) +
                    b.detach().reshape({3, 1, 1});
  EXPECT_LT(test::maxRelDiff(ye[0], refe), 1e-5);
}

TEST(OpsNorm, LayerNormBroadcastScaleAndStats) {
  at::Tensor x = test::randn({2, 3, 4}, 11), s = test::randn({4}, 12), b = test::randn({1, 4}, 13);
  auto y = runOp("LayerNormalization", {x, s, b}, {{"axis", -2}, {"epsilon", 1e-4f}}, 3);
  at::Tensor mean = x.mean({1, 2}, true), var = x.var({1, 2}, false, true);
  at::Tensor ref = (x - mean) / (var + 1e-4).sqrt() * s + b;
  EXPECT_LT(test::maxRelDiff(y[0], ref), 1e-5);
  ASSERT_EQ(y[1].sizes(), at::IntArrayRef({2, 1, 1}));
  EXPECT_LT(test::maxRelDiff(y[1], mean), 1e-6);
  EXPECT_LT(test::maxRelDiff(y[2], (var + 1e-4).rsqrt()), 1e-5);
  // float16 input with stash_type=1: statistics in float32, Y back in float16.
  auto yh = runOp("LayerNormalization", {x.to(at::kHalf), s.to(at::kHalf)}, {{"axis", 1}}, 2);
  EXPECT_EQ(yh[0].scalar_type(), at::kHalf);
  EXPECT_EQ(yh[1].scalar_type(), at::kFloat);
  at::Tensor xh = x.to(at::kHalf).to(at::kFloat);
  at::Tensor refh = (xh - xh.mean({1, 2}, true)) / (xh.var({1, 2}, false, true) + 1e-5).sqrt() *
                    s.to(at::kHalf).to(at::kFloat);
  EXPECT_LT(test::maxRelDiff(yh[0], refh), 5e-3);
}

TEST(OpsNorm, LrnEvenSizeFollowsOnnxWindow) {
  at::Tensor x = test::randn({2, 5, 3, 2}, 14);
  const int64_t size = 4;
  const double alpha = 0.3, beta = 0.6, bias = 1.5;
  auto y = runOp("LRN", {x}, {{"size", size}, {"alpha", alpha}, {"beta", beta}, {"bias", bias}});
  at::Tensor ref = at::empty_like(x);
  for (int64_t c = 0; c < 5; ++c) {
    // Window [c - floor(3/2), c + ceil(3/2)] = [c - 1, c + 2].
    int64_t lo = std::max<int64_t>(0, c - 1), hi = std::min<int64_t>(4, c + 2);
    at::Tensor sq = x.slice(1, lo, hi + 1).square().sum(1);
    ref.select(1, c).copy_(x.select(1, c) / (bias + alpha / size * sq).pow(beta));
  }
  EXPECT_LT(test::maxRelDiff(y[0], ref), 1e-5);
}

TEST(OpsNorm, LpNormalizationAndMvnAxes) {
  at::Tensor x = test::randn({3, 4}, 15);
  x[1].zero_();
  auto y2 = runOp("LpNormalization", {x}, {{"axis", 1}, {"p", 2}});
  auto y1 = runOp("LpNormalization", {x}, {{"axis", 0}, {"p", 1}});
  at::Tensor n2 = x.square().sum(1, true).sqrt().clamp_min(1e-30);
  EXPECT_LT(test::maxRelDiff(y2[0], x / n2), 1e-6);
  EXPECT_TRUE(at::equal(y2[0][1], at::zeros({4})));
  EXPECT_LT(test::maxRelDiff(y1[0], x / x.abs().sum(0, true)), 1e-6);
  at::Tensor z = test::randn({2, 3, 4, 5}, 16);
  auto m = runOp("MeanVarianceNormalization", {z}, {{"axes", std::vector<int64_t>{1, -1}}});
  at::Tensor mu = z.mean({1, 3}, true), sd = z.var({1, 3}, false, true).sqrt();
  EXPECT_LT(test::maxRelDiff(m[0], (z - mu) / (sd + 1e-9)), 1e-5);
}

TEST(OpsNorm, InstanceNormMatchesFormula) {
  at::Tensor x = test::randn({2, 3, 4, 5}, 17), s = test::randn({3}, 18), b = test::randn({3}, 19);
  auto y = runOp("InstanceNormalization", {x, s, b}, {{"epsilon", 1e-3f}});
  at::Tensor ref = (x - x.mean({2, 3}, true)) / (x.var({2, 3}, false, true) + 1e-3).sqrt() *
                       s.reshape({3, 1, 1}) +
                   b.reshape({3, 1, 1});
  EXPECT_LT(test::maxRelDiff(y[0], ref), 1e-5);
}

}  // namespace
}  // namespace gs
