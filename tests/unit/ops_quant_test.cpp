// Quantization ops: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearConv.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "op_test_util.h"
#include "runtime/executor.h"

namespace gs {
namespace {

using namespace gs::test;  // NOLINT: shared op-test helpers

TEST(OpsQuant, OnnxConformanceCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCases({"test_quantizelinear", "test_dequantizelinear",
                                   "test_dynamicquantizelinear", "test_qlinearconv"},
                                  {.rtol = 1e-4, .atol = 1e-5}));
}

TEST(OpsQuant, QuantizeLinearRoundsHalfToEven) {
  at::Tensor x = f32({0.5f, 1.5f, 2.5f, 3.5f, -0.5f, -1.5f, -2.5f, 0.49f});
  at::Tensor y = run1("QuantizeLinear", {x, at::scalar_tensor(1.0f), at::scalar_tensor(0, at::kChar)});
  EXPECT_TRUE(at::equal(y, i8({0, 2, 2, 4, 0, -2, -2, 0})));
  // x / scale lands on .5 exactly: 3 / 2 = 1.5 -> 2, 5 / 2 = 2.5 -> 2, plus zero point 10.
  at::Tensor z = run1("QuantizeLinear", {f32({3.f, 5.f, 7.f}), at::scalar_tensor(2.0f),
                                         at::scalar_tensor(10, at::kByte)});
  EXPECT_TRUE(at::equal(z, u8({12, 12, 14})));
}

TEST(OpsQuant, QuantizeLinearSaturatesAndDefaultsToUint8) {
  at::Tensor x = f32({-300.f, -129.f, -128.4f, 0.f, 126.6f, 127.5f, 300.f});
  at::Tensor s8 = run1("QuantizeLinear", {x, at::scalar_tensor(1.0f), at::scalar_tensor(0, at::kChar)});
  EXPECT_TRUE(at::equal(s8, i8({-128, -128, -128, 0, 127, 127, 127})));
  at::Tensor u = run1("QuantizeLinear", {x, at::scalar_tensor(1.0f)});  // zero point omitted
  EXPECT_TRUE(at::equal(u, u8({0, 0, 0, 0, 127, 128, 255})));
  at::Tensor zp = run1("QuantizeLinear", {x, at::scalar_tensor(2.0f), at::scalar_tensor(128, at::kByte)});
  EXPECT_TRUE(at::equal(zp, u8({0, 64, 64, 128, 191, 192, 255})));  // -64.5 -> -64
  // int32 input is quantized too (x / scale in float).
  at::Tensor xi = at::tensor({-7, 7, 9}, at::kInt);
  EXPECT_TRUE(at::equal(run1("QuantizeLinear", {xi, at::scalar_tensor(2.0f), at::scalar_tensor(0, at::kChar)}),
                        i8({-4, 4, 4})));
}

TEST(OpsQuant, PerAxisQuantizeDequantize) {
  at::Tensor x = test::randn({2, 3, 4}, 1) * 3;
  at::Tensor scale = f32({0.5f, 0.1f, 0.02f});
  at::Tensor zp = i8({-3, 0, 5});
  for (int64_t axis : {1, -2}) {
    at::Tensor q = run1("QuantizeLinear", {x, scale, zp}, {{"axis", axis}});
    ASSERT_EQ(q.scalar_type(), at::kChar);
    at::Tensor d = run1("DequantizeLinear", {q, scale, zp}, {{"axis", axis}});
    for (int64_t c = 0; c < 3; ++c) {
      float s = scale[c].item<float>();
      int z = zp[c].item<int>();
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t k = 0; k < 4; ++k) {
          float v = x[i][c][k].item<float>() / s;
          int want = static_cast<int>(std::clamp(std::nearbyint(v) + z, -128.0f, 127.0f));
          EXPECT_EQ(q[i][c][k].item<int>(), want) << "axis " << axis;
          EXPECT_FLOAT_EQ(d[i][c][k].item<float>(), static_cast<float>(want - z) * s);
        }
    }
  }
  EXPECT_THROW(run1("QuantizeLinear", {x, f32({1.f, 2.f})}, {{"axis", 1}}), Error);
}

TEST(OpsQuant, DequantizeLinearInt32AndScaleGradient) {
  at::Tensor x = at::tensor({-1000000, 0, 3, 123456789}, at::kInt);
  at::Tensor y = run1("DequantizeLinear", {x, at::scalar_tensor(0.5f)});
  EXPECT_TRUE(at::equal(y, f32({-500000.f, 0.f, 1.5f, 61728394.5f})));
  // Per-axis along axis 0 with uint8 zero points, differentiable w.r.t. the scale parameter.
  Graph g;
  Value* q = g.addInput("q", DType::UInt8, std::vector<Dim>{2, 3});
  Value* s = g.addParam("s", f32({0.5f, 2.0f}).requires_grad_(true));
  Value* z = g.addParam("z", u8({128, 0}), false);
  g.addOutput(g.addNode("DequantizeLinear", {q, s, z}, 1, "dq", {{"axis", 0}})->output(0));
  Executor ex(g, {.training = true});
  at::Tensor out = ex.run({u8({128, 130, 0, 1, 2, 255}).reshape({2, 3})})[0];
  EXPECT_TRUE(at::equal(out.detach(), f32({0.f, 1.f, -64.f, 2.f, 4.f, 510.f}).reshape({2, 3})));
  out.sum().backward();
  EXPECT_TRUE(at::equal(s->data().grad(), f32({0.f + 2.f - 128.f, 1.f + 2.f + 255.f})));
}

/// DynamicQuantizeLinear reference written from the ONNX formula in float32.
void checkDynamic(const at::Tensor& x) {
  auto out = runOp("DynamicQuantizeLinear", {x}, {}, 3);
  at::Tensor xc = x.contiguous();
  const float* p = xc.data_ptr<float>();
  float lo = 0.f, hi = 0.f;
  for (int64_t i = 0; i < xc.numel(); ++i) {
    lo = std::min(lo, p[i]);
    hi = std::max(hi, p[i]);
  }
  float scale = hi == lo ? 1.0f : (hi - lo) / 255.0f;
  float zp = std::nearbyint(std::clamp(0.0f - lo / scale, 0.0f, 255.0f));
  EXPECT_EQ(out[1].dim(), 0);
  EXPECT_EQ(out[1].item<float>(), scale);
  EXPECT_EQ(out[2].scalar_type(), at::kByte);
  EXPECT_EQ(out[2].item<int>(), static_cast<int>(zp));
  ASSERT_EQ(out[0].sizes(), x.sizes());
  at::Tensor yc = out[0].contiguous();
  for (int64_t i = 0; i < xc.numel(); ++i) {
    float want = std::clamp(std::nearbyint(p[i] / scale) + zp, 0.0f, 255.0f);
    ASSERT_EQ(yc.data_ptr<uint8_t>()[i], static_cast<uint8_t>(want)) << "element " << i;
  }
}

TEST(OpsQuant, DynamicQuantizeLinearFollowsSpecFormula) {
  checkDynamic(test::randn({4, 5}, 2) * 4);             // mixed signs
  checkDynamic(test::randn({7}, 3).abs() + 1);          // min adjusted to 0 -> zero point 0
  checkDynamic(-(test::randn({3, 3}, 4).abs() + 0.5));  // max adjusted to 0 -> zero point 255
  checkDynamic(f32({0.f, 2.55f, -1.0f, 0.5f}));
  auto zeros = runOp("DynamicQuantizeLinear", {at::zeros({3})}, {}, 3);
  EXPECT_EQ(zeros[1].item<float>(), 1.0f);  // empty range: ONNX Runtime's scale of 1
  EXPECT_EQ(zeros[2].item<int>(), 0);
  EXPECT_TRUE(at::equal(zeros[0], u8({0, 0, 0})));
}

TEST(OpsQuant, QLinearConvMatchesIntegerReference) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  at::Tensor x = at::randint(0, 256, {1, 2, 5, 6}, gen, at::kByte);
  at::Tensor w = at::randint(-128, 128, {3, 2, 3, 2}, gen, at::kChar);
  at::Tensor xs = at::scalar_tensor(0.02f), xz = at::scalar_tensor(120, at::kByte);
  at::Tensor ws = f32({0.01f, 0.02f, 0.005f}), wz = i8({0, 0, 0});
  at::Tensor ys = at::scalar_tensor(0.05f), yz = at::scalar_tensor(-5, at::kChar);
  at::Tensor bias = at::tensor({100, -2000, 0}, at::kInt);
  // SAME_UPPER with stride 2: H 5 -> 3 (total pad 2: 1/1), W 6 -> 3 (total pad 0).
  at::Tensor y = run1("QLinearConv", {x, xs, xz, w, ws, wz, ys, yz, bias},
                      {{"auto_pad", "SAME_UPPER"}, {"strides", std::vector<int64_t>{2, 2}}});
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{1, 3, 3, 3}));
  at::Tensor xd = x.to(at::kLong) - 120, wd = w.to(at::kLong);
  for (int64_t m = 0; m < 3; ++m)
    for (int64_t oh = 0; oh < 3; ++oh)
      for (int64_t ow = 0; ow < 3; ++ow) {
        int64_t acc = bias[m].item<int64_t>();
        for (int64_t c = 0; c < 2; ++c)
          for (int64_t kh = 0; kh < 3; ++kh)
            for (int64_t kw = 0; kw < 2; ++kw) {
              int64_t ih = oh * 2 + kh - 1, iw = ow * 2 + kw;
              if (ih < 0 || ih >= 5 || iw >= 6) continue;
              acc += xd[0][c][ih][iw].item<int64_t>() * wd[m][c][kh][kw].item<int64_t>();
            }
        float mult = 0.02f * ws[m].item<float>() / 0.05f;
        float want = std::clamp(std::nearbyint(static_cast<float>(acc) * mult) - 5.0f, -128.0f, 127.0f);
        EXPECT_EQ(y[0][m][oh][ow].item<int>(), static_cast<int>(want)) << m << "," << oh << "," << ow;
      }
}

TEST(OpsQuant, QuantizeDequantizeRoundTripWithinHalfStep) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{64});
  Value* s = g.addParam("s", at::scalar_tensor(0.05f), false);
  Value* z = g.addParam("z", at::scalar_tensor(3, at::kChar), false);
  Node* q = g.addNode("QuantizeLinear", {x, s, z}, 1, "q");
  g.addOutput(g.addNode("DequantizeLinear", {q->output(0), s, z}, 1, "dq")->output(0));
  Executor ex(g);
  at::Tensor xin = at::linspace(-6.0, 6.0, 64);
  at::Tensor y = ex.run({xin})[0];
  at::Tensor inside = (xin >= -131 * 0.05) & (xin <= 124 * 0.05);
  EXPECT_LE((y - xin).abs().masked_select(inside).max().item<float>(), 0.025f + 1e-6f);
  // Train mode runs too (the integer tensor just carries no gradient) and gives the same values.
  Executor tr(g, {.training = true});
  EXPECT_TRUE(at::equal(tr.run({xin.clone().requires_grad_(true)})[0].detach(), y));
}

}  // namespace
}  // namespace gs
