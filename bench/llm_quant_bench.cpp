// LLM PTQ benchmark: held-out perplexity of the tiny Llama under RTN / GPTQ / AWQ / SmoothQuant /
// KV-cache int8, the SmoothQuant outlier experiment, GPTQ time + peak RSS on a 4096x4096 layer,
// and a whole-model block-by-block run on a generated HF Llama checkpoint (peak RSS vs size).
// Usage: llm_quant_bench [--model PATH(.onnx | HF dir)] [--eval-tokens N] [--eval-split S] [--calib N] [--seq T]
//                        [--sections ppl,outlier,draws,gptq-layer,awq-clip-layer,whole-model] [--draws N] [--draw-methods gptq,awq,awq+gptq] [--draw-bits 4,3] [--gptq-tokens N]
//                        [--threads N] [--model-dir DIR] [--dtype f32] [--hidden 2048] [--layers 8]
//                        [--ffn 5632] [--heads 32] [--kv-heads 4] [--vocab 32000] [--keep-model]
//                        [--methods rtn|gptq|awq[-release|-pack],...]
//                        [--calib-batch N] [--awq-tokens N] [--awq-duo-scaling true|false] [--awq-clip auto|true|false]
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/perplexity.h"
#include "data/text_corpus.h"
#include "data/tokenizer.h"
#include "io/onnx.h"
#include "io/safetensors.h"
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
  std::string eval_split = "test";  // held-out split perplexity is measured on
  int64_t calib = 32;
  int64_t seq = 256;
  std::string sections = "ppl,outlier";
  int64_t gptq_tokens = 128 * 2048;
  int threads = 0;
  // whole-model section: generated HF Llama checkpoint (TinyLlama-shaped, fewer layers).
  std::string model_dir = "/tmp/llm_quant_bench_hf";
  std::string dtype = "f32";  // write-model: storage dtype f32 | f16 | bf16
  models::LlamaConfig hf{.vocab = 32000, .dim = 2048, .layers = 8, .heads = 32, .kv_heads = 4,
                         .ffn = 5632, .max_seq = 2048};
  bool calib_set = false, seq_set = false, keep_model = false;
  int64_t calib_batch = 4;       // whole-model: calibration windows per forward pass
  int64_t awq_tokens = 0;        // ppl / outlier: PtqConfig::awq_max_tokens (0 = its default)
  int64_t draws = 5;             // draws: calibration sets per method
  std::vector<std::string> draw_methods{"GPTQ", "AWQ"};  // draws: GPTQ, AWQ and/or AWQ+GPTQ
  std::vector<int> draw_bits{4, 3};                      // draws: weight bits (g128)
  bool awq_duo = true;           // ppl / outlier / draws: PtqConfig::awq_duo_scaling
  std::optional<bool> awq_clip;  // ppl / outlier / draws: PtqConfig::awq_clip (unset: auto)
  std::string method = "gptq";  // whole-model-run: rtn | gptq, optionally -release / -pack
  std::vector<std::string> methods{"rtn-pack", "gptq-pack"};
  std::string self;              // argv[0], to run sections in child processes
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

/// Polls /proc/self/status (VmRSS split into RssAnon and RssFile) every 20 ms and keeps the
/// maxima, so the peak of anonymous memory (what the process allocated) can be told apart from
/// file-backed pages of the memory-mapped checkpoint (page cache the kernel may drop).
class RssSampler {
 public:
  RssSampler() : t_([this] {
      while (!stop_) {
        sample();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }) {}
  ~RssSampler() {
    stop_ = true;
    t_.join();
  }
  void sample() {
    std::ifstream f("/proc/self/status");
    std::string line;
    int64_t anon = 0, file = 0;
    while (std::getline(f, line)) {
      if (line.rfind("RssAnon:", 0) == 0) anon = std::stoll(line.substr(8));
      if (line.rfind("RssFile:", 0) == 0) file = std::stoll(line.substr(8));
    }
    if (anon > max_anon_) max_anon_ = anon;
    if (file > max_file_) max_file_ = file;
  }
  int64_t maxAnonMb() const { return max_anon_ / 1024; }
  int64_t maxFileMb() const { return max_file_ / 1024; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> max_anon_{0}, max_file_{0};
  std::thread t_;
};

double mb(double bytes) { return bytes / (1024.0 * 1024.0); }

/// Process CPU time (all threads), seconds.
double cpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/// A 4096x4096 linear layer W ~ N(0, 0.02^2) and a generator of structured calibration rows for
/// it: a rank-64 shared component (correlated channels, as real LLM inputs are), log-normal
/// per-channel magnitudes and 8 outlier channels at 20x. Seeded: the same W and rows every run.
struct SyntheticLayer {
  static constexpr int64_t d = 4096, rank = 64;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  at::Tensor w = at::randn({d, d}, gen) * 0.02;
  at::Tensor mix = at::randn({rank, d}, gen) / std::sqrt(static_cast<double>(rank));
  at::Tensor mag = [this] {
    at::Tensor m = at::exp(0.5 * at::randn({d}, gen));
    m.narrow(0, 0, 8).mul_(20.0);
    return m;
  }();
  /// The next `m` calibration rows [m, d].
  at::Tensor rows(int64_t m) { return (at::randn({m, rank}, gen).mm(mix) + at::randn({m, d}, gen)) * mag; }
};

/// AWQ's clip search on one 4096x4096 linear layer (W4 g128 asymmetric) from `awq_max_tokens`
/// (2048) calibration rows shaped like gptqLayerSection's: seconds and output error for the
/// coarse grid alone and with the finer second pass (PtqConfig's awq_clip_refine).
void awqClipLayerSection(const Args& a) {
  const int64_t rows = 2048;
  SyntheticLayer layer;
  const at::Tensor& w = layer.w;
  const at::Tensor x = layer.rows(rows);
  // The pipeline gathers these during the calibration forward: not part of the search's time.
  const AwqInputStats stats = AwqInputStats::of(x);
  AwqConfig cfg = PtqConfig{}.awqConfig({4, 128, false});
  auto err = [&](const at::Tensor& wq) { return (x.mm((w - wq).t())).square().mean().item<double>(); };
  const double e_rtn = err(rtnFakeQuant(w, cfg.spec));
  std::printf("\n### AWQ clip search on one 4096x4096 layer (W4 g128 asym, %lld calibration rows, "
              "%d threads)\n\n| clip search | pairs per (row, group) | wall s | CPU s | output "
              "error vs RTN |\n|---|---|---|---|---|\n",
              static_cast<long long>(rows), at::get_num_threads());
  for (int64_t refine : {int64_t{1}, cfg.clip_refine}) {
    cfg.clip_refine = refine;
    const double t0 = now(), c0 = cpuSeconds();
    const at::Tensor wc = awqClip(stats, w, cfg);
    const double t1 = now(), c1 = cpuSeconds();
    const int64_t steps = static_cast<int64_t>(std::floor(cfg.max_shrink * cfg.clip_grid));
    const int64_t coarse = (steps + 1) * (steps + 1);
    const int64_t fine = refine > 1 ? (2 * refine + 1) * (2 * refine + 1) - 1 : 0;
    std::printf("| grid 1/%lld%s | %lld | %.1f | %.1f | %.3f |\n", static_cast<long long>(cfg.clip_grid),
                refine > 1 ? (", refined x" + std::to_string(refine)).c_str() : "",
                static_cast<long long>(coarse + fine), t1 - t0, c1 - c0,
                err(rtnFakeQuant(wc, cfg.spec)) / e_rtn);
    std::fflush(stdout);
  }
}

/// GPTQ on one 4096x4096 linear layer: the Hessian from `gptq_tokens` calibration rows streamed
/// in 2048-token chunks (never all held: 128 x 2048 tokens x 4096 fp32 would be 4 GiB), then
/// GPTQ W4 g128 (damp 0.01, block 128) without and with act-order; the output error relative to
/// RTN is trace(D H D^T) for D = W - Q(W).
void gptqLayerSection(const Args& a) {
  const int64_t d = SyntheticLayer::d, chunk = 2048;
  SyntheticLayer layer;
  at::Tensor w = layer.w;
  const int64_t rss0 = currentRssKb();
  double c_h = 0;
  HessianAccumulator h(d);
  double t_gen = 0, t_h = 0;
  for (int64_t n = 0; n < a.gptq_tokens; n += chunk) {
    const double g0 = now();
    const int64_t m = std::min(chunk, a.gptq_tokens - n);
    at::Tensor x = layer.rows(m);
    const double g1 = now(), c1 = cpuSeconds();
    h.add(x);
    t_gen += g1 - g0;
    t_h += now() - g1;
    c_h += cpuSeconds() - c1;
  }
  const int64_t rss_h = peakRssKb();
  auto err = [&](const at::Tensor& dq) {
    at::Tensor dd = (w - dq).to(at::kDouble);
    return (dd.mm(h.hessian().to(at::kDouble)) * dd).sum().item<double>() / 2.0;
  };
  const double e_rtn = err(rtnFakeQuant(w, {4, 128, false}));
  const double flop = 2.0 * static_cast<double>(a.gptq_tokens) * d * d;
  std::printf("### GPTQ on one 4096x4096 linear layer\n\n"
              "calibration: %lld tokens x 4096 in chunks of %lld (%.0f MiB if materialised in "
              "fp32); threads %d\n\n",
              static_cast<long long>(a.gptq_tokens), static_cast<long long>(chunk),
              mb(4.0 * a.gptq_tokens * d), at::get_num_threads());
  std::printf("| step | seconds | CPU seconds (all threads) | peak RSS MB | output error vs RTN "
              "|\n|---|---|---|---|---|\n");
  std::printf("| generate activations (not part of the cost) | %.1f | | | |\n", t_gen);
  std::printf("| Hessian H = 2/n sum x x^T (%.2f TFLOP, %.1f GFLOP/s) | %.1f | %.1f | %lld | |\n",
              flop / 1e12, flop / t_h / 1e9, t_h, c_h, static_cast<long long>(rss_h / 1024));
  std::fflush(stdout);
  for (bool act : {false, true}) {
    GptqConfig cfg;
    cfg.spec = {4, 128, false};
    cfg.act_order = act;
    const double t1 = now(), c1 = cpuSeconds();
    std::ofstream("/proc/self/clear_refs") << "5";  // VmHWM := current RSS: GPTQ's own peak
    GptqResult r = gptqQuantize(w, h.hessian(), cfg);
    const double t2 = now(), c2 = cpuSeconds();
    const int64_t peak = peakRssKb();  // before the float64 error evaluation below
    const double e = err(r.weight.dequantize());
    std::printf("| GPTQ W4 g128 asym, block 128, damp 0.01%s | %.1f | %.1f | %lld | %.3f |\n",
                act ? ", act-order" : "", t2 - t1, c2 - c1, static_cast<long long>(peak / 1024),
                e / e_rtn);
    std::fflush(stdout);
  }
  std::printf("\n(RSS before the Hessian %lld MB: W, the generator state and ATen's pools.)\n\n",
              static_cast<long long>(rss0 / 1024));
}

/// The HF Llama config and parameter count of the generated checkpoint.
int64_t llamaParams(const models::LlamaConfig& c, int64_t* per_block) {
  const int64_t kv = c.kv_heads * c.headDim();
  const int64_t blk = 2 * c.dim * c.dim + 2 * c.dim * kv + 3 * c.dim * c.ffn + 2 * c.dim;
  if (per_block) *per_block = blk;
  return c.layers * blk + c.vocab * c.dim * (c.tie_embeddings ? 1 : 2) + c.dim;
}

/// Writes a random Llama-layout HF checkpoint (fp32, one shard per decoder layer plus the
/// embedding and head shards, model.safetensors.index.json) one tensor group at a time, so the
/// writer never holds more than one shard. Linear weights ~ N(0, 0.02^2) (HF's initializer
/// range), norms 1, embeddings N(0, 0.02^2).
void writeModelSection(const Args& a) {
  namespace fs = std::filesystem;
  const models::LlamaConfig& c = a.hf;
  GS_CHECK(a.dtype == "f32" || a.dtype == "f16" || a.dtype == "bf16", "--dtype must be f32, f16 or bf16");
  const at::ScalarType st = a.dtype == "f16" ? at::kHalf : a.dtype == "bf16" ? at::kBFloat16 : at::kFloat;
  fs::create_directories(a.model_dir);
  {
    std::ofstream f(fs::path(a.model_dir) / "config.json");
    f << llamaConfigToHf(c, a.dtype == "f16" ? "float16" : a.dtype == "bf16" ? "bfloat16" : "float32").dump(2);
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const int64_t kv = c.kv_heads * c.headDim();
  const int64_t nshards = c.layers + 2;
  nlohmann::json wm = nlohmann::json::object();
  int64_t total = 0;
  auto shardName = [&](int64_t k) {
    char b[64];
    std::snprintf(b, sizeof b, "model-%05lld-of-%05lld.safetensors", static_cast<long long>(k + 1),
                  static_cast<long long>(nshards));
    return std::string(b);
  };
  auto write = [&](int64_t k, std::map<std::string, at::Tensor> t) {
    const std::string name = shardName(k);
    for (auto& [n, v] : t) v = v.to(st);
    writeSafetensors((fs::path(a.model_dir) / name).string(), t, {{"format", "pt"}});
    for (const auto& [n, v] : t) {
      wm[n] = name;
      total += v.numel() * v.element_size();
    }
  };
  auto normal = [&](int64_t r, int64_t cc) { return at::randn({r, cc}, gen) * 0.02; };
  write(0, {{"model.embed_tokens.weight", normal(c.vocab, c.dim)}});
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    write(i + 1, {{p + "self_attn.q_proj.weight", normal(c.dim, c.dim)},
                  {p + "self_attn.k_proj.weight", normal(kv, c.dim)},
                  {p + "self_attn.v_proj.weight", normal(kv, c.dim)},
                  {p + "self_attn.o_proj.weight", normal(c.dim, c.dim)},
                  {p + "mlp.gate_proj.weight", normal(c.ffn, c.dim)},
                  {p + "mlp.up_proj.weight", normal(c.ffn, c.dim)},
                  {p + "mlp.down_proj.weight", normal(c.dim, c.ffn)},
                  {p + "input_layernorm.weight", at::ones({c.dim})},
                  {p + "post_attention_layernorm.weight", at::ones({c.dim})}});
  }
  std::map<std::string, at::Tensor> last{{"model.norm.weight", at::ones({c.dim})}};
  if (!c.tie_embeddings) last["lm_head.weight"] = normal(c.vocab, c.dim);
  write(nshards - 1, last);
  nlohmann::json idx{{"metadata", {{"total_size", total}}}, {"weight_map", wm}};
  std::ofstream(fs::path(a.model_dir) / "model.safetensors.index.json") << idx.dump(2);
}

/// Peak RSS, wall and CPU seconds per pipeline phase (PipelineOptions::on_phase): at every phase
/// change the kernel's high-water mark (VmHWM) is read, attributed to the phase that ends, and
/// reset to the current RSS by writing "5" to /proc/self/clear_refs, so each phase's peak is
/// exact (not sampled). `overallKb` is the maximum over all phases = the run's VmHWM.
class PhaseTracker {
 public:
  void enter(int64_t block, const std::string& phase) {
    const int64_t hwm = peakRssKb();
    const double t = now(), c = cpuSeconds();
    if (!cur_.empty()) {
      Stat& s = stats_[cur_];
      if (hwm > s.peak_kb) {
        s.peak_kb = hwm;
        s.block = cur_block_;
      }
      s.wall += t - t_;
      s.cpu += c - c_;
    }
    overall_kb_ = std::max(overall_kb_, hwm);
    if (!stats_.count(phase)) order_.push_back(phase);
    stats_[phase];
    std::ofstream("/proc/self/clear_refs") << "5";
    cur_ = phase;
    cur_block_ = block;
    t_ = t;
    c_ = c;
  }
  int64_t overallKb() const { return overall_kb_; }
  /// "| phase | ... |" cells: peak MB (block) and wall / CPU seconds summed over blocks.
  std::string cells() const {
    std::string r;
    char b[128];
    for (const std::string& p : order_) {
      const Stat& s = stats_.at(p);
      if (p == "end") continue;
      std::snprintf(b, sizeof b, " %s: %lld MB%s, %.0f s (CPU %.0f) |", p.c_str(),
                    static_cast<long long>(s.peak_kb / 1024),
                    s.block >= 0 ? (" (block " + std::to_string(s.block + 1) + ")").c_str() : "",
                    s.wall, s.cpu);
      r += b;
    }
    return r;
  }

 private:
  struct Stat {
    int64_t peak_kb = 0, block = -1;
    double wall = 0, cpu = 0;
  };
  std::map<std::string, Stat> stats_;
  std::vector<std::string> order_;
  std::string cur_;
  int64_t cur_block_ = -1, overall_kb_ = 0;
  double t_ = 0, c_ = 0;
};

/// One quantization run on the generated checkpoint in this process (so its peaks are this
/// run's): load (mmap), block-by-block RTN or GPTQ W4 g128, one markdown row on stdout and one
/// per-phase row appended to <model-dir>/phases.md.
void wholeModelRun(const Args& a) {
  RssSampler sampler;
  PhaseTracker phases;
  phases.enter(-1, "load");
  const double t0 = now();
  HfLlama m = loadHfLlama(a.model_dir, a.seq);
  const double t_load = now() - t0;
  sampler.sample();
  const int64_t rss_load = currentRssKb(), peak_load = peakRssKb();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  at::Tensor calib = at::randint(m.config.vocab, {a.calib, a.seq}, gen, at::kLong);
  PtqConfig cfg;
  cfg.weight_bits = 4;
  cfg.group_size = 128;
  cfg.measure_error = false;
  const bool gptq = a.method.rfind("gptq", 0) == 0, awq = a.method.rfind("awq", 0) == 0;
  if (gptq) cfg.recovery = PrecisionRecovery::Gptq;
  if (awq) cfg.outlier = OutlierSuppression::Awq;
  const char* name = gptq ? "GPTQ" : awq ? "AWQ" : "RTN";
  cfg.calib_batch = a.calib_batch;
  PipelineOptions opts;
  opts.progress = &std::cerr;
  opts.release_weights = a.method.find("release") != std::string::npos;
  opts.pack_weights = a.method.find("pack") != std::string::npos;
  opts.on_phase = [&](int64_t block, const std::string& p) { phases.enter(block, p); };
  const char* mode = opts.pack_weights      ? ", pack_weights"
                     : opts.release_weights ? ", release_weights"
                                            : " (float weights kept)";
  const double t1 = now(), c1 = cpuSeconds();
  PtqResult r = quantizeDecoder(*m.graph, calib, cfg, opts);
  const double t_q = now() - t1, c_q = cpuSeconds() - c1;
  sampler.sample();
  std::printf("| %s W4 g128%s | %.1f | %.1f (CPU %.0f) | %.1f | %lld / %lld | %lld | %lld / %lld | %lld |\n",
              name, mode, t_load, t_q, c_q, t_q / r.blocks,
              static_cast<long long>(rss_load / 1024), static_cast<long long>(peak_load / 1024),
              static_cast<long long>(std::max(phases.overallKb(), peakRssKb()) / 1024),
              static_cast<long long>(sampler.maxAnonMb()), static_cast<long long>(sampler.maxFileMb()),
              static_cast<long long>(currentRssKb() / 1024));
  std::fflush(stdout);
  std::ofstream(std::filesystem::path(a.model_dir) / "phases.md", std::ios::app)
      << "| " << name << mode << " |" << phases.cells() << "\n";
}

/// Whole-model evidence: writes the checkpoint (child process), then quantizes it with RTN and
/// with GPTQ, each in its own child process so each peak RSS is its own; deletes the files unless
/// --keep-model.
void wholeModelSection(const Args& a) {
  namespace fs = std::filesystem;
  auto child = [&](const std::string& sections, const std::string& extra) {
    std::string cmd = a.self + " --sections " + sections + " --model-dir " + a.model_dir +
                      " --hidden " + std::to_string(a.hf.dim) + " --layers " +
                      std::to_string(a.hf.layers) + " --ffn " + std::to_string(a.hf.ffn) +
                      " --heads " + std::to_string(a.hf.heads) + " --kv-heads " +
                      std::to_string(a.hf.kv_heads) + " --vocab " + std::to_string(a.hf.vocab) +
                      " --calib " + std::to_string(a.calib) + " --seq " + std::to_string(a.seq) +
                      " --calib-batch " + std::to_string(a.calib_batch) +
                      (a.threads > 0 ? " --threads " + std::to_string(a.threads) : "") + extra;
    std::fflush(stdout);
    GS_CHECK(std::system(cmd.c_str()) == 0, "whole-model: child failed: ", cmd);
  };
  const double t0 = now();
  if (!fs::exists(fs::path(a.model_dir) / "config.json")) child("write-model", "");
  const double t_write = now() - t0;
  int64_t disk = 0;
  for (const auto& e : fs::directory_iterator(a.model_dir))
    if (e.path().extension() == ".safetensors") disk += static_cast<int64_t>(e.file_size());
  int64_t per_block = 0;
  const int64_t params = llamaParams(a.hf, &per_block);
  const int64_t kv = a.hf.kv_heads * a.hf.headDim();
  // Calibration activations alive at a block boundary: the hidden states [calib, seq, dim]; the
  // largest inside a block: the MLP's gate/up/SiLU products [calib, seq, ffn] (a few at once).
  const double act_mb = mb(4.0 * a.calib * a.seq * a.hf.dim);
  const double ffn_mb = mb(4.0 * a.calib * a.seq * a.hf.ffn);
  std::printf("### Whole-model block-by-block run\n\n"
              "checkpoint: Llama layout, hidden %lld, %lld layers, %lld heads (%lld kv), ffn %lld, "
              "vocab %lld: %.1f M parameters (%.1f M per block, q/k/v/o %lld/%lld/%lld/%lld); fp32 "
              "safetensors, %zu shards, %.0f MB on disk (written in %.0f s); fp32 size %.0f MB, one "
              "block %.0f MB; calibration %lld x %lld random tokens: %.0f MB of hidden states per "
              "block boundary, %.0f MB per ffn-wide intermediate; threads %d\n\n",
              static_cast<long long>(a.hf.dim), static_cast<long long>(a.hf.layers),
              static_cast<long long>(a.hf.heads), static_cast<long long>(a.hf.kv_heads),
              static_cast<long long>(a.hf.ffn), static_cast<long long>(a.hf.vocab), params / 1e6,
              per_block / 1e6, static_cast<long long>(a.hf.dim), static_cast<long long>(kv),
              static_cast<long long>(kv), static_cast<long long>(a.hf.dim),
              static_cast<size_t>(a.hf.layers + 2), mb(disk), t_write, mb(4.0 * params),
              mb(4.0 * per_block), static_cast<long long>(a.calib), static_cast<long long>(a.seq),
              act_mb, ffn_mb, a.threads > 0 ? a.threads : at::get_num_threads());
  std::printf("| run | load s | quantize s | s per block | RSS after load: current / peak MB | "
              "peak RSS MB (VmHWM) | peak anon / file-backed MB | RSS at end MB |\n"
              "|---|---|---|---|---|---|---|---|\n");
  const fs::path phases = fs::path(a.model_dir) / "phases.md";
  fs::remove(phases);
  for (const std::string& m : a.methods) child("whole-model-run", " --method " + m);
  std::printf("\nPeak RSS per phase (VmHWM reset at every phase change; max over blocks, the "
              "block where it occurred) and wall / CPU seconds summed over blocks:\n\n");
  std::ifstream pf(phases);
  for (std::string line; std::getline(pf, line);) std::printf("%s\n", line.c_str());
  if (!a.keep_model) fs::remove_all(a.model_dir);
  std::printf("\n");
}

/// Weight-only config at `bits` / `group` with the bench's AWQ options (error report off).
PtqConfig weightConfig(const Args& a, int bits, int64_t group) {
  PtqConfig c;
  if (a.awq_tokens > 0) c.awq_max_tokens = a.awq_tokens;
  c.awq_duo_scaling = a.awq_duo;
  c.awq_clip = a.awq_clip;
  c.weight_bits = bits;
  c.group_size = group;
  c.measure_error = false;
  return c;
}

/// Calibration draw d of n: `samples` windows of `seq` tokens, evenly spaced over the stream and
/// shifted by (d + 0.5) / n of the spacing, so no two draws share a window.
at::Tensor calibrationDraw(const at::Tensor& tokens, int64_t samples, int64_t seq, int64_t d, int64_t n) {
  const int64_t span = tokens.size(0) - seq;
  GS_CHECK(span > 0, "calibration draw: the stream is shorter than one window");
  std::vector<at::Tensor> rows;
  for (int64_t i = 0; i < samples; ++i) {
    const double pos = (static_cast<double>(i) + (static_cast<double>(d) + 0.5) / n) / samples;
    rows.push_back(tokens.narrow(0, static_cast<int64_t>(pos * span), seq).to(at::kLong));
  }
  return at::stack(rows);
}

/// The W4 / W3 g128 "share of RTN's increase recovered" of GPTQ and AWQ over `a.draws`
/// calibration sets: RTN's whole W4 loss on the tiny Llama is ~0.04 perplexity, so one
/// calibration set's share moves by tens of points with the set (docs/ptq.md, "How many tokens").
void drawsSection(const Graph& base, const at::Tensor& train, const at::Tensor& test, double fp,
                  const Args& a) {
  GS_CHECK(a.draws >= 2, "--draws must be at least 2");
  std::printf("\n### Share of RTN's increase recovered over %lld calibration draws (%lld x %lld "
              "train tokens each)\n\n",
              static_cast<long long>(a.draws), static_cast<long long>(a.calib),
              static_cast<long long>(a.seq));
  std::printf("| method | RTN ppl | mean ppl | mean share | sd | min | max | per draw |\n"
              "|---|---|---|---|---|---|---|---|\n");
  auto quantPpl = [&](const PtqConfig& c, const at::Tensor& calib) {
    auto g = base.clone(false);
    quantizeDecoder(*g, calib, c);
    return ppl(*g, test, a.seq);
  };
  for (int bits : a.draw_bits) {
    const PtqConfig rc = weightConfig(a, bits, 128);
    const double rtn = quantPpl(rc, calibrationDraw(train, a.calib, a.seq, 0, a.draws));
    for (const std::string& method : a.draw_methods) {
      const std::string name = method + " W" + std::to_string(bits) + " g128";
      PtqConfig c = rc;
      if (method.find("GPTQ") != std::string::npos) c.recovery = PrecisionRecovery::Gptq;
      if (method.find("AWQ") != std::string::npos) c.outlier = OutlierSuppression::Awq;
      std::vector<double> share, p;
      std::string per;
      for (int64_t d = 0; d < a.draws; ++d) {
        p.push_back(quantPpl(c, calibrationDraw(train, a.calib, a.seq, d, a.draws)));
        share.push_back(100.0 * (rtn - p.back()) / (rtn - fp));
        std::fprintf(stderr, "%s draw %lld: ppl %.4f, share %.1f%%\n", name.c_str(),
                     static_cast<long long>(d), p.back(), share.back());
        per += (per.empty() ? "" : " ") + std::to_string(static_cast<int>(std::lround(share.back())));
      }
      const double n = static_cast<double>(share.size());
      double mean = 0, mean_p = 0, var = 0;
      for (size_t i = 0; i < share.size(); ++i) mean += share[i] / n, mean_p += p[i] / n;
      for (double x : share) var += (x - mean) * (x - mean) / (n - 1);
      std::printf("| %s | %.4f | %.4f | %.1f%% | %.1f | %.1f%% | %.1f%% | %s |\n", name.c_str(), rtn,
                  mean_p, mean, std::sqrt(var), *std::min_element(share.begin(), share.end()),
                  *std::max_element(share.begin(), share.end()), per.c_str());
      std::fflush(stdout);
    }
  }
}

int run(const Args& a) {
  initRuntime();  // the set-up every gstick process gets (threads, malloc policy), as the CLI's
  if (a.threads > 0) setIntraOpThreads(a.threads);
  const bool want_ppl = a.sections.find("ppl") != std::string::npos;
  const bool want_outlier = a.sections.find("outlier") != std::string::npos;
  const bool want_draws = a.sections.find("draws") != std::string::npos;
  const bool want_layer = a.sections.find("gptq-layer") != std::string::npos ||
                          a.sections.find("gptq_layer") != std::string::npos;

  if (want_layer) gptqLayerSection(a);
  if (a.sections.find("awq-clip-layer") != std::string::npos) awqClipLayerSection(a);
  if (a.sections.find("write-model") != std::string::npos) writeModelSection(a);
  if (a.sections.find("whole-model-run") != std::string::npos) wholeModelRun(a);
  else if (a.sections.find("whole-model") != std::string::npos) wholeModelSection(a);
  if (!want_ppl && !want_outlier && !want_draws) return 0;

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
  at::Tensor test = ByteTokenizer::encode(corpus.split(parseTextSplit(a.eval_split)));
  if (a.eval_tokens > 0 && test.size(0) > a.eval_tokens) test = test.narrow(0, 0, a.eval_tokens);
  const at::Tensor train = ByteTokenizer::encode(corpus.split(TextSplit::Train));
  at::Tensor calib = calibrationWindows(train, a.calib, a.seq);
  std::printf("model %s; %s\neval: %s split, %lld tokens, context %lld; calibration: %lld x %lld "
              "train tokens\n\n",
              model.empty() ? "llama-tiny (seeded)" : model.c_str(), corpus.describe().c_str(),
              a.eval_split.c_str(),
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
  auto wcfg = [&](int bits, int64_t group) { return weightConfig(a, bits, group); };
  // RTN, GPTQ and AWQ at W4 g128 and W3 g128 on `g`, with the "share recovered" pairs.
  auto weightOnly = [&](const Graph& g, std::vector<Row>& rows,
                        std::vector<std::pair<std::string, std::string>>& rec) {
    for (int bits : {4, 3}) {
      const std::string tag = "W" + std::to_string(bits) + " g128";
      rows.push_back(quant(g, "RTN " + tag, wcfg(bits, 128)));
      PtqConfig c = wcfg(bits, 128);
      c.recovery = PrecisionRecovery::Gptq;
      rows.push_back(quant(g, "GPTQ " + tag, c));
      c = wcfg(bits, 128);
      c.outlier = OutlierSuppression::Awq;
      rows.push_back(quant(g, "AWQ " + tag, c));
      rec.push_back({"GPTQ " + tag, "RTN " + tag});
      rec.push_back({"AWQ " + tag, "RTN " + tag});
    }
  };
  const double fp = ppl(*base, test, a.seq);
  std::vector<Row> rows{{"fp32", fp, 0, peakRssKb() / 1024}};

  if (want_ppl) {
    rows.push_back(quant(*base, "RTN W8 per-channel", wcfg(8, 0)));
    std::vector<std::pair<std::string, std::string>> rec;
    weightOnly(*base, rows, rec);
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
  if (want_draws) drawsSection(*base, train, test, fp, a);
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
    // Weight-only on the same model: the /50 columns are salient weights (their inputs are 50x
    // larger) that a group's shared scale rounds away, the case AWQ's scaling is made for.
    std::vector<Row> w{o.front()};
    std::vector<std::pair<std::string, std::string>> rec;
    weightOnly(*g, w, rec);
    std::printf("\n### Weight-only on the same injected outliers (salient input channels)\n\n");
    printTable(w, fp, rec);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  a.self = argv[0];
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
    else if (k == "--eval-split") a.eval_split = val();
    else if (k == "--calib") a.calib = std::stoll(val());
    else if (k == "--seq") a.seq = std::stoll(val());
    else if (k == "--sections") a.sections = val();
    else if (k == "--gptq-tokens") a.gptq_tokens = std::stoll(val());
    else if (k == "--threads") a.threads = std::stoi(val());
    else if (k == "--model-dir") a.model_dir = val();
    else if (k == "--dtype") a.dtype = val();
    else if (k == "--hidden") a.hf.dim = std::stoll(val());
    else if (k == "--layers") a.hf.layers = std::stoll(val());
    else if (k == "--ffn") a.hf.ffn = std::stoll(val());
    else if (k == "--heads") a.hf.heads = std::stoll(val());
    else if (k == "--kv-heads") a.hf.kv_heads = std::stoll(val());
    else if (k == "--vocab") a.hf.vocab = std::stoll(val());
    else if (k == "--method") a.method = val();
    else if (k == "--calib-batch") a.calib_batch = std::stoll(val());
    else if (k == "--awq-tokens") a.awq_tokens = std::stoll(val());
    else if (k == "--draws") a.draws = std::stoll(val());
    else if (k == "--draw-methods") {
      a.draw_methods.clear();
      std::stringstream ss(val());
      for (std::string m; std::getline(ss, m, ',');) {
        for (char& ch : m) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        if (m != "GPTQ" && m != "AWQ" && m != "AWQ+GPTQ") {
          std::fprintf(stderr, "llm_quant_bench: --draw-methods takes gptq, awq, awq+gptq\n");
          return 2;
        }
        a.draw_methods.push_back(m);
      }
    }
    else if (k == "--draw-bits") {
      a.draw_bits.clear();
      std::stringstream ss(val());
      for (std::string b; std::getline(ss, b, ',');) {
        if (b != "3" && b != "4" && b != "8") {
          std::fprintf(stderr, "llm_quant_bench: --draw-bits takes 3, 4, 8\n");
          return 2;
        }
        a.draw_bits.push_back(std::stoi(b));
      }
    }
    else if (k == "--awq-duo-scaling" || k == "--awq-clip") {
      const std::string v = val();
      const bool clip = k == "--awq-clip";
      if (v != "true" && v != "false" && !(clip && v == "auto")) {
        std::fprintf(stderr, "llm_quant_bench: %s must be %s\n", k.c_str(),
                     clip ? "auto, true or false" : "true or false");
        return 2;
      }
      if (!clip) a.awq_duo = v == "true";
      else if (v == "auto") a.awq_clip.reset();
      else a.awq_clip = v == "true";
    }
    else if (k == "--methods") {
      a.methods.clear();
      std::stringstream ss(val());
      for (std::string t; std::getline(ss, t, ',');) {
        if (!std::regex_match(t, std::regex("(rtn|gptq|awq)(-release|-pack)?"))) {
          std::fprintf(stderr, "llm_quant_bench: --methods takes rtn, gptq or awq, each optionally "
                               "with -release or -pack; got '%s'\n", t.c_str());
          return 2;
        }
        a.methods.push_back(t);
      }
    }
    else if (k == "--keep-model") a.keep_model = true;
    else {
      std::fprintf(stderr, "usage: llm_quant_bench [--model PATH] [--eval-tokens N] [--eval-split test|validation] [--calib N] "
                   "[--seq T] [--sections ppl,outlier,draws,gptq-layer,awq-clip-layer,whole-model] [--draws N] [--draw-methods gptq,awq,awq+gptq] [--draw-bits 4,3] [--gptq-tokens N] "
                   "[--threads N] [--model-dir DIR] [--dtype f32|f16|bf16] [--hidden N] [--layers N] [--ffn N] "
                   "[--heads N] [--kv-heads N] [--vocab N] [--methods rtn|gptq|awq[-release|-pack],...] [--calib-batch N] [--awq-tokens N] [--awq-duo-scaling true|false] [--awq-clip auto|true|false] [--keep-model]\n");
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
