// gs::FakeQuant / gs::LsqQuant kernels: eval values, train-mode observers updating their
// parameters in place, enable (quantization delay), dynamic modes, attribute errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "op_test_util.h"
#include "quant/qparams.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace gs {
namespace {

using test::f32;
using test::Attrs;

Attrs int8Attrs() { return {{"quant_min", Attribute(int64_t{-128})}, {"quant_max", Attribute(int64_t{127})}}; }

TEST(GsFakeQuant, EvalMatchesClosedForm) {
  at::Tensor x = f32({-1.0f, 0.26f, 0.5f, 3.0f});
  at::Tensor y = test::runOp("FakeQuant", {x, at::scalar_tensor(0.5f), at::scalar_tensor(1.0f)},
                             {{"quant_min", Attribute(int64_t{0})}, {"quant_max", Attribute(int64_t{7})}},
                             1, "gs")[0];
  // q = clamp(round(x / 0.5) + 1, 0, 7) = [0, 2, 2, 7]; y = (q - 1) * 0.5
  EXPECT_TENSOR_EQ(y, f32({-0.5f, 0.5f, 0.5f, 3.0f}));
  // Per channel along axis 0 of [2, 2].
  Attrs a = int8Attrs();
  a["axis"] = Attribute(int64_t{0});
  y = test::runOp("FakeQuant", {f32({1, 1, 1, 1}).reshape({2, 2}), f32({0.3f, 0.4f}), f32({0, 0})}, a,
                  1, "gs")[0];
  EXPECT_TENSOR_NEAR(y, f32({0.9f, 0.9f, 0.8f, 0.8f}).reshape({2, 2}), 1e-6);
  // Disabled (enable = 0) passes x through.
  y = test::runOp("FakeQuant", {x, at::scalar_tensor(0.5f), at::scalar_tensor(0.0f), at::scalar_tensor(0.0f)},
                  int8Attrs(), 1, "gs")[0];
  EXPECT_TENSOR_EQ(y, x);
}

TEST(GsFakeQuant, BadAttributesAreClearErrors) {
  Attrs a{{"quant_min", Attribute(int64_t{-3})}, {"quant_max", Attribute(int64_t{7})}};
  EXPECT_THROW(test::runOp("FakeQuant", {f32({1}), at::scalar_tensor(1.0f), at::scalar_tensor(0.0f)}, a, 1, "gs"),
               Error);
  Attrs b = int8Attrs();
  b["observer"] = Attribute("median");
  EXPECT_THROW(test::runOp("FakeQuant", {f32({1}), at::scalar_tensor(1.0f), at::scalar_tensor(0.0f)}, b, 1, "gs"),
               Error);
}

/// One-node graph x -> FakeQuant(params) -> y, run in train mode.
struct FqGraph {
  Graph g;
  Value *scale, *zp, *enable, *rmin = nullptr, *rmax = nullptr;
  FqGraph(const std::string& observer, bool sym, double c = 0.5) {
    Value* x = g.addInput("x", DType::Float32, std::nullopt);
    scale = g.addParam("s", at::scalar_tensor(1.0f), false);
    zp = g.addParam("z", at::scalar_tensor(0.0f), false);
    enable = g.addParam("e", at::scalar_tensor(1.0f), false);
    std::vector<Value*> in{x, scale, zp, enable};
    if (observer == "ema") {
      rmin = g.addParam("rmin", at::scalar_tensor(0.0f), false);
      rmax = g.addParam("rmax", at::scalar_tensor(0.0f), false);
      in.push_back(rmin);
      in.push_back(rmax);
    }
    std::map<std::string, Attribute> a{{"quant_min", Attribute(int64_t{sym ? -128 : 0})},
                                       {"quant_max", Attribute(int64_t{sym ? 127 : 255})},
                                       {"symmetric", Attribute(int64_t{sym})},
                                       {"observer", Attribute(observer)},
                                       {"averaging_constant", Attribute(c)}};
    g.addOutput(g.addNode("FakeQuant", in, 1, "fq", a, nullptr, "gs")->output(0));
  }
};

TEST(GsFakeQuant, TrainModeEmaObserverUpdatesParamsInPlace) {
  FqGraph fg("ema", false, 0.5);
  Executor ex(fg.g, {.training = true});
  ex.run({f32({-1, 3})});
  EXPECT_EQ(fg.rmin->data().item<float>(), -1.0f);  // first batch initialises
  EXPECT_EQ(fg.rmax->data().item<float>(), 3.0f);
  ex.run({f32({-2, 5})});
  EXPECT_EQ(fg.rmin->data().item<float>(), -1.5f);  // -1 + 0.5 * (-2 + 1)
  EXPECT_EQ(fg.rmax->data().item<float>(), 4.0f);   // 3 + 0.5 * (5 - 3)
  EXPECT_FLOAT_EQ(fg.scale->data().item<float>(), 5.5f / 255.0f);
  EXPECT_EQ(fg.zp->data().item<float>(), 70.0f);  // round(1.5 / (5.5 / 255)) = round(69.5454)
  // Eval mode leaves the parameters alone.
  Executor ev(fg.g);
  ev.run({f32({-10, 10})});
  EXPECT_EQ(fg.rmax->data().item<float>(), 4.0f);
}

TEST(GsFakeQuant, TrainModeMinMaxUsesCurrentBatchAndGradientIsMask) {
  FqGraph fg("minmax", true);
  Executor ex(fg.g, {.training = true});
  at::Tensor x = f32({-0.5f, 2.0f, 1.0f}).requires_grad_(true);
  at::Tensor y = ex.run({x})[0];
  EXPECT_FLOAT_EQ(fg.scale->data().item<float>(), 2.0f / 127.5f);
  y.sum().backward();
  // STE mask from the updated scale: in range iff round(x / s) in [-128, 127].
  at::Tensor q = at::round(x.detach() / fg.scale->data());
  EXPECT_TENSOR_EQ(x.grad(), ((q >= -128) & (q <= 127)).to(at::kFloat));
  EXPECT_EQ(x.grad()[0].item<float>(), 1.0f);
}

TEST(GsLsqQuant, LearnsStepThroughExecutor) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::nullopt);
  Value* step = g.addParam("step", at::scalar_tensor(0.3f).requires_grad_(true), true);
  g.addOutput(g.addNode("LsqQuant", {x, step}, 1, "lsq",
                        {{"quant_min", Attribute(int64_t{-7})}, {"quant_max", Attribute(int64_t{7})}},
                        nullptr, "gs")->output(0));
  Executor ex(g, {.training = true});
  at::Tensor xin = f32({0.1f, -0.4f, 5.0f, 0.7f});
  at::Tensor y = ex.run({xin})[0];
  EXPECT_TENSOR_NEAR(y.detach(), f32({0.0f, -0.3f, 2.1f, 0.6f}), 1e-6);
  y.sum().backward();
  // g = 1 / sqrt(4 * 7); v = x / s = [1/3, -4/3, 16.7, 7/3]: (round(v) - v) inside, 7 above.
  double want = (0 - 1.0 / 3 + (-1 + 4.0 / 3) + 7 + (2 - 7.0 / 3)) / std::sqrt(28.0);
  EXPECT_NEAR(step->data().grad().item<double>(), want, 1e-5);
}

TEST(GsFakeQuant, DynamicPerTokenQuantizesEachRow) {
  Attrs a = int8Attrs();
  a["symmetric"] = Attribute(int64_t{1});
  a["observer"] = Attribute("dynamic_per_token");
  at::Tensor x = f32({1, -2, 0.5f, 10, 20, -5}).reshape({2, 3});
  at::Tensor y = test::runOp("FakeQuant", {x}, a, 1, "gs")[0];
  at::Tensor s = f32({2.0f / 127.5f, 20.0f / 127.5f}).unsqueeze(1);
  at::Tensor want = at::clamp(at::round(x / s), -128, 127) * s;
  EXPECT_TENSOR_EQ(y, want);
}

}  // namespace
}  // namespace gs
