// Reduction ops: Reduce*, ArgMax/ArgMin, TopK, CumSum against closed forms and ONNX's own cases.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <limits>

#include "op_test_util.h"
#include "runtime/executor.h"

namespace gs {
namespace {

using namespace gs::test;  // NOLINT: shared op-test helpers

TEST(OpsReduce, OnnxConformanceCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCases(
      {"test_reduce_", "test_argmax_", "test_argmin_", "test_top_k", "test_cumsum_"},
      // test_reduce_log_sum is stored at opset 6, which the importer refuses (ReduceLogSum
      // changed at 11 and 13: negative axes, bfloat16); its axes attribute means the same at 13.
      {.rtol = 1e-4, .atol = 1e-5, .as_opset = 13}));
}

TEST(OpsReduce, ReduceSumAxesInputNegativeAxisKeepsIntDType) {
  at::Tensor x = at::arange(24, at::kInt).reshape({2, 3, 4});
  at::Tensor y = run1("ReduceSum", {x, i64({-1})}, {{"keepdims", 0}});
  EXPECT_EQ(y.scalar_type(), at::kInt);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 3}));
  // Row r of the flattened [6, 4] view sums 4r*4 + 0+1+2+3.
  for (int64_t r = 0; r < 6; ++r) EXPECT_EQ(y.reshape({-1})[r].item<int>(), 16 * r + 6);
  at::Tensor k = run1("ReduceSum", {x, i64({0, 2})});
  EXPECT_EQ(k.sizes(), (std::vector<int64_t>{1, 3, 1}));
  EXPECT_EQ(k.reshape({-1})[1].item<int>(), (4 + 5 + 6 + 7) + (16 + 17 + 18 + 19));
}

TEST(OpsReduce, ReduceSumEmptyAxesNoopOrAll) {
  at::Tensor x = test::randn({3, 4}, 1);
  at::Tensor empty = at::empty({0}, at::kLong);
  at::Tensor same = run1("ReduceSum", {x, empty}, {{"noop_with_empty_axes", 1}});
  EXPECT_TRUE(at::equal(same, x));
  at::Tensor omitted = run1("ReduceSum", {x, at::Tensor()}, {{"noop_with_empty_axes", 1}});
  EXPECT_TRUE(at::equal(omitted, x));
  at::Tensor all = run1("ReduceSum", {x, empty}, {{"keepdims", 0}});
  EXPECT_EQ(all.dim(), 0);
  EXPECT_NEAR(all.item<float>(), x.sum().item<float>(), 1e-5);
  at::Tensor allk = run1("ReduceSum", {x});
  EXPECT_EQ(allk.sizes(), (std::vector<int64_t>{1, 1}));
}

TEST(OpsReduce, AttributeReductionsMatchClosedForms) {
  at::Tensor x = test::randn({2, 3, 4}, 2).abs() + 0.1;
  std::map<std::string, Attribute> a{{"axes", std::vector<int64_t>{-3, 2}}, {"keepdims", 0}};
  auto xd = x.to(at::kDouble);
  auto s = [&](const at::Tensor& t) { return t.sum(at::IntArrayRef{0, 2}); };
  EXPECT_LT(test::maxRelDiff(run1("ReduceMean", {x}, a), s(xd) / 8), 1e-6);
  EXPECT_LT(test::maxRelDiff(run1("ReduceL1", {x}, a), s(xd.abs())), 1e-6);
  EXPECT_LT(test::maxRelDiff(run1("ReduceL2", {x}, a), s(xd * xd).sqrt()), 1e-6);
  EXPECT_LT(test::maxRelDiff(run1("ReduceSumSquare", {x}, a), s(xd * xd)), 1e-6);
  EXPECT_LT(test::maxRelDiff(run1("ReduceLogSum", {x}, a), s(xd).log()), 1e-6);
  EXPECT_LT(test::maxRelDiff(run1("ReduceLogSumExp", {x}, a), s(xd.exp()).log()), 1e-6);
  at::Tensor prod = xd.select(0, 0) * xd.select(0, 1);  // [3, 4]
  prod = prod.select(1, 0) * prod.select(1, 1) * prod.select(1, 2) * prod.select(1, 3);
  EXPECT_LT(test::maxRelDiff(run1("ReduceProd", {x}, a), prod), 1e-6);
  at::Tensor mx = run1("ReduceMax", {x}, {{"axes", std::vector<int64_t>{1}}});
  EXPECT_EQ(mx.sizes(), (std::vector<int64_t>{2, 1, 4}));
  EXPECT_TRUE(at::equal(mx, std::get<0>(x.max(1, true))));
  EXPECT_TRUE(at::equal(run1("ReduceMin", {x}, {{"keepdims", 0}}), x.min()));
}

TEST(OpsReduce, IntegerMeanTruncatesAndKeepsDType) {
  at::Tensor x = at::tensor({1, 2, 4, -1, -2, -4}, at::kInt).reshape({2, 3});
  at::Tensor y = run1("ReduceMean", {x}, {{"axes", std::vector<int64_t>{1}}, {"keepdims", 0}});
  EXPECT_EQ(y.scalar_type(), at::kInt);
  EXPECT_EQ(y[0].item<int>(), 2);   // 7 / 3
  EXPECT_EQ(y[1].item<int>(), -2);  // -7 / 3 truncated toward zero
}

TEST(OpsReduce, EmptySetReductionsGiveIdentities) {
  at::Tensor x = at::empty({2, 0, 3});
  std::map<std::string, Attribute> a{{"axes", std::vector<int64_t>{1}}, {"keepdims", 0}};
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(at::equal(run1("ReduceSum", {x, i64({1})}, {{"keepdims", 0}}), at::zeros({2, 3})));
  EXPECT_TRUE(at::equal(run1("ReduceProd", {x}, a), at::ones({2, 3})));
  EXPECT_TRUE(at::equal(run1("ReduceMax", {x}, a), at::full({2, 3}, -inf)));
  EXPECT_TRUE(at::equal(run1("ReduceMin", {x}, a), at::full({2, 3}, inf)));
  EXPECT_TRUE(at::equal(run1("ReduceLogSumExp", {x}, a), at::full({2, 3}, -inf)));
  EXPECT_TRUE(at::equal(run1("ReduceL2", {x}, a), at::zeros({2, 3})));
  at::Tensor xi = at::empty({0, 2}, at::kInt);
  at::Tensor mi = run1("ReduceMax", {xi}, {{"axes", std::vector<int64_t>{0}}});
  EXPECT_TRUE(at::equal(mi, at::full({1, 2}, std::numeric_limits<int32_t>::lowest(), at::kInt)));
}

TEST(OpsReduce, RepeatedOrOutOfRangeAxisIsError) {
  at::Tensor x = at::ones({2, 3});
  EXPECT_THROW(run1("ReduceMean", {x}, {{"axes", std::vector<int64_t>{1, -1}}}), Error);
  EXPECT_THROW(run1("ReduceSum", {x, i64({2})}), Error);
}

TEST(OpsReduce, ReduceL2GradientIsFiniteAtZero) {
  Graph g;
  Value* w = g.addParam("w", at::tensor({0.0f, 0.0f, 3.0f, 4.0f}).reshape({2, 2}).requires_grad_(true));
  Node* n = g.addNode("ReduceL2", {w}, 1, "l2", {{"axes", std::vector<int64_t>{1}}, {"keepdims", 0}});
  g.addOutput(n->output(0));
  Executor ex(g, {.training = true});
  auto out = ex.run({});
  out[0].sum().backward();
  at::Tensor grad = w->data().grad();
  ASSERT_TRUE(grad.defined());
  EXPECT_TRUE(grad.isfinite().all().item<bool>());
  EXPECT_NEAR(grad[1][0].item<float>(), 0.6f, 1e-6);  // d|v|/dv = v / |v|
  EXPECT_NEAR(grad[1][1].item<float>(), 0.8f, 1e-6);
}

TEST(OpsReduce, ArgMaxArgMinSelectLastIndex) {
  at::Tensor x = at::tensor({1.f, 3.f, 3.f, 2.f, 0.f, 0.f, 5.f, 0.f}).reshape({2, 4});
  auto am = [&](const char* op, int64_t last) {
    return run1(op, {x}, {{"axis", -1}, {"keepdims", 0}, {"select_last_index", last}});
  };
  EXPECT_TRUE(at::equal(am("ArgMax", 0), i64({1, 2})));
  EXPECT_TRUE(at::equal(am("ArgMax", 1), i64({2, 2})));
  EXPECT_TRUE(at::equal(am("ArgMin", 0), i64({0, 0})));
  EXPECT_TRUE(at::equal(am("ArgMin", 1), i64({0, 3})));
  at::Tensor k = run1("ArgMax", {x}, {});  // axis 0, keepdims 1
  EXPECT_TRUE(at::equal(k, i64({0, 0, 1, 0}).reshape({1, 4})));
}

TEST(OpsReduce, TopKTiesTakeLowerIndexFirst) {
  at::Tensor x = at::tensor({1.f, 3.f, 3.f, 2.f, 3.f});
  auto largest = runOp("TopK", {x, i64({2})}, {}, 2);
  EXPECT_TRUE(at::equal(largest[0], at::tensor({3.f, 3.f})));
  EXPECT_TRUE(at::equal(largest[1], i64({1, 2})));
  at::Tensor y = at::tensor({2.f, 1.f, 1.f, 2.f, 1.f, 0.f}).reshape({1, 6});
  auto smallest = runOp("TopK", {y, i64({4})}, {{"largest", 0}, {"axis", -1}}, 2);
  EXPECT_TRUE(at::equal(smallest[0], at::tensor({0.f, 1.f, 1.f, 1.f}).reshape({1, 4})));
  EXPECT_TRUE(at::equal(smallest[1], i64({5, 1, 2, 4}).reshape({1, 4})));
  auto k0 = runOp("TopK", {x, i64({0})}, {}, 2);
  EXPECT_EQ(k0[0].numel(), 0);
  EXPECT_THROW(runOp("TopK", {x, i64({6})}, {}, 2), Error);
}

TEST(OpsReduce, TopKSmallKTiesInsideAndAtTheBoundary) {
  // k * 4 < n takes the at::topk path; ties must still resolve to the lower index.
  at::Tensor x = at::zeros({40});
  x[30] = 3;
  x[5] = 3;
  x[10] = 1;
  auto in_sel = runOp("TopK", {x, i64({3})}, {}, 2);  // tie (3, 3) inside the selection
  EXPECT_TRUE(at::equal(in_sel[0], at::tensor({3.f, 3.f, 1.f})));
  EXPECT_TRUE(at::equal(in_sel[1], i64({5, 30, 10})));
  x[17] = 1;
  auto at_edge = runOp("TopK", {x, i64({3})}, {}, 2);  // 1 at 10 and 17 compete for slot 3
  EXPECT_TRUE(at::equal(at_edge[1], i64({5, 30, 10})));
  auto smallest = runOp("TopK", {-x, i64({4})}, {{"largest", 0}}, 2);
  EXPECT_TRUE(at::equal(smallest[1], i64({5, 30, 10, 17})));
  // Random integers (many ties) along axis 0 against a stable-sort reference.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  at::Tensor r = at::randint(0, 5, {50, 3}, gen, at::kFloat);
  for (int64_t largest : {0, 1}) {
    auto got = runOp("TopK", {r, i64({6})}, {{"axis", 0}, {"largest", largest}}, 2);
    auto want = at::sort(r, true, 0, largest != 0);
    EXPECT_TRUE(at::equal(got[0], std::get<0>(want).narrow(0, 0, 6)));
    EXPECT_TRUE(at::equal(got[1], std::get<1>(want).narrow(0, 0, 6)));
  }
}

TEST(OpsReduce, HalfInputsKeepHalfDType) {
  at::Tensor xf = test::randn({3, 4}, 9), x = xf.to(at::kHalf), xr = x.to(at::kFloat);
  std::map<std::string, Attribute> a{{"axes", std::vector<int64_t>{1}}};
  at::Tensor p = run1("ReduceProd", {x}, a), l = run1("ReduceLogSumExp", {x}, a);
  EXPECT_EQ(p.scalar_type(), at::kHalf);
  EXPECT_LT(test::maxRelDiff(p, xr.prod(1, true)), 2e-3);
  EXPECT_LT(test::maxRelDiff(l, xr.exp().sum(1, true).log()), 2e-3);
  at::Tensor c = run1("CumSum", {x, at::scalar_tensor(1, at::kLong)}, {{"exclusive", 1}});
  EXPECT_EQ(c.scalar_type(), at::kHalf);
  EXPECT_LT(test::maxRelDiff(c.select(1, 2), xr.select(1, 0) + xr.select(1, 1)), 2e-3);
  auto t = runOp("TopK", {x, i64({1})}, {}, 2);
  EXPECT_EQ(t[0].scalar_type(), at::kHalf);
  EXPECT_TRUE(at::equal(t[1], std::get<1>(xr.max(1, true))));
}

TEST(OpsReduce, CumSumExclusiveReverseNegativeAxis) {
  at::Tensor x = at::tensor({1, 2, 3, 4, 5, 6}, at::kInt).reshape({2, 3});
  at::Tensor ax = at::scalar_tensor(-1, at::kLong);
  auto cs = [&](int64_t excl, int64_t rev) {
    return run1("CumSum", {x, ax}, {{"exclusive", excl}, {"reverse", rev}});
  };
  auto t = [](std::vector<int> v) { return at::tensor(v, at::kInt).reshape({2, 3}); };
  EXPECT_TRUE(at::equal(cs(0, 0), t({1, 3, 6, 4, 9, 15})));
  EXPECT_TRUE(at::equal(cs(1, 0), t({0, 1, 3, 0, 4, 9})));
  EXPECT_TRUE(at::equal(cs(0, 1), t({6, 5, 3, 15, 11, 6})));
  EXPECT_TRUE(at::equal(cs(1, 1), t({5, 3, 0, 11, 6, 0})));
  at::Tensor a0 = run1("CumSum", {x, at::scalar_tensor(0, at::kInt)});
  EXPECT_TRUE(at::equal(a0, t({1, 2, 3, 5, 7, 9})));
}

}  // namespace
}  // namespace gs
