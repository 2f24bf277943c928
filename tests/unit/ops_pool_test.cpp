// Pooling kernels against ONNX's expected outputs and a naive windowed reference.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "op_test_util.h"
#include "runtime/executor.h"

namespace gs {
namespace {

using namespace gs::test;  // NOLINT: shared op-test helpers

enum class PoolKind { Max, Avg, AvgIncludePad, Lp2 };

/// Naive 2-D pooling with explicit ONNX pads [top, left, bottom, right], output size `out`.
/// Returns values and (for Max) ONNX flattened row-major indices.
std::pair<at::Tensor, at::Tensor> naivePool2d(const at::Tensor& x0, PoolKind kind,
                                              std::vector<int64_t> k, std::vector<int64_t> s,
                                              std::vector<int64_t> pads, std::vector<int64_t> d,
                                              std::vector<int64_t> out) {
  at::Tensor x = x0.to(at::kDouble).contiguous();
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor y = at::zeros({N, C, out[0], out[1]}, at::kDouble);
  at::Tensor idx = at::zeros({N, C, out[0], out[1]}, at::kLong);
  auto xa = x.accessor<double, 4>();
  auto ya = y.accessor<double, 4>();
  auto ia = idx.accessor<int64_t, 4>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t oh = 0; oh < out[0]; ++oh)
        for (int64_t ow = 0; ow < out[1]; ++ow) {
          double best = -std::numeric_limits<double>::infinity(), sum = 0;
          int64_t best_i = -1, count = 0;
          for (int64_t kh = 0; kh < k[0]; ++kh)
            for (int64_t kw = 0; kw < k[1]; ++kw) {
              int64_t ih = oh * s[0] - pads[0] + kh * d[0], iw = ow * s[1] - pads[1] + kw * d[1];
              bool in_pads =
                  ih >= -pads[0] && ih < H + pads[2] && iw >= -pads[1] && iw < W + pads[3];
              if (kind == PoolKind::AvgIncludePad && in_pads) ++count;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              double v = xa[n][c][ih][iw];
              if (kind != PoolKind::AvgIncludePad) ++count;
              sum += kind == PoolKind::Lp2 ? v * v : v;
              if (v > best) {
                best = v;
                best_i = ((n * C + c) * H + ih) * W + iw;
              }
            }
          ya[n][c][oh][ow] = kind == PoolKind::Max   ? best
                             : kind == PoolKind::Lp2 ? std::sqrt(sum)
                                                     : sum / count;
          ia[n][c][oh][ow] = best_i;
        }
  return {y, idx};
}

TEST(OpsPool, OnnxMaxPoolCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCaseList(
      {"test_maxpool_1d_default", "test_maxpool_2d_ceil", "test_maxpool_2d_default",
       "test_maxpool_2d_dilations", "test_maxpool_2d_pads", "test_maxpool_2d_precomputed_pads",
       "test_maxpool_2d_precomputed_same_upper", "test_maxpool_2d_precomputed_strides",
       "test_maxpool_2d_same_lower", "test_maxpool_2d_same_upper", "test_maxpool_2d_strides",
       "test_maxpool_2d_uint8", "test_maxpool_3d_default",
       "test_maxpool_with_argmax_2d_precomputed_pads",
       "test_maxpool_with_argmax_2d_precomputed_strides"},
      kExact));
}

TEST(OpsPool, OnnxAveragePoolCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCaseList(
      {"test_averagepool_1d_default", "test_averagepool_2d_ceil", "test_averagepool_2d_default",
       "test_averagepool_2d_pads", "test_averagepool_2d_pads_count_include_pad",
       "test_averagepool_2d_precomputed_pads",
       "test_averagepool_2d_precomputed_pads_count_include_pad",
       "test_averagepool_2d_precomputed_same_upper", "test_averagepool_2d_precomputed_strides",
       "test_averagepool_2d_same_lower", "test_averagepool_2d_same_upper",
       "test_averagepool_2d_strides", "test_averagepool_3d_default"},
      {.max_rel_diff = 1e-5}));
}

TEST(OpsPool, OnnxGlobalAndUnpoolCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCaseList(
      {"test_globalaveragepool", "test_globalaveragepool_precomputed", "test_globalmaxpool",
       "test_globalmaxpool_precomputed", "test_maxunpool_export_without_output_shape"},
      {.max_rel_diff = 1e-6}));
}

TEST(OpsPool, MaxPoolAsymmetricPadsCeilIndicesMatchNaive) {
  at::Tensor x = test::randn({2, 3, 7, 8}, 1);
  std::vector<int64_t> k{3, 2}, s{2, 3}, pads{1, 0, 0, 2}, d{1, 2};
  // H: ceil((7 + 1 - 3) / 2) + 1 = 4; W: ceil((8 + 2 - 3) / 3) + 1 = 4, but the 4th W window
  // would start at 9 >= 8 + 0 (inside the right padding), so it is dropped: W = 3.
  auto y = runOp(
      "MaxPool", {x},
      {{"kernel_shape", k}, {"strides", s}, {"pads", pads}, {"dilations", d}, {"ceil_mode", 1}}, 2);
  auto [ref, ref_idx] = naivePool2d(x, PoolKind::Max, k, s, pads, d, {4, 3});
  EXPECT_LT(test::maxRelDiff(y[0], ref), 1e-6);
  EXPECT_TRUE(at::equal(y[1], ref_idx));
  // Fast (ATen-padded) path: symmetric pads, floor mode, indices still global.
  auto y2 = runOp(
      "MaxPool", {x},
      {{"kernel_shape", std::vector<int64_t>{3, 3}}, {"pads", std::vector<int64_t>{1, 1, 1, 1}}},
      2);
  auto [ref2, ref2_idx] =
      naivePool2d(x, PoolKind::Max, {3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, {7, 8});
  EXPECT_LT(test::maxRelDiff(y2[0], ref2), 1e-6);
  EXPECT_TRUE(at::equal(y2[1], ref2_idx));
}

TEST(OpsPool, MaxPoolColumnMajorIndices) {
  at::Tensor x = test::randn({1, 2, 5, 4}, 2);
  auto y = runOp("MaxPool", {x},
                 {{"kernel_shape", std::vector<int64_t>{2, 2}},
                  {"storage_order", 1},
                  {"pads", std::vector<int64_t>{0, 1, 0, 0}}},
                 2);
  auto [ref, ref_idx] = naivePool2d(x, PoolKind::Max, {2, 2}, {1, 1}, {0, 1, 0, 0}, {1, 1}, {4, 4});
  // Row-major (h * W + w) within a plane -> column-major (h + w * H).
  at::Tensor plane = ref_idx.remainder(20), base = ref_idx - plane;
  at::Tensor col = base + plane.div(4, "floor") + plane.remainder(4) * 5;
  EXPECT_LT(test::maxRelDiff(y[0], ref), 1e-6);
  EXPECT_TRUE(at::equal(y[1], col));
}

TEST(OpsPool, AveragePoolPadsCeilCountIncludePadMatchNaive) {
  at::Tensor x = test::randn({1, 2, 6, 7}, 3);
  std::vector<int64_t> k{3, 3}, s{2, 2}, pads{0, 2, 1, 1};
  // H: ceil((6 + 1 - 3) / 2) + 1 = 3; W: ceil((7 + 3 - 3) / 2) + 1 = 5 (last window overhangs the
  // pad).
  for (int include : {0, 1}) {
    SCOPED_TRACE(include);
    auto y = runOp("AveragePool", {x},
                   {{"kernel_shape", k},
                    {"strides", s},
                    {"pads", pads},
                    {"ceil_mode", 1},
                    {"count_include_pad", include}});
    auto ref = naivePool2d(x, include ? PoolKind::AvgIncludePad : PoolKind::Avg, k, s, pads, {1, 1},
                           {3, 5})
                   .first;
    EXPECT_LT(test::maxRelDiff(y[0], ref), 1e-5);
  }
  // SAME_LOWER with an odd total: the extra pad goes first; padding is not counted.
  auto y = runOp("AveragePool", {x},
                 {{"kernel_shape", std::vector<int64_t>{2, 3}}, {"auto_pad", "SAME_LOWER"}});
  auto ref = naivePool2d(x, PoolKind::Avg, {2, 3}, {1, 1}, {1, 1, 0, 1}, {1, 1}, {6, 7}).first;
  EXPECT_LT(test::maxRelDiff(y[0], ref), 1e-5);
}

TEST(OpsPool, LpPoolMatchesNaive) {
  at::Tensor x = test::randn({1, 3, 5, 6}, 4);
  auto y = runOp("LpPool", {x},
                 {{"kernel_shape", std::vector<int64_t>{2, 3}},
                  {"p", 2},
                  {"pads", std::vector<int64_t>{1, 0, 0, 1}},
                  {"strides", std::vector<int64_t>{1, 2}}});
  auto ref = naivePool2d(x, PoolKind::Lp2, {2, 3}, {1, 2}, {1, 0, 0, 1}, {1, 1}, {5, 3}).first;
  EXPECT_LT(test::maxRelDiff(y[0], ref), 1e-5);
  auto y1 = runOp("LpPool", {x}, {{"kernel_shape", std::vector<int64_t>{2, 2}}, {"p", 1}});
  at::Tensor ref1 = at::avg_pool2d(x.abs(), {2, 2}, {1, 1}) * 4;
  EXPECT_LT(test::maxRelDiff(y1[0], ref1), 1e-5);
}

// test_maxunpool_export_with_output_shape is not used: its hand-written expected output places
// index 5 of a 4x4 plane at (1, 1) of the 5x5 output, contradicting the spec ("indices are linear
// over the output, row-major") and torch's max_unpool; gstick follows the spec.
TEST(OpsPool, MaxUnpoolOutputShapeUsesLinearOutputIndices) {
  at::Tensor x = at::tensor({5.f, 6.f, 7.f, 8.f}).reshape({1, 1, 2, 2});
  at::Tensor i = at::tensor({5, 7, 13, 15}, at::kLong).reshape({1, 1, 2, 2});
  auto u = runOp(
      "MaxUnpool", {x, i, at::tensor({1, 1, 5, 5}, at::kLong)},
      {{"kernel_shape", std::vector<int64_t>{2, 2}}, {"strides", std::vector<int64_t>{2, 2}}});
  at::Tensor ref = at::zeros({25});
  ref.index_put_({at::tensor({5, 7, 13, 15}, at::kLong)}, at::tensor({5.f, 6.f, 7.f, 8.f}));
  EXPECT_TRUE(at::equal(u[0], ref.reshape({1, 1, 5, 5})));
}

TEST(OpsPool, MaxUnpoolInvertsMaxPoolIndices) {
  at::Tensor x = test::randn({2, 2, 4, 6}, 5).abs() + 0.1;
  auto p = runOp(
      "MaxPool", {x},
      {{"kernel_shape", std::vector<int64_t>{2, 2}}, {"strides", std::vector<int64_t>{2, 2}}}, 2);
  auto u = runOp(
      "MaxUnpool", {p[0], p[1]},
      {{"kernel_shape", std::vector<int64_t>{2, 2}}, {"strides", std::vector<int64_t>{2, 2}}});
  ASSERT_EQ(u[0].sizes(), x.sizes());
  at::Tensor ref =
      at::zeros({x.numel()}).scatter(0, p[1].reshape({-1}), p[0].reshape({-1})).reshape(x.sizes());
  EXPECT_TRUE(at::equal(u[0], ref));
  // Every pooled maximum appears at its source position; the rest are zeros.
  EXPECT_TRUE(at::equal(at::max_pool2d(u[0], {2, 2}, {2, 2}), p[0]));
  EXPECT_EQ((u[0] != 0).sum().item<int64_t>(), p[0].numel());
}

TEST(OpsPool, GlobalPoolsReduceSpatialDims) {
  at::Tensor x = test::randn({2, 3, 4, 5, 2}, 6);
  auto a = runOp("GlobalAveragePool", {x}, {});
  auto m = runOp("GlobalMaxPool", {x}, {});
  ASSERT_EQ(a[0].sizes(), at::IntArrayRef({2, 3, 1, 1, 1}));
  EXPECT_LT(test::maxRelDiff(a[0], x.reshape({2, 3, -1}).mean(2).reshape({2, 3, 1, 1, 1})), 1e-6);
  EXPECT_TRUE(at::equal(m[0], std::get<0>(x.reshape({2, 3, -1}).max(2)).reshape({2, 3, 1, 1, 1})));
}

TEST(OpsPool, MaxPoolTrainModeGradientFlows) {
  at::Tensor x = test::randn({1, 1, 4, 4}, 7).requires_grad_(true);
  Graph g;
  Value* v = g.addParam("x", x, true);
  Node* n = g.addNode("MaxPool", {v}, 1, "pool",
                      {{"kernel_shape", std::vector<int64_t>{2, 2}},
                       {"pads", std::vector<int64_t>{0, 0, 1, 1}},
                       {"strides", std::vector<int64_t>{2, 2}}});
  g.addOutput(n->output(0));
  Executor ex(g, {.training = true});
  auto y = ex.run({});
  y[0].sum().backward();
  // Each of the 4 windows routes a gradient of 1 to exactly one input element.
  EXPECT_EQ(x.grad().sum().item<double>(), 4.0);
  EXPECT_EQ((x.grad() != 0).sum().item<int64_t>(), 4);
}

}  // namespace
}  // namespace gs
