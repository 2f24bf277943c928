// Shape ops (shape.cpp): closed-form cases, views, gradients and one-line errors naming the node.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <limits>

#include "op_test_util.h"
#include "runtime/executor.h"

namespace gs {
namespace {

using namespace gs::test;  // NOLINT: shared op-test helpers
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

TEST(ShapeOps, ShapeWithStartEndClamps) {
  at::Tensor x = at::zeros({2, 3, 4, 5});
  EXPECT_TENSOR_EQ(runOp("Shape", {x})[0], i64({2, 3, 4, 5}));
  EXPECT_TENSOR_EQ(runOp("Shape", {x}, {{"start", 1}, {"end", -1}})[0], i64({3, 4}));
  EXPECT_TENSOR_EQ(runOp("Shape", {x}, {{"start", -10}, {"end", 100}})[0], i64({2, 3, 4, 5}));
  EXPECT_TENSOR_EQ(runOp("Shape", {x}, {{"start", -1}})[0], i64({5}));
  EXPECT_TENSOR_EQ(runOp("Shape", {x}, {{"start", 3}, {"end", 1}})[0], i64({}));
  EXPECT_TENSOR_EQ(runOp("Shape", {at::scalar_tensor(1.0)})[0], i64({}));
}

TEST(ShapeOps, SizeIsInt64Scalar) {
  EXPECT_TENSOR_EQ(runOp("Size", {at::zeros({2, 3, 7})})[0], at::scalar_tensor(42, at::kLong));
  EXPECT_TENSOR_EQ(runOp("Size", {at::zeros({0, 3})})[0], at::scalar_tensor(0, at::kLong));
}

TEST(ShapeOps, ReshapeZeroCopiesAndMinusOneInfers) {
  at::Tensor x = at::arange(24, at::kFloat).reshape({2, 3, 4});
  EXPECT_TENSOR_EQ(runBoth("Reshape", {x, i64({0, -1})}), x.reshape({2, 12}));
  EXPECT_TENSOR_EQ(runBoth("Reshape", {x, i64({-1})}), x.reshape({24}));
  EXPECT_TENSOR_EQ(runBoth("Reshape", {x, i64({4, 0, 2})}), x.reshape({4, 3, 2}));
  EXPECT_TENSOR_EQ(runBoth("Reshape", {x, i64({0, 0, -1, 2})}), x.reshape({2, 3, 2, 2}));
  // A contiguous input reshapes to a view: no copy.
  EXPECT_EQ(runOp("Reshape", {x, i64({6, 4})})[0].data_ptr(), x.data_ptr());
}

TEST(ShapeOps, ReshapeAllowZero) {
  at::Tensor e = at::zeros({0, 3});
  // allowzero=1: 0 is a real zero-size dim.
  EXPECT_EQ(runBoth("Reshape", {e, i64({3, 0})}, {{"allowzero", 1}}).sizes(),
            at::IntArrayRef({3, 0}));
  // allowzero=0: the 0 copies input dim 1 (3), so [3,0] means [3,3]: 9 elements, not 0.
  EXPECT_EQ(errorOf([&] {
              runOp("Reshape", {e, i64({3, 0})});
            }),
            "node 'n' (Reshape): cannot reshape [0,3] (0 elements) to [3,3] (9 elements)");
  std::string m = errorOf([&] { runOp("Reshape", {e, i64({0, -1})}, {{"allowzero", 1}}); });
  EXPECT_NE(m.find("both 0 and -1"), std::string::npos) << m;
}

TEST(ShapeOps, ReshapeIncompatibleIsOneLineErrorNamingNode) {
  std::string m = errorOf([] {
    runOp("Reshape", {at::zeros({2, 3}), i64({4, 2})}, {}, 1, "", {.node_name = "head.view"});
  });
  EXPECT_EQ(m,
            "node 'head.view' (Reshape): cannot reshape [2,3] (6 elements) to [4,2] (8 elements)");
  m = errorOf([] {
    runOp("Reshape", {at::zeros({2, 3}), i64({4, -1})}, {}, 1, "",
          {.operands_as_params = true, .node_name = "r2"});
  });
  EXPECT_EQ(m, "node 'r2' (Reshape): cannot reshape [2,3] to [4,-1]");
  m = errorOf([] { runOp("Reshape", {at::zeros({6}), i64({-1, -1})}); });
  EXPECT_EQ(m.find("node 'n' (Reshape): "), 0u) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos);
}

TEST(ShapeOps, FlattenAxes) {
  at::Tensor x = at::arange(120, at::kFloat).reshape({2, 3, 4, 5});
  EXPECT_EQ(runOp("Flatten", {x})[0].sizes(), at::IntArrayRef({2, 60}));
  EXPECT_EQ(runOp("Flatten", {x}, {{"axis", 0}})[0].sizes(), at::IntArrayRef({1, 120}));
  EXPECT_EQ(runOp("Flatten", {x}, {{"axis", 4}})[0].sizes(), at::IntArrayRef({120, 1}));
  EXPECT_EQ(runOp("Flatten", {x}, {{"axis", -1}})[0].sizes(), at::IntArrayRef({24, 5}));
  EXPECT_EQ(runOp("Flatten", {x}, {{"axis", -4}})[0].sizes(), at::IntArrayRef({1, 120}));
  EXPECT_TENSOR_EQ(runOp("Flatten", {x}, {{"axis", 2}})[0], x.reshape({6, 20}));
  EXPECT_THROW(runOp("Flatten", {x}, {{"axis", 5}}), Error);
}

TEST(ShapeOps, TransposeDefaultReversesAndPermIsAView) {
  at::Tensor x = at::arange(24, at::kFloat).reshape({2, 3, 4});
  EXPECT_TENSOR_EQ(runOp("Transpose", {x})[0], x.permute({2, 1, 0}));
  at::Tensor y = runOp("Transpose", {x}, {{"perm", std::vector<int64_t>{1, 0, 2}}})[0];
  EXPECT_EQ(y.sizes(), at::IntArrayRef({3, 2, 4}));
  EXPECT_EQ(y[2][1][3].item<float>(), x[1][2][3].item<float>());
  EXPECT_EQ(y.data_ptr(), x.data_ptr());
  EXPECT_THROW(runOp("Transpose", {x}, {{"perm", std::vector<int64_t>{1, 0}}}), Error);
}

TEST(ShapeOps, SqueezeAllOrNegativeAxes) {
  at::Tensor x = at::arange(6, at::kFloat).reshape({1, 3, 1, 2, 1});
  EXPECT_EQ(runOp("Squeeze", {x})[0].sizes(), at::IntArrayRef({3, 2}));
  EXPECT_EQ(runBoth("Squeeze", {x, i64({-1, 0})}).sizes(), at::IntArrayRef({3, 1, 2}));
  EXPECT_EQ(runBoth("Squeeze", {x, i64({2})}).sizes(), at::IntArrayRef({1, 3, 2, 1}));
  EXPECT_EQ(runBoth("Squeeze", {x, i64({})}).sizes(), at::IntArrayRef({3, 2}));
  std::string m = errorOf([&] { runOp("Squeeze", {x, i64({1})}); });
  EXPECT_EQ(m, "node 'n' (Squeeze): cannot squeeze axis 1 of size 3 (input [1,3,1,2,1])");
}

TEST(ShapeOps, UnsqueezeNegativeAxesCountFromOutputRank) {
  at::Tensor x = at::arange(12, at::kFloat).reshape({3, 4});
  EXPECT_EQ(runBoth("Unsqueeze", {x, i64({-1, 0})}).sizes(), at::IntArrayRef({1, 3, 4, 1}));
  EXPECT_EQ(runBoth("Unsqueeze", {x, i64({1, -2})}).sizes(), at::IntArrayRef({3, 1, 1, 4}));
  EXPECT_EQ(runBoth("Unsqueeze", {x, i64({4, 0, 2})}).sizes(), at::IntArrayRef({1, 3, 1, 4, 1}));
  EXPECT_EQ(runBoth("Unsqueeze", {at::scalar_tensor(2.0), i64({0})}).sizes(), at::IntArrayRef({1}));
  EXPECT_THROW(runOp("Unsqueeze", {x, i64({1, 1})}), Error);
  // The pre-13 attribute form reaching the executor unconverted is a clear bind-time error.
  EXPECT_EQ(
      errorOf([&] {
        runOp("Unsqueeze", {x}, {{"axes", std::vector<int64_t>{0}}});
      }),
      "node 'n' (Unsqueeze): required input 1 is missing (Unsqueeze takes at least 2 inputs)");
  EXPECT_THROW(runOp("Unsqueeze", {x, i64({3})}), Error);
}

TEST(ShapeOps, ConcatNegativeAxisAndInts) {
  at::Tensor a = at::arange(6, at::kLong).reshape({2, 3}),
             b = at::arange(6, 10, at::kLong).reshape({2, 2});
  EXPECT_TENSOR_EQ(runOp("Concat", {a, b}, {{"axis", -1}})[0],
                   at::tensor({0, 1, 2, 6, 7, 3, 4, 5, 8, 9}, at::kLong).reshape({2, 5}));
  EXPECT_TENSOR_EQ(runOp("Concat", {i64({2}), i64({3, 4}), i64({})}, {{"axis", 0}})[0],
                   i64({2, 3, 4}));
  // Past the small-int64 fast path (long / strided inputs) the result is the same.
  at::Tensor big = at::arange(100, at::kLong),
             strided = at::arange(10, at::kLong).slice(0, 0, 10, 3);
  EXPECT_TENSOR_EQ(runOp("Concat", {big, i64({7})}, {{"axis", -1}})[0], at::cat({big, i64({7})}));
  EXPECT_TENSOR_EQ(runOp("Concat", {strided, i64({7})}, {{"axis", 0}})[0], i64({0, 3, 6, 9, 7}));
  EXPECT_THROW(runOp("Concat", {a, b}, {{"axis", 0}}), Error);
}

TEST(ShapeOps, SplitUnevenAndEqual) {
  at::Tensor x = at::arange(12, at::kFloat).reshape({2, 6});
  auto o = runOp("Split", {x, i64({2, 4})}, {{"axis", 1}}, 2);
  EXPECT_TENSOR_EQ(o[0], x.slice(1, 0, 2));
  EXPECT_TENSOR_EQ(o[1], x.slice(1, 2, 6));
  o = runOp("Split", {x, i64({1, 0, 5})}, {{"axis", -1}}, 3, "", {.operands_as_params = true});
  EXPECT_EQ(o[1].sizes(), at::IntArrayRef({2, 0}));
  EXPECT_TENSOR_EQ(o[2], x.slice(1, 1, 6));
  o = runOp("Split", {x}, {{"axis", 1}}, 3);
  for (int i = 0; i < 3; ++i) EXPECT_TENSOR_EQ(o[i], x.slice(1, 2 * i, 2 * i + 2));
  // Not divisible: the last part is smaller (opset-18 rule): 7 -> 3, 3, 1.
  o = runOp("Split", {at::arange(7, at::kFloat)}, {}, 3);
  EXPECT_TENSOR_EQ(o[2], f32({6}));
  EXPECT_EQ(o[1].sizes(), at::IntArrayRef({3}));
  std::string m = errorOf([&] { runOp("Split", {x, i64({2, 3})}, {{"axis", 1}}, 2); });
  EXPECT_EQ(m, "node 'n' (Split): split [2,3] sums to 5 but axis 1 has size 6");
}

TEST(ShapeOps, SliceClampingAndNegativeSteps) {
  at::Tensor x = at::arange(10, at::kFloat);
  EXPECT_TENSOR_EQ(runBoth("Slice", {x, i64({-1}), i64({kMin}), i64({0}), i64({-1})}), x.flip(0));
  EXPECT_TENSOR_EQ(runBoth("Slice", {x, i64({8}), i64({1}), i64({0}), i64({-3})}), f32({8, 5, 2}));
  EXPECT_TENSOR_EQ(runBoth("Slice", {x, i64({0}), i64({kMax}), i64({0}), i64({2})}),
                   f32({0, 2, 4, 6, 8}));
  EXPECT_TENSOR_EQ(runBoth("Slice", {x, i64({-100}), i64({3})}), f32({0, 1, 2}));
  EXPECT_TENSOR_EQ(runBoth("Slice", {x, i64({100}), i64({-100}), i64({0}), i64({-4})}),
                   f32({9, 5, 1}));
  EXPECT_EQ(runBoth("Slice", {x, i64({5}), i64({2})}).numel(), 0);
  EXPECT_EQ(runBoth("Slice", {x, i64({2}), i64({5}), i64({0}), i64({-1})}).numel(), 0);
  // Extreme steps take one element; an empty axis stays empty for either sign.
  EXPECT_TENSOR_EQ(runBoth("Slice", {x, i64({kMax}), i64({kMin}), i64({0}), i64({kMin})}),
                   f32({9}));
  EXPECT_TENSOR_EQ(runBoth("Slice", {x, i64({3}), i64({kMax}), i64({0}), i64({kMax})}), f32({3}));
  at::Tensor e = at::zeros({0, 2});
  EXPECT_EQ(runBoth("Slice", {e, i64({-1}), i64({kMin}), i64({0}), i64({-1})}).sizes(),
            at::IntArrayRef({0, 2}));
  EXPECT_EQ(runBoth("Slice", {e, i64({0}), i64({kMax}), i64({0}), i64({2})}).sizes(),
            at::IntArrayRef({0, 2}));
  at::Tensor y = at::arange(24, at::kFloat).reshape({2, 3, 4});
  // axes given negative; steps omitted; the first axis untouched.
  EXPECT_TENSOR_EQ(runBoth("Slice", {y, i64({1, -1}), i64({kMax, 0}), i64({-2, -1}), i64({1, -2})}),
                   y.slice(1, 1, 3).index_select(2, i64({3, 1})));
  EXPECT_THROW(runOp("Slice", {x, i64({0}), i64({5}), i64({0}), i64({0})}), Error);
  EXPECT_THROW(runOp("Slice", {y, i64({0, 0}), i64({1, 1}), i64({1, -2})}), Error);
}

// Train mode: gradients flow through the float paths of the view ops into a trainable parameter.
TEST(ShapeOps, GradientsFlowThroughReshapeTransposeConcatSlice) {
  at::Tensor w0 = test::randn({2, 3, 4}, 11);
  Graph g;
  Value* w = g.addParam("w", w0.clone().requires_grad_(true));
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{4, 6});
  Node* t = g.addNode("Transpose", {w}, 1, "t", {{"perm", std::vector<int64_t>{2, 0, 1}}});
  Node* r = g.addNode("Reshape", {t->output(0), g.addParam("s", i64({4, -1}), false)}, 1, "r");
  Node* c = g.addNode("Concat", {r->output(0), x}, 1, "c", {{"axis", 1}});
  Node* s =
      g.addNode("Slice",
                {c->output(0), g.addParam("st", i64({-1, 10}), false),
                 g.addParam("en", i64({kMin, 1}), false), g.addParam("ax", i64({0, 1}), false),
                 g.addParam("sp", i64({-2, -3}), false)},
                1, "s");
  g.addOutput(s->output(0));
  Executor ex(g, {.training = true});
  at::Tensor xin = test::randn({4, 6}, 12), wt = test::randn({2, 3}, 13);
  at::Tensor y = ex.run({xin})[0];
  (y * wt).sum().backward();

  at::Tensor wr = w0.clone().requires_grad_(true);
  at::Tensor ref = at::cat({wr.permute({2, 0, 1}).reshape({4, 6}), xin}, 1)
                       .index_select(0, i64({3, 1}))
                       .index_select(1, i64({10, 7, 4}));
  EXPECT_LT(test::maxRelDiff(y.detach(), ref.detach()), 1e-6);
  (ref * wt).sum().backward();
  ASSERT_TRUE(w->data().grad().defined());
  EXPECT_LT(test::maxRelDiff(w->data().grad(), wr.grad()), 1e-6);
}

}  // namespace
}  // namespace gs
