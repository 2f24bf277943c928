// Fast paths added for latency: oneDNN MaxPool, executor scratch reuse and argument moves.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "ir/graph.h"
#include "runtime/executor.h"
#include "test_util.h"

namespace gs {
namespace {

using test::randn;

/// One MaxPool node over x[N,C,H,W] with the given attributes.
at::Tensor runMaxPool(const at::Tensor& x, std::map<std::string, Attribute> attrs, bool train = false) {
  Graph g;
  Value* in = g.addInput("x", DType::Float32, std::nullopt);
  Node* n = g.addNode("MaxPool", {in}, 1, "pool", std::move(attrs));
  g.addOutput(n->output(0));
  Executor ex(g, {.training = train});
  return ex.run({x})[0];
}

TEST(PerfPaths, MaxPoolLargeInputsMatchATenExactly) {
  using V = std::vector<int64_t>;
  // Big enough for the oneDNN path (>= 16384 elements) and one small (ATen path).
  for (auto shape : {V{32, 6, 28, 28}, V{4, 16, 17, 15}, V{1, 6, 12, 12}}) {
    SCOPED_TRACE(c10::str(at::IntArrayRef(shape)));
    at::Tensor x = randn(shape, 3);
    at::Tensor y = runMaxPool(x, {{"kernel_shape", V{2, 2}}, {"strides", V{2, 2}}});
    EXPECT_TRUE(at::equal(y, std::get<0>(at::max_pool2d_with_indices(x, {2, 2}, {2, 2}))));
    // Padding and ceil_mode: oneDNN must reproduce ATen's (and ONNX's) windows.
    at::Tensor y2 = runMaxPool(x, {{"kernel_shape", V{3, 3}}, {"strides", V{2, 2}},
                                   {"pads", V{1, 1, 1, 1}}, {"ceil_mode", int64_t{1}}});
    at::Tensor r2 = std::get<0>(at::max_pool2d_with_indices(x, {3, 3}, {2, 2}, {1, 1}, {1, 1}, true));
    ASSERT_EQ(y2.sizes(), r2.sizes());
    EXPECT_TRUE(at::equal(y2, r2));
    // Negative inputs only: padding must not leak zeros into the max.
    at::Tensor neg = -x.abs() - 1;
    at::Tensor y3 = runMaxPool(neg, {{"kernel_shape", V{3, 3}}, {"strides", V{1, 1}}, {"pads", V{1, 1, 1, 1}}});
    EXPECT_TRUE(at::equal(y3, std::get<0>(at::max_pool2d_with_indices(neg, {3, 3}, {1, 1}, {1, 1}))));
  }
}

TEST(PerfPaths, MaxPoolTrainModeKeepsGradients) {
  at::Tensor x = randn({32, 6, 28, 28}, 5).requires_grad_(true);
  Graph g;
  Value* in = g.addInput("x", DType::Float32, std::nullopt);
  Node* n = g.addNode("MaxPool", {in}, 1, "pool",
                      {{"kernel_shape", std::vector<int64_t>{2, 2}}, {"strides", std::vector<int64_t>{2, 2}}});
  g.addOutput(n->output(0));
  Executor ex(g, {.training = true});
  at::Tensor y = ex.run({x})[0];
  y.sum().backward();
  ASSERT_TRUE(x.grad().defined());
  // Each 2x2 window passes gradient 1 to exactly one element.
  EXPECT_EQ(x.grad().sum().item<double>(), static_cast<double>(y.numel()));
}

TEST(PerfPaths, ExecutorMovesDyingSlotsButNotSharedOnes) {
  // a = x + w feeds Mul(a, a) (same value twice, dies there) and s = a * a + x: repeated runs
  // on the reused scratch must give identical results and leave the caller's input untouched.
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{3, 4});
  Value* w = g.addParam("w", randn({4}, 7));
  Value* a = g.addNode("Add", {x, w}, 1, "add")->output(0);
  Value* sq = g.addNode("Mul", {a, a}, 1, "sq")->output(0);
  Value* s = g.addNode("Add", {sq, x}, 1, "add2")->output(0);
  g.addOutput(s);
  g.addOutput(sq);
  Executor ex(g);
  at::Tensor xin = randn({3, 4}, 8), xcopy = xin.clone();
  at::Tensor a_ref = xin + w->data();
  for (int i = 0; i < 3; ++i) {
    auto out = ex.run({xin});
    ASSERT_EQ(out.size(), 2u);
    EXPECT_TRUE(at::allclose(out[1], a_ref * a_ref));
    EXPECT_TRUE(at::allclose(out[0], a_ref * a_ref + xin));
  }
  EXPECT_TRUE(at::equal(xin, xcopy));
  EXPECT_TRUE(w->data().defined());
}

TEST(PerfPaths, ExecutorRecoversAfterKernelError) {
  // A failing run must not leave stale tensors that break the next run.
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::nullopt);
  Value* y = g.addInput("y", DType::Float32, std::nullopt);
  Value* s = g.addNode("Add", {x, y}, 1, "add")->output(0);
  g.addOutput(g.addNode("Relu", {s}, 1, "relu")->output(0));
  Executor ex(g);
  EXPECT_THROW(ex.run({randn({2, 3}, 1), randn({4, 5}, 2)}), std::exception);
  at::Tensor a = randn({2, 3}, 3), b = randn({2, 3}, 4);
  EXPECT_TRUE(at::equal(ex.run({a, b})[0], at::relu(a + b)));
}

}  // namespace
}  // namespace gs
