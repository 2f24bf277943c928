// `gstick train`: builds a zoo model, trains it with the Trainer on a data spec, exports ONNX.
// Image classifiers train on image data; language models (token-id input) on text data, with
// token-level cross-entropy, and report sliding-window perplexity against a unigram baseline.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/lm_eval.h"
#include "data/dataset.h"
#include "data/text_dataset.h"
#include "io/onnx.h"
#include "runtime/executor.h"
#include "models/zoo.h"
#include "support/error.h"
#include "train/trainer.h"

namespace gs::cli {
namespace {

struct TrainOptions {
  std::string model, data, val_data, output, checkpoint_dir;
  std::string optimizer, schedule;  // empty = per-model-kind default
  std::vector<std::string> sets;    // KEY=VALUE model option overrides
  int64_t epochs = 0, steps = 0, batch = 0, warmup = -1, context = 0;
  double lr = -1, weight_decay = -1, momentum = 0.9, clip_grad = -1;
  bool augment = false;
  uint64_t seed = 0;
  int threads = 0;
};

/// Parses repeated --set KEY=VALUE into zoo model options (values are numbers).
models::ModelOptions parseSets(const std::vector<std::string>& sets) {
  models::ModelOptions out;
  for (const std::string& s : sets) {
    size_t eq = s.find('=');
    GS_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < s.size(), "--set '", s,
             "': expected KEY=VALUE (e.g. --set dim=128)");
    std::string v = s.substr(eq + 1);
    size_t used = 0;
    double d = 0;
    try {
      d = std::stod(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    GS_CHECK(used == v.size(), "--set '", s, "': value '", v, "' is not a number");
    out[s.substr(0, eq)] = d;
  }
  return out;
}

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
  GS_CHECK(o.epochs > 0 || o.steps > 0, "give --epochs N and/or --steps N");
  checkWritable(o.output);
  auto g = models::buildModel(o.model, parseSets(o.sets), o.seed);  // throws for unknown names
  const bool lm = isLanguageModel(*g);
  GS_CHECK(g->inputs().size() == 1 && (lm || g->inputs()[0]->name() == "input"), "model '",
           o.model, "' is neither an image classifier nor a language model");

  DataSpec train_spec = parseDataSpec(o.data);
  DataSpec val_spec;
  if (!o.val_data.empty()) {
    val_spec = parseDataSpec(o.val_data);
  } else if (train_spec.kind == DataSpec::Kind::Text) {
    val_spec = train_spec;  // the same corpus' validation split
    val_spec.textSplit = TextSplit::Validation;
    val_spec.limit = 0;
  } else {
    val_spec = parseDataSpec("fashion-mnist:test");
  }
  const int64_t context = lm ? (o.context > 0 ? o.context : models::llamaMaxSeq(*g)) : 0;
  if (lm) {
    GS_CHECK(train_spec.kind == DataSpec::Kind::Text && val_spec.kind == DataSpec::Kind::Text,
             "model '", o.model, "' is a language model: train it on text data (--data "
             "text[:FILE][:SPLIT][:N])");
    GS_CHECK(context > 0, "give --context for model '", o.model, "'");
    int64_t max_seq = models::llamaMaxSeq(*g);
    GS_CHECK(max_seq == 0 || context <= max_seq, "--context ", context,
             " exceeds the model's max_seq ", max_seq);
    train_spec.seqLen = val_spec.seqLen = context;
  } else {
    GS_CHECK(train_spec.kind != DataSpec::Kind::Text && val_spec.kind != DataSpec::Kind::Text,
             "model '", o.model, "' is an image classifier; text data is for language models");
  }
  auto train = openDataset(train_spec);
  auto valset = openDataset(val_spec);
  GS_CHECK(train->hasLabels(), "training data ", train->describe(), " has no labels");
  GS_CHECK(valset->hasLabels(), "validation data ", valset->describe(), " has no labels");

  TrainerOptions t;
  const int64_t batch = o.batch > 0 ? o.batch : (lm ? 16 : 128);
  const int64_t per_epoch = (train->size() + batch - 1) / batch;
  t.epochs = o.epochs > 0 ? o.epochs : (o.steps + per_epoch - 1) / per_epoch;
  t.maxSteps = o.steps;
  const int64_t total_steps = o.steps > 0 ? std::min(o.steps, t.epochs * per_epoch)
                                          : t.epochs * per_epoch;
  t.loader.batchSize = batch;
  if (o.augment) {
    GS_CHECK(!lm, "--augment applies to images only");
    t.loader.cropPadding = 2;
    t.loader.hflip = true;
  }
  t.seed = o.seed;
  if (lm) t.progressOptions.unit = "seq";
  const std::string opt = !o.optimizer.empty() ? o.optimizer : (lm ? "adamw" : "sgd");
  if (opt == "sgd") {
    double lr = o.lr > 0 ? o.lr : 0.05;
    double wd = o.weight_decay >= 0 ? o.weight_decay : 5e-4;
    t.optimizer = OptimizerConfig::sgd(lr, o.momentum, wd, /*nesterov=*/false);
  } else if (opt == "adamw") {
    double lr = o.lr > 0 ? o.lr : 1e-3;
    double wd = o.weight_decay >= 0 ? o.weight_decay : (lm ? 0.1 : 1e-2);
    // LM practice (GPT-2/Llama recipes): beta2 0.95 keeps Adam stable at short warmups.
    t.optimizer = lm ? OptimizerConfig::adamw(lr, wd, 0.9, 0.95) : OptimizerConfig::adamw(lr, wd);
  } else {
    GS_FAIL("unknown optimizer '", opt, "' (expected sgd or adamw)");
  }
  t.optimizer.noDecayOnBiasAndNorm();
  t.clipGradNorm = o.clip_grad >= 0 ? o.clip_grad : (lm ? 1.0 : 0.0);
  LrScheduleConfig sc;
  sc.kind = LrScheduleConfig::parseKind(!o.schedule.empty() ? o.schedule
                                                            : (lm ? "cosine" : "onecycle"));
  if (sc.kind == LrScheduleConfig::Kind::Step) {
    sc.stepSize = std::max<int64_t>(1, per_epoch * std::max<int64_t>(1, t.epochs / 3));
  }
  if (sc.kind == LrScheduleConfig::Kind::Cosine) {
    // Default warmup: 5% of the run for language models (capped at 500 steps), none for images.
    sc.warmupSteps = o.warmup >= 0 ? o.warmup : (lm ? std::min<int64_t>(500, total_steps / 20) : 0);
    GS_CHECK(sc.warmupSteps < total_steps || total_steps == 0, "--warmup ", sc.warmupSteps,
             " must be below the run's ", total_steps, " steps");
    sc.minLr = 0.0;
  } else {
    GS_CHECK(o.warmup <= 0, "--warmup applies to the cosine schedule only");
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
  std::printf("optimizer %s, schedule %s, %lld steps of batch %lld\n", opt.c_str(),
              !o.schedule.empty() ? o.schedule.c_str() : (lm ? "cosine" : "onecycle"),
              static_cast<long long>(total_steps), static_cast<long long>(batch));
  std::fflush(stdout);
  Trainer trainer(*g, t);
  // Language models are validated once, after training, with the perplexity protocol of
  // `gstick eval` (windows of `context` tokens) rather than per epoch: one LM "epoch" is usually
  // longer than the whole run (--steps), and a pass over the validation split costs minutes.
  TrainResult r = trainer.fit(train, lm ? nullptr : valset);
  exportOnnxFile(*g, o.output);
  if (lm) {
    const Metrics& m = r.train;
    std::printf("trained %lld epoch%s, %lld steps, %.1f tokens/s\n",
                static_cast<long long>(r.epochsRun), r.epochsRun == 1 ? "" : "s",
                static_cast<long long>(r.steps), r.samplesPerSecond() * context);
    std::printf("train (last epoch, running): loss %.4f  ppl %.4f  tokens %lld\n", m.loss,
                m.perplexity(), static_cast<long long>(m.count));
    LmEvalOptions eo;
    eo.context = context;
    printLmEval(*g, val_spec, eo);
  } else {
    const Metrics& m = *r.eval;
    std::printf("trained %lld epoch%s, %lld steps, %.1f img/s\n",
                static_cast<long long>(r.epochsRun), r.epochsRun == 1 ? "" : "s",
                static_cast<long long>(r.steps), r.samplesPerSecond());
    std::printf("val: loss %.4f  top1 %.2f%%  top5 %.2f%%  samples %lld\n", m.loss, 100 * m.top1,
                100 * m.top5, static_cast<long long>(m.count));
  }
  std::printf("wrote %s\n", o.output.c_str());
  return 0;
}

}  // namespace

Command addTrainCommand(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand(
      "train", "Train a model-zoo image classifier or language model and export it to ONNX");
  cmd->add_option("--model", o->model,
                  "Zoo model name (lenet5, resnet20, mobilenetv2, vit-tiny, llama-tiny)")
      ->required();
  cmd->add_option("--set", o->sets,
                  "Model option KEY=VALUE, repeatable (e.g. --set dim=128 --set layers=4; an "
                  "unknown key is an error that lists the model's keys)")
      ->type_name("KEY=VALUE");
  cmd->add_option("--data", o->data,
                  "Training data: fashion-mnist[:train|:test][:N], npy:DIR[:N] or "
                  "text[:FILE][:SPLIT][:N]")
      ->required()
      ->type_name("SPEC");
  cmd->add_option("--val-data", o->val_data,
                  "Validation data evaluated after every epoch (default fashion-mnist:test, or "
                  "the validation split of the training text)")
      ->type_name("SPEC");
  cmd->add_option("--epochs", o->epochs, "Training epochs (with --steps: an upper bound)")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  cmd->add_option("--steps", o->steps,
                  "Stop after N optimizer steps (the schedule spans them); without --epochs, "
                  "as many epochs as needed")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  cmd->add_option("--batch", o->batch, "Batch size (default 128 images, 16 sequences)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--context", o->context,
                  "Language models: tokens per training sequence and perplexity window "
                  "(default the model's max_seq)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--lr", o->lr, "Learning rate (peak lr for onecycle; default 0.05 sgd, 1e-3 adamw)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--optimizer", o->optimizer,
                  "sgd (momentum 0.9) or adamw (default sgd for images; adamw with betas "
                  "(0.9, 0.95) for language models)")
      ->check(CLI::IsMember({"sgd", "adamw"}));
  cmd->add_option("--momentum", o->momentum, "SGD momentum")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--schedule", o->schedule,
                  "Learning-rate schedule: onecycle|cosine|step|constant (default onecycle for "
                  "images, cosine with warmup for language models)")
      ->check(CLI::IsMember({"onecycle", "cosine", "step", "constant"}));
  cmd->add_option("--warmup", o->warmup,
                  "Cosine schedule: linear warmup steps (default 0 for images; 5% of the steps, "
                  "at most 500, for language models)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cmd->add_option("--weight-decay", o->weight_decay,
                  "Weight decay (not on biases/norms; default 5e-4 sgd, 1e-2 adamw, 0.1 adamw "
                  "for language models)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--clip-grad", o->clip_grad,
                  "Clip gradients to this global L2 norm (0 = off; default 0 images, 1 language "
                  "models)")
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
