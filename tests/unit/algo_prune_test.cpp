// magnitude_prune: exact per-layer / global sparsity, smallest-|w| selection, masks kept during
// fine-tuning, convert, export at training end, and the summary.
#include "algo/magnitude_prune.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "algo/registry.h"
#include "algo_test_util.h"
#include "io/onnx.h"
#include "train/trainer.h"

namespace gs {
namespace {

const char* kWeights[] = {"backbone.conv1.weight", "backbone.conv2.weight", "head.fc.weight",
                          "head.proj.weight"};

/// Originals of the four weights (copies, before pruning).
std::map<std::string, at::Tensor> originals(const Graph& g) {
  std::map<std::string, at::Tensor> m;
  for (auto* n : kWeights) m[n] = g.findValue(n)->data().detach().clone();
  return m;
}

int64_t zeros(const at::Tensor& t) { return (t == 0).sum().item<int64_t>(); }

/// Every pruned |w| is <= every kept |w| (over `pruned`/`kept` element sets of the originals).
void expectSmallestPruned(const at::Tensor& orig_abs, const at::Tensor& pruned_mask) {
  at::Tensor pruned = orig_abs.masked_select(pruned_mask);
  at::Tensor kept = orig_abs.masked_select(~pruned_mask);
  if (pruned.numel() && kept.numel())
    EXPECT_LE(pruned.max().item<float>(), kept.min().item<float>());
}

TEST(MagnitudePrune, ExactSparsityPerLayerWithPolicies) {
  auto g = test::smallNet(5);
  auto orig = originals(*g);
  at::Tensor fc_bias = g->findValue("head.fc.bias")->data().clone();
  auto algo = AlgoRegistry::global().create(
      "magnitude_prune",
      Json::parse(R"({"sparsity": 0.7, "layer_policies": {"head.fc": {"sparsity": 0.9},
                     "backbone.conv1": "skip"}})"));
  Graph p = algo->apply(std::move(*g));
  const double expect_s[] = {0.0, 0.7, 0.9, 0.7};
  for (int i = 0; i < 4; ++i) {
    const at::Tensor& w = p.findValue(kWeights[i])->data();
    int64_t n = w.numel();
    EXPECT_EQ(zeros(w), std::llround(expect_s[i] * n)) << kWeights[i];
    at::Tensor pruned = (w == 0);
    expectSmallestPruned(orig[kWeights[i]].abs(), pruned);
    // Kept weights are bit-identical to the originals.
    EXPECT_TRUE(at::equal(w.masked_select(~pruned), orig[kWeights[i]].masked_select(~pruned)));
  }
  EXPECT_TRUE(at::equal(p.findValue("head.fc.bias")->data(), fc_bias)) << "biases are not pruned";
  // conv2: round(0.7 * 144) = 101 zeros; fc: round(0.9 * 640) = 576.
  EXPECT_EQ(zeros(p.findValue("backbone.conv2.weight")->data()), 101);
  EXPECT_EQ(zeros(p.findValue("head.fc.weight")->data()), 576);

  SummaryTable t = algo->summary(p);
  ASSERT_EQ(t.rows.size(), 4u);
  EXPECT_EQ(t.rows[0].policy, "skip");
  EXPECT_EQ(t.rows[1].policy, "sparsity=0.70");
  EXPECT_EQ(t.rows[2].policy, "sparsity=0.90");
  EXPECT_DOUBLE_EQ(t.rows[2].metrics.at("sparsity"), 576.0 / 640.0);
  EXPECT_EQ(t.rows[2].paramsBefore, 650);
  EXPECT_EQ(t.rows[2].paramsAfter, 650 - 576);
  EXPECT_EQ(t.rows[2].bytesAfter, 650 * 4);  // dense storage
  EXPECT_EQ(t.rows[1].paramsAfter, 148 - 101);
}

TEST(MagnitudePrune, GlobalScopeUsesOneThreshold) {
  auto g = test::smallNet(6);
  auto orig = originals(*g);
  auto algo = AlgoRegistry::global().create("magnitude_prune",
                                            Json::parse(R"({"sparsity": 0.6, "scope": "global"})"));
  Graph p = algo->apply(std::move(*g));
  std::vector<at::Tensor> abs_all, pruned_all;
  int64_t total = 0, z = 0;
  for (auto* n : kWeights) {
    const at::Tensor& w = p.findValue(n)->data();
    total += w.numel();
    z += zeros(w);
    abs_all.push_back(orig[n].abs().reshape({-1}));
    pruned_all.push_back((w == 0).reshape({-1}));
  }
  EXPECT_EQ(total, 36 + 144 + 640 + 100);
  EXPECT_EQ(z, std::llround(0.6 * total));
  expectSmallestPruned(at::cat(abs_all), at::cat(pruned_all));
  // Layers end up with different sparsities (one threshold, different weight scales).
  double s_conv1 = zeros(p.findValue(kWeights[0])->data()) / 36.0;
  double s_fc = zeros(p.findValue(kWeights[2])->data()) / 640.0;
  EXPECT_NE(s_conv1, s_fc);
  EXPECT_EQ(algo->summary(p).rows[0].policy, "global-sparsity=0.60");
}

TEST(MagnitudePrune, TiesArePrunedInIndexOrder) {
  at::Tensor m = magnitudeMask(at::tensor({1.0f, -1.0f, 1.0f, 1.0f, 0.5f}).reshape({1, 5}), 0.6);
  // 3 of 5 pruned: 0.5 first, then the first two of the equal magnitudes.
  EXPECT_TRUE(at::equal(m, at::tensor({0.0f, 0.0f, 1.0f, 1.0f, 0.0f}).reshape({1, 5})));
  EXPECT_TRUE(at::equal(magnitudeMask(at::ones({2, 2}), 0.0), at::ones({2, 2})));
}

/// 128 samples labelled by a linear teacher over the pixels.
std::shared_ptr<TensorDataset> teacherData() {
  at::Tensor x = test::randn({128, 1, 8, 8}, 21);
  at::Tensor labels = x.reshape({128, 64}).matmul(test::randn({64, 10}, 22)).argmax(1);
  return std::make_shared<TensorDataset>(x, labels, "teacher");
}

TrainerOptions trainOptions() {
  TrainerOptions o;
  o.epochs = 2;
  o.loader.batchSize = 16;
  o.optimizer = OptimizerConfig::sgd(0.05, 0.9, 1e-3, false);  // momentum + decay would revive
  o.progress = false;
  return o;
}

TEST(MagnitudePrune, FineTuningKeepsPrunedWeightsAtZero) {
  std::string dir = test::tempDir("prune_ft");
  std::string export_path = dir + "/exported.onnx";
  auto algo = AlgoRegistry::global().create(
      "magnitude_prune",
      Json{{"sparsity", 0.8}, {"finetune_epochs", 2}, {"export_path", export_path}});
  EXPECT_TRUE(algo->needsTraining());
  EXPECT_EQ(algo->recommendedEpochs(), 2);
  auto g = test::smallNet(7);
  Graph p = algo->apply(std::move(*g));
  auto pruned = originals(p);  // after pruning, before training
  auto cbs = algo->callbacks();
  ASSERT_EQ(cbs.size(), 2u);  // mask keeper + export

  Trainer tr(p, trainOptions());
  for (auto& cb : cbs) tr.addCallback(cb);
  tr.fit(teacherData());
  for (auto* n : kWeights) {
    const at::Tensor& w = p.findValue(n)->data();
    auto* mp = dynamic_cast<MagnitudePrune*>(algo.get());
    ASSERT_NE(mp, nullptr);
    at::Tensor mask = mp->masks().count(n) ? mp->masks().at(n) : at::Tensor();
    ASSERT_TRUE(mask.defined()) << n;
    EXPECT_EQ(zeros(w.masked_select(mask == 0)), zeros(mask)) << n << ": pruned weights revived";
    // Kept weights did train.
    EXPECT_FALSE(at::equal(w.masked_select(mask != 0), pruned[n].masked_select(mask != 0))) << n;
  }

  // Control: the same training without the callbacks revives pruned weights (momentum, decay
  // and gradients all reach them), so the check above is meaningful.
  auto algo2 = AlgoRegistry::global().create("magnitude_prune", Json{{"sparsity", 0.8}});
  auto g2 = test::smallNet(7);
  Graph p2 = algo2->apply(std::move(*g2));
  Trainer tr2(p2, trainOptions());
  tr2.fit(teacherData());
  const at::Tensor& m2 = dynamic_cast<MagnitudePrune&>(*algo2).masks().at("head.fc.weight");
  EXPECT_LT(zeros(p2.findValue("head.fc.weight")->data().masked_select(m2 == 0)), zeros(m2) / 2);

  // The export callback wrote the converted model; it matches convert() of the trained graph.
  ASSERT_TRUE(std::filesystem::exists(export_path));
  auto exported = importOnnxFile(export_path);
  Graph conv = algo->convert(std::move(*p.clone(true)));
  for (auto* n : kWeights) {
    EXPECT_TRUE(at::equal(exported->findValue(n)->data(), conv.findValue(n)->data())) << n;
    EXPECT_EQ(zeros(exported->findValue(n)->data()), std::llround(0.8 * conv.findValue(n)->data().numel()))
        << n;
  }
}

TEST(MagnitudePrune, ConvertBakesZerosWithoutTraining) {
  auto algo = AlgoRegistry::global().create("magnitude_prune", Json{{"sparsity", 0.5}});
  EXPECT_FALSE(algo->needsTraining());
  auto g = test::smallNet(8);
  Graph p = algo->apply(std::move(*g));
  // Simulate drift (e.g. an external training loop without callbacks): convert re-applies masks.
  Value* w = p.findValue("head.fc.weight");
  w->setData(w->data() + 1.0f);
  Graph c = algo->convert(std::move(p));
  EXPECT_EQ(zeros(c.findValue("head.fc.weight")->data()), 320);
}

}  // namespace
}  // namespace gs
