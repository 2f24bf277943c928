// `gstick train`: builds a zoo model, trains it with the Trainer on a data spec, exports ONNX.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "data/dataset.h"
#include "io/onnx.h"
#include "runtime/executor.h"
#include "models/zoo.h"
#include "support/error.h"
#include "train/trainer.h"

namespace gs::cli {
namespace {

struct TrainOptions {
  std::string model, data, val_data, output, checkpoint_dir;
  std::string optimizer = "sgd", schedule = "onecycle";
  int64_t epochs = 1, batch = 128;
  double lr = -1, weight_decay = -1, momentum = 0.9;
  bool augment = false;
  uint64_t seed = 0;
  int threads = 0;
};

/// Fails before training if `out` cannot be created (so a long run does not end in an error).
void checkWritable(const std::string& out) {
  namespace fs = std::filesystem;
  fs::path p(out);
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  GS_CHECK(fs::is_directory(dir), "cannot write '", out, "': directory '", dir.string(),
           "' does not exist");
  GS_CHECK(!fs::is_directory(p), "cannot write '", out, "': it is a directory");
  fs::path probe = dir / (".gstick-probe-" + std::to_string(::getpid()));
  FILE* f = std::fopen(probe.c_str(), "wb");
  GS_CHECK(f != nullptr, "cannot write '", out, "': directory '", dir.string(),
           "' is not writable");
  std::fclose(f);
  std::error_code ec;
  fs::remove(probe, ec);
}

int runTrain(const TrainOptions& o) {
  if (o.threads > 0) gs::setIntraOpThreads(o.threads);
  checkWritable(o.output);
  const models::ModelInfo* info = models::findModel(o.model);
  auto g = models::buildModel(o.model, {}, o.seed);  // throws for an unknown model
  GS_CHECK(g->inputs().size() == 1 && g->inputs()[0]->name() == "input",
           "model '", o.model, "' is not an image classifier; `gstick train` supports image "
           "classifiers only (lenet5, resnet20, mobilenetv2, vit-tiny)");
  (void)info;

  DataSpec train_spec = parseDataSpec(o.data);
  std::string val = o.val_data.empty() ? "fashion-mnist:test" : o.val_data;
  DataSpec val_spec = parseDataSpec(val);
  auto train = openDataset(train_spec);
  auto valset = openDataset(val_spec);
  GS_CHECK(train->hasLabels(), "training data ", train->describe(), " has no labels");
  GS_CHECK(valset->hasLabels(), "validation data ", valset->describe(), " has no labels");

  TrainerOptions t;
  t.epochs = o.epochs;
  t.loader.batchSize = o.batch;
  if (o.augment) {
    t.loader.cropPadding = 2;
    t.loader.hflip = true;
  }
  t.seed = o.seed;
  if (o.optimizer == "sgd") {
    double lr = o.lr > 0 ? o.lr : 0.05;
    double wd = o.weight_decay >= 0 ? o.weight_decay : 5e-4;
    t.optimizer = OptimizerConfig::sgd(lr, o.momentum, wd, /*nesterov=*/false);
  } else if (o.optimizer == "adamw") {
    double lr = o.lr > 0 ? o.lr : 1e-3;
    double wd = o.weight_decay >= 0 ? o.weight_decay : 1e-2;
    t.optimizer = OptimizerConfig::adamw(lr, wd);
  } else {
    GS_FAIL("unknown optimizer '", o.optimizer, "' (expected sgd or adamw)");
  }
  t.optimizer.noDecayOnBiasAndNorm();
  LrScheduleConfig sc;
  sc.kind = LrScheduleConfig::parseKind(o.schedule);
  if (sc.kind == LrScheduleConfig::Kind::Step) {
    sc.stepSize = std::max<int64_t>(1, (train->size() + o.batch - 1) / o.batch *
                                           std::max<int64_t>(1, o.epochs / 3));
  }
  if (sc.kind != LrScheduleConfig::Kind::Constant) t.schedule = sc;
  if (!o.checkpoint_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.checkpoint_dir, ec);
    GS_CHECK(!ec && std::filesystem::is_directory(o.checkpoint_dir),
             "cannot create checkpoint directory '", o.checkpoint_dir, "'");
    t.checkpointPath = (std::filesystem::path(o.checkpoint_dir) / "checkpoint.safetensors").string();
  }

  std::printf("model %s: %s trainable parameters\n", o.model.c_str(),
              withCommas(models::countParams(*g)).c_str());
  std::printf("train: %s, val: %s\n", train->describe().c_str(), valset->describe().c_str());
  std::fflush(stdout);
  Trainer trainer(*g, t);
  TrainResult r = trainer.fit(train, valset);
  exportOnnxFile(*g, o.output);
  const Metrics& m = *r.eval;
  std::printf("trained %lld epoch%s, %lld steps, %.1f img/s\n",
              static_cast<long long>(r.epochsRun), r.epochsRun == 1 ? "" : "s",
              static_cast<long long>(r.steps), r.samplesPerSecond());
  std::printf("val: loss %.4f  top1 %.2f%%  top5 %.2f%%  samples %lld\n", m.loss, 100 * m.top1,
              100 * m.top5, static_cast<long long>(m.count));
  std::printf("wrote %s\n", o.output.c_str());
  return 0;
}

}  // namespace

Command addTrainCommand(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand(
      "train", "Train a model-zoo image classifier on a data spec and export it to ONNX");
  cmd->add_option("--model", o->model, "Zoo model name (lenet5, resnet20, mobilenetv2, vit-tiny)")
      ->required();
  cmd->add_option("--data", o->data, "Training data: fashion-mnist[:train|:test][:N] or npy:DIR")
      ->required()
      ->type_name("SPEC");
  cmd->add_option("--val-data", o->val_data,
                  "Validation data evaluated after every epoch (default fashion-mnist:test)")
      ->type_name("SPEC");
  cmd->add_option("--epochs", o->epochs, "Training epochs")
      ->required()
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  cmd->add_option("--batch", o->batch, "Batch size")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--lr", o->lr, "Learning rate (peak lr for onecycle; default 0.05 sgd, 1e-3 adamw)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--optimizer", o->optimizer, "sgd (momentum 0.9) or adamw")
      ->check(CLI::IsMember({"sgd", "adamw"}))
      ->capture_default_str();
  cmd->add_option("--momentum", o->momentum, "SGD momentum")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--schedule", o->schedule, "Learning-rate schedule: onecycle|cosine|step|constant")
      ->check(CLI::IsMember({"onecycle", "cosine", "step", "constant"}))
      ->capture_default_str();
  cmd->add_option("--weight-decay", o->weight_decay,
                  "Weight decay (not on biases; default 5e-4 sgd, 1e-2 adamw)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--augment", o->augment, "Random 2-pixel shifts and horizontal flips");
  cmd->add_option("--seed", o->seed, "Seed for initialisation, data order and augmentation")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads,
                  "Intra-op threads for ATen and OpenBLAS (default: OMP_NUM_THREADS or all cores)")
      ->check(CLI::Range(1, 1 << 30));
  cmd->add_option("-o,--output", o->output, "Trained model, written atomically")
      ->required()
      ->type_name("OUT.onnx");
  cmd->add_option("--checkpoint-dir", o->checkpoint_dir,
                  "Write DIR/checkpoint.safetensors after every epoch")
      ->type_name("DIR");
  return {cmd, [o] { return runTrain(*o); }};
}

}  // namespace gs::cli
