// Zoo CNNs quantized to QDQ (runtime/int8_qdq_builder.h) and run with the int8 fusions: every
// Conv/Gemm runs as int8, and the logits agree with the unfused float QDQ reference.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "models/zoo.h"
#include "runtime/executor.h"
#include "runtime/int8_fusion.h"
#include "runtime/int8_kernels.h"
#include "runtime/int8_qdq_builder.h"
#include "test_util.h"

namespace gs {
namespace {

std::vector<std::vector<at::Tensor>> calibBatches(int n, uint64_t seed) {
  std::vector<std::vector<at::Tensor>> c;
  for (int i = 0; i < n; ++i) {
    at::Generator gen = at::detail::createCPUGenerator(seed + i);
    c.push_back({at::rand({8, 1, 28, 28}, gen)});
  }
  return c;
}

size_t countOps(const Graph& g, const std::string& op) {
  size_t n = 0;
  for (const auto& node : g.nodes()) n += node->opType() == op;
  return n;
}

struct Fidelity {
  double max_steps;      // max |int8 - ref| logit difference in output quantization steps
  double frac_exact;     // fraction of logits identical
  double top1_agree;     // fraction of samples with the same argmax
};

Fidelity compare(const Graph& qdq, const at::Tensor& x) {
  Executor fused(qdq), ref(qdq, {.fuse = false});
  at::Tensor a = fused.run({x})[0], b = ref.run({x})[0];
  const Node* dq = qdq.outputs()[0]->producer();
  EXPECT_TRUE(dq && dq->opType() == "DequantizeLinear");
  double step = dq->input(1)->data().item<double>();
  at::Tensor d = (a - b).abs() / step;
  return {d.max().item<double>(), d.lt(0.5).to(at::kDouble).mean().item<double>(),
          a.argmax(1).eq(b.argmax(1)).to(at::kDouble).mean().item<double>()};
}

void checkModel(const Graph& fp32, const std::string& name, bool is_signed) {
  int8::QdqBuildOptions o;
  o.signed_activations = is_signed;
  auto qdq = int8::buildQdqGraph(fp32, calibBatches(2, 5), o);
  EXPECT_EQ(countOps(*qdq, "BatchNormalization"), 0u) << name;
  // Every Conv and Gemm runs as an int8 group.
  std::map<std::string, size_t> kinds;
  for (const FusedGroup& fg : findInt8Fusions(*qdq)) kinds[fg.anchor->opType()]++;
  EXPECT_EQ(kinds["Conv"], countOps(*qdq, "Conv")) << name;
  EXPECT_EQ(kinds["Gemm"], countOps(*qdq, "Gemm")) << name;
  EXPECT_EQ(kinds["Add"], countOps(*qdq, "Add")) << name;
  at::Generator gen = at::detail::createCPUGenerator(77);
  Fidelity f = compare(*qdq, at::rand({16, 1, 28, 28}, gen));
  // Per layer the int8 result is within one step of the reference (near-ties only, see
  // int8_fusion_test); through a deep net a rare flip can grow by a few steps downstream.
  EXPECT_LE(f.max_steps, 3.0) << name;
  EXPECT_GE(f.frac_exact, 0.95) << name;
  EXPECT_GE(f.top1_agree, 15.0 / 16.0) << name;
  std::printf("[%s%s] max %.0f steps, %.1f%% logits exact, top-1 agreement %.1f%%\n", name.c_str(),
              is_signed ? " int8-act" : "", f.max_steps, 100 * f.frac_exact, 100 * f.top1_agree);
}

TEST(Int8Models, LeNet5) {
  if (!int8::engineAvailable()) GTEST_SKIP() << "no ATen int8 engine";
  checkModel(*models::buildLeNet5({}, 3), "lenet5", false);
}

TEST(Int8Models, ResNet20) {
  if (!int8::engineAvailable()) GTEST_SKIP() << "no ATen int8 engine";
  auto g = models::buildResNet20({}, 3);
  checkModel(*g, "resnet20", false);
  checkModel(*g, "resnet20", true);
}

TEST(Int8Models, MobileNetV2) {
  if (!int8::engineAvailable()) GTEST_SKIP() << "no ATen int8 engine";
  checkModel(*models::buildMobileNetV2({}, 3), "mobilenetv2", false);
}

TEST(Int8Models, BatchNormFoldKeepsOutputs) {
  auto g = models::buildResNet20({}, 4);
  auto folded = g->clone(true);
  EXPECT_EQ(int8::foldConvBatchNorm(*folded), static_cast<int>(countOps(*g, "BatchNormalization")));
  at::Generator gen = at::detail::createCPUGenerator(8);
  at::Tensor x = at::rand({4, 1, 28, 28}, gen);
  Executor a(*g, {.fuse = false}), b(*folded, {.fuse = false});
  EXPECT_LT(test::maxRelDiff(a.run({x})[0], b.run({x})[0]), 1e-4);
}

}  // namespace
}  // namespace gs
