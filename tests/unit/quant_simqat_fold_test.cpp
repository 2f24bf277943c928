// SimQAT two-conv BN fold (gs::BnFoldCorrection): eval / frozen output == Conv -> BN with
// running statistics (fake-quantized in closed form), train output == BN with batch statistics,
// running statistics updated like BatchNormalization, gradients == finite differences, convert().
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "algo/registry.h"
#include "quant/simqat.h"
#include "runtime/executor.h"
#include "test_util.h"
#include "train/callback.h"

namespace gs {
namespace {

constexpr double kEps = 1e-3;  // BN epsilon (large enough to matter)

/// x [N, 3, 6, 6] -> Conv "conv" (W [4, 3, 3, 3], bias, pad 1) -> BN "bn" -> y, random statistics.
std::unique_ptr<Graph> convBn(at::ScalarType dt = at::kFloat, bool bias = true) {
  auto g = std::make_unique<Graph>();
  Value* x = g->addInput("x", dt == at::kFloat ? DType::Float32 : DType::Float64,
                         std::vector<Dim>{Dim("N"), 3, 6, 6});
  auto p = [&](const std::string& n, at::Tensor t, bool tr = true) { return g->addParam(n, t.to(dt), tr); };
  Value* w = p("w", test::randn({4, 3, 3, 3}, 1) * 0.4);
  Value* b = bias ? p("b", test::randn({4}, 2) * 0.3) : nullptr;
  Value* gamma = p("gamma", test::randn({4}, 3) * 0.5 + 1);
  Value* beta = p("beta", test::randn({4}, 4) * 0.3);
  Value* mean = p("mean", test::randn({4}, 5) * 0.3, false);
  Value* var = p("var", test::randn({4}, 6).abs() + 0.5, false);
  std::vector<Value*> cin{x, w};
  if (b) cin.push_back(b);
  Node* conv = g->addNode("Conv", cin, 1, "conv",
                          {{"pads", Attribute(std::vector<int64_t>{1, 1, 1, 1})},
                           {"kernel_shape", Attribute(std::vector<int64_t>{3, 3})}});
  Node* bn = g->addNode("BatchNormalization", {conv->output(0), gamma, beta, mean, var}, 1, "bn",
                        {{"epsilon", Attribute(static_cast<float>(kEps))},
                         {"momentum", Attribute(0.8f)}});
  g->addOutput(bn->output(0));
  return g;
}

/// The fused cell: simqat with the two-conv fold; quant_delay 10^6 keeps quantization off.
Graph twoConv(std::unique_ptr<Graph> g, bool quant, int64_t freeze_bn,
              std::unique_ptr<CompAlgo>* keep = nullptr) {
  // Float biases after convert, so the QDQ graph computes exactly the fake-quant arithmetic.
  Json cfg{{"enable_fusion", true}, {"bn_fold", true}, {"one_conv_fold", false},
           {"freeze_bn", freeze_bn}, {"int32_bias", false}};
  if (!quant) cfg["quant_delay"] = Json::array({1000000, 1000000});
  auto algo = AlgoRegistry::global().create("simqat", cfg);
  Graph q = algo->apply(std::move(*g));
  if (keep) *keep = std::move(algo);
  return q;
}

at::Tensor data(const Graph& g, const std::string& name) { return g.findValue(name)->data(); }

/// Conv -> BN reference on the parameters of convBn(), written with ATen directly.
at::Tensor reference(const Graph& g, const at::Tensor& x, const at::Tensor& w, bool training,
                     at::Tensor rm, at::Tensor rv) {
  at::Tensor y = at::conv2d(x, w, data(g, "b"), 1, 1);
  return at::batch_norm(y, data(g, "gamma"), data(g, "beta"), rm, rv, training, 0.2, kEps, false);
}

int64_t countOp(const Graph& g, const std::string& op) {
  int64_t k = 0;
  for (const auto& n : g.nodes()) k += n->opType() == op;
  return k;
}

TEST(SimQatTwoConvFold, GraphShape) {
  Graph q = twoConv(convBn(), true, 5);
  EXPECT_EQ(countOp(q, "BatchNormalization"), 0);
  EXPECT_EQ(countOp(q, "BnFoldCorrection"), 1);
  EXPECT_EQ(countOp(q, "Conv"), 1);  // the first conv runs inside the correction, in training only
  EXPECT_FALSE(q.findNode("conv")->hasInput(2));  // the bias moved to the correction
  EXPECT_EQ(data(q, "quant.bn_frozen").item<float>(), 0.0f);
  // freeze_bn = 0: running statistics from the start.
  Graph f = twoConv(convBn(), true, 0);
  EXPECT_EQ(data(f, "quant.bn_frozen").item<float>(), 1.0f);
}

TEST(SimQatTwoConvFold, EvalAndFrozenEqualConvBnWithRunningStats) {
  at::Tensor x = test::randn({5, 3, 6, 6}, 7);
  auto g = convBn();
  at::Tensor want = reference(*g, x, data(*g, "w"), false, data(*g, "mean"), data(*g, "var"));
  at::Tensor rm0 = data(*g, "mean").clone(), rv0 = data(*g, "var").clone();
  Graph q = twoConv(std::move(g), false, 0);
  at::Tensor eval = Executor(q).run({x})[0];
  EXPECT_LT((eval - want).abs().max().item<double>(), 1e-5);
  // Train mode after freeze: the same output, and the statistics stay frozen.
  at::Tensor frozen = Executor(q, {.training = true}).run({x})[0];
  EXPECT_LT((frozen - want).abs().max().item<double>(), 1e-5);
  EXPECT_TRUE(at::equal(data(q, "mean"), rm0));
  EXPECT_TRUE(at::equal(data(q, "var"), rv0));
}

/// Symmetric signed int8 per-channel fake quantization of w [C, ...] (scale = amax / 127.5).
at::Tensor fqWeight(const at::Tensor& w) {
  at::Tensor s = std::get<0>(w.abs().reshape({w.size(0), -1}).max(1)).div(127.5).reshape({-1, 1, 1, 1});
  return at::clamp(at::round(w / s), -128, 127) * s;
}

/// Asymmetric uint8 fake quantization (SimQAT's default activation grid).
at::Tensor fqAct(const at::Tensor& x, double s, double z) {
  return (at::clamp(at::round(x / s) + z, 0, 255) - z) * s;
}

TEST(SimQatTwoConvFold, EvalWithQuantizationMatchesClosedForm) {
  at::Tensor x = test::randn({5, 3, 6, 6}, 8);
  auto g = convBn();
  at::Tensor w = data(*g, "w"), b = data(*g, "b"), gamma = data(*g, "gamma"),
             beta = data(*g, "beta"), mean = data(*g, "mean"), var = data(*g, "var");
  Graph q = twoConv(std::move(g), true, 0);
  // Pin the activation quantizer's grid (the EMA observer only moves it in train mode).
  Node* aq = q.findNode("conv")->input(0)->producer();
  ASSERT_TRUE(aq && aq->opType() == "FakeQuant");
  aq->input(1)->setData(at::full_like(aq->input(1)->data(), 0.03));
  aq->input(2)->setData(at::full_like(aq->input(2)->data(), 100));
  at::Tensor sf = gamma / at::sqrt(var + kEps);
  at::Tensor wq = fqWeight(w * sf.reshape({-1, 1, 1, 1}));
  at::Tensor want = at::conv2d(fqAct(x, 0.03, 100), wq, {}, 1, 1) +
                    (beta - gamma * (mean - b) / at::sqrt(var + kEps)).reshape({1, -1, 1, 1});
  at::Tensor got = Executor(q).run({x})[0];
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);
  // The quantized weight really differs from the float one (the check above is not vacuous).
  at::Tensor fp = at::conv2d(fqAct(x, 0.03, 100), w * sf.reshape({-1, 1, 1, 1}), {}, 1, 1) +
                  (beta - gamma * (mean - b) / at::sqrt(var + kEps)).reshape({1, -1, 1, 1});
  EXPECT_GT((got - fp).abs().max().item<double>(), 1e-4);
}

TEST(SimQatTwoConvFold, TrainUsesBatchStatsAndUpdatesRunningStatsLikeBatchNorm) {
  auto g = convBn();
  auto plain = g->clone(true);  // Conv -> BN run in gstick train mode: the momentum rule oracle
  Graph q = twoConv(std::move(g), false, 1000);
  at::Tensor rm = data(q, "mean").clone(), rv = data(q, "var").clone();
  Executor tq(q, {.training = true}), tp(*plain, {.training = true});
  for (int step = 0; step < 3; ++step) {
    at::Tensor x = test::randn({6, 3, 6, 6}, 20 + step) * (1 + step);
    at::Tensor want = reference(q, x, data(q, "w"), true, rm, rv);  // updates rm / rv (torch rule)
    at::Tensor got = tq.run({x})[0];
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-5) << "step " << step;
    tp.run({x});
    EXPECT_LT((data(q, "mean") - data(*plain, "mean")).abs().max().item<double>(), 1e-6);
    EXPECT_LT((data(q, "var") - data(*plain, "var")).abs().max().item<double>(), 1e-6);
    EXPECT_LT((data(q, "mean") - rm).abs().max().item<double>(), 1e-6);
    EXPECT_LT((data(q, "var") - rv).abs().max().item<double>(), 1e-6);
  }
}

TEST(SimQatTwoConvFold, TrainWithQuantizationMatchesClosedForm) {
  at::Tensor x = test::randn({6, 3, 6, 6}, 30);
  auto g = convBn();
  at::Tensor w = data(*g, "w"), gamma = data(*g, "gamma"), beta = data(*g, "beta");
  at::Tensor var = data(*g, "var").clone();
  Graph q = twoConv(std::move(g), true, 1000);
  at::Tensor got = Executor(q, {.training = true}).run({x})[0];
  // The activation observer saw this batch first: read its grid; the weight grid is min-max.
  Node* aq = q.findNode("conv")->input(0)->producer();
  double s = aq->input(1)->data().item<double>(), z = aq->input(2)->data().item<double>();
  EXPECT_NEAR(s, (x.max() - x.min()).item<double>() / 255, 1e-6);
  at::Tensor xq = fqAct(x, s, z);
  at::Tensor rstd = at::sqrt(var + kEps);
  at::Tensor y0 = at::conv2d(xq, w, {}, 1, 1);
  at::Tensor bmean = y0.mean({0, 2, 3}), bstd = at::sqrt(y0.var({0, 2, 3}, false) + kEps);
  at::Tensor y = at::conv2d(xq, fqWeight(w * (gamma / rstd).reshape({-1, 1, 1, 1})), {}, 1, 1);
  at::Tensor want = y * (rstd / bstd).reshape({1, -1, 1, 1}) +
                    (beta - gamma * bmean / bstd).reshape({1, -1, 1, 1});
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);
}

/// d(sum(z * r)) / d(param) by autograd vs central differences, in double precision.
void checkGradients(int64_t freeze_bn) {
  Graph q = twoConv(convBn(at::kDouble), false, freeze_bn);
  at::Tensor x = test::randn({3, 3, 6, 6}, 40).to(at::kDouble);
  at::Tensor r = test::randn({3, 4, 6, 6}, 41).to(at::kDouble);
  Executor ex(q, {.training = true});
  auto loss = [&] { return (ex.run({x})[0] * r).sum(); };
  for (const char* name : {"w", "b", "gamma", "beta"}) q.findValue(name)->data().requires_grad_(true);
  loss().backward();
  for (const char* name : {"w", "b", "gamma", "beta"}) {
    at::Tensor p = q.findValue(name)->data();
    at::Tensor grad = p.grad().defined() ? p.grad().clone() : at::zeros_like(p);
    at::Tensor flat = p.detach().view({-1});
    at::Tensor num = at::zeros_like(flat);
    for (int64_t i = 0; i < flat.numel(); i += (flat.numel() > 20 ? 7 : 1)) {
      double v = flat[i].item<double>(), h = 1e-6;
      flat[i] = v + h;
      double lp = loss().item<double>();
      flat[i] = v - h;
      double lm = loss().item<double>();
      flat[i] = v;
      num[i] = (lp - lm) / (2 * h);
      EXPECT_NEAR(grad.view({-1})[i].item<double>(), num[i].item<double>(),
                  1e-5 * std::max(1.0, std::abs(num[i].item<double>())))
          << name << "[" << i << "] freeze_bn=" << freeze_bn;
    }
  }
}

TEST(SimQatTwoConvFold, GradientsMatchFiniteDifferences) {
  checkGradients(1000);  // batch statistics: gradients through the first conv's mean / var too
  checkGradients(0);     // frozen: running statistics
}

TEST(SimQatTwoConvFold, ConvertFoldsRunningStatsIntoQdq) {
  std::unique_ptr<CompAlgo> algo;
  Graph q = twoConv(convBn(), true, 2, &algo);
  auto cbs = algo->callbacks();
  TrainContext ctx;
  ctx.graph = &q;
  {
    Executor tr(q, {.training = true});
    for (int step = 0; step < 4; ++step) {
      ctx.step = step;
      for (auto& cb : cbs) cb->onStepBegin(ctx);
      EXPECT_EQ(data(q, "quant.bn_frozen").item<float>(), step >= 2 ? 1.0f : 0.0f);
      at::Tensor m0 = data(q, "mean").clone();
      tr.run({test::randn({8, 3, 6, 6}, 50 + step)});
      EXPECT_EQ(at::equal(data(q, "mean"), m0), step >= 2) << "step " << step;
    }
  }
  at::Tensor x = test::randn({4, 3, 6, 6}, 60);
  at::Tensor want = Executor(q).run({x})[0];
  Graph d = algo->convert(std::move(q));
  EXPECT_EQ(countOp(d, "BnFoldCorrection"), 0);
  EXPECT_EQ(countOp(d, "BatchNormalization"), 0);
  EXPECT_EQ(countOp(d, "DequantizeLinear"), 2);
  for (const auto& n : d.nodes()) EXPECT_NE(n->domain(), "gs") << n->describe();
  at::Tensor got = Executor(d, {.fuse = false}).run({x})[0];  // op by op: the QDQ semantics
  // Equal up to float rounding of the folded weight: a weight at the grid's edge sits on a
  // rounding tie (|w| / scale = 127.5) and may move by one code; nothing else may differ.
  at::Tensor diff = (got - want).abs();
  double step = (want.max() - want.min()).item<double>() / 255;
  EXPECT_LT(diff.max().item<double>(), step);
  EXPECT_LT(diff.gt(1e-5).to(at::kDouble).mean().item<double>(), 0.5);
  EXPECT_EQ(algo->summary(d).rows[0].policy, "W8-per_channel-A8-per_tensor bn=two_conv_fold");
}

}  // namespace
}  // namespace gs
