// Trainer: seeded determinism, exact resume from a checkpoint, callback order, metrics, params I/O.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <sstream>

#include "data/dataset.h"
#include "io/onnx.h"
#include "io/safetensors.h"
#include "ir/builder.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "test_util.h"
#include "train/trainer.h"

namespace gs {
namespace {

/// conv(1->4)+BN+ReLU -> maxpool -> flatten -> dropout(0.2) -> linear(64->3), for 8x8 inputs.
std::unique_ptr<Graph> tinyCnn(uint64_t seed) {
  auto g = std::make_unique<Graph>();
  GraphBuilder b(*g);
  Value* x = b.input("x", DType::Float32, std::vector<Dim>{Dim("N"), 1, 8, 8});
  Value* y = b.convBnRelu(x, 1, 4, 3, 1, 1, /*bn=*/true, /*relu=*/true, seed, "conv1");
  y = b.maxPool(y, 2, 2);
  y = b.flatten(y);
  y = b.op1("Dropout", {y, b.constant("ratio", at::scalar_tensor(0.2f))}, {}, "drop");
  b.output(b.linear(y, 64, 3, seed + 1, "fc"));
  return g;
}

/// 96 samples whose label is the argmax of a fixed linear teacher over the pixels.
std::shared_ptr<TensorDataset> teacherData(int64_t n = 96) {
  at::Tensor x = test::randn({n, 1, 8, 8}, 11);
  at::Tensor w = test::randn({64, 3}, 12);
  at::Tensor labels = x.reshape({n, 64}).matmul(w).argmax(1);
  return std::make_shared<TensorDataset>(x, labels, "teacher");
}

/// Runs on one thread for bit-exact comparisons, restoring the thread count afterwards.
struct OneThread {
  int saved;
  OneThread() {
    initRuntime();
    saved = at::get_num_threads();
    at::set_num_threads(1);
  }
  ~OneThread() { at::set_num_threads(saved); }
};

TrainerOptions options(int64_t epochs) {
  TrainerOptions o;
  o.epochs = epochs;
  o.loader.batchSize = 16;
  o.optimizer = OptimizerConfig::adamw(0.01, 0.01).noDecayOnBiasAndNorm();
  LrScheduleConfig sc;
  sc.kind = LrScheduleConfig::Kind::OneCycle;
  o.schedule = sc;
  o.clipGradNorm = 1.0;
  o.labelSmoothing = 0.1;
  o.seed = 5;
  o.progress = false;
  return o;
}

void expectSameParams(const Graph& a, const Graph& b) {
  ASSERT_EQ(a.params().size(), b.params().size());
  for (size_t i = 0; i < a.params().size(); ++i)
    EXPECT_TRUE(at::equal(a.params()[i]->data(), b.params()[i]->data()))
        << a.params()[i]->name() << " differs";
}

TEST(TrainTrainer, SameSeedIsBitIdentical) {
  OneThread one;
  auto data = teacherData();
  auto g1 = tinyCnn(1), g2 = tinyCnn(1);
  at::Tensor w0 = g1->findValue("fc.weight")->data().clone();
  Trainer(*g1, options(2)).fit(data);
  Trainer(*g2, options(2)).fit(data);
  expectSameParams(*g1, *g2);
  EXPECT_FALSE(at::equal(g1->findValue("fc.weight")->data(), w0));  // it did train
  // BN running stats moved away from their init in train mode.
  EXPECT_FALSE(at::equal(g1->findValue("conv1.bn.running_var")->data(), at::ones({4})));
  auto g3 = tinyCnn(1);
  TrainerOptions o = options(2);
  o.seed = 6;
  Trainer(*g3, o).fit(data);
  EXPECT_FALSE(at::equal(g1->findValue("fc.weight")->data(), g3->findValue("fc.weight")->data()));
}

/// Stops training after `epochs` epochs.
struct StopAfter : Callback {
  int64_t epochs;
  explicit StopAfter(int64_t e) : epochs(e) {}
  void onEpochEnd(TrainContext& c) override {
    if (c.epoch + 1 >= epochs) c.stopTraining = true;
  }
};

TEST(TrainTrainer, ResumeFromCheckpointIsBitIdentical) {
  OneThread one;
  auto data = teacherData();
  auto straight = tinyCnn(3);
  Trainer(*straight, options(2)).fit(data);

  std::string ckpt = test::tempDir("trainer") + "/ckpt.safetensors";
  auto first = tinyCnn(3);
  {
    Trainer t(*first, options(2));
    t.addCallback(std::make_shared<StopAfter>(1));
    TrainResult r = t.fit(data);
    EXPECT_EQ(r.epochsRun, 1);
    EXPECT_EQ(t.epoch(), 1);
    EXPECT_EQ(t.globalStep(), 6);
    t.saveCheckpoint(ckpt);
  }
  at::manual_seed(999);  // disturb the global generator: the checkpoint restores it
  auto resumed = tinyCnn(77);  // different init: everything comes from the checkpoint
  Trainer t(*resumed, options(2));
  t.loadCheckpoint(ckpt);
  EXPECT_EQ(t.epoch(), 1);
  TrainResult r = t.fit(data);
  EXPECT_EQ(r.epochsRun, 1);
  EXPECT_EQ(r.steps, 6);
  expectSameParams(*straight, *resumed);

  SafetensorsFile f(ckpt);
  EXPECT_TRUE(f.contains("conv1.bn.running_mean"));
  EXPECT_TRUE(f.contains("optimizer.fc.weight.exp_avg"));
  EXPECT_EQ(f.metadata().at("trainer.step"), "6");
  // Mismatched model: clear error naming the file.
  Graph other;
  GraphBuilder b(other);
  b.output(b.relu(b.input("x", DType::Float32, std::vector<Dim>{2})));
  b.param("fc.weight", at::zeros({3, 3}));
  Trainer bad(other, options(1));
  try {
    bad.loadCheckpoint(ckpt);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(ckpt + ": parameter 'fc.weight' has shape"),
              std::string::npos) << e.what();
  }
}

/// Records the hook sequence.
struct Recorder : Callback {
  std::ostringstream log;
  void onTrainBegin(TrainContext& c) override { log << "TB" << c.numEpochs << " "; }
  void onTrainEnd(TrainContext& c) override { log << "TE" << c.step; }
  void onEpochBegin(TrainContext& c) override { log << "EB" << c.epoch << " "; }
  void onEpochEnd(TrainContext& c) override {
    log << "EE" << c.epoch << (c.hasEval ? "v" : "") << " ";
  }
  void onStepBegin(TrainContext& c) override {
    log << "S" << c.step << "." << c.stepInEpoch << "/" << c.stepsPerEpoch << "(" << c.batch->size()
        << ") ";
  }
  void onLoss(TrainContext& c, at::Tensor& loss) override {
    log << "L ";
    loss = loss + 0 * c.outputs.sum();
  }
  void onBackwardEnd(TrainContext& c) override {
    log << (c.graph->findValue("fc.weight")->data().grad().defined() ? "G " : "noG ");
  }
  void onStepEnd(TrainContext& c) override { log << "E" << c.step << " "; }
};

TEST(TrainTrainer, CallbackSequence) {
  auto data = teacherData(40);
  auto g = tinyCnn(4);
  TrainerOptions o = options(2);
  o.schedule.reset();
  Trainer t(*g, o);
  auto rec = std::make_shared<Recorder>();
  t.addCallback(rec);
  auto val = teacherData(10);
  TrainResult r = t.fit(data, val);
  EXPECT_EQ(rec->log.str(),
            "TB2 EB0 S0.0/3(16) L G E1 S1.1/3(16) L G E2 S2.2/3(8) L G E3 EE0v "
            "EB1 S3.0/3(16) L G E4 S4.1/3(16) L G E5 S5.2/3(8) L G E6 EE1v TE6");
  EXPECT_EQ(r.samples, 80);
  ASSERT_TRUE(r.eval.has_value());
  EXPECT_EQ(r.eval->count, 10);
}

TEST(TrainTrainer, MaxStepsStopsMidEpochAndSizesTheSchedule) {
  // 40 samples, batch 16 -> 3 batches per epoch; 4 epochs allowed but maxSteps = 4 stops after
  // the first batch of epoch 2, and a cosine schedule with totalSteps = 0 spans those 4 steps.
  auto data = teacherData(40);
  auto g = tinyCnn(4);
  TrainerOptions o = options(4);
  o.maxSteps = 4;
  LrScheduleConfig sc;
  sc.kind = LrScheduleConfig::Kind::Cosine;
  o.schedule = sc;
  Trainer t(*g, o);
  auto rec = std::make_shared<Recorder>();
  t.addCallback(rec);
  TrainResult r = t.fit(data);
  EXPECT_EQ(r.steps, 4);
  EXPECT_EQ(t.globalStep(), 4);
  EXPECT_EQ(r.epochsRun, 2);
  EXPECT_EQ(r.samples, 16 + 16 + 8 + 16);
  ASSERT_NE(t.schedule(), nullptr);
  EXPECT_EQ(t.schedule()->config().totalSteps, 4);
  EXPECT_NEAR(t.optimizer().groups()[0].options.lr, 0.0, 1e-12);  // cosine reached its end
  // A second fit() does nothing: the step budget is spent.
  EXPECT_EQ(t.fit(data).steps, 0);
}

TEST(TrainTrainer, EvaluateMatchesIndependentComputation) {
  auto data = teacherData(50);
  auto g = tinyCnn(5);
  TrainerOptions o = options(1);
  o.evalBatchSize = 16;  // uneven last batch
  Trainer t(*g, o);
  Metrics m = t.evaluate(*data);
  Executor ex(*g);
  at::Tensor logits = ex.run({data->inputs()})[0];
  at::Tensor nll = -at::log_softmax(logits.to(at::kDouble), 1)
                        .gather(1, data->labels().unsqueeze(1))
                        .squeeze(1);
  EXPECT_EQ(m.count, 50);
  EXPECT_NEAR(m.loss, nll.mean().item<double>(), 1e-5);
  EXPECT_NEAR(m.top1, logits.argmax(1).eq(data->labels()).sum().item<double>() / 50, 1e-12);
  EXPECT_DOUBLE_EQ(m.top5, 1.0);  // 3 classes
}

/// Sequences: inputs [N, T, V], labels [N, T] (TensorDataset wants 1-D labels).
class SeqDataset : public Dataset {
 public:
  SeqDataset(at::Tensor x, at::Tensor y) : x_(std::move(x)), y_(std::move(y)) {}
  int64_t size() const override { return x_.size(0); }
  std::vector<int64_t> inputShape() const override { return x_.sizes().slice(1).vec(); }
  bool hasLabels() const override { return true; }
  Batch getBatch(const at::Tensor& idx) const override {
    return {x_.index_select(0, idx), y_.index_select(0, idx), idx};
  }
  std::string describe() const override { return "seq"; }

 private:
  at::Tensor x_, y_;
};

TEST(TrainTrainer, TokenLevelLossAndPerplexity) {
  // The "model" is the identity: the logits are the input [B, T, V]; labels [B, T].
  Graph g;
  GraphBuilder b(g);
  Value* x = b.input("x", DType::Float32, std::vector<Dim>{Dim("B"), 4, 7});
  Value* s = b.param("scale", at::ones({1}));
  b.output(b.mul(x, s));
  at::Tensor logits = test::randn({6, 4, 7}, 21);
  at::Tensor labels = at::randint(7, {6, 4}, at::make_generator<at::CPUGeneratorImpl>(22));
  SeqDataset data(logits, labels);
  Trainer t(g, options(1));
  Metrics m = t.evaluate(data);
  at::Tensor lp = at::log_softmax(logits.to(at::kDouble), 2);
  double nll = -lp.gather(2, labels.unsqueeze(2)).mean().item<double>();
  EXPECT_TRUE(m.tokenLevel);
  EXPECT_EQ(m.count, 24);
  EXPECT_NEAR(m.loss, nll, 1e-6);
  EXPECT_NEAR(m.perplexity(), std::exp(nll), 1e-5);
  EXPECT_DOUBLE_EQ(perplexity(std::log(42.0)), 42.0);
  int64_t top5 = 0;
  at::Tensor idx = std::get<1>(logits.reshape({24, 7}).topk(5, 1));
  for (int64_t i = 0; i < 24; ++i)
    top5 += idx[i].eq(labels.reshape({24})[i]).any().item<bool>();
  EXPECT_DOUBLE_EQ(m.top5, top5 / 24.0);
}

TEST(TrainTrainer, TrainedGraphExportsToOnnxWithSameMetrics) {
  auto data = teacherData(48);
  auto g = tinyCnn(8);
  Trainer t(*g, options(1));
  t.fit(data);
  Metrics before = t.evaluate(*data);
  auto back = importOnnxBytes(exportOnnxBytes(*g), "trained");
  Trainer t2(*back, options(1));
  Metrics after = t2.evaluate(*data);
  EXPECT_DOUBLE_EQ(after.top1, before.top1);
  EXPECT_NEAR(after.loss, before.loss, 1e-6);
  // BN running statistics travel with the export.
  EXPECT_TRUE(at::equal(back->findValue("conv1.bn.running_var")->data(),
                        g->findValue("conv1.bn.running_var")->data()));
}

TEST(TrainTrainer, ParamsSaveLoadAndErrors) {
  auto g = tinyCnn(6), h = tinyCnn(7);
  std::string dir = test::tempDir("trainer");
  saveParams(*g, dir + "/w.safetensors", {{"model", "tiny"}});
  loadParams(*h, dir + "/w.safetensors");
  expectSameParams(*g, *h);
  Graph small;
  GraphBuilder b(small);
  b.param("fc.bias", at::zeros({3}));
  EXPECT_THROW(loadParams(small, dir + "/w.safetensors"), Error);  // extra tensors
  loadParams(small, dir + "/w.safetensors", /*strict=*/false);
  EXPECT_TRUE(at::equal(small.params()[0]->data(), g->findValue("fc.bias")->data()));
  EXPECT_THROW(Trainer(*g, options(1)).loadCheckpoint(dir + "/w.safetensors"), Error);  // no format
  TrainerOptions o = options(1);
  o.outputName = "nope";
  EXPECT_THROW(Trainer(*g, o), Error);
}

}  // namespace
}  // namespace gs
