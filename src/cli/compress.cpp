// `gstick compress --algo NAME MODEL -o OUT`: apply a registered algorithm (config from
// --config / --set), calibrate or fine-tune on --data, convert, export and print the summary.
// MODEL is an ONNX file or a Hugging Face Llama checkpoint directory; LLM PTQ results can also be
// written as a GPTQ-layout checkpoint directory.
#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>
#include <optional>

#include "algo/registry.h"
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "data/dataset.h"
#include "io/onnx.h"
#include "llm/gptq_export.h"
#include "llm/hf_llama.h"
#include "llm/llm_ptq_algo.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "train/metrics.h"
#include "train/trainer.h"

namespace gs::cli {
namespace {

struct CompressOptions {
  std::string algo, config, model, output, data, val_data, eval_data, summary;
  std::string format;  ///< "onnx" | "gptq" | "" (gptq when -o is a directory)
  std::vector<std::string> sets;
  int64_t calib_batches = 8, calib_batch_size = 32;
  int64_t epochs = -1, batch = 128;
  double lr = 0.01, weight_decay = 0;
  std::string optimizer = "sgd";
  uint64_t seed = 0;
  int threads = 0;
};

/// Accuracy of a classifier graph on a labelled dataset (eval mode, batches of 256).
Metrics evaluateGraph(const Graph& g, const Dataset& data) {
  Executor ex(g);
  MetricAccumulator acc;
  for (int64_t s = 0; s < data.size(); s += 256) {
    Batch b = data.getBatch(at::arange(s, std::min(data.size(), s + 256), at::kLong));
    at::Tensor out = ex.run({b.inputs})[0];
    at::Tensor flat, labels;
    bool token = false;
    flattenForLoss(out, b.labels, flat, labels, token);
    at::Tensor ce = at::cross_entropy_loss(flat.to(at::kFloat), labels, {}, at::Reduction::Sum);
    acc.add(flat, labels, ce.item<double>(), token);
  }
  return acc.result();
}

/// Fails before any work if `out` cannot be written in its folder.
void checkOutputDir(const std::string& out) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(out).parent_path();
  if (dir.empty()) dir = ".";
  GS_CHECK(fs::is_directory(dir), "cannot write '", out, "': directory '", dir.string(),
           "' does not exist");
  GS_CHECK(!fs::is_directory(out), "cannot write '", out, "': it is a directory");
}

bool isHfCheckpoint(const std::string& model) { return std::filesystem::is_directory(model); }

int runCompress(const CompressOptions& o) {
  namespace fs = std::filesystem;
  if (o.threads > 0) setIntraOpThreads(o.threads);
  const bool gptq_out = o.format == "gptq" ||
                        (o.format.empty() && (fs::is_directory(o.output) || o.output.ends_with("/")));
  if (gptq_out) {
    fs::path dir = fs::path(o.output).lexically_normal();
    if (!dir.has_filename()) dir = dir.parent_path();
    GS_CHECK(!fs::exists(dir) || fs::is_directory(dir), "cannot write GPTQ checkpoint '",
             o.output, "': it is a file, not a directory");
    const fs::path parent = dir.parent_path().empty() ? fs::path(".") : dir.parent_path();
    GS_CHECK(fs::is_directory(parent), "cannot write '", o.output, "': directory '",
             parent.string(), "' does not exist");
    GS_CHECK(isHfCheckpoint(o.model), "--format gptq writes a Hugging Face GPTQ checkpoint: MODEL "
             "must be a Hugging Face checkpoint directory, not '", o.model, "'");
  } else {
    checkOutputDir(o.output);
  }
  if (!o.summary.empty()) {
    checkOutputDir(o.summary);
    auto ext = std::filesystem::path(o.summary).extension();
    GS_CHECK(ext == ".json" || ext == ".csv", o.summary, ": summary file must end in .json or .csv");
  }
  const AlgoRegistry& reg = AlgoRegistry::global();
  reg.get(o.algo);  // unknown algorithm: fail before loading anything
  Json user = o.config.empty() ? Json::object() : readConfigFile(o.config);
  GS_CHECK(user.is_object(), o.config, ": a config must be a JSON object");
  for (auto& s : o.sets) applySetOverride(user, s);
  auto algo = reg.create(o.algo, user);
  if (gptq_out) {
    const llm::PtqConfig* r = llmPtqRecipe(*algo);
    GS_CHECK(r, "--format gptq needs an LLM PTQ algorithm (rtn, gptq, awq, llm_ptq), not ", o.algo);
    llm::checkGptqExportable(*r);
  } else {
    // The ONNX export takes the packed layers from the graph: the integer codes need not be kept
    // beside them while the next blocks are quantized.
    llmPtqKeepCodes(*algo, false);
  }

  int64_t epochs = o.epochs >= 0 ? o.epochs : algo->recommendedEpochs();
  GS_CHECK(!algo->needsCalibration() || !o.data.empty(), o.algo,
           " needs calibration data: give --data SPEC");
  GS_CHECK(epochs == 0 || !o.data.empty(), "fine-tuning (", epochs,
           " epochs) needs training data: give --data SPEC");

  std::unique_ptr<Graph> g;
  std::optional<models::LlamaConfig> hf_config;
  if (isHfCheckpoint(o.model)) {
    // LLM PTQ converts compact (f16 / bf16) weights one block at a time; anything that runs the
    // whole model first (an evaluation before compressing) needs them in float up front.
    const bool keep_dtype = llmPtqRecipe(*algo) && o.eval_data.empty();
    llm::HfLlama hf = llm::loadHfLlama(o.model, 0, keep_dtype);
    std::printf("loaded %s: Llama %lld layers, dim %lld, %s, %s in %zu file%s\n",
                 o.model.c_str(), static_cast<long long>(hf.config.layers),
                 static_cast<long long>(hf.config.dim), hf.dtype.c_str(),
                 humanBytes(hf.bytes).c_str(), hf.files.size(), hf.files.size() == 1 ? "" : "s");
    hf_config = hf.config;
    g = std::move(hf.graph);
  } else {
    g = loadModel(o.model);
  }
  std::shared_ptr<Dataset> data = o.data.empty() ? nullptr : openDataset(o.data);
  std::shared_ptr<Dataset> evalset = o.eval_data.empty() ? nullptr : openDataset(o.eval_data);
  if (evalset) {
    GS_CHECK(evalset->hasLabels(), "eval data ", evalset->describe(), " has no labels");
    std::printf("before: %s on %s\n", evaluateGraph(*g, *evalset).summary().c_str(),
                evalset->describe().c_str());
  }

  AlgoContext ctx;
  ctx.seed = o.seed;
  ctx.verbose = true;  // per-layer / per-block progress on stderr (stdout: the summary)
  if (data) {
    ctx.calibration = CalibrationData{data, o.calib_batches, o.calib_batch_size};
    ctx.trainData = data;
  }
  algo->setContext(ctx);
  Graph applied = algo->apply(std::move(*g));

  if (epochs > 0) {
    GS_CHECK(data->hasLabels(), "training data ", data->describe(), " has no labels");
    TrainerOptions t;
    t.epochs = epochs;
    t.loader.batchSize = o.batch;
    t.seed = o.seed;
    t.optimizer = o.optimizer == "adamw" ? OptimizerConfig::adamw(o.lr, o.weight_decay)
                                         : OptimizerConfig::sgd(o.lr, 0.9, o.weight_decay, false);
    std::shared_ptr<Dataset> val = o.val_data.empty() ? nullptr : openDataset(o.val_data);
    Trainer trainer(applied, t);
    for (auto& cb : algo->callbacks()) trainer.addCallback(cb);
    TrainResult r = trainer.fit(data, val);
    std::printf("fine-tuned %lld epoch%s (%lld steps): train %s\n",
                static_cast<long long>(r.epochsRun), r.epochsRun == 1 ? "" : "s",
                static_cast<long long>(r.steps), r.train.summary().c_str());
  }

  if (gptq_out) {
    const llm::PtqResult* r = llmPtqResult(*algo);
    std::vector<std::string> files =
        llm::writeGptqCheckpoint(o.output, applied, *hf_config, r->weights, *llmPtqRecipe(*algo));
    SummaryTable table = algo->summary(applied);
    std::fputs(table.toText().c_str(), stdout);
    if (!o.summary.empty()) {
      table.write(o.summary);
      std::printf("wrote %s\n", o.summary.c_str());
    }
    for (const std::string& f : files)
      std::printf("wrote %s (%s)\n", f.c_str(),
                  humanBytes(static_cast<int64_t>(fs::file_size(f))).c_str());
    return 0;
  }
  Graph out = algo->convert(std::move(applied));
  OnnxExportOptions eo;
  eo.external_data_threshold = autoExternalDataThreshold(out);  // models near protobuf's 2 GB
  exportOnnxFile(out, o.output, eo);
  SummaryTable table = algo->summary(out);
  std::fputs(table.toText().c_str(), stdout);
  if (evalset)
    std::printf("after: %s on %s\n", evaluateGraph(out, *evalset).summary().c_str(),
                evalset->describe().c_str());
  if (!o.summary.empty()) {
    table.write(o.summary);
    std::printf("wrote %s\n", o.summary.c_str());
  }
  std::printf("wrote %s (%s)\n", o.output.c_str(),
              humanBytes(static_cast<int64_t>(fs::file_size(o.output))).c_str());
  if (eo.external_data_threshold > 0) {
    const std::string data = o.output + ".data";
    std::printf("wrote %s (%s): the tensors of 1 MiB or more, as ONNX external data (the "
                "model's tensors exceed 1.5 GiB; one .onnx file is limited to 2 GB)\n",
                data.c_str(), humanBytes(static_cast<int64_t>(fs::file_size(data))).c_str());
  }
  return 0;
}

}  // namespace

Command addCompressCommand(CLI::App& app) {
  auto o = std::make_shared<CompressOptions>();
  CLI::App* cmd = app.add_subcommand(
      "compress", "Compress a model with a registered algorithm (see `gstick algos`)");
  cmd->add_option("--algo", o->algo, "Algorithm name (gstick algos lists them)")->required();
  cmd->add_option("model", o->model,
                  "Input model: an ONNX file or a Hugging Face Llama checkpoint directory "
                  "(config.json + model.safetensors or a sharded index)")
      ->required()
      ->type_name("MODEL");
  cmd->add_option("-o,--output", o->output,
                  "Compressed model, written atomically: OUT.onnx, or a directory for a GPTQ "
                  "checkpoint")
      ->required()
      ->type_name("OUT");
  cmd->add_option("--format", o->format,
                  "Output format: onnx (MatMulNBits / QDQ) or gptq (safetensors qweight / qzeros "
                  "/ scales / g_idx; LLM weight-only, HF input). Default: gptq when -o is a "
                  "directory (existing or ending in '/'), else onnx")
      ->check(CLI::IsMember({"onnx", "gptq"}));
  cmd->add_option("--config", o->config, "Algorithm config (JSON object)")->type_name("CFG.json");
  cmd->add_option("--set", o->sets,
                  "Config override key=value (dotted keys; value parsed as JSON, else a string); "
                  "applied after --config, repeatable")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);  // one value per --set, so the model path is not swallowed
  cmd->add_option("--data", o->data,
                  "Calibration / fine-tuning data: fashion-mnist[:train|:test][:N], npy:DIR, or "
                  "text[:FILE][:SPLIT][:N] (LLM PTQ calibration windows)")
      ->type_name("SPEC");
  cmd->add_option("--calib-batches", o->calib_batches, "Calibration batches (PTQ algorithms)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--calib-batch-size", o->calib_batch_size, "Calibration batch size")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--epochs", o->epochs,
                  "Fine-tuning epochs with the algorithm's callbacks (default: the algorithm's "
                  "recommendation, 0 = none)")
      ->check(CLI::Range(int64_t{0}, int64_t{100000}));
  cmd->add_option("--batch", o->batch, "Fine-tuning batch size")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--lr", o->lr, "Fine-tuning learning rate (constant)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--optimizer", o->optimizer, "sgd (momentum 0.9) or adamw")
      ->check(CLI::IsMember({"sgd", "adamw"}))
      ->capture_default_str();
  cmd->add_option("--weight-decay", o->weight_decay, "Fine-tuning weight decay")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--val-data", o->val_data, "Validation data evaluated after every epoch")
      ->type_name("SPEC");
  cmd->add_option("--eval-data", o->eval_data,
                  "Report loss / accuracy on this labelled data before and after compression")
      ->type_name("SPEC");
  cmd->add_option("--summary", o->summary, "Also write the summary table (.json or .csv)")
      ->type_name("FILE");
  cmd->add_option("--seed", o->seed, "Seed for data order and any randomness")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Intra-op threads (default: OMP_NUM_THREADS or all)")
      ->check(CLI::Range(1, 1 << 30));
  return {cmd, [o] { return runCompress(*o); }};
}

}  // namespace gs::cli
