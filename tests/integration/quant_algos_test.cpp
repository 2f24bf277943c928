// Quantization algorithms through the CompAlgo registry: ptq on the trained LeNet-5 (summary,
// convert, ORT), SimQAT BN variants (one-conv fold / no fold: fake-quant graph == converted QDQ
// graph) and a short SimQAT / LSQ fine-tuning on a Fashion-MNIST subset with stated accuracies.
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "algo/registry.h"
#include "data/dataset.h"
#include "io/onnx.h"
#include "ir/builder.h"
#include "ort_runner.h"
#include "quant/fake_quant_ops.h"
#include "runtime/executor.h"
#include "test_util.h"
#include "train/trainer.h"

namespace gs {
namespace {

const std::string kLenet = std::string(GS_TEST_DIR) + "/../models/lenet5-fmnist.onnx";

double accuracy(const Graph& g, const Batch& b) {
  at::Tensor logits = Executor(g).run({b.inputs})[0];
  return logits.argmax(1).eq(b.labels).to(at::kDouble).mean().item<double>() * 100;
}

Batch testBatch(int64_t n) {
  FashionMnistDataset test(FashionMnistDataset::Split::Test, n);
  return test.getBatch(at::arange(n, at::kLong));
}

int64_t countOps(const Graph& g, const std::string& domain, const std::string& op = "") {
  int64_t k = 0;
  for (const auto& n : g.nodes()) k += n->domain() == domain && (op.empty() || n->opType() == op);
  return k;
}

TEST(QuantAlgos, PtqThroughRegistrySummaryConvertAndOrt) {
  auto fp = importOnnxFile(kLenet);
  Batch tb = testBatch(2000);
  double acc_fp = accuracy(*fp, tb);
  auto algo = AlgoRegistry::global().create("ptq", Json{{"act_observer", "percentile"}});
  AlgoContext ctx;
  ctx.calibration = CalibrationData{std::make_shared<FashionMnistDataset>(FashionMnistDataset::Split::Train, 512), 4, 128};
  algo->setContext(ctx);
  Graph q = algo->apply(std::move(*fp->clone()));
  // 5 weights + 5 layer inputs + the 2 conv outputs feeding MaxPool (so they run in int8).
  EXPECT_EQ(countOps(q, "gs", "FakeQuant"), 12);
  double acc_q = accuracy(q, tb);
  EXPECT_GE(acc_q, acc_fp - 0.5) << acc_fp << " -> " << acc_q;
  SummaryTable s = algo->summary(q);
  ASSERT_EQ(s.rows.size(), 5u);
  EXPECT_EQ(s.rows[0].policy, "W8-per_channel-A8-per_tensor minmax/percentile");
  // fc1 [120, 400] fp32 weight + bias: int8 codes + per-channel scale / zp + bias.
  EXPECT_EQ(s.rows[2].bytesAfter, 120 * 400 + 120 * 4 * 2 + 120 * 4);
  // Float biases (int32_bias=false): the QDQ graph computes exactly what the fake-quant graph did.
  auto float_bias = AlgoRegistry::global().create("ptq", Json{{"act_observer", "percentile"}, {"int32_bias", false}});
  float_bias->setContext(ctx);
  Graph df = float_bias->convert(float_bias->apply(std::move(*fp->clone())));
  EXPECT_EQ(countOps(df, "", "DequantizeLinear"), 12);
  EXPECT_EQ(accuracy(df, tb), acc_q);
  // Default: the 5 biases become int32 codes in accumulator units (x_scale * w_scale per output
  // channel), ONNX Runtime's quantizer format; rounding them moves logits by < 0.5 * x_scale * w_scale.
  Graph d = algo->convert(std::move(q));
  EXPECT_EQ(countOps(d, "gs"), 0);
  EXPECT_EQ(countOps(d, "", "DequantizeLinear"), 17);
  int64_t int32_biases = 0;
  for (const auto& n : d.nodes())
    if (n->opType() == "DequantizeLinear" && n->input(0)->isParam() && n->input(0)->data().scalar_type() == at::kInt) {
      ++int32_biases;
      const Node* layer = n->output(0)->uses()[0].user;
      const Node* xdq = layer->input(0)->producer();
      const Node* wdq = layer->input(1)->producer();
      at::Tensor want = wdq->input(1)->data().reshape({-1}) * xdq->input(1)->data().reshape({});
      EXPECT_TRUE(at::allclose(n->input(1)->data().reshape({-1}), want.expand({n->input(0)->data().numel()})))
          << layer->describe();
    }
  EXPECT_EQ(int32_biases, 5);
  EXPECT_NEAR(accuracy(d, tb), acc_q, 0.1);
  std::string dir = test::tempDir("quant_algos_ptq");
  exportOnnxFile(d, dir + "/m.onnx");
  auto r = ort::runOrt(dir + "/m.onnx", {{"input", tb.inputs.slice(0, 0, 200)}}, dir + "/ort");
  at::Tensor ours = Executor(d).run({tb.inputs.slice(0, 0, 200)})[0];
  EXPECT_GE(r.outputs.at("logits").argmax(1).eq(ours.argmax(1)).to(at::kDouble).mean().item<double>(), 0.995);
}

/// x [N, 3, 8, 8] -> conv-bn-relu -> conv-bn -> gap -> flatten -> fc(10), random BN statistics.
std::unique_ptr<Graph> smallCnn() {
  auto g = std::make_unique<Graph>();
  GraphBuilder b(*g);
  Value* x = b.input("input", DType::Float32, std::vector<Dim>{Dim("N"), 3, 8, 8});
  x = b.convBnRelu(x, 3, 8, 3, 1, 1, true, true, 1, "c1");
  x = b.convBnRelu(x, 8, 8, 3, 1, 1, true, false, 2, "c2");
  x = b.flatten(b.globalAvgPool(x));
  b.output(b.linear(x, 8, 10, 3, "fc"));
  int64_t k = 0;
  for (Value* p : g->params()) {
    if (p->name().find("running_mean") != std::string::npos) p->setData(test::randn(p->data().sizes(), 10 + k++) * 0.2);
    if (p->name().find("running_var") != std::string::npos) p->setData(test::randn(p->data().sizes(), 20 + k++).abs() + 0.5);
    if (p->name().find("bn.weight") != std::string::npos) p->setData(test::randn(p->data().sizes(), 30 + k++) * 0.5 + 1);
  }
  return g;
}

TEST(QuantAlgos, SimQatBnVariantsConvertToMatchingQdq) {
  for (bool fold : {false, true}) {
    auto g = smallCnn();
    Json cfg{{"enable_fusion", fold}, {"bn_fold", fold}};
    auto algo = AlgoRegistry::global().create("simqat", cfg);
    Graph q = algo->apply(std::move(*g));
    EXPECT_EQ(countOps(q, "gs", "FakeQuant"), 7);  // + conv2's output (after BN) feeding the GAP
    EXPECT_EQ(countOps(q, "", "Div") > 0, fold);  // one-conv fold rescales the conv output
    at::Tensor x = test::randn({4, 3, 8, 8}, 5);
    // A few train-mode steps move the EMA observers and BN statistics.
    {
      Executor tr(q, {.training = true});
      for (int i = 0; i < 3; ++i) tr.run({test::randn({16, 3, 8, 8}, 40 + i)});
    }
    at::Tensor want = Executor(q).run({x})[0];
    Graph d = algo->convert(std::move(q));
    EXPECT_EQ(countOps(d, "", "BatchNormalization"), 0) << "fold=" << fold;
    EXPECT_EQ(countOps(d, "gs"), 0);
    at::Tensor got = Executor(d).run({x})[0];
    // Identical up to float rounding of the folded weights (a code may flip at a rounding tie).
    double step = (want.max() - want.min()).item<double>() / 255;
    EXPECT_LT((got - want).abs().max().item<double>(), step) << "fold=" << fold;
    EXPECT_EQ(algo->summary(d).rows[0].policy,
              std::string("W8-per_channel-A8-per_tensor ") + (fold ? "bn=one_conv_fold" : "bn=nofold"));
  }
}

TEST(QuantAlgos, SimQatQuantDelayAndUnsupportedConfigs) {
  auto algo = AlgoRegistry::global().create("simqat", Json{{"quant_delay", {5, 3}}});
  Graph q = algo->apply(std::move(*smallCnn()));
  EXPECT_EQ(q.findValue("quant.act_enable")->data().item<float>(), 0.0f);
  auto cbs = algo->callbacks();
  ASSERT_EQ(cbs.size(), 1u);
  TrainContext ctx;
  ctx.graph = &q;
  ctx.step = 3;
  cbs[0]->onStepBegin(ctx);
  EXPECT_EQ(q.findValue("quant.act_enable")->data().item<float>(), 0.0f);
  EXPECT_EQ(q.findValue("quant.weight_enable")->data().item<float>(), 1.0f);
  ctx.step = 5;
  cbs[0]->onStepBegin(ctx);
  EXPECT_EQ(q.findValue("quant.act_enable")->data().item<float>(), 1.0f);
  EXPECT_THROW(AlgoRegistry::global().create("simqat", Json{{"bn_fold", true}})->apply(std::move(*smallCnn())), Error);
  EXPECT_THROW(AlgoRegistry::global().create("simqat", Json{{"per_channel", {true, true}}})->apply(std::move(*smallCnn())),
               Error);
}

/// Fine-tunes `algo`'s graph on the first n training images for one epoch, returns test accuracy
/// of the converted graph.
double fineTune(CompAlgo& algo, Graph& q, int64_t n, double lr, const Batch& tb) {
  auto train = std::make_shared<FashionMnistDataset>(FashionMnistDataset::Split::Train, n);
  TrainerOptions o;
  o.epochs = 1;
  o.loader.batchSize = 64;
  o.optimizer = OptimizerConfig::sgd(lr, 0.9);
  o.progress = false;
  Trainer t(q, o);
  for (auto& cb : algo.callbacks()) t.addCallback(cb);
  t.fit(train);
  Graph d = algo.convert(std::move(*q.clone(true)));
  double acc_d = accuracy(d, tb);
  EXPECT_NEAR(acc_d, accuracy(q, tb), 0.3);  // converted QDQ graph vs fake-quant graph
  return acc_d;
}

TEST(QuantAlgos, SimQatLeNetOneEpochOnFourThousandImages) {
  auto fp = importOnnxFile(kLenet);
  Batch tb = testBatch(2000);
  double acc_fp = accuracy(*fp, tb);
  auto algo = AlgoRegistry::global().create("simqat");
  Graph q = algo->apply(std::move(*fp));
  double acc = fineTune(*algo, q, 4096, 0.002, tb);
  std::printf("simqat lenet5: fp32 %.2f%% -> W8A8 %.2f%%\n", acc_fp, acc);
  EXPECT_GE(acc, 88.0);
  EXPECT_GE(acc, acc_fp - 1.0);
  // Deployed as U8S8 QDQ by default (uint8 activation codes, int8 weights): the format ONNX
  // Runtime's x86 QDQ fusion turns into QLinearConv / QGemm everywhere.
  Graph d = algo->convert(std::move(q));
  int64_t act_q = 0;
  for (const auto& n : d.nodes())
    if (n->opType() == "QuantizeLinear") {
      ++act_q;
      EXPECT_EQ(n->input(2)->data().scalar_type(), at::kByte) << n->describe();
    }
  EXPECT_GT(act_q, 0);
  EXPECT_NEAR(accuracy(d, tb), acc, 0.1);
}

TEST(QuantAlgos, LsqLeNetW4A4OneEpochOnFourThousandImages) {
  auto fp = importOnnxFile(kLenet);
  Batch tb = testBatch(2000);
  double acc_fp = accuracy(*fp, tb);
  auto algo = AlgoRegistry::global().create("lsq", Json{{"first_last_bits", 0}, {"int32_bias", false}});
  AlgoContext ctx;
  ctx.trainData = std::make_shared<FashionMnistDataset>(FashionMnistDataset::Split::Train, 256);
  algo->setContext(ctx);
  Graph q = algo->apply(std::move(*fp));
  EXPECT_EQ(countOps(q, "gs", "LsqQuant"), 10);
  double acc0 = accuracy(q, tb);
  double acc = fineTune(*algo, q, 4096, 0.002, tb);
  std::printf("lsq lenet5: fp32 %.2f%% -> W4A4 init %.2f%% -> 1 epoch %.2f%%\n", acc_fp, acc0, acc);
  EXPECT_GE(acc, 85.0);
  EXPECT_GE(acc, acc0);
}

}  // namespace
}  // namespace gs
