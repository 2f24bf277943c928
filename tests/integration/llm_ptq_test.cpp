// Block-by-block LLM PTQ on a seeded tiny Llama with real text activations: GPTQ below RTN on
// every layer, AWQ / SmoothQuant folding is function-preserving, SmoothQuant recovers W8A8 on
// injected outliers, KV-cache int8, W8 RTN, hyper-parameter cache reuse; the memory levers
// (release / pack the float weights, mmapped checkpoints whose released pages leave RSS) give
// identical codes and runnable graphs.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "data/text_corpus.h"
#include "data/tokenizer.h"
#include "io/safetensors.h"
#include "llm/decoder.h"
#include "llm/hf_llama.h"
#include "llm/pipeline.h"
#include "models/zoo.h"
#include "llm_test_util.h"
#include "runtime/executor.h"
#include "test_util.h"

namespace gs::llm {
namespace {

using llm_test::logits;
using llm_test::tinyConfig;
using llm_test::textWindows;

double mse(const at::Tensor& a, const at::Tensor& b) { return (a - b).square().mean().item<double>(); }

std::unique_ptr<Graph> tinyLlama() { return models::buildLlama(tinyConfig(), 7); }

// W8A8: int8 symmetric per-channel weights, int8 activations.
PtqConfig w8a8(ActGranularity act) {
  PtqConfig c;
  c.weight_bits = 8;
  c.group_size = 0;
  c.weight_symmetric = true;
  c.act_bits = 8;
  c.act_granularity = act;
  return c;
}

TEST(LlmPtq, GptqBelowRtnOnEveryLayer) {
  at::Tensor calib = textWindows(TextSplit::Train, 16, 64);
  for (int bits : {4, 3}) {
    auto g = tinyLlama();
    PtqConfig cfg;
    cfg.weight_bits = bits;
    cfg.group_size = 32;
    cfg.recovery = PrecisionRecovery::Gptq;
    PtqResult r = quantizeDecoder(*g, calib, cfg);
    ASSERT_EQ(r.layers.size(), 14u);  // 7 linears x 2 blocks
    for (const LayerReport& l : r.layers) {
      ASSERT_GT(l.err_rtn, 0) << l.name;
      EXPECT_LT(l.err, l.err_rtn) << l.name << " W" << bits;
    }
    EXPECT_EQ(r.weights.size(), 14u);
    // The graph holds the dequantized codes.
    const QuantizedWeight& q = r.weights.at("model.layers.1.mlp.down_proj");
    at::Tensor w = g->findValue("model.layers.1.mlp.down_proj.weight")->data();
    EXPECT_TRUE(at::allclose(w, q.dequantize()));
  }
}

TEST(LlmPtq, FoldingScalesIsFunctionPreserving) {
  auto g = tinyLlama();
  at::Tensor ids = textWindows(TextSplit::Validation, 2, 64);
  at::Tensor ref = logits(*g, ids);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  std::map<std::string, std::string> folds;
  for (const DecoderBlock& b : findDecoderBlocks(*g)) {
    std::map<std::string, std::vector<LinearRef>> groups;
    for (const LinearRef& l : b.linears) groups[l.input()->name()].push_back(l);
    for (auto& [in, ls] : groups) {
      FoldTarget t = findFoldTarget(*g, g->findValue(in));
      folds[ls.front().name()] = t.describe();
      if (t.kind == FoldTarget::None) continue;
      at::Tensor s = at::exp(at::randn({ls.front().inFeatures()}, gen) * 0.7);
      foldInverseScales(t, s);
      for (const LinearRef& l : ls) l.setWeightOI(l.weightOI() * s);
    }
  }
  EXPECT_EQ(folds["model.layers.0.self_attn.q_proj"], "norm 'model.layers.0.input_layernorm.weight'");
  EXPECT_EQ(folds["model.layers.1.mlp.gate_proj"],
            "norm 'model.layers.1.post_attention_layernorm.weight'");
  EXPECT_EQ(folds["model.layers.1.mlp.down_proj"], "linear 'model.layers.1.mlp.up_proj'");
  EXPECT_EQ(folds["model.layers.0.self_attn.o_proj"], "none");  // GQA: v heads are shared
  EXPECT_LT(test::maxRelDiff(logits(*g, ids), ref), 1e-4);
}

TEST(LlmPtq, AwqReducesBlockErrorAndCacheIsReused) {
  at::Tensor calib = textWindows(TextSplit::Train, 16, 64);
  const std::string cache = test::tempDir("llm_awq") + "/awq.json";
  PtqConfig cfg;
  cfg.weight_bits = 3;
  cfg.group_size = 32;
  cfg.outlier = OutlierSuppression::Awq;
  auto g1 = tinyLlama();
  PtqResult r1 = quantizeDecoder(*g1, calib, cfg, {.cache_path = cache});
  double e = 0, e_rtn = 0;
  for (const LayerReport& l : r1.layers) {
    e += l.err;
    e_rtn += l.err_rtn;
  }
  EXPECT_LT(e, e_rtn);
  EXPECT_EQ(r1.layers[0].fold, "norm 'model.layers.0.input_layernorm.weight'");
  ASSERT_TRUE(std::filesystem::exists(cache));
  // Second run from the cache (different calibration data: the searched scales must come from
  // the cache, so the norms they were folded into are identical; clipping is re-searched).
  auto g2 = tinyLlama();
  quantizeDecoder(*g2, textWindows(TextSplit::Train, 4, 32), cfg, {.cache_path = cache});
  for (const char* n : {"model.layers.0.input_layernorm.weight",
                        "model.layers.1.post_attention_layernorm.weight"})
    EXPECT_TRUE(at::equal(g1->findValue(n)->data(), g2->findValue(n)->data())) << n;
}

// AWQ scores each group on the region its input feeds before the residual stream (AutoAWQ's
// module2inspect): q/k/v -> the attention through o_proj, gate/up -> the MLP through down_proj,
// o_proj / down_proj -> the layer alone. The region, run standalone on the values captured from
// the full model, reproduces the model's own output of it.
TEST(LlmPtq, AwqInspectRegionsEndAtTheResidualStream) {
  auto g = tinyLlama();
  const DecoderBlock b = findDecoderBlocks(*g)[1];
  const std::string p = b.prefix + ".";
  auto region = [&](const std::string& x) { return extractSubgraph(*g, inspectRegion(b.nodes, g->findValue(x))); };
  auto has = [&](const Subgraph& s, const std::string& node) { return s.graph->findNode(node) != nullptr; };
  Subgraph attn = region(p + "input_layernorm.mul");
  EXPECT_EQ(attn.outputs, std::vector<std::string>{p + "self_attn.o_proj"});
  for (const char* n : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.softmax",
                        "self_attn.q_rotary.add", "self_attn.o_proj", "self_attn.o_proj.weight_t"})
    EXPECT_TRUE(has(attn, p + n)) << n;
  EXPECT_FALSE(has(attn, p + "residual1"));
  EXPECT_FALSE(has(attn, p + "post_attention_layernorm.mul"));
  Subgraph mlp = region(p + "post_attention_layernorm.mul");
  EXPECT_EQ(mlp.outputs, std::vector<std::string>{p + "mlp.down_proj"});
  EXPECT_TRUE(has(mlp, p + "mlp.act_fn"));
  EXPECT_FALSE(has(mlp, p + "residual2"));
  Subgraph o = region(p + "self_attn.merge.reshape");
  EXPECT_EQ(o.outputs, std::vector<std::string>{p + "self_attn.o_proj"});
  EXPECT_EQ(o.graph->nodes().size(), 2u);  // o_proj and its weight transpose
  EXPECT_EQ(region(p + "mlp.mul").outputs, std::vector<std::string>{p + "mlp.down_proj"});

  // Standalone run on captured values == the full model's values.
  at::Tensor ids = textWindows(TextSplit::Validation, 2, 32);
  std::map<std::string, at::Tensor> seen;
  Executor full(*g);
  full.setObserver([&](const Node& n, const std::vector<at::Tensor>&, const std::vector<at::Tensor>& out) {
    for (size_t k = 0; k < out.size(); ++k)
      if (n.output(k)) seen[n.output(k)->name()] = out[k];
  });
  full.run({ids});
  for (const Subgraph* s : {&attn, &mlp}) {
    std::vector<at::Tensor> in;
    for (const std::string& n : s->inputs) {
      ASSERT_TRUE(seen.count(n)) << n;
      in.push_back(seen.at(n));
    }
    Executor ex(*s->graph);
    EXPECT_LT(test::maxRelDiff(ex.run(in)[0], seen.at(s->outputs[0])), 1e-6) << s->outputs[0];
  }
}

// Function-preserving outlier injection: RMSNorm channel c of block 0 scaled up by 50 and the
// q/k/v input column c scaled down by 50.
void injectOutlier(Graph& g, int64_t c) {
  Value* nw = g.findValue("model.layers.0.input_layernorm.weight");
  at::Tensor w = nw->data().clone();
  w[c] *= 50;
  nw->setData(w);
  for (const LinearRef& l : findLinears(g)) {
    if (l.name().rfind("model.layers.0.self_attn.", 0) != 0 || l.name().find("o_proj") != std::string::npos)
      continue;
    at::Tensor wt = l.weightOI();
    wt.select(1, c).div_(50);
    l.setWeightOI(wt);
  }
}

TEST(LlmPtq, SmoothQuantRecoversW8A8OnInjectedOutliers) {
  at::Tensor calib = textWindows(TextSplit::Train, 8, 64);
  at::Tensor ids = textWindows(TextSplit::Validation, 2, 64);
  auto base = tinyLlama();
  at::Tensor ref = logits(*base, ids);
  auto run = [&](bool smooth) {
    auto g = tinyLlama();
    injectOutlier(*g, 5);
    EXPECT_LT(test::maxRelDiff(logits(*g, ids), ref), 1e-4);  // fp32 unchanged
    PtqConfig cfg = w8a8(ActGranularity::PerTensor);
    if (smooth) cfg.outlier = OutlierSuppression::Smooth;
    PtqResult r = quantizeDecoder(*g, calib, cfg);
    EXPECT_EQ(r.act_scales.size(), 8u);  // qkv, o, gate/up, down per block
    return mse(logits(*g, ids), ref);
  };
  const double naive = run(false), sq = run(true);
  EXPECT_LT(sq, 0.25 * naive) << "naive " << naive << " smooth " << sq;
  // Without outliers, W8A8 per-tensor is already close: the injected outlier is what hurts.
  auto g = tinyLlama();
  PtqConfig cfg = w8a8(ActGranularity::PerTensor);
  quantizeDecoder(*g, calib, cfg);
  EXPECT_LT(mse(logits(*g, ids), ref), 0.25 * naive);
}

TEST(LlmPtq, KvCacheInt8AndW8Rtn) {
  at::Tensor calib = textWindows(TextSplit::Train, 8, 64);
  at::Tensor ids = textWindows(TextSplit::Validation, 2, 64);
  auto base = tinyLlama();
  at::Tensor ref = logits(*base, ids);
  const double scale = ref.square().mean().item<double>();
  for (ActGranularity gran : {ActGranularity::PerToken, ActGranularity::PerChannel}) {
    auto g = tinyLlama();
    PtqConfig cfg;
    cfg.weight_bits = 0;
    cfg.kv_bits = 8;
    cfg.kv_granularity = gran;
    quantizeDecoder(*g, calib, cfg);
    int quant_nodes = 0;
    for (const auto& n : g->nodes()) quant_nodes += n->name().find("_cache_quant.round") != std::string::npos;
    EXPECT_EQ(quant_nodes, 4);  // K and V in 2 blocks
    const double e = mse(logits(*g, ids), ref);
    EXPECT_GT(e, 0);
    EXPECT_LT(e, 1e-4 * scale);
  }
  auto g = tinyLlama();
  PtqConfig cfg;
  cfg.weight_bits = 8;
  cfg.group_size = 0;
  quantizeDecoder(*g, calib, cfg);
  const double e8 = mse(logits(*g, ids), ref);
  auto g4 = tinyLlama();
  cfg.weight_bits = 4;
  quantizeDecoder(*g4, calib, cfg);
  const double e4 = mse(logits(*g4, ids), ref);
  EXPECT_LT(e8, 0.01 * e4);  // 16x finer steps: ~256x smaller squared error
}

// ---- memory levers of the driver (release / pack / mmapped checkpoints) leave the result
// unchanged; the safetensors mapping gives released pages back.

void expectSameCodes(const PtqResult& a, const PtqResult& b, const std::string& what) {
  ASSERT_EQ(a.weights.size(), b.weights.size()) << what;
  for (const auto& [name, w] : a.weights) {
    const QuantizedWeight& v = b.weights.at(name);
    EXPECT_TRUE(at::equal(w.q, v.q)) << what << " " << name;
    EXPECT_TRUE(at::equal(w.scale, v.scale)) << what << " " << name;
    EXPECT_TRUE(at::equal(w.zero, v.zero)) << what << " " << name;
    EXPECT_TRUE(at::equal(w.g_idx, v.g_idx)) << what << " " << name;
  }
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) EXPECT_EQ(a.layers[i].err, b.layers[i].err) << what;
}

int64_t countOps(const Graph& g, const std::string& op) {
  int64_t n = 0;
  for (const auto& up : g.nodes()) n += up->opType() == op;
  return n;
}

struct Recipe {
  std::string name;
  PtqConfig cfg;
};

std::vector<Recipe> recipes() {
  PtqConfig rtn;
  rtn.weight_bits = 4;
  rtn.group_size = 32;
  PtqConfig gptq = rtn;
  gptq.recovery = PrecisionRecovery::Gptq;
  PtqConfig gptq3 = gptq;  // int3 + act-order: lowered to uint8 codes, not MatMulNBits
  gptq3.weight_bits = 3;
  gptq3.act_order = true;
  PtqConfig awq = rtn;
  awq.outlier = OutlierSuppression::Awq;
  PtqConfig sq = w8a8(ActGranularity::PerToken);
  sq.outlier = OutlierSuppression::Smooth;
  return {{"RTN W4 g32", rtn}, {"GPTQ W4 g32", gptq}, {"GPTQ W3 g32 act-order", gptq3},
          {"AWQ W4 g32", awq}, {"SmoothQuant W8A8", sq}};
}

TEST(LlmMemory, ReleaseAndPackKeepTheCodesAndPackedGraphsRun) {
  at::Tensor calib = textWindows(TextSplit::Train, 8, 64);
  at::Tensor ids = textWindows(TextSplit::Validation, 2, 64);
  for (const Recipe& r : recipes()) {
    SCOPED_TRACE(r.name);
    auto g0 = tinyLlama();
    PtqResult kept = quantizeDecoder(*g0, calib, r.cfg);
    const at::Tensor fq = logits(*g0, ids);

    auto g1 = tinyLlama();
    PtqResult released = quantizeDecoder(*g1, calib, r.cfg, {.release_weights = true});
    expectSameCodes(kept, released, "release_weights");
    // Released weights are zero-stride placeholders: no storage of their own.
    const Value* w = g1->findValue("model.layers.1.mlp.down_proj.weight");
    ASSERT_TRUE(w);
    EXPECT_EQ(w->data().stride(0), 0);

    auto g2 = tinyLlama();
    std::vector<std::string> phases;
    PipelineOptions po;
    po.pack_weights = true;
    po.on_phase = [&](int64_t b, const std::string& p) { phases.push_back(std::to_string(b) + p); };
    PtqResult packed = quantizeDecoder(*g2, calib, r.cfg, po);
    expectSameCodes(kept, packed, "pack_weights");
    EXPECT_EQ(phases.front(), "-1prefix");
    EXPECT_EQ(phases.back(), "2end");
    EXPECT_EQ(std::count(phases.begin(), phases.end(), "1quantize"), 1);
    // No quantized linear keeps a float weight; every one is lowered (lm_head stays float).
    for (const LinearRef& l : findLinears(*g2)) EXPECT_EQ(l.name().find("layers."), std::string::npos) << l.name();
    EXPECT_EQ(g2->findValue("model.layers.0.self_attn.q_proj.weight"), nullptr);
    const bool nbits = r.cfg.act_bits == 0 && r.cfg.weight_bits == 4;
    EXPECT_EQ(countOps(*g2, "MatMulNBits"), nbits ? 14 : 0);
    if (r.cfg.act_bits == 8) EXPECT_EQ(countOps(*g2, "DequantizeLinear") >= 14, true);
    // The packed graph computes the fake-quantized function (up to float rounding).
    const at::Tensor packed_logits = logits(*g2, ids);
    EXPECT_LT(test::maxRelDiff(packed_logits, fq), 1e-4);

    // Without the codes (what `gstick compress` does for an ONNX output): the same packed graph
    // and reports, no integer codes held.
    auto g3 = tinyLlama();
    PtqResult lean = quantizeDecoder(*g3, calib, r.cfg, {.pack_weights = true, .keep_codes = false});
    EXPECT_TRUE(lean.weights.empty());
    ASSERT_EQ(lean.layers.size(), packed.layers.size());
    for (size_t i = 0; i < lean.layers.size(); ++i) EXPECT_EQ(lean.layers[i].err, packed.layers[i].err);
    EXPECT_TRUE(at::equal(logits(*g3, ids), packed_logits));
  }
}

TEST(LlmPtq, LayerErrorFromCalibrationRowsMatchesTheHessianForm) {
  // 8 windows x 64 tokens in 2 forward chunks: 512 rows per linear input.
  at::Tensor calib = textWindows(TextSplit::Train, 8, 64);
  for (PrecisionRecovery rec : {PrecisionRecovery::None, PrecisionRecovery::Gptq}) {
    SCOPED_TRACE(rec == PrecisionRecovery::Gptq ? "GPTQ" : "RTN");
    PtqConfig cfg;
    cfg.weight_bits = 4;
    cfg.group_size = 32;
    cfg.recovery = rec;
    auto g0 = tinyLlama();
    PtqResult exact = quantizeDecoder(*g0, calib, cfg);  // error_rows 0: from the Hessian
    PtqConfig all = cfg;
    all.error_rows = 512;  // every row: the same mean over all calibration tokens
    auto g1 = tinyLlama();
    PtqResult rows = quantizeDecoder(*g1, calib, all, {.pack_weights = true});
    PtqConfig few = cfg;
    few.error_rows = 64;
    auto g2 = tinyLlama();
    PtqResult sampled = quantizeDecoder(*g2, calib, few, {.pack_weights = true});
    ASSERT_EQ(rows.layers.size(), exact.layers.size());
    ASSERT_EQ(sampled.layers.size(), exact.layers.size());
    for (size_t i = 0; i < exact.layers.size(); ++i) {
      const LayerReport &e = exact.layers[i], &r = rows.layers[i], &s = sampled.layers[i];
      ASSERT_GT(e.err, 0) << e.name;
      // trace(D H D^T) / 2 with H = 2/n sum x x^T is mean_x ||D x||^2: equal up to float32
      // rounding of H and of the products.
      EXPECT_NEAR(r.err, e.err, 1e-4 * e.err) << e.name;
      EXPECT_NEAR(r.err_rtn, e.err_rtn, 1e-4 * e.err_rtn) << e.name;
      // A 64-row strided sample estimates the same quantity.
      EXPECT_NEAR(s.err_rtn, e.err_rtn, 0.5 * e.err_rtn) << e.name;
      if (rec == PrecisionRecovery::Gptq) EXPECT_LT(s.err, s.err_rtn) << e.name;
    }
    // How the error is measured does not change the result (GPTQ gets H either way).
    for (const auto& [name, w] : exact.weights) {
      EXPECT_TRUE(at::equal(w.q, rows.weights.at(name).q)) << name;
      EXPECT_TRUE(at::equal(w.q, sampled.weights.at(name).q)) << name;
    }
  }
}

TEST(LlmMemory, MappedCheckpointGivesTheSameCodesAsInMemory) {
  at::Tensor calib = textWindows(TextSplit::Train, 8, 64);
  auto src = tinyLlama();
  const std::string dir = test::tempDir("llm_memory_hf");
  saveHfLlama(*src, tinyConfig(), dir, at::kFloat, /*shard_bytes=*/200000);
  PtqConfig cfg;
  cfg.weight_bits = 4;
  cfg.group_size = 32;
  cfg.recovery = PrecisionRecovery::Gptq;
  auto mem = src->clone(false);
  PtqResult a = quantizeDecoder(*mem, calib, cfg);
  HfLlama hf = loadHfLlama(dir);
  PtqResult b = quantizeDecoder(*hf.graph, calib, cfg, {.pack_weights = true});
  expectSameCodes(a, b, "mmapped + pack_weights");
  // The checkpoint's own files are untouched by the driver's in-place work.
  HfLlama again = loadHfLlama(dir);
  for (const char* n : {"model.layers.1.mlp.up_proj.weight", "model.layers.0.input_layernorm.weight"})
    EXPECT_TRUE(at::equal(again.graph->findValue(n)->data(), src->findValue(n)->data())) << n;
}

TEST(LlmMemory, ReleasedSafetensorsViewsLeaveRssAndReadBackCorrectly) {
  const std::string path = test::tempDir("llm_memory_st") + "/t.safetensors";
  const int64_t n = 4 << 20;  // 16 MiB of float32 per tensor
  at::Tensor a = at::arange(n, at::kFloat), b = -at::arange(n, at::kFloat);
  writeSafetensors(path, {{"a", a}, {"b", b}});
  SafetensorsFile f(path);
  at::Tensor va = f.tensor("a");
  const int64_t before = test::rssFileKb();
  ASSERT_GE(before, 0);
  EXPECT_EQ(va.sum().item<double>(), a.sum().item<double>());  // touches every page of "a"
  const int64_t touched = test::rssFileKb();
  EXPECT_GT(touched - before, 15 * 1024) << "reading 16 MiB through the mapping";
  // A second view of the same tensor keeps the pages (and private writes) alive.
  // (Element n / 2 lies on a page wholly inside "a"; the first and last pages are shared with the
  // header / "b" and are never dropped.)
  at::Tensor va2 = f.tensor("a");
  va2[n / 2] = 1234.5f;  // copy-on-write: private to the process, the file is unchanged
  va = at::Tensor();
  EXPECT_EQ(va2[n / 2].item<float>(), 1234.5f);
  const int64_t one_left = test::rssFileKb();
  EXPECT_GT(one_left - before, 12 * 1024) << "pages dropped while a view was alive";
  va2 = at::Tensor();
  const int64_t released = test::rssFileKb();
  // Other mappings (code pages, the fault-around of "b") move the counter by up to ~2 MB (the
  // kernel also batches RSS counter updates).
  EXPECT_GT(one_left - released, 12 * 1024) << "last view released: its pages leave RSS";
  std::printf("RssFile: %lld kB before reading, +%lld after reading 16 MiB, +%lld with one view "
              "left, +%lld after releasing it\n", static_cast<long long>(before),
              static_cast<long long>(touched - before), static_cast<long long>(one_left - before),
              static_cast<long long>(released - before));
  // A new view reads the file again (the private write is gone, as nobody could see it).
  at::Tensor va3 = f.tensor("a");
  EXPECT_EQ(va3[n / 2].item<float>(), static_cast<float>(n / 2));
  EXPECT_TRUE(at::equal(va3, a));
  va3 = at::Tensor();

  // dropMappedPages: a view that stays alive gives its clean pages back and reads them again.
  at::Tensor vb = f.tensor("b");
  EXPECT_EQ(vb.sum().item<double>(), b.sum().item<double>());
  const int64_t read_b = test::rssFileKb();
  EXPECT_TRUE(dropMappedPages(vb));
  const int64_t dropped_b = test::rssFileKb();
  EXPECT_GT(read_b - dropped_b, 12 * 1024) << "paged out while referenced";
  EXPECT_TRUE(at::equal(vb, b));
  EXPECT_FALSE(dropMappedPages(b));  // heap memory: not a mapping, left alone
  EXPECT_FALSE(dropMappedPages(at::Tensor()));
}

}  // namespace
}  // namespace gs::llm
