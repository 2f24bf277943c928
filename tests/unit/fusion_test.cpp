// Inference-time fusion (runtime/fusion.h): fused plans match unfused ones; unsafe cases stay unfused.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "../../bench/model_zoo.h"
#include "ir/graph.h"
#include "runtime/executor.h"
#include "runtime/fusion.h"
#include "test_util.h"

namespace gs {
namespace {

using test::maxRelDiff;
using test::randn;

/// Positive per-channel tensor (BN variance / scale-like), seeded.
at::Tensor positive(int64_t c, uint64_t seed) { return randn({c}, seed).abs() + 0.5; }

struct ConvBnGraph {
  Graph g;
  Value *x, *w, *b, *conv, *bn = nullptr, *out;
  Node *conv_node, *bn_node = nullptr;
};

/// x[2,3,9,9] -> Conv(4 out, 3x3, pads 1, stride `stride`) [-> BatchNormalization] [-> Relu].
void buildConv(ConvBnGraph& m, bool bias, bool with_bn, bool with_relu, int64_t stride = 1) {
  Graph& g = m.g;
  m.x = g.addInput("x", DType::Float32, std::vector<Dim>{Dim("N"), 3, 9, 9});
  m.w = g.addParam("w", randn({4, 3, 3, 3}, 11));
  std::vector<Value*> ins{m.x, m.w};
  if (bias) ins.push_back(g.addParam("b", randn({4}, 12)));
  m.conv_node = g.addNode("Conv", ins, 1, "conv",
                          {{"pads", std::vector<int64_t>{1, 1, 1, 1}},
                           {"strides", std::vector<int64_t>{stride, stride}}});
  m.conv = m.conv_node->output(0);
  m.out = m.conv;
  if (with_bn) {
    m.bn_node = g.addNode("BatchNormalization",
                          {m.conv, g.addParam("s", randn({4}, 13)), g.addParam("beta", randn({4}, 14)),
                           g.addParam("mean", randn({4}, 15)), g.addParam("var", positive(4, 16))},
                          1, "bn", {{"epsilon", 1e-3f}});
    m.out = m.bn = m.bn_node->output(0);
  }
  if (with_relu) m.out = g.addNode("Relu", {m.out}, 1, "relu")->output(0);
  g.addOutput(m.out);
}

/// Independent ATen reference for buildConv's graph.
at::Tensor convRef(const ConvBnGraph& m, const at::Tensor& x, bool with_relu) {
  const Graph& g = m.g;
  c10::optional<at::Tensor> b;
  if (g.findValue("b")) b = g.findValue("b")->data();
  int64_t s = m.conv_node->attrInts("strides")[0];
  at::Tensor y = at::conv2d(x, m.w->data(), b, {s, s}, {1, 1});
  if (m.bn_node)
    y = at::batch_norm(y, g.findValue("s")->data(), g.findValue("beta")->data(),
                       g.findValue("mean")->data(), g.findValue("var")->data(), false, 0.0, 1e-3, false);
  return with_relu ? at::relu(y) : y;
}

void expectFusedMatches(const ConvBnGraph& m, bool relu, size_t fused_steps, size_t plain_steps) {
  Executor fused(m.g), plain(m.g, {.fuse = false});
  EXPECT_EQ(fused.numSteps(), fused_steps);
  EXPECT_EQ(plain.numSteps(), plain_steps);
  at::Tensor x = randn({2, 3, 9, 9}, 21);
  at::Tensor yf = fused.run({x})[0], yp = plain.run({x})[0];
  ASSERT_EQ(yf.sizes(), yp.sizes());
  EXPECT_LT(maxRelDiff(yf, yp), 1e-5);
  EXPECT_LT(maxRelDiff(yf, convRef(m, x, relu)), 1e-5);
  if (relu) EXPECT_GT((yp == 0).sum().item<int64_t>(), 0);  // relu actually clipped something
}

TEST(Fusion, ConvBatchNormFolds) {
  ConvBnGraph m;
  buildConv(m, true, true, false);
  expectFusedMatches(m, false, 1, 2);
  auto groups = findFusions(m.g);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].kind, "Conv+BatchNormalization");
  EXPECT_EQ(groups[0].anchor, m.conv_node);
}

TEST(Fusion, ConvBatchNormReluWithoutBias) {
  ConvBnGraph m;
  buildConv(m, false, true, true, 2);
  expectFusedMatches(m, true, 1, 3);
  EXPECT_EQ(findFusions(m.g).at(0).kind, "Conv+BatchNormalization+Relu");
}

TEST(Fusion, ConvRelu) {
  ConvBnGraph m;
  buildConv(m, true, false, true);
  expectFusedMatches(m, true, 1, 2);
  EXPECT_EQ(findFusions(m.g).at(0).kind, "Conv+Relu");
}

TEST(Fusion, FoldedWeightsFollowParameterUpdates) {
  ConvBnGraph m;
  buildConv(m, true, true, true);
  Executor fused(m.g), plain(m.g, {.fuse = false});
  at::Tensor x = randn({2, 3, 9, 9}, 22);
  at::Tensor before = fused.run({x})[0];
  {
    at::NoGradGuard ng;
    m.w->data().mul_(-1.5);                                    // in-place update (version bump)
  }
  m.g.findValue("var")->setData(positive(4, 99));            // replaced tensor
  at::Tensor yf = fused.run({x})[0], yp = plain.run({x})[0];
  EXPECT_GT(maxRelDiff(yf, before), 1e-2);
  EXPECT_LT(maxRelDiff(yf, yp), 1e-5);
  EXPECT_LT(maxRelDiff(yf, convRef(m, x, true)), 1e-5);
}

TEST(Fusion, ConvOutputUsedTwiceStaysUnfused) {
  ConvBnGraph m;
  buildConv(m, true, true, false);
  // A second use of the conv output (besides the BN) forbids folding it away.
  Node* add = m.g.addNode("Add", {m.conv, m.bn}, 1, "add");
  m.g.setOutput(0, add->output(0));
  Executor ex(m.g);
  EXPECT_EQ(ex.numSteps(), 3u);
  EXPECT_TRUE(findFusions(m.g).empty());
  at::Tensor x = randn({2, 3, 9, 9}, 23);
  at::Tensor c = at::conv2d(x, m.w->data(), m.g.findValue("b")->data(), {1, 1}, {1, 1});
  EXPECT_LT(maxRelDiff(ex.run({x})[0], c + convRef(m, x, false)), 1e-5);
}

TEST(Fusion, ConvOutputAsGraphOutputStaysUnfused) {
  ConvBnGraph m;
  buildConv(m, true, false, true);
  m.g.addOutput(m.conv);
  Executor ex(m.g);
  EXPECT_EQ(ex.numSteps(), 2u);
  at::Tensor x = randn({2, 3, 9, 9}, 24);
  auto out = ex.run({x});
  EXPECT_LT(maxRelDiff(out[1], at::conv2d(x, m.w->data(), m.g.findValue("b")->data(), {1, 1}, {1, 1})),
            1e-5);
  EXPECT_LT(maxRelDiff(out[0], at::relu(out[1])), 1e-6);
}

TEST(Fusion, BatchNormTrainingModeStaysUnfused) {
  ConvBnGraph m;
  buildConv(m, true, true, false);
  m.bn_node->setAttr("training_mode", int64_t{1});
  EXPECT_TRUE(findFusions(m.g).empty());
  Executor ex(m.g);
  EXPECT_EQ(ex.numSteps(), 2u);
  at::Tensor x = randn({2, 3, 9, 9}, 25);
  at::Tensor c = at::conv2d(x, m.w->data(), m.g.findValue("b")->data(), {1, 1}, {1, 1});
  at::Tensor ref = at::batch_norm(c, m.g.findValue("s")->data(), m.g.findValue("beta")->data(), {}, {},
                                  true, 0.0, 1e-3, false);
  EXPECT_LT(maxRelDiff(ex.run({x})[0], ref), 1e-4);
}

TEST(Fusion, NonConstantBatchNormParamsStayUnfused) {
  ConvBnGraph m;
  buildConv(m, true, true, false);
  Value* mean = m.g.addInput("mean_in", DType::Float32, std::vector<Dim>{4});
  m.bn_node->setInput(3, mean);
  EXPECT_TRUE(findFusions(m.g).empty());
  Executor ex(m.g);
  EXPECT_EQ(ex.numSteps(), 2u);
  at::Tensor x = randn({2, 3, 9, 9}, 26), mu = randn({4}, 27);
  at::Tensor c = at::conv2d(x, m.w->data(), m.g.findValue("b")->data(), {1, 1}, {1, 1});
  at::Tensor ref = at::batch_norm(c, m.g.findValue("s")->data(), m.g.findValue("beta")->data(), mu,
                                  m.g.findValue("var")->data(), false, 0.0, 1e-3, false);
  EXPECT_LT(maxRelDiff(ex.run({x, mu})[0], ref), 1e-5);
}

TEST(Fusion, TrainModeAndObserverRunUnfused) {
  ConvBnGraph m;
  buildConv(m, true, true, true);
  Executor ex(m.g);
  EXPECT_EQ(ex.numSteps(), 1u);
  ex.setTraining(true);
  EXPECT_EQ(ex.numSteps(), 3u);
  ex.setTraining(false);
  EXPECT_EQ(ex.numSteps(), 1u);
  int seen = 0;
  ex.setObserver([&](const Node&, const std::vector<at::Tensor>&, const std::vector<at::Tensor>&) { ++seen; });
  EXPECT_EQ(ex.numSteps(), 3u);
  ex.run({randn({1, 3, 9, 9}, 28)});
  EXPECT_EQ(seen, 3);  // the observer sees every node
  Executor train(m.g, {.training = true});
  EXPECT_EQ(train.numSteps(), 3u);
}

/// erf-GELU as PyTorch exports it. `half_first`: Mul(Mul(x, 0.5), 1 + erf) (model_zoo's form),
/// else Mul(Mul(x, 1 + erf), 0.5); `mul_scale`: Mul(x, 1/sqrt2) instead of Div(x, sqrt2);
/// `swap`: constants / operands in the other order where the op commutes.
struct GeluGraph {
  Graph g;
  Value* x;
  Value* y;
};
void buildGelu(GeluGraph& m, bool half_first, bool mul_scale, bool swap, at::Tensor const_proto = {}) {
  Graph& g = m.g;
  m.x = g.addInput("x", DType::Float32, std::nullopt);
  // A producer in front so x is an intermediate, as in a real MLP.
  Value* h = g.addNode("Neg", {m.x}, 1, "neg")->output(0);
  auto c = [&](const std::string& n, double v) {
    at::Tensor t = const_proto.defined() ? at::full_like(const_proto, v) : at::full({}, v, at::kFloat);
    return g.addParam(n, t);
  };
  Value* scaled = mul_scale
                      ? g.addNode("Mul", swap ? std::vector<Value*>{c("r", std::sqrt(0.5)), h}
                                              : std::vector<Value*>{h, c("r", std::sqrt(0.5))},
                                  1, "scale")->output(0)
                      : g.addNode("Div", {h, c("sqrt2", std::sqrt(2.0))}, 1, "scale")->output(0);
  Value* e = g.addNode("Erf", {scaled}, 1, "erf")->output(0);
  Value* one = c("one", 1.0);
  Value* a = g.addNode("Add", swap ? std::vector<Value*>{one, e} : std::vector<Value*>{e, one}, 1, "add")
                 ->output(0);
  Value* half = c("half", 0.5);
  if (half_first) {
    Value* hh = g.addNode("Mul", swap ? std::vector<Value*>{half, h} : std::vector<Value*>{h, half}, 1,
                          "mul_half")->output(0);
    m.y = g.addNode("Mul", {hh, a}, 1, "mul")->output(0);
  } else {
    Value* m1 = g.addNode("Mul", swap ? std::vector<Value*>{a, h} : std::vector<Value*>{h, a}, 1, "mul")
                    ->output(0);
    m.y = g.addNode("Mul", swap ? std::vector<Value*>{half, m1} : std::vector<Value*>{m1, half}, 1,
                    "mul_half")->output(0);
  }
  g.addOutput(m.y);
}

at::Tensor geluRef(const at::Tensor& x) {
  at::Tensor h = -x.to(at::kDouble);
  return (h * 0.5 * (1.0 + at::erf(h / std::sqrt(2.0)))).to(x.scalar_type());
}

TEST(Fusion, GeluPatternsRunAsOneStep) {
  for (int variant = 0; variant < 8; ++variant) {
    SCOPED_TRACE(variant);
    GeluGraph m;
    buildGelu(m, variant & 1, variant & 2, variant & 4);
    Executor fused(m.g), plain(m.g, {.fuse = false});
    EXPECT_EQ(plain.numSteps(), 6u);
    EXPECT_EQ(fused.numSteps(), 2u);  // Neg + Gelu
    auto groups = findFusions(m.g);
    ASSERT_EQ(groups.size(), 1u);
    EXPECT_EQ(groups[0].kind, "Gelu");
    EXPECT_EQ(groups[0].anchor->opType(), "Erf");
    at::Tensor x = randn({4, 16, 32}, 30 + variant) * 3;
    at::Tensor yf = fused.run({x})[0], yp = plain.run({x})[0];
    EXPECT_LT(maxRelDiff(yf, yp), 1e-5);
    EXPECT_LT(maxRelDiff(yf, geluRef(x)), 1e-5);
  }
}

TEST(Fusion, GeluRankRaisingConstantsKeepExactSemantics) {
  // [1]-shaped constants broadcast a 0-d x to [1]: the fused step must produce the same shape.
  GeluGraph m;
  buildGelu(m, true, false, false, at::zeros({1}));
  Executor fused(m.g), plain(m.g, {.fuse = false});
  EXPECT_EQ(fused.numSteps(), 2u);
  at::Tensor x = at::full({}, 0.7f);
  at::Tensor yf = fused.run({x})[0], yp = plain.run({x})[0];
  ASSERT_EQ(yf.sizes(), yp.sizes());
  EXPECT_EQ(yf.dim(), 1);
  EXPECT_LT(maxRelDiff(yf, yp), 1e-6);
  // A higher-rank x takes the at::gelu path and still matches.
  at::Tensor x2 = randn({3, 5}, 40);
  EXPECT_LT(maxRelDiff(fused.run({x2})[0], geluRef(x2)), 1e-5);
}

TEST(Fusion, GeluNotFusedWhenIntermediateEscapesOrConstantDiffers) {
  {
    GeluGraph m;
    buildGelu(m, true, false, false);
    m.g.addOutput(m.g.findNode("erf")->output(0));  // the Erf output is observable
    EXPECT_TRUE(findFusions(m.g).empty());
    Executor ex(m.g);
    EXPECT_EQ(ex.numSteps(), 6u);
  }
  {
    GeluGraph m;
    buildGelu(m, false, false, false);
    m.g.findValue("half")->setData(at::full({}, 0.25f));  // not GELU any more
    EXPECT_TRUE(findFusions(m.g).empty());
    Executor ex(m.g);
    at::Tensor x = randn({8}, 41);
    at::Tensor h = -x;
    EXPECT_LT(maxRelDiff(ex.run({x})[0], h * (1 + at::erf(h / std::sqrt(2.0))) * 0.25), 1e-5);
  }
}

TEST(Fusion, BenchmarkModelsMatchUnfused) {
  struct Case {
    std::unique_ptr<Graph> g;
    const char* expect_kind;
  };
  std::vector<Case> cases;
  cases.push_back({zoo::lenet5(), "Conv+Relu"});
  cases.push_back({zoo::resnet20(), "Conv+BatchNormalization+Relu"});
  cases.push_back({zoo::transformerBlock(), "Gelu"});
  for (auto& c : cases) {
    SCOPED_TRACE(c.g->name);
    auto groups = findFusions(*c.g);
    size_t covered = 0;
    bool found = false;
    for (const auto& fg : groups) {
      covered += fg.nodes.size() - 1;
      found = found || fg.kind == c.expect_kind;
    }
    EXPECT_TRUE(found);
    Executor fused(*c.g), plain(*c.g, {.fuse = false});
    EXPECT_EQ(plain.numSteps(), c.g->numNodes());
    EXPECT_EQ(fused.numSteps(), c.g->numNodes() - covered);
    std::vector<int64_t> shape;
    for (const Dim& d : *c.g->inputs()[0]->shape()) shape.push_back(d.isStatic() ? d.value : 3);
    at::Tensor x = randn(shape, 50);
    at::Tensor yf = fused.run({x})[0], yp = plain.run({x})[0];
    EXPECT_LT(maxRelDiff(yf, yp), 1e-5);
  }
}

}  // namespace
}  // namespace gs
