// Executor: eval/train runs, slots, input checks, errors naming nodes.
#include "runtime/executor.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "ir/graph.h"
#include "op_test_util.h"
#include "support/error.h"

namespace gs {
namespace {

using test::expectError;

TEST(Executor, AddMulMatchesATen) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{Dim("N"), 4});
  Value* w = g.addParam("w", test::randn({4}, 1));
  Node* a = g.addNode("Add", {x, w}, 1, "add");
  Node* m = g.addNode("Mul", {a->output(0), x}, 1, "mul");
  g.addOutput(m->output(0));
  Executor ex(g);
  at::Tensor xin = test::randn({3, 4}, 2);
  auto out = ex.run({xin});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_LT(test::maxRelDiff(out[0], (xin + w->data()) * xin), 1e-6);
}

TEST(Executor, TrainModeGradientsReachParams) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{2, 3});
  Value* w = g.addParam("w", test::randn({3}, 3).requires_grad_(true));
  Node* m = g.addNode("Mul", {x, w}, 1, "mul");
  g.addOutput(m->output(0));
  Executor ex(g, {.training = true});
  at::Tensor xin = test::randn({2, 3}, 4);
  auto out = ex.run({xin});
  out[0].sum().backward();
  ASSERT_TRUE(w->data().grad().defined());
  EXPECT_LT(test::maxRelDiff(w->data().grad(), xin.sum(0)), 1e-6);
}

TEST(Executor, WrongInputShapeIsClearError) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{Dim("N"), 4});
  g.addOutput(g.addNode("Add", {x, x}, 1, "add")->output(0));
  Executor ex(g);
  expectError(
      [&] {
        ex.run({at::zeros({2, 5})});
      },
      "input 'x': expected shape f32[N,4], got f32[2,5]");
  EXPECT_THROW(ex.run({at::zeros({2, 4}, at::kDouble)}), Error);
}

TEST(Executor, UnknownOpNamesNodeAndOp) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{4});
  g.addOutput(g.addNode("FooBar", {x}, 1, "weird")->output(0));
  expectError([&] { Executor ex(g); }, "node 'weird' (FooBar): unsupported op 'FooBar'");
}

TEST(Executor, KernelErrorNamesNode) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, Shape());
  Value* y = g.addInput("y", DType::Float32, Shape());
  g.addOutput(g.addNode("Add", {x, y}, 1, "bad_add")->output(0));
  Executor ex(g);
  std::string m = expectError(
      [&] {
        ex.run({at::zeros({3}), at::zeros({4})});
      },
      "node 'bad_add' (Add): ");
  EXPECT_EQ(m.find("node 'bad_add' (Add): "), 0u) << m;
}

}  // namespace
}  // namespace gs
