// Fake-quant fidelity end to end: with exact fake-quant layers (runtime/fq_exact_fusion.h), the
// PTQ fake-quant graphs of the trained LeNet-5 and MobileNetV2 compute their int8 execution.
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <utility>

#include "algo/registry.h"
#include "data/dataset.h"
#include "io/onnx.h"
#include "runtime/executor.h"

namespace gs {
namespace {

const std::string kLenet = std::string(GS_TEST_DIR) + "/../models/lenet5-fmnist.onnx";
const std::string kMobileNet = std::string(GS_TEST_DIR) + "/../models/mobilenetv2-fmnist.onnx";

/// Images whose logits differ by more than 0.01 output step anywhere (i.e. touched by at least
/// one activation code flip; float noise of the last layer is ~1e-6 steps).
int64_t touchedImages(const at::Tensor& a, const at::Tensor& b, double step) {
  return (std::get<0>((a - b).abs().max(1)) / step).gt(0.01).sum().item<int64_t>();
}

/// The fake-quant graph run with the exact layers switched off (GS_EXACT_FAKE_QUANT=0 is read
/// when the executor plans its fused steps).
at::Tensor plainFakeQuantLogits(const Graph& q, const at::Tensor& x) {
  const char* prev = std::getenv("GS_EXACT_FAKE_QUANT");
  const std::string saved = prev ? prev : "";
  ::setenv("GS_EXACT_FAKE_QUANT", "0", 1);
  Executor ex(q);
  if (prev) ::setenv("GS_EXACT_FAKE_QUANT", saved.c_str(), 1);
  else ::unsetenv("GS_EXACT_FAKE_QUANT");
  return ex.run({x})[0];
}

/// Fake-quant vs int8 logits of PTQ W8A8 (uint8 activations, int32 biases) on `n` test images:
/// returns {images touched with the exact layers, images touched with float32 layers}, after
/// checking that the exact fake-quant graph reproduces the int8 execution on every logit.
std::pair<int64_t, int64_t> fidelity(const std::string& model, const char* observer, int64_t n) {
  auto fp = importOnnxFile(model);
  FashionMnistDataset test(FashionMnistDataset::Split::Test, n);
  Batch tb = test.getBatch(at::arange(test.size(), at::kLong));
  at::Tensor lf = Executor(*fp).run({tb.inputs})[0];
  const double step = (lf.max() - lf.min()).item<double>() / 255.0;
  AlgoContext ctx;
  ctx.calibration = CalibrationData{
      std::make_shared<FashionMnistDataset>(FashionMnistDataset::Split::Train, 512), 4, 128};
  auto algo = AlgoRegistry::global().create("ptq", Json{{"act_observer", observer}});
  algo->setContext(ctx);
  Graph q = algo->apply(std::move(*fp->clone()));
  Graph d = algo->convert(std::move(*q.clone(true)));
  at::Tensor lq = Executor(q).run({tb.inputs})[0];
  at::Tensor ld = Executor(d).run({tb.inputs})[0];  // int8 kernels (runtime/int8_fusion.h)
  // Every activation code equal: only the float logits layer's last-bit noise remains.
  EXPECT_LE((lq - ld).abs().max().item<double>(), 0.01 * step) << model << " " << observer;
  EXPECT_TRUE(lq.argmax(1).equal(ld.argmax(1))) << model << " " << observer;
  return {touchedImages(lq, ld, step), touchedImages(plainFakeQuantLogits(q, tb.inputs), ld, step)};
}

// The exact layers requantize like the deployed int8 layers (and the residual Add like
// QLinearAdd): the fake-quant graph computes the int8 execution's codes exactly. Without them
// float32 layers flip codes near rounding ties (LeNet: 104 images over five observers).
TEST(ExactFakeQuantFidelity, LeNetFakeQuantEqualsInt8Execution) {
  int64_t exact = 0, plain = 0;
  for (const char* obs : {"minmax", "kl"}) {
    auto [e, p] = fidelity(kLenet, obs, 10000);
    exact += e;
    plain += p;
  }
  EXPECT_EQ(exact, 0);
  EXPECT_GT(plain, 0);  // the case discriminates: float32 fake-quant layers do flip codes
}

// MobileNetV2-0.5: depthwise convs, Relu6 (Clip) and residual Adds between quantizers.
TEST(ExactFakeQuantFidelity, MobileNetV2FakeQuantEqualsInt8Execution) {
  auto [exact, plain] = fidelity(kMobileNet, "minmax", 1000);
  EXPECT_EQ(exact, 0);
  EXPECT_GT(plain, 0);
}

}  // namespace
}  // namespace gs
