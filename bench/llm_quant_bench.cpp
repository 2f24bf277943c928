// LLM PTQ benchmark: held-out perplexity of the tiny Llama under RTN / GPTQ / AWQ / SmoothQuant /
// KV-cache int8, the SmoothQuant outlier experiment, and GPTQ time + peak RSS on a 4096x4096 layer.
// Usage: llm_quant_bench [--model PATH(.onnx | HF dir)] [--eval-tokens N] [--calib N] [--seq T]
//                        [--sections ppl,outlier,gptq-layer] [--gptq-tokens N] [--threads N]
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "data/perplexity.h"
#include "data/text_corpus.h"
#include "data/tokenizer.h"
#include "io/onnx.h"
#include "llm/decoder.h"
#include "llm/gptq.h"
#include "llm/hf_llama.h"
#include "llm/pipeline.h"
#include "models/zoo.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace {

using namespace gs;
using namespace gs::llm;

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Args {
  std::string model;
  int64_t eval_tokens = 32768;
  int64_t calib = 32;
  int64_t seq = 256;
  std::string sections = "ppl,outlier";
  int64_t gptq_tokens = 128 * 2048;
  int threads = 0;
};

std::unique_ptr<Graph> loadModel(const std::string& path) {
  if (std::filesystem::is_directory(path)) return std::move(loadHfLlama(path).graph);
  return importOnnxFile(path);
}

struct Row {
  std::string name;
  double ppl = 0, seconds = 0;
  int64_t rss_mb = 0;
};

double ppl(const Graph& g, const at::Tensor& tokens, int64_t ctx) {
  Executor ex(g);
  return evaluatePerplexity(ex, tokens, {.context = ctx, .stride = ctx}).perplexity;
}

/// Function-preserving outlier injection in every block: input_layernorm channel c x50 and the
/// q/k/v input column c / 50.
void injectOutliers(Graph& g, int64_t c) {
  for (const DecoderBlock& b : findDecoderBlocks(g)) {
    Value* nw = g.findValue(b.prefix + ".input_layernorm.weight");
    GS_CHECK(nw, "outlier injection: no ", b.prefix, ".input_layernorm.weight");
    at::Tensor w = nw->data().clone();
    w[c] *= 50;
    nw->setData(w);
    for (const char* p : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}) {
      const LinearRef* l = b.find(p);
      GS_CHECK(l, "outlier injection: no ", b.prefix, ".", p);
      at::Tensor wt = l->weightOI();
      wt.select(1, c).div_(50);
      l->setWeightOI(wt);
    }
  }
}

void printTable(const std::vector<Row>& rows, double fp, const std::vector<std::pair<std::string, std::string>>& recover) {
  std::printf("| config | perplexity | vs fp32 | quantize s | peak RSS MB |\n|---|---|---|---|---|\n");
  for (const Row& r : rows)
    std::printf("| %s | %.4f | %+.2f%% | %.1f | %lld |\n", r.name.c_str(), r.ppl,
                100.0 * (r.ppl / fp - 1.0), r.seconds, static_cast<long long>(r.rss_mb));
  auto find = [&](const std::string& n) {
    for (const Row& r : rows)
      if (r.name == n) return r.ppl;
    return static_cast<double>(NAN);
  };
  if (!recover.empty()) {
    std::printf("\n| method | RTN baseline | share of RTN's perplexity increase recovered |\n|---|---|---|\n");
    for (const auto& [m, base] : recover) {
      const double b = find(base), x = find(m);
      std::printf("| %s | %s | %.1f%% |\n", m.c_str(), base.c_str(), 100.0 * (b - x) / (b - fp));
    }
  }
  std::fflush(stdout);
}

int run(const Args& a) {
  if (a.threads > 0) setIntraOpThreads(a.threads);
  else initRuntime();
  const bool want_ppl = a.sections.find("ppl") != std::string::npos;
  const bool want_outlier = a.sections.find("outlier") != std::string::npos;
  const bool want_layer = a.sections.find("gptq-layer") != std::string::npos;

  if (want_layer) {
    // One 4096x4096 linear; calibration rows are generated 2048 tokens at a time (never all held)
    // with log-normal per-channel magnitudes, as LLM activations have. The Hessian accumulation
    // (one 2048x4096 by 4096x4096 sgemm per chunk) is timed separately from GPTQ itself.
    const int64_t d = 4096, chunk = 2048;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
    at::Tensor w = at::randn({d, d}, gen) * 0.02;
    at::Tensor mag = at::exp(at::randn({d}, gen));
    const int64_t rss0 = currentRssKb();
    HessianAccumulator h(d);
    double t_gen = 0, t_h = 0;
    for (int64_t n = 0; n < a.gptq_tokens; n += chunk) {
      const double g0 = now();
      at::Tensor x = at::randn({chunk, d}, gen) * mag;
      const double g1 = now();
      h.add(x);
      t_gen += g1 - g0;
      t_h += now() - g1;
    }
    (void)t_gen;
    const double t1 = now();
    GptqConfig cfg;
    cfg.spec = {4, 128, false};
    GptqResult r = gptqQuantize(w, h.hessian(), cfg);
    const double t2 = now();
    const double tokens = static_cast<double>(a.gptq_tokens);
    std::printf("GPTQ 4096x4096 W4 g128 (block 128, damp 0.01): GPTQ %.2f s; Hessian over %lld "
                "calibration tokens %.1f s (%.1f ms per 2048-token chunk, so %.0f s for 128 x 2048 "
                "tokens); RSS before %lld MB, peak RSS %lld MB\n",
                t2 - t1, static_cast<long long>(a.gptq_tokens), t_h,
                1000.0 * t_h / (tokens / chunk), t_h / tokens * 128 * 2048,
                static_cast<long long>(rss0 / 1024), static_cast<long long>(peakRssKb() / 1024));
    (void)r;
  }
  if (!want_ppl && !want_outlier) return 0;

  std::unique_ptr<Graph> base;
  std::string model = a.model;
  if (model.empty() && std::filesystem::exists(GS_SOURCE_DIR "/models/llama-tiny-text.onnx"))
    model = GS_SOURCE_DIR "/models/llama-tiny-text.onnx";
  if (model.empty()) {
    std::printf("WARNING: no trained model; using a seeded (untrained) llama-tiny: perplexities "
                "are meaningless, only the mechanics are exercised\n");
    base = models::buildModel("llama-tiny", {}, 0);
  } else {
    base = loadModel(model);
  }
  TextCorpus corpus = loadBuiltinTextCorpus();
  at::Tensor test = ByteTokenizer::encode(corpus.split(TextSplit::Test));
  if (a.eval_tokens > 0 && test.size(0) > a.eval_tokens) test = test.narrow(0, 0, a.eval_tokens);
  at::Tensor calib = calibrationWindows(ByteTokenizer::encode(corpus.split(TextSplit::Train)),
                                        a.calib, a.seq);
  std::printf("model %s; %s\neval: test split, %lld tokens, context %lld; calibration: %lld x %lld "
              "train tokens\n\n",
              model.empty() ? "llama-tiny (seeded)" : model.c_str(), corpus.describe().c_str(),
              static_cast<long long>(test.size(0)), static_cast<long long>(a.seq),
              static_cast<long long>(a.calib), static_cast<long long>(a.seq));

  auto quant = [&](const Graph& src, const std::string& name, PtqConfig cfg) {
    auto g = src.clone(false);
    const double t0 = now();
    PtqResult r = quantizeDecoder(*g, calib, cfg);
    const double secs = now() - t0;
    Row row{name, ppl(*g, test, a.seq), secs, r.peak_rss_kb / 1024};
    std::fprintf(stderr, "%s: ppl %.4f (%.1f s)\n", name.c_str(), row.ppl, row.seconds);
    return row;
  };
  auto wcfg = [](int bits, int64_t group) {
    PtqConfig c;
    c.weight_bits = bits;
    c.group_size = group;
    c.measure_error = false;
    return c;
  };
  const double fp = ppl(*base, test, a.seq);
  std::vector<Row> rows{{"fp32", fp, 0, peakRssKb() / 1024}};

  if (want_ppl) {
    rows.push_back(quant(*base, "RTN W8 per-channel", wcfg(8, 0)));
    std::vector<std::pair<std::string, std::string>> rec;
    for (int bits : {4, 3}) {
      const std::string tag = "W" + std::to_string(bits) + " g128";
      rows.push_back(quant(*base, "RTN " + tag, wcfg(bits, 128)));
      PtqConfig g = wcfg(bits, 128);
      g.recovery = PrecisionRecovery::Gptq;
      rows.push_back(quant(*base, "GPTQ " + tag, g));
      PtqConfig w = wcfg(bits, 128);
      w.outlier = OutlierSuppression::Awq;
      rows.push_back(quant(*base, "AWQ " + tag, w));
      rec.push_back({"GPTQ " + tag, "RTN " + tag});
      rec.push_back({"AWQ " + tag, "RTN " + tag});
    }
    {
      PtqConfig c = wcfg(8, 0);
      c.weight_symmetric = true;
      c.act_bits = 8;
      c.act_granularity = ActGranularity::PerTensor;
      rows.push_back(quant(*base, "naive W8A8 (per-tensor)", c));
      c.outlier = OutlierSuppression::Smooth;
      rows.push_back(quant(*base, "SmoothQuant W8A8 (per-tensor)", c));
    }
    for (ActGranularity gr : {ActGranularity::PerChannel, ActGranularity::PerToken}) {
      PtqConfig c;
      c.weight_bits = 0;
      c.kv_bits = 8;
      c.kv_granularity = gr;
      c.measure_error = false;
      rows.push_back(quant(*base, std::string("KV-cache int8 ") +
                                      (gr == ActGranularity::PerChannel ? "static per-channel" : "dynamic per-token"), c));
    }
    std::printf("### Held-out perplexity\n\n");
    printTable(rows, fp, rec);
  }
  if (want_outlier) {
    auto g = base->clone(false);
    injectOutliers(*g, 5);
    const double fp_out = ppl(*g, test, a.seq);
    GS_CHECK(std::abs(fp_out / fp - 1.0) < 1e-4, "outlier injection changed the fp32 perplexity: ",
             fp, " -> ", fp_out);
    std::vector<Row> o{{"fp32 with 50x outlier channel", fp_out, 0, 0}};
    for (ActGranularity gr : {ActGranularity::PerTensor, ActGranularity::PerToken}) {
      const std::string gn = gr == ActGranularity::PerTensor ? "per-tensor" : "per-token";
      PtqConfig c = wcfg(8, 0);
      c.weight_symmetric = true;
      c.act_bits = 8;
      c.act_granularity = gr;
      o.push_back(quant(*g, "naive W8A8 (" + gn + ")", c));
      c.outlier = OutlierSuppression::Smooth;
      o.push_back(quant(*g, "SmoothQuant W8A8 (" + gn + ")", c));
    }
    std::printf("\n### SmoothQuant on injected outliers (channel 5 of every input_layernorm x50, "
                "q/k/v columns /50; fp32 perplexity %.6f vs %.6f unmodified)\n\n", fp_out, fp);
    printTable(o, fp, {});
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "llm_quant_bench: %s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--model") a.model = val();
    else if (k == "--eval-tokens") a.eval_tokens = std::stoll(val());
    else if (k == "--calib") a.calib = std::stoll(val());
    else if (k == "--seq") a.seq = std::stoll(val());
    else if (k == "--sections") a.sections = val();
    else if (k == "--gptq-tokens") a.gptq_tokens = std::stoll(val());
    else if (k == "--threads") a.threads = std::stoi(val());
    else {
      std::fprintf(stderr, "usage: llm_quant_bench [--model PATH] [--eval-tokens N] [--calib N] "
                   "[--seq T] [--sections ppl,outlier,gptq-layer] [--gptq-tokens N] [--threads N]\n");
      return 2;
    }
  }
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llm_quant_bench: %s\n", gs::firstLine(e.what()).c_str());
    return 1;
  }
}
