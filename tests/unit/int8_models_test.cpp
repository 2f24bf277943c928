// Zoo CNNs quantized to QDQ (int8_qdq_builder.h) and run with the int8 fusions: every
// Conv/Gemm runs as int8, and the logits agree with the unfused float QDQ reference.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "models/zoo.h"
#include "runtime/executor.h"
#include "runtime/int8_fusion.h"
#include "runtime/int8_kernels.h"
#include "int8_qdq_builder.h"
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

/// Runs every int8 group's kernel on the exact tensors the unfused reference fed it and compares
/// with the reference's quantized output: each layer in isolation is within one step, and only
/// at near-ties. Returns the fraction of differing elements over all groups.
double perLayerMismatch(const Graph& qdq, const at::Tensor& x, const std::string& name) {
  std::map<const Value*, at::Tensor> seen;
  for (const Value* p : qdq.params()) seen[p] = p->data();
  seen[qdq.inputs()[0]] = x;
  Executor ref(qdq, {.fuse = false});
  ref.setObserver([&](const Node& n, const std::vector<at::Tensor>&, const std::vector<at::Tensor>& out) {
    for (size_t k = 0; k < out.size(); ++k)
      if (n.output(k)) seen[n.output(k)] = out[k];
  });
  ref.run({x});
  int64_t diff = 0, total = 0;
  c10::InferenceMode guard;
  for (const FusedGroup& fg : findInt8Fusions(qdq)) {
    std::vector<at::Tensor> in, out(1);
    for (const Value* v : fg.inputs) in.push_back(v ? seen.at(v) : at::Tensor());
    fg.kernel(KernelContext{}, in, out);
    const at::Tensor& want = seen.at(fg.outputs[0]);
    at::Tensor d = (out[0].to(at::kInt) - want.to(at::kInt)).abs();
    EXPECT_LE(d.max().item<int>(), 1) << name << " " << fg.anchor->describe();
    diff += d.gt(0).sum().item<int64_t>();
    total += d.numel();
  }
  return static_cast<double>(diff) / static_cast<double>(total);
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
  at::Tensor x = at::rand({8, 1, 28, 28}, gen);
  double layer_diff = perLayerMismatch(*qdq, x, name);
  EXPECT_LE(layer_diff, 1e-4) << name;
  Fidelity f = compare(*qdq, x);
  // Each layer is within one step of the reference at rare near-ties (checked above); through
  // a deep net those single-step flips propagate and can add up to a few steps in the logits.
  EXPECT_LE(f.max_steps, 10.0) << name;
  EXPECT_GE(f.frac_exact, 0.75) << name;
  EXPECT_GE(f.top1_agree, 7.0 / 8.0) << name;
  std::printf("[%s%s] per layer %.4f%% of int8 outputs 1 step off; logits: max %.0f steps, "
              "%.1f%% exact, top-1 agreement %.1f%%\n", name.c_str(), is_signed ? " int8-act" : "",
              100 * layer_diff, f.max_steps, 100 * f.frac_exact, 100 * f.top1_agree);
}

TEST(Int8Models, LeNet5) {
  checkModel(*models::buildLeNet5({}, 3), "lenet5", false);
}

TEST(Int8Models, ResNet20) {
  auto g = models::buildResNet20({}, 3);
  checkModel(*g, "resnet20", false);
  checkModel(*g, "resnet20", true);
}

TEST(Int8Models, MobileNetV2) {
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
