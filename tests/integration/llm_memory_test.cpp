// Memory levers of the block-by-block PTQ driver leave the result unchanged: identical codes with
// the float weights kept, released or packed (lowered per block), from an in-memory graph and
// from a memory-mapped HF checkpoint; packed graphs run and match the fake-quantized ones; the
// safetensors mapping drops a released tensor's pages from RSS and re-reads them correctly.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "data/text_corpus.h"
#include "data/tokenizer.h"
#include "io/safetensors.h"
#include "llm/decoder.h"
#include "llm/hf_llama.h"
#include "llm/pipeline.h"
#include "models/zoo.h"
#include "runtime/executor.h"
#include "test_util.h"

namespace gs::llm {
namespace {

models::LlamaConfig tinyConfig() {
  models::LlamaConfig c;
  c.vocab = 256;
  c.dim = 64;
  c.layers = 3;
  c.heads = 4;
  c.kv_heads = 2;
  c.ffn = 160;
  c.max_seq = 64;
  return c;
}

at::Tensor textWindows(TextSplit split, int64_t n, int64_t seq) {
  static TextCorpus corpus = loadBuiltinTextCorpus();
  return calibrationWindows(ByteTokenizer::encode(corpus.split(split).substr(0, 200000)), n, seq);
}

at::Tensor logits(const Graph& g, const at::Tensor& ids) {
  Executor ex(g);
  return ex.run({ids})[0];
}

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
  PtqConfig sq;
  sq.weight_bits = 8;
  sq.group_size = 0;
  sq.weight_symmetric = true;
  sq.act_bits = 8;
  sq.outlier = OutlierSuppression::Smooth;
  return {{"RTN W4 g32", rtn}, {"GPTQ W4 g32", gptq}, {"GPTQ W3 g32 act-order", gptq3},
          {"AWQ W4 g32", awq}, {"SmoothQuant W8A8", sq}};
}

TEST(LlmMemory, ReleaseAndPackKeepTheCodesAndPackedGraphsRun) {
  at::Tensor calib = textWindows(TextSplit::Train, 8, 64);
  at::Tensor ids = textWindows(TextSplit::Validation, 2, 64);
  for (const Recipe& r : recipes()) {
    SCOPED_TRACE(r.name);
    auto g0 = models::buildLlama(tinyConfig(), 5);
    PtqResult kept = quantizeDecoder(*g0, calib, r.cfg);
    const at::Tensor fq = logits(*g0, ids);

    auto g1 = models::buildLlama(tinyConfig(), 5);
    PtqResult released = quantizeDecoder(*g1, calib, r.cfg, {.release_weights = true});
    expectSameCodes(kept, released, "release_weights");
    // Released weights are zero-stride placeholders: no storage of their own.
    const Value* w = g1->findValue("model.layers.2.mlp.down_proj.weight");
    ASSERT_TRUE(w);
    EXPECT_EQ(w->data().stride(0), 0);

    auto g2 = models::buildLlama(tinyConfig(), 5);
    std::vector<std::string> phases;
    PipelineOptions po;
    po.pack_weights = true;
    po.on_phase = [&](int64_t b, const std::string& p) { phases.push_back(std::to_string(b) + p); };
    PtqResult packed = quantizeDecoder(*g2, calib, r.cfg, po);
    expectSameCodes(kept, packed, "pack_weights");
    EXPECT_EQ(phases.front(), "-1prefix");
    EXPECT_EQ(phases.back(), "3end");
    EXPECT_EQ(std::count(phases.begin(), phases.end(), "1quantize"), 1);
    // No quantized linear keeps a float weight; every one is lowered (lm_head stays float).
    for (const LinearRef& l : findLinears(*g2)) EXPECT_EQ(l.name().find("layers."), std::string::npos) << l.name();
    EXPECT_EQ(g2->findValue("model.layers.0.self_attn.q_proj.weight"), nullptr);
    const bool nbits = r.cfg.act_bits == 0 && r.cfg.weight_bits == 4;
    EXPECT_EQ(countOps(*g2, "MatMulNBits"), nbits ? 21 : 0);
    if (r.cfg.act_bits == 8) EXPECT_EQ(countOps(*g2, "DequantizeLinear") >= 21, true);
    // The packed graph computes the fake-quantized function (up to float rounding).
    EXPECT_LT(test::maxRelDiff(logits(*g2, ids), fq), 1e-4);
  }
}

TEST(LlmMemory, MappedCheckpointGivesTheSameCodesAsInMemory) {
  at::Tensor calib = textWindows(TextSplit::Train, 8, 64);
  auto src = models::buildLlama(tinyConfig(), 9);
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

int64_t rssFileKb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("RssFile:", 0) == 0) return std::stoll(line.substr(8));
  return -1;
}

TEST(LlmMemory, ReleasedSafetensorsViewsLeaveRssAndReadBackCorrectly) {
  const std::string path = test::tempDir("llm_memory_st") + "/t.safetensors";
  const int64_t n = 4 << 20;  // 16 MiB of float32 per tensor
  at::Tensor a = at::arange(n, at::kFloat), b = -at::arange(n, at::kFloat);
  writeSafetensors(path, {{"a", a}, {"b", b}});
  SafetensorsFile f(path);
  at::Tensor va = f.tensor("a");
  const int64_t before = rssFileKb();
  ASSERT_GE(before, 0);
  EXPECT_EQ(va.sum().item<double>(), a.sum().item<double>());  // touches every page of "a"
  const int64_t touched = rssFileKb();
  EXPECT_GT(touched - before, 15 * 1024) << "reading 16 MiB through the mapping";
  // A second view of the same tensor keeps the pages (and private writes) alive.
  // (Element n / 2 lies on a page wholly inside "a"; the first and last pages are shared with the
  // header / "b" and are never dropped.)
  at::Tensor va2 = f.tensor("a");
  va2[n / 2] = 1234.5f;  // copy-on-write: private to the process, the file is unchanged
  va = at::Tensor();
  EXPECT_EQ(va2[n / 2].item<float>(), 1234.5f);
  const int64_t one_left = rssFileKb();
  EXPECT_GT(one_left - before, 12 * 1024) << "pages dropped while a view was alive";
  va2 = at::Tensor();
  const int64_t released = rssFileKb();
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
  const int64_t read_b = rssFileKb();
  EXPECT_TRUE(dropMappedPages(vb));
  const int64_t dropped_b = rssFileKb();
  EXPECT_GT(read_b - dropped_b, 12 * 1024) << "paged out while referenced";
  EXPECT_TRUE(at::equal(vb, b));
  EXPECT_FALSE(dropMappedPages(b));  // heap memory: not a mapping, left alone
  EXPECT_FALSE(dropMappedPages(at::Tensor()));
}

}  // namespace
}  // namespace gs::llm
