// `gstick eval MODEL.onnx --data SPEC`: loss, top-1 / top-5 accuracy and latency of a classifier,
// or sliding-window perplexity and the unigram baseline of a language model on text data.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/lm_eval.h"
#include "data/dataset.h"
#include "io/npy.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "train/metrics.h"

namespace gs::cli {
namespace {

struct EvalOptions {
  std::string model, data, dump_npy;
  int64_t batch = 256;
  int threads = 0;
  LmEvalOptions lm;
};

int runEval(const EvalOptions& o) {
  if (o.threads > 0) gs::setIntraOpThreads(o.threads);
  auto g = loadModel(o.model);
  DataSpec spec = parseDataSpec(o.data);
  if (isLanguageModel(*g)) {
    GS_CHECK(o.dump_npy.empty(), "--dump-npy applies to image data only");
    printLmEval(*g, spec, o.lm);
    return 0;
  }
  GS_CHECK(spec.kind != DataSpec::Kind::Text, o.model,
           ": text data needs a language model (int64 token-id input)");
  GS_CHECK(o.lm.context == 0 && o.lm.stride == 0 && o.lm.maxTokens == 0,
           "--context/--stride/--max-tokens apply to language models only");
  auto data = openDataset(spec);
  GS_CHECK(data->hasLabels(), "data ", data->describe(), " has no labels");
  GS_CHECK(g->inputs().size() == 1, o.model, ": eval expects a model with one input, it has ",
           g->inputs().size());
  GS_CHECK(!g->outputs().empty(), o.model, ": model has no outputs");
  const Value* in = g->inputs()[0];
  GS_CHECK(in->dtype() == DType::Float32, o.model, ": input '", in->name(),
           "' is not float32; eval supports image classifiers only");

  if (!o.dump_npy.empty()) {
    // The whole dataset as DIR/inputs.npy + DIR/labels.npy (what `npy:DIR` reads back).
    std::error_code ec;
    std::filesystem::create_directories(o.dump_npy, ec);
    GS_CHECK(!ec && std::filesystem::is_directory(o.dump_npy), "cannot create directory '",
             o.dump_npy, "'");
    Batch all = data->getBatch(at::arange(data->size(), at::kLong));
    writeNpy(o.dump_npy + "/inputs.npy", all.inputs.contiguous());
    writeNpy(o.dump_npy + "/labels.npy", all.labels.contiguous());
  }

  Executor ex(*g);
  MetricAccumulator acc;
  std::vector<double> ms;
  const int64_t n = data->size();
  for (int64_t s = 0; s < n; s += o.batch) {
    int64_t e = std::min(n, s + o.batch);
    Batch b = data->getBatch(at::arange(s, e, at::kLong));
    auto t0 = std::chrono::steady_clock::now();
    at::Tensor out = ex.run({b.inputs})[0];
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    at::Tensor flat, labels;
    bool token = false;
    flattenForLoss(out, b.labels, flat, labels, token);
    GS_CHECK(!token, o.model, ": sequence outputs (language models) are not supported by eval");
    at::Tensor ce = at::cross_entropy_loss(flat.to(at::kFloat), labels, {}, at::Reduction::Sum);
    acc.add(flat, labels, ce.item<double>(), token);
  }
  Metrics m = acc.result();
  Latency l = summarize(ms);
  int nt = at::get_num_threads();
  std::printf("data: %s\n", data->describe().c_str());
  std::printf("loss %.4f  top1 %.2f%%  top5 %.2f%%  samples %lld\n", m.loss, 100 * m.top1,
              100 * m.top5, static_cast<long long>(m.count));
  std::printf("latency: median %.3f ms, mean %.3f ms per batch of %lld, %d thread%s\n",
              l.median_ms, l.mean_ms, static_cast<long long>(std::min(o.batch, n)), nt,
              nt == 1 ? "" : "s");
  if (!o.dump_npy.empty())
    std::printf("wrote %s/inputs.npy, %s/labels.npy\n", o.dump_npy.c_str(), o.dump_npy.c_str());
  return 0;
}

}  // namespace

Command addEvalCommand(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Evaluate an image classifier (loss, top-1/top-5 accuracy, latency per batch) or a "
      "language model (sliding-window perplexity and the unigram baseline)");
  cmd->add_option("model", o->model, "ONNX model file")->required()->type_name("MODEL.onnx");
  cmd->add_option("--data", o->data,
                  "Labelled data: fashion-mnist[:train|:test][:N] or npy:DIR[:N]; for language "
                  "models text[:FILE][:SPLIT][:N] (default split validation)")
      ->required()
      ->type_name("SPEC");
  cmd->add_option("--context", o->lm.context,
                  "Language models: perplexity window length (default the model's max_seq)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--stride", o->lm.stride,
                  "Language models: window stride (default = context, non-overlapping)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--max-tokens", o->lm.maxTokens,
                  "Language models: evaluate only the first N tokens of the split")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  cmd->add_option("--batch", o->batch, "Batch size")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--dump-npy", o->dump_npy,
                  "Also write the data as DIR/inputs.npy and DIR/labels.npy (for other runtimes)")
      ->type_name("DIR");
  cmd->add_option("--threads", o->threads,
                  "Intra-op threads for ATen and OpenBLAS (default: OMP_NUM_THREADS or all cores)")
      ->check(CLI::Range(1, 1 << 30));
  return {cmd, [o] { return runEval(*o); }};
}

}  // namespace gs::cli
