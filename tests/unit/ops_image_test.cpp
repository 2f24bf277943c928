// Image kernels (Resize, DepthToSpace, SpaceToDepth, GridSample) against ONNX's expected outputs,
// a naive per-pixel bilinear reference, and consistency of the ATen fast paths with the general
// one.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "op_test_util.h"
#include "runtime/executor.h"

namespace gs {
namespace {

using namespace gs::test;  // NOLINT: shared op-test helpers

TEST(OpsImage, OnnxResizeCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(
      runConformanceCaseList({"test_resize_downsample_scales_cubic",
                              "test_resize_downsample_scales_cubic_A_n0p5_exclude_outside",
                              "test_resize_downsample_scales_cubic_align_corners",
                              "test_resize_downsample_scales_linear",
                              "test_resize_downsample_scales_linear_align_corners",
                              "test_resize_downsample_scales_nearest",
                              "test_resize_downsample_sizes_cubic",
                              "test_resize_downsample_sizes_linear_pytorch_half_pixel",
                              "test_resize_downsample_sizes_nearest",
                              "test_resize_tf_crop_and_resize",
                              "test_resize_upsample_scales_cubic",
                              "test_resize_upsample_scales_cubic_A_n0p5_exclude_outside",
                              "test_resize_upsample_scales_cubic_align_corners",
                              "test_resize_upsample_scales_cubic_asymmetric",
                              "test_resize_upsample_scales_linear",
                              "test_resize_upsample_scales_linear_align_corners",
                              "test_resize_upsample_scales_nearest",
                              "test_resize_upsample_sizes_cubic",
                              "test_resize_upsample_sizes_nearest",
                              "test_resize_upsample_sizes_nearest_ceil_half_pixel",
                              "test_resize_upsample_sizes_nearest_floor_align_corners",
                              "test_resize_upsample_sizes_nearest_round_prefer_ceil_asymmetric"},
                             {.max_rel_diff = 1e-5}));
}

TEST(OpsImage, OnnxDepthSpaceGridSampleCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(
      runConformanceCaseList({"test_depthtospace_crd_mode", "test_depthtospace_crd_mode_example",
                              "test_depthtospace_dcr_mode", "test_depthtospace_example",
                              "test_spacetodepth", "test_spacetodepth_example"},
                             kExact));
  // Bicubic differs from ONNX's float64 reference by float32 rounding (~3e-5).
  EXPECT_TRUE(runConformanceCase("test_gridsample_bicubic", {.max_rel_diff = 1e-4}));
  EXPECT_TRUE(runConformanceCaseList(
      {"test_gridsample", "test_gridsample_aligncorners_true", "test_gridsample_bilinear",
       "test_gridsample_border_padding", "test_gridsample_nearest",
       "test_gridsample_reflection_padding", "test_gridsample_zeros_padding"},
      {.max_rel_diff = 1e-5}));
}

/// Naive bilinear resize of the last two dims, per output pixel, with ONNX coordinate modes
/// ("half_pixel", "align_corners", "tf_crop_and_resize" with roi {y0, x0, y1, x1}).
at::Tensor naiveBilinear(const at::Tensor& x0, int64_t oh, int64_t ow, const std::string& mode,
                         std::vector<double> roi = {}, double extrap = 0) {
  at::Tensor x = x0.to(at::kDouble).reshape({-1, x0.size(-2), x0.size(-1)});
  int64_t P = x.size(0), H = x.size(1), W = x.size(2);
  at::Tensor y = at::zeros({P, oh, ow}, at::kDouble);
  auto xa = x.accessor<double, 3>();
  auto ya = y.accessor<double, 3>();
  auto coord = [&](int64_t j, int64_t in, int64_t out, int axis, bool* outside) {
    if (mode == "half_pixel") return (j + 0.5) * in / out - 0.5;
    if (mode == "align_corners") return out > 1 ? j * double(in - 1) / (out - 1) : 0.0;
    double s = roi[axis], e = roi[axis + 2];
    double c =
        out > 1 ? s * (in - 1) + j * (e - s) * (in - 1) / (out - 1) : 0.5 * (s + e) * (in - 1);
    if (c < 0 || c > in - 1) *outside = true;
    return c;
  };
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        bool outside = false;
        double cy = coord(i, H, oh, 0, &outside), cx = coord(j, W, ow, 1, &outside);
        if (outside) {
          ya[p][i][j] = extrap;
          continue;
        }
        auto at = [&](int64_t yy, int64_t xx) {
          yy = std::clamp<int64_t>(yy, 0, H - 1);
          xx = std::clamp<int64_t>(xx, 0, W - 1);
          return xa[p][yy][xx];
        };
        int64_t y0 = static_cast<int64_t>(std::floor(cy)),
                x0i = static_cast<int64_t>(std::floor(cx));
        double ty = cy - y0, tx = cx - x0i;
        ya[p][i][j] = (1 - ty) * ((1 - tx) * at(y0, x0i) + tx * at(y0, x0i + 1)) +
                      ty * ((1 - tx) * at(y0 + 1, x0i) + tx * at(y0 + 1, x0i + 1));
      }
  std::vector<int64_t> shape(x0.sizes().begin(), x0.sizes().end() - 2);
  shape.push_back(oh);
  shape.push_back(ow);
  return y.reshape(shape);
}

at::Tensor sizesOf(std::vector<int64_t> v) { return at::tensor(v, at::kLong); }

TEST(OpsImage, LinearResizeFastAndGeneralPathsMatchNaive) {
  at::Tensor x = test::randn({2, 3, 5, 7}, 1);
  for (const char* mode : {"half_pixel", "align_corners"}) {
    SCOPED_TRACE(mode);
    for (auto [oh, ow] : {std::pair<int64_t, int64_t>{9, 4}, {3, 14}}) {
      std::map<std::string, Attribute> attrs{{"mode", "linear"},
                                             {"coordinate_transformation_mode", mode}};
      at::Tensor ref = naiveBilinear(x, oh, ow, mode);
      // rank 4 -> ATen upsample_bilinear2d; rank 2 -> the general gather path.
      auto fast = runOp("Resize", {x, at::Tensor(), at::Tensor(), sizesOf({2, 3, oh, ow})}, attrs);
      auto gen = runOp("Resize", {x[1][2], at::Tensor(), at::Tensor(), sizesOf({oh, ow})}, attrs);
      EXPECT_LT(test::maxRelDiff(fast[0], ref), 1e-5);
      EXPECT_LT(test::maxRelDiff(gen[0], ref[1][2]), 1e-5);
    }
  }
}

TEST(OpsImage, TfCropAndResizeExtrapolatesOutsideRoi) {
  at::Tensor x = test::randn({1, 2, 6, 5}, 2);
  std::vector<double> roi2{-0.2, 0.1, 0.9, 1.3};  // y0, x0, y1, x1 (x1 beyond the image)
  at::Tensor roi = at::tensor({0.0, 0.0, -0.2, 0.1, 1.0, 1.0, 0.9, 1.3}, at::kFloat);
  auto y = runOp("Resize", {x, roi, at::Tensor(), sizesOf({1, 2, 4, 6})},
                 {{"mode", "linear"},
                  {"coordinate_transformation_mode", "tf_crop_and_resize"},
                  {"extrapolation_value", 7.5f}});
  at::Tensor ref = naiveBilinear(x, 4, 6, "tf_crop_and_resize", roi2, 7.5);
  EXPECT_LT(test::maxRelDiff(y[0], ref), 1e-5);
  EXPECT_GT((y[0] == 7.5).sum().item<int64_t>(), 0);
}

TEST(OpsImage, NearestAsymmetricFloorFastAndGeneral) {
  at::Tensor x = test::randn({1, 2, 3, 4}, 3);
  std::map<std::string, Attribute> attrs{{"mode", "nearest"},
                                         {"coordinate_transformation_mode", "asymmetric"},
                                         {"nearest_mode", "floor"}};
  // Integer factors (ATen upsample_nearest2d): out[i] = in[floor(i / 3)], out[j] = in[floor(j /
  // 2)].
  auto y = runOp("Resize", {x, at::Tensor(), at::tensor({1.f, 1.f, 3.f, 2.f})}, attrs);
  at::Tensor ref = x.repeat_interleave(3, 2).repeat_interleave(2, 3);
  EXPECT_TRUE(at::equal(y[0], ref));
  // Fractional factor 1.5 (general path): floor(j / 1.5) for j = 0..5 -> 0 0 1 2 2 3.
  auto y2 = runOp("Resize", {x, at::Tensor(), at::tensor({1.f, 1.f, 1.f, 1.5f})}, attrs);
  at::Tensor ref2 = x.index_select(3, at::tensor({0, 0, 1, 2, 2, 3}, at::kLong));
  EXPECT_TRUE(at::equal(y2[0], ref2));
  // Integer dtype through the general gather path (rank 2).
  at::Tensor xi = at::arange(12, at::kByte).reshape({3, 4});
  auto yi = runOp("Resize", {xi, at::Tensor(), at::tensor({2.f, 1.f})}, attrs);
  EXPECT_TRUE(at::equal(yi[0], xi.repeat_interleave(2, 0)));
  // Default mode (half_pixel + round_prefer_floor) with factor 2 also reduces to floor(i / 2).
  auto yd =
      runOp("Resize", {x, at::Tensor(), at::tensor({1.f, 1.f, 2.f, 2.f})}, {{"mode", "nearest"}});
  EXPECT_TRUE(at::equal(yd[0], x.repeat_interleave(2, 2).repeat_interleave(2, 3)));
}

TEST(OpsImage, CubicFastPathMatchesGeneralPath) {
  at::Tensor x = test::randn({1, 1, 6, 5}, 4);
  for (const char* mode : {"half_pixel", "align_corners"}) {
    SCOPED_TRACE(mode);
    std::map<std::string, Attribute> attrs{{"mode", "cubic"},
                                           {"coordinate_transformation_mode", mode}};
    auto fast = runOp("Resize", {x, at::Tensor(), at::Tensor(), sizesOf({1, 1, 4, 11})}, attrs);
    auto gen = runOp("Resize", {x[0][0], at::Tensor(), at::Tensor(), sizesOf({4, 11})}, attrs);
    EXPECT_LT(test::maxRelDiff(fast[0][0][0], gen[0]), 1e-5);
  }
}

TEST(OpsImage, ResizeIsDifferentiableInTrainMode) {
  at::Tensor x = test::randn({1, 1, 3, 3}, 5).requires_grad_(true);
  Graph g;
  Value* v = g.addParam("x", x, true);
  Value* sc = g.addParam("scales", at::tensor({1.f, 1.f, 2.f, 2.f}), false);
  Node* n = g.addNode("Resize", {v, nullptr, sc}, 1, "up", {{"mode", "linear"}});
  g.addOutput(n->output(0));
  Executor ex(g, {.training = true});
  auto y = ex.run({});
  y[0].sum().backward();
  ASSERT_TRUE(x.grad().defined());
  // Linear interpolation weights sum to one per output: total gradient = number of outputs.
  EXPECT_NEAR(x.grad().sum().item<double>(), 36.0, 1e-4);
}

TEST(OpsImage, DepthToSpaceRoundTripsAndMatchesPixelShuffle) {
  at::Tensor x = test::randn({2, 12, 3, 4}, 6);
  auto crd = runOp("DepthToSpace", {x}, {{"blocksize", 2}, {"mode", "CRD"}});
  EXPECT_TRUE(at::equal(crd[0], at::pixel_shuffle(x, 2)));
  auto dcr = runOp("DepthToSpace", {x}, {{"blocksize", 2}});
  auto back = runOp("SpaceToDepth", {dcr[0]}, {{"blocksize", 2}});
  EXPECT_TRUE(at::equal(back[0], x));
  // DCR: output channel c at (2h + i, 2w + j) comes from input channel (i * 2 + j) * 3 + c.
  EXPECT_EQ(dcr[0][1][2][3][5].item<float>(), x[1][(1 * 2 + 1) * 3 + 2][1][2].item<float>());
}

TEST(OpsImage, GridSampleMatchesATen) {
  at::Tensor x = test::randn({2, 3, 5, 6}, 7), grid = at::tanh(test::randn({2, 4, 7, 2}, 8)) * 1.2;
  auto y = runOp("GridSample", {x, grid},
                 {{"mode", "bicubic"}, {"padding_mode", "reflection"}, {"align_corners", 1}});
  EXPECT_LT(test::maxRelDiff(y[0], at::grid_sampler(x, grid, 2, 2, true)), 1e-6);
}

}  // namespace
}  // namespace gs
