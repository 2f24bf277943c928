// Train-mode gradients of the differentiable shape-family ops against central finite
// differences (float64), so the reference does not depend on ATen's derivative formulas.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "op_test_util.h"
#include "runtime/executor.h"

namespace gs {
namespace {

using namespace gs::test;  // NOLINT: shared op-test helpers

struct GradCase {
  const char* op;
  std::vector<at::Tensor> in;
  std::map<std::string, Attribute> attrs = {};
  size_t nout = 1;
  size_t wrt = 0;  // which input is the trainable parameter
};

/// Builds the node with input `wrt` as a trainable f64 parameter and the others frozen.
std::unique_ptr<Graph> buildGraph(const GradCase& c, const at::Tensor& w) {
  auto g = std::make_unique<Graph>();
  std::vector<Value*> vals;
  for (size_t i = 0; i < c.in.size(); ++i) {
    const std::string vn = "in" + std::to_string(i);
    if (i == c.wrt)
      vals.push_back(g->addParam(vn, w, true));
    else
      vals.push_back(c.in[i].defined() ? g->addParam(vn, c.in[i], false) : nullptr);
  }
  Node* n = g->addNode(c.op, vals, c.nout, "n", c.attrs);
  for (size_t i = 0; i < c.nout; ++i) g->addOutput(n->output(i));
  return g;
}

/// loss = sum_k <out_k, R_k> with fixed pseudo-random weights R_k.
at::Tensor loss(const std::vector<at::Tensor>& outs) {
  at::Tensor l = at::zeros({}, at::kDouble);
  for (size_t k = 0; k < outs.size(); ++k) {
    at::Tensor r = test::randn(outs[k].sizes(), 100 + k).to(at::kDouble);
    l = l + (outs[k].to(at::kDouble) * r).sum();
  }
  return l;
}

void checkGrad(const GradCase& c) {
  SCOPED_TRACE(c.op);
  at::Tensor w0 = c.in[c.wrt].to(at::kDouble);
  at::Tensor w = w0.clone().requires_grad_(true);
  auto g = buildGraph(c, w);
  Executor train(*g, {.training = true});
  loss(train.run({})).backward();
  ASSERT_TRUE(w.grad().defined());
  at::Tensor analytic = w.grad();

  at::Tensor numeric = at::zeros_like(w0);
  const double eps = 1e-6;
  for (int64_t i = 0; i < w0.numel(); ++i) {
    double f[2];
    for (int s = 0; s < 2; ++s) {
      at::Tensor wp = w0.clone();
      wp.view({-1})[i] += s ? -eps : eps;
      auto gp = buildGraph(c, wp);
      f[s] = loss(Executor(*gp).run({})).item<double>();
    }
    numeric.view({-1})[i] = (f[0] - f[1]) / (2 * eps);
  }
  EXPECT_TRUE(at::allclose(analytic, numeric, 1e-5, 1e-6))
      << "analytic " << analytic << "\nnumeric " << numeric;
}

TEST(ShapeGrad, MatchesFiniteDifferences) {
  auto r = [](at::IntArrayRef s, uint64_t seed) { return test::randn(s, seed).to(at::kDouble); };
  at::Tensor x = r({2, 3, 4}, 1);
  const std::vector<GradCase> cases = {
      {"Reshape", {x, i64({4, -1})}},
      {"Flatten", {x}, {{"axis", -1}}},
      {"Transpose", {x}, {{"perm", std::vector<int64_t>{1, 2, 0}}}},
      {"Squeeze", {r({1, 3, 1}, 2), i64({0})}},
      {"Unsqueeze", {r({3, 2}, 3), i64({-1, 0})}},
      {"Concat", {r({2, 2}, 4), x.select(2, 0)}, {{"axis", 1}}},
      {"Split", {x, i64({1, 3})}, {{"axis", -1}}, 2},
      {"Slice", {x, i64({-1, 3}), i64({INT64_MIN, 0}), i64({0, 2}), i64({-1, -2})}},
      {"Gather", {x, i64({-1, 0, 0})}, {{"axis", 1}}},  // repeated index: gradients add
      {"GatherElements", {x, (at::arange(24) % 3).reshape({2, 3, 4})}, {{"axis", 1}}},
      {"GatherND", {x, i64({2, 0, 1, 1}).reshape({2, 2, 1})}, {{"batch_dims", 1}}},
      {"ScatterElements",
       {x, (at::arange(24) % 2).reshape({2, 3, 4}), r({2, 3, 4}, 5)},
       {{"axis", 1}, {"reduction", "mul"}}},
      {"ScatterElements",
       {x, (at::arange(24) % 2).reshape({2, 3, 4}), r({2, 3, 4}, 5)},
       {{"axis", 1}, {"reduction", "add"}},
       1,
       2},
      {"ScatterND", {x, i64({1, 0}).reshape({2, 1}), r({2, 3, 4}, 6)}, {{"reduction", "mul"}}},
      {"ScatterND", {x, i64({1, 2}).reshape({1, 2}), r({1, 4}, 7)}, {}, 1, 2},
      {"Expand", {r({3, 1}, 8), i64({2, 3, 2})}},
      {"Tile", {r({2, 2}, 9), i64({2, 1})}},
      {"Pad", {x, i64({0, 2, 1, 0, 3, 1})}, {{"mode", "reflect"}}},
      {"Pad", {x, i64({0, -1, 2, 1, 1, 0})}, {{"mode", "edge"}}},
      {"Pad", {x, i64({1, 0, -1, 0, 2, 1}), at::scalar_tensor(2.0, at::kDouble)}},
      {"Pad", {r({1, 2, 3, 4}, 10), i64({0, 0, 2, 1, 0, 0, 1, 3})}, {{"mode", "reflect"}}},
      {"Compress", {x, i64({1, 0, 1}).to(at::kBool)}, {{"axis", 1}}},
      {"ReverseSequence", {x, i64({2, 1, 2})}},  // time-major: T=2, B=3
      {"Trilu", {x, at::scalar_tensor(-1, at::kLong)}, {{"upper", 0}}},
      {"OneHot", {i64({2, -1, 0}), i64({4}), r({2}, 11)}, {}, 1, 2},
  };
  for (const GradCase& c : cases) checkGrad(c);
}

}  // namespace
}  // namespace gs
