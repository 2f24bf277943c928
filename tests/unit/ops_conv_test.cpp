// Conv, ConvTranspose, ConvInteger kernels against ONNX's expected outputs and naive loops.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "op_test_util.h"
#include "support/error.h"

namespace gs {
namespace {

using namespace gs::test;  // NOLINT: shared op-test helpers

/// Naive 2-D convolution in double with explicit per-side pads (ONNX layout), groups, dilations.
at::Tensor naiveConv2d(const at::Tensor& x0, const at::Tensor& w0, const at::Tensor& b0,
                       std::vector<int64_t> stride, std::vector<int64_t> pads,
                       std::vector<int64_t> dil, int64_t group) {
  at::Tensor x = x0.to(at::kDouble), w = w0.to(at::kDouble);
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  int64_t M = w.size(0), Cg = w.size(1), KH = w.size(2), KW = w.size(3);
  int64_t OH = (H + pads[0] + pads[2] - ((KH - 1) * dil[0] + 1)) / stride[0] + 1;
  int64_t OW = (W + pads[1] + pads[3] - ((KW - 1) * dil[1] + 1)) / stride[1] + 1;
  at::Tensor y = at::zeros({N, M, OH, OW}, at::kDouble);
  auto xa = x.accessor<double, 4>();
  auto wa = w.accessor<double, 4>();
  auto ya = y.accessor<double, 4>();
  int64_t Mg = M / group;
  EXPECT_EQ(C, Cg * group);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = b0.defined() ? b0[m].item<double>() : 0.0;
          int64_t g = m / Mg;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                int64_t ih = oh * stride[0] - pads[0] + kh * dil[0];
                int64_t iw = ow * stride[1] - pads[1] + kw * dil[1];
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += xa[n][g * Cg + c][ih][iw] * wa[m][c][kh][kw];
              }
          ya[n][m][oh][ow] = acc;
        }
  return y;
}

/// Naive 2-D transposed convolution (scatter form), cropped/extended to [pb, full + op - pe).
at::Tensor naiveConvTranspose2d(const at::Tensor& x0, const at::Tensor& w0, const at::Tensor& b0,
                                std::vector<int64_t> s, std::vector<int64_t> pads,
                                std::vector<int64_t> dil, std::vector<int64_t> op, int64_t group) {
  at::Tensor x = x0.to(at::kDouble), w = w0.to(at::kDouble);
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  int64_t Mg = w.size(1), KH = w.size(2), KW = w.size(3), Cg = C / group;
  int64_t OH = s[0] * (H - 1) + op[0] + (KH - 1) * dil[0] + 1 - pads[0] - pads[2];
  int64_t OW = s[1] * (W - 1) + op[1] + (KW - 1) * dil[1] + 1 - pads[1] - pads[3];
  at::Tensor y = at::zeros({N, Mg * group, OH, OW}, at::kDouble);
  auto xa = x.accessor<double, 4>();
  auto wa = w.accessor<double, 4>();
  auto ya = y.accessor<double, 4>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t ih = 0; ih < H; ++ih)
        for (int64_t iw = 0; iw < W; ++iw)
          for (int64_t m = 0; m < Mg; ++m)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                int64_t oh = ih * s[0] + kh * dil[0] - pads[0];
                int64_t ow = iw * s[1] + kw * dil[1] - pads[1];
                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                ya[n][(c / Cg) * Mg + m][oh][ow] += xa[n][c][ih][iw] * wa[c][m][kh][kw];
              }
  if (b0.defined()) y = y + b0.to(at::kDouble).reshape({-1, 1, 1});
  return y;
}

TEST(OpsConv, OnnxConformanceCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCaseList(
      {"test_basic_conv_with_padding", "test_basic_conv_without_padding",
       "test_conv_with_autopad_same", "test_conv_with_strides_and_asymmetric_padding",
       "test_conv_with_strides_no_padding", "test_conv_with_strides_padding"},
      {.max_rel_diff = 1e-5}));
}

TEST(OpsConv, OnnxConvTransposeCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCaseList(
      {"test_convtranspose", "test_convtranspose_1d", "test_convtranspose_3d",
       "test_convtranspose_autopad_same", "test_convtranspose_dilations",
       "test_convtranspose_kernel_shape", "test_convtranspose_output_shape",
       "test_convtranspose_pad", "test_convtranspose_pads", "test_convtranspose_with_kernel"},
      // test_convtranspose_with_kernel is stored at opset 8, which the importer refuses
      // (ConvTranspose changed at 11); its attributes (kernel_shape, strides, output_padding,
      // output_shape) mean the same at 11.
      {.max_rel_diff = 1e-5, .as_opset = 11}));
}

TEST(OpsConv, OnnxConvIntegerCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCaseList({"test_basic_convinteger", "test_convinteger_with_padding",
                                      "test_convinteger_without_padding"},
                                     kExact));
}

TEST(OpsConv, AsymmetricPadsGroupsDilationsMatchNaive) {
  at::Tensor x = test::randn({2, 4, 9, 8}, 1), w = test::randn({6, 2, 3, 2}, 2),
             b = test::randn({6}, 3);
  std::vector<int64_t> pads{2, 0, 1, 3}, strides{2, 1}, dil{1, 2};
  auto y = runOp("Conv", {x, w, b},
                 {{"pads", pads}, {"strides", strides}, {"dilations", dil}, {"group", 2}});
  EXPECT_LT(test::maxRelDiff(y[0], naiveConv2d(x, w, b, strides, pads, dil, 2)), 1e-5);
  // Same numbers with the weight as a constant parameter (the usual model form).
  auto yp = runOp("Conv", {x, w, b},
                  {{"pads", pads}, {"strides", strides}, {"dilations", dil}, {"group", 2}}, 1, "",
                  {.params = {1, 2}});
  EXPECT_LT(test::maxRelDiff(yp[0], y[0]), 1e-6);
}

TEST(OpsConv, NonContiguousAndChannelsLastInputs) {
  at::Tensor base = test::randn({2, 3, 6, 7}, 30), w = test::randn({4, 3, 3, 3}, 31);
  at::Tensor xt = base.transpose(2, 3);  // 2 x 3 x 7 x 6, non-contiguous
  at::Tensor xcl = base.contiguous(at::MemoryFormat::ChannelsLast);
  std::map<std::string, Attribute> attrs{{"pads", std::vector<int64_t>{1, 1, 1, 1}}};
  auto yt = runOp("Conv", {xt, w}, attrs);
  auto ycl = runOp("Conv", {xcl, w}, attrs);
  EXPECT_LT(test::maxRelDiff(yt[0], naiveConv2d(xt, w, {}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 1)), 1e-5);
  EXPECT_LT(test::maxRelDiff(ycl[0], naiveConv2d(base, w, {}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 1)),
            1e-5);
}

TEST(OpsConv, AutoPadModesMatchNaive) {
  // in 6 / 7, kernel 3, stride 2: SAME needs odd total padding in H (1) and even in W (2).
  at::Tensor x = test::randn({1, 3, 6, 7}, 4), w = test::randn({5, 3, 3, 3}, 5);
  std::vector<int64_t> s{2, 2};
  auto upper = runOp("Conv", {x, w}, {{"auto_pad", "SAME_UPPER"}, {"strides", s}});
  auto lower = runOp("Conv", {x, w}, {{"auto_pad", "SAME_LOWER"}, {"strides", s}});
  auto valid = runOp("Conv", {x, w}, {{"auto_pad", "VALID"}, {"strides", s}});
  EXPECT_EQ(upper[0].sizes(), at::IntArrayRef({1, 5, 3, 4}));
  EXPECT_LT(test::maxRelDiff(upper[0], naiveConv2d(x, w, {}, s, {0, 1, 1, 1}, {1, 1}, 1)), 1e-5);
  EXPECT_LT(test::maxRelDiff(lower[0], naiveConv2d(x, w, {}, s, {1, 1, 0, 1}, {1, 1}, 1)), 1e-5);
  EXPECT_LT(test::maxRelDiff(valid[0], naiveConv2d(x, w, {}, s, {0, 0, 0, 0}, {1, 1}, 1)), 1e-5);
}

TEST(OpsConv, OneAndThreeDimensional) {
  // 1-D with asymmetric pads == 2-D conv over a height-1 image.
  at::Tensor x = test::randn({2, 3, 11}, 6), w = test::randn({4, 3, 3}, 7);
  auto y = runOp("Conv", {x, w},
                 {{"pads", std::vector<int64_t>{0, 2}}, {"strides", std::vector<int64_t>{2}}});
  at::Tensor ref =
      naiveConv2d(x.unsqueeze(2), w.unsqueeze(2), {}, {1, 2}, {0, 0, 0, 2}, {1, 1}, 1).squeeze(2);
  EXPECT_LT(test::maxRelDiff(y[0], ref), 1e-5);
  // 3-D with depth kernel 1 == per-depth-slice 2-D conv.
  at::Tensor x3 = test::randn({1, 2, 3, 5, 5}, 8), w3 = test::randn({3, 2, 1, 3, 3}, 9);
  auto y3 = runOp("Conv", {x3, w3}, {{"pads", std::vector<int64_t>{0, 1, 0, 0, 0, 1}}});
  ASSERT_EQ(y3[0].sizes(), at::IntArrayRef({1, 3, 3, 4, 4}));
  for (int64_t d = 0; d < 3; ++d) {
    at::Tensor ref2 =
        naiveConv2d(x3.select(2, d), w3.select(2, 0), {}, {1, 1}, {1, 0, 0, 1}, {1, 1}, 1);
    EXPECT_LT(test::maxRelDiff(y3[0].select(2, d), ref2), 1e-5);
  }
}

TEST(OpsConv, TrainModeGradientsMatchATen) {
  at::Tensor x = test::randn({2, 3, 6, 6}, 10);
  at::Tensor w = test::randn({4, 3, 3, 3}, 11).requires_grad_(true);
  auto y = runOp("Conv", {x, w}, {{"pads", std::vector<int64_t>{1, 0, 0, 1}}}, 1, "",
                 {.training = true, .params = {1}});
  y[0].square().sum().backward();
  ASSERT_TRUE(w.grad().defined());
  at::Tensor w2 = w.detach().clone().requires_grad_(true);
  at::Tensor ref = at::conv2d(at::constant_pad_nd(x, {0, 1, 1, 0}), w2);
  ref.square().sum().backward();
  EXPECT_LT(test::maxRelDiff(y[0], ref), 1e-5);
  EXPECT_LT(test::maxRelDiff(w.grad(), w2.grad()), 1e-4);
}

TEST(OpsConv, ConvTransposeMatchesNaive) {
  at::Tensor x = test::randn({1, 4, 4, 5}, 12), w = test::randn({4, 3, 3, 2}, 13),
             b = test::randn({6}, 14);
  std::vector<int64_t> s{2, 3}, dil{1, 2}, op{1, 0}, pads{1, 0, 2, 1};
  auto y = runOp(
      "ConvTranspose", {x, w, b},
      {{"strides", s}, {"dilations", dil}, {"output_padding", op}, {"pads", pads}, {"group", 2}});
  EXPECT_LT(test::maxRelDiff(y[0], naiveConvTranspose2d(x, w, b, s, pads, dil, op, 2)), 1e-5);
  // output_shape larger than the natural size: negative total padding zero-extends (+ bias).
  auto y2 = runOp("ConvTranspose", {x, w, b},
                  {{"strides", s}, {"output_shape", std::vector<int64_t>{11, 16}}, {"group", 2}});
  // natural: H 2*3+3 = 9 -> total -2 -> pads (-1,-1); W 3*4+2 = 14 -> total -2 -> (-1,-1).
  at::Tensor full = naiveConvTranspose2d(x, w, {}, s, {0, 0, 0, 0}, {1, 1}, {0, 0}, 2);
  at::Tensor ref2 =
      at::constant_pad_nd(full, {1, 1, 1, 1}, 0) + b.to(at::kDouble).reshape({-1, 1, 1});
  EXPECT_LT(test::maxRelDiff(y2[0], ref2), 1e-5);
}

TEST(OpsConv, ConvIntegerPerChannelZeroPointsExact) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(15);
  at::Tensor x = at::randint(0, 256, {1, 2, 5, 5}, gen, at::kByte);
  at::Tensor w = at::randint(-128, 128, {3, 2, 2, 2}, gen, at::kChar);
  at::Tensor xz = at::scalar_tensor(131, at::kByte);
  at::Tensor wz = at::tensor({-3, 0, 7}, at::kChar);
  auto y = runOp("ConvInteger", {x, w, xz, wz}, {{"pads", std::vector<int64_t>{1, 0, 0, 1}}});
  ASSERT_EQ(y[0].scalar_type(), at::kInt);
  at::Tensor xr = x.to(at::kDouble) - 131,
             wr = w.to(at::kDouble) - wz.to(at::kDouble).reshape({3, 1, 1, 1});
  at::Tensor ref = naiveConv2d(xr, wr, {}, {1, 1}, {1, 0, 0, 1}, {1, 1}, 1);
  EXPECT_TRUE(at::equal(y[0], ref.round().to(at::kInt)));
}

TEST(OpsConv, BadAttributesAreClearErrors) {
  at::Tensor x = test::randn({1, 3, 6, 6}, 16), w = test::randn({5, 3, 3, 3}, 17);
  expectError(
      [&] {
        runOp("Conv", {x, w}, {{"kernel_shape", std::vector<int64_t>{2, 2}}});
      },
      "node 'n' (Conv): kernel_shape");
  EXPECT_THROW(runOp("Conv", {x, w}, {{"auto_pad", "SAME"}}), Error);
  EXPECT_THROW(runOp("Conv", {x, w}, {{"strides", std::vector<int64_t>{1, 1, 1}}}), Error);
}

}  // namespace
}  // namespace gs
