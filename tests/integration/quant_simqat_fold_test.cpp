// SimQAT two-conv BN fold end to end: a short fine-tuning of the trained ResNet-20 (batch
// statistics, then frozen running ones), convert() to QDQ, and the fake-quant graph, gstick's run of
// the converted graph and ONNX Runtime agree.
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "algo/registry.h"
#include "data/dataset.h"
#include "io/onnx.h"
#include "ort_runner.h"
#include "runtime/executor.h"
#include "test_util.h"
#include "train/trainer.h"

namespace gs {
namespace {

const std::string kModels = std::string(GS_TEST_DIR) + "/../models/";

int64_t countOps(const Graph& g, const std::string& op) {
  int64_t k = 0;
  for (const auto& n : g.nodes()) k += n->opType() == op;
  return k;
}

Json twoConvConfig(int64_t freeze_bn) {
  return Json{{"enable_fusion", true}, {"bn_fold", true}, {"one_conv_fold", false},
              {"freeze_bn", freeze_bn}};
}

TEST(SimQatTwoConvFold, LeNetHasNoBatchNormSoNothingIsFolded) {
  auto algo = AlgoRegistry::global().create("simqat", twoConvConfig(4));
  Graph q = algo->apply(std::move(*importOnnxFile(kModels + "lenet5-fmnist.onnx")));
  EXPECT_EQ(countOps(q, "BnFoldCorrection"), 0);
  EXPECT_EQ(q.findValue("quant.bn_frozen"), nullptr);
  EXPECT_EQ(countOps(q, "FakeQuant"), 12);  // 5 weights, 5 inputs, 2 conv outputs feeding MaxPool
}

TEST(SimQatTwoConvFold, ResNet20ShortRunConvertsToMatchingQdq) {
  auto fp = importOnnxFile(kModels + "resnet20-fmnist.onnx");
  int64_t bns = countOps(*fp, "BatchNormalization");
  auto algo = AlgoRegistry::global().create("simqat", twoConvConfig(4));
  Graph q = algo->apply(std::move(*fp));
  EXPECT_EQ(countOps(q, "BnFoldCorrection"), bns);
  EXPECT_EQ(countOps(q, "BatchNormalization"), 0);
  // 8 steps of 64 images: 4 with batch statistics, 4 frozen.
  auto train = std::make_shared<FashionMnistDataset>(FashionMnistDataset::Split::Train, 512);
  TrainerOptions o;
  o.epochs = 1;
  o.loader.batchSize = 64;
  o.optimizer = OptimizerConfig::sgd(0.001, 0.9);
  o.progress = false;
  Trainer t(q, o);
  for (auto& cb : algo->callbacks()) t.addCallback(cb);
  t.fit(train);
  EXPECT_EQ(q.findValue("quant.bn_frozen")->data().item<float>(), 1.0f);

  FashionMnistDataset test(FashionMnistDataset::Split::Test, 500);
  Batch tb = test.getBatch(at::arange(500, at::kLong));
  at::Tensor fq = Executor(q).run({tb.inputs})[0];
  Graph d = algo->convert(std::move(*q.clone(true)));
  EXPECT_EQ(countOps(d, "BnFoldCorrection"), 0);
  EXPECT_EQ(countOps(d, "BatchNormalization"), 0);
  for (const auto& n : d.nodes()) EXPECT_NE(n->domain(), "gs") << n->describe();
  EXPECT_GT(countOps(d, "DequantizeLinear"), countOps(d, "Conv") + countOps(d, "Gemm"));
  at::Tensor conv = Executor(d).run({tb.inputs})[0];
  double acc = fq.argmax(1).eq(tb.labels).to(at::kDouble).mean().item<double>() * 100;
  double agree = fq.argmax(1).eq(conv.argmax(1)).to(at::kDouble).mean().item<double>();
  double step = (fq.max() - fq.min()).item<double>() / 255;
  std::printf("resnet20 two-conv simqat, 8 steps: fake-quant top-1 %.1f%% on 500, agreement %.4f, "
              "max |logit diff| %.4g (step %.4g)\n",
              acc, agree, (conv - fq).abs().max().item<double>(), step);
  EXPECT_GE(acc, 88.0);  // fp32 model: 93.85 % on the full test set
  EXPECT_GE(agree, 0.99);
  EXPECT_LT((conv - fq).abs().max().item<double>(), step);

  std::string dir = test::tempDir("simqat_two_conv");
  exportOnnxFile(d, dir + "/m.onnx");
  at::Tensor x = tb.inputs.slice(0, 0, 100);
  auto r = ort::runOrt(dir + "/m.onnx", {{d.inputs()[0]->name(), x}}, dir + "/ort");
  at::Tensor ort = r.outputs.at(d.outputs()[0]->name());
  EXPECT_GE(ort.argmax(1).eq(conv.slice(0, 0, 100).argmax(1)).to(at::kDouble).mean().item<double>(), 0.99);
}

}  // namespace
}  // namespace gs
