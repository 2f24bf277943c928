// Lowering of LLM PTQ results (MatMulNBits, standard-op dequantization, int8 QDQ) checked against
// the fake-quantized graph in gstick and in ONNX Runtime, and the `llm_ptq` CompAlgo entry.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "algo/registry.h"
#include "data/text_corpus.h"
#include "data/tokenizer.h"
#include "io/onnx.h"
#include "llm/lower.h"
#include "llm/pipeline.h"
#include "models/zoo.h"
#include "ort_runner.h"
#include "runtime/executor.h"
#include "llm_test_util.h"
#include "support/error.h"
#include "test_util.h"

namespace gs::llm {
namespace {

using llm_test::logits;
using llm_test::tinyConfig;
using llm_test::textWindows;

int64_t countOps(const Graph& g, const std::string& op) {
  int64_t n = 0;
  for (const auto& x : g.nodes()) n += x->opType() == op;
  return n;
}

struct Case {
  const char* name;
  PtqConfig cfg;
  int64_t nbits, dequant, qdq;
  /// gstick vs ORT tolerance. Dynamic per-token scales are computed at run time: where x / s
  /// lands within an ulp of a rounding tie, ORT's vectorised Div and ATen's can round to
  /// neighbouring integers, a one-step difference that then propagates.
  double ort_tol = 1e-3;
};

std::vector<Case> cases() {
  std::vector<Case> cs;
  PtqConfig c;
  c.weight_bits = 4;
  c.group_size = 32;
  c.measure_error = false;
  cs.push_back({"W4 g32 RTN -> MatMulNBits", c, 14, 0, 0});
  c.group_size = 0;
  cs.push_back({"W4 per-channel -> MatMulNBits", c, 14, 0, 0});
  PtqConfig c3 = c;
  c3.weight_bits = 3;
  c3.group_size = 32;
  cs.push_back({"W3 g32 -> dequant", c3, 0, 14, 0});
  PtqConfig ao = c;
  ao.group_size = 32;
  ao.recovery = PrecisionRecovery::Gptq;
  ao.act_order = true;
  cs.push_back({"GPTQ act-order W4 g32 -> dequant (g_idx)", ao, 0, 14, 0});
  PtqConfig a8;
  a8.weight_bits = 8;
  a8.group_size = 0;
  a8.weight_symmetric = true;
  a8.act_bits = 8;
  a8.act_granularity = ActGranularity::PerTensor;
  a8.outlier = OutlierSuppression::Smooth;
  a8.measure_error = false;
  cs.push_back({"SmoothQuant W8A8 per-tensor -> QDQ", a8, 0, 0, 14});
  a8.act_granularity = ActGranularity::PerToken;
  cs.push_back({"W8A8 per-token -> QDQ", a8, 0, 0, 14, 2e-2});
  PtqConfig kv;
  kv.weight_bits = 0;
  kv.kv_bits = 8;
  kv.kv_granularity = ActGranularity::PerChannel;
  kv.measure_error = false;
  cs.push_back({"KV int8 static per-channel", kv, 0, 0, 0});
  kv.kv_granularity = ActGranularity::PerToken;
  cs.push_back({"KV int8 dynamic per-token", kv, 0, 0, 0, 2e-2});
  return cs;
}

TEST(LlmConvert, LoweredGraphsMatchFakeQuantInGstickAndOrt) {
  at::Tensor calib = textWindows(TextSplit::Train, 8, 64);
  at::Tensor ids = textWindows(TextSplit::Validation, 1, 64);
  const std::string why = ort::ortMissingReason();
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    auto g = models::buildLlama(tinyConfig(), 11);
    PtqResult r = quantizeDecoder(*g, calib, c.cfg);
    at::Tensor fq = logits(*g, ids);
    LoweringStats st = lowerQuantizedLinears(*g, r.weights, c.cfg.act_bits == 8);
    EXPECT_EQ(st.nbits, c.nbits);
    EXPECT_EQ(st.dequant, c.dequant);
    EXPECT_EQ(st.qdq_int8, c.qdq);
    EXPECT_EQ(countOps(*g, "MatMulNBits"), c.nbits);
    EXPECT_LE(st.bytes_after, st.bytes_before);
    at::Tensor lo = logits(*g, ids);
    EXPECT_LT(test::maxRelDiff(lo, fq), 1e-4);
    if (!why.empty()) continue;
    const std::string dir = test::tempDir("llm_convert");
    exportOnnxFile(*g, dir + "/model.onnx");
    ort::OrtResult o = ort::runOrt(dir + "/model.onnx", {{"input_ids", ids}}, dir);
    const double d = test::maxRelDiff(o.outputs.at("logits"), lo);
    EXPECT_LT(d, c.ort_tol);
    std::printf("%-45s gstick vs ORT max rel diff %.2e\n", c.name, d);
  }
  EXPECT_TRUE(why.empty()) << "ONNX Runtime part not run: " << why << " (run scripts/install-deps.sh)";
}

TEST(LlmConvert, CompAlgoEntry) {
  const AlgoRegistry& reg = AlgoRegistry::global();
  auto algo = reg.create("llm_ptq", Json::parse(R"({"weight_dtype": "int4", "group_size": 32,
      "precision_recovery": "gptq", "calib_samples": 8, "calib_seq": 64,
      "layer_policies": {".*down_proj.weight_t": {"weight_dtype": "int8", "group_size": 0},
                         "model.layers.1.self_attn.o_proj.weight_t": "skip"}})"));
  auto g = models::buildLlama(tinyConfig(), 12);
  at::Tensor ids = textWindows(TextSplit::Validation, 1, 64);
  at::Tensor ref = logits(*g, ids);
  Graph q = algo->apply(std::move(*g));
  at::Tensor fq = logits(q, ids);
  EXPECT_GT((fq - ref).abs().max().item<float>(), 0);
  // The skipped layer keeps its float weight; down_proj is int8 per channel.
  Graph out = algo->convert(std::move(q));
  EXPECT_LT(test::maxRelDiff(logits(out, ids), fq), 1e-4);
  EXPECT_EQ(countOps(out, "MatMulNBits"), 13);
  Node* down = out.findNode("model.layers.0.mlp.down_proj");
  ASSERT_TRUE(down);
  EXPECT_EQ(down->opType(), "MatMulNBits");
  EXPECT_EQ(down->attrInt("bits", 0), 8);
  EXPECT_EQ(out.findNode("model.layers.1.self_attn.o_proj")->opType(), "MatMul");
  SummaryTable t = algo->summary(out);
  bool saw = false;
  for (const SummaryRow& r : t.rows)
    if (r.layer == "model.layers.0.self_attn.q_proj.weight_t") {
      saw = true;
      EXPECT_EQ(r.policy, "W4 g32 asym");
      EXPECT_EQ(r.note, "GPTQ");
      EXPECT_LT(r.metrics.at("out_mse"), r.metrics.at("out_mse_rtn"));
    }
  EXPECT_TRUE(saw);
  // Invalid combinations are rejected when the config is validated.
  try {
    reg.create("llm_ptq", Json::parse(R"({"weight_dtype": "int4", "act_dtype": "int8"})"));
    ADD_FAILURE() << "W4A8 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("W4A8"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gs::llm
