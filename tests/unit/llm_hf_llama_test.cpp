// Hugging Face Llama checkpoints: write a seeded gstick Llama as config.json + safetensors (single
// and sharded, f32/f16/bf16), load it back memory-mapped and compare logits; config and error cases.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "llm/hf_llama.h"
#include "llm/pipeline.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "support/file_util.h"
#include "test_util.h"

namespace gs::llm {
namespace {

namespace fs = std::filesystem;

models::LlamaConfig smallConfig(bool tie) {
  return {.vocab = 64, .dim = 32, .layers = 2, .heads = 4, .kv_heads = 2, .ffn = 48, .max_seq = 16,
          .rms_eps = 1e-6, .tie_embeddings = tie};
}

at::Tensor logits(const Graph& g) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  at::Tensor ids = at::randint(64, {2, 16}, gen, at::kLong);
  Executor ex(g);
  return ex.run({ids})[0];
}

// Makes the norm weights non-trivial so that every tensor matters for the logits.
void perturbNorms(Graph& g) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
  for (Value* p : g.params())
    if (p->name().find("norm.weight") != std::string::npos)
      p->setData(1.0 + 0.1 * at::randn(p->data().sizes(), gen));
}

TEST(LlmHfLlama, Float32RoundTripIsExactAndMapped) {
  for (bool tie : {false, true}) {
    models::LlamaConfig c = smallConfig(tie);
    auto g = models::buildLlama(c, 3);
    perturbNorms(*g);
    const std::string dir = test::tempDir("hf_f32");
    std::vector<std::string> files = saveHfLlama(*g, c, dir);
    EXPECT_EQ(files.size(), 2u);
    HfLlama m = loadHfLlama(dir);
    EXPECT_EQ(m.dtype, "F32");
    EXPECT_EQ(m.config.kv_heads, 2);
    EXPECT_EQ(m.config.tie_embeddings, tie);
    EXPECT_TRUE(at::equal(logits(*m.graph), logits(*g)));
    // f32 weights are views of the file mapping (no copy): the data pointer lies in the mapping,
    // i.e. not in any tensor of the source graph, and equals the file bytes.
    SafetensorsFile f(dir + "/model.safetensors");
    at::Tensor q = m.graph->findValue("model.layers.1.self_attn.q_proj.weight")->data();
    EXPECT_TRUE(at::equal(q, f.tensor("model.layers.1.self_attn.q_proj.weight")));
    EXPECT_NE(q.data_ptr(), g->findValue("model.layers.1.self_attn.q_proj.weight")->data().data_ptr());
    const int64_t n = static_cast<int64_t>(hfLlamaTensorNames(c).size());
    EXPECT_EQ(n, 1 + 2 * 9 + 1 + (tie ? 0 : 1));
  }
}

TEST(LlmHfLlama, ShardedHalfAndBfloat16) {
  models::LlamaConfig c = smallConfig(false);
  auto g = models::buildLlama(c, 4);
  perturbNorms(*g);
  for (at::ScalarType dt : {at::kHalf, at::kBFloat16}) {
    const std::string dir = test::tempDir("hf_shard");
    std::vector<std::string> files = saveHfLlama(*g, c, dir, dt, 8 * 1024);
    ASSERT_GT(files.size(), 4u);  // config, >= 3 shards, index
    nlohmann::json idx = nlohmann::json::parse(readFile(dir + "/model.safetensors.index.json"));
    EXPECT_EQ(idx["weight_map"]["lm_head.weight"].get<std::string>().rfind("model-0000", 0), 0u);
    HfLlama m = loadHfLlama(dir);
    EXPECT_EQ(m.dtype, dt == at::kHalf ? "F16" : "BF16");
    EXPECT_GT(m.files.size(), 2u);
    // Reference: the source model with every HF weight rounded through the storage dtype.
    auto r = g->clone(true);
    for (const std::string& n : hfLlamaTensorNames(c)) {
      Value* v = r->findValue(n);
      v->setData(v->data().to(dt).to(at::kFloat));
    }
    EXPECT_TRUE(at::equal(logits(*m.graph), logits(*r))) << dt;
    EXPECT_GT((logits(*m.graph) - logits(*g)).abs().max().item<float>(), 0);  // really rounded
  }
}

// keep_dtype binds f16 / bf16 weights as views of the checkpoint; quantizeDecoder converts them
// one block at a time and leaves the same model as a load that converted everything up front.
TEST(LlmHfLlama, CompactWeightsAreConvertedPerBlockByThePipeline) {
  models::LlamaConfig c = smallConfig(false);
  auto g = models::buildLlama(c, 6);
  perturbNorms(*g);
  for (at::ScalarType dt : {at::kHalf, at::kBFloat16}) {
    const std::string dir = test::tempDir("hf_compact");
    saveHfLlama(*g, c, dir, dt);
    HfLlama compact = loadHfLlama(dir, 0, true), full = loadHfLlama(dir);
    SafetensorsFile f(dir + "/model.safetensors");
    const at::Tensor& q = compact.graph->findValue("model.layers.1.self_attn.q_proj.weight")->data();
    EXPECT_EQ(q.scalar_type(), dt);  // a view, not a float copy
    EXPECT_TRUE(at::equal(q, f.tensor("model.layers.1.self_attn.q_proj.weight")));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
    const at::Tensor calib = at::randint(64, {4, 16}, gen, at::kLong);
    PtqConfig cfg;
    cfg.weight_bits = 4;
    cfg.group_size = 16;
    cfg.recovery = PrecisionRecovery::Gptq;
    PipelineOptions o;
    int64_t compact_blocks_seen = 0;
    o.on_phase = [&](int64_t block, const std::string& name) {
      // When block 1 calibrates, block 0 is float and block 1's weights are still compact.
      if (block == 1 && name == "calibrate") {
        compact_blocks_seen++;
        EXPECT_EQ(compact.graph->findValue("model.layers.1.mlp.up_proj.weight")->data().scalar_type(), dt);
        EXPECT_EQ(compact.graph->findValue("model.layers.0.post_attention_layernorm.weight")->data().scalar_type(),
                  at::kFloat);
        EXPECT_EQ(compact.graph->findValue("model.embed_tokens.weight")->data().scalar_type(), dt);
      }
    };
    PtqResult a = quantizeDecoder(*compact.graph, calib, cfg, o);
    PtqResult b = quantizeDecoder(*full.graph, calib, cfg);
    EXPECT_EQ(compact_blocks_seen, 1);
    for (const Value* p : compact.graph->params()) {
      EXPECT_NE(p->data().scalar_type(), at::kHalf) << p->name();
      EXPECT_NE(p->data().scalar_type(), at::kBFloat16) << p->name();
    }
    EXPECT_TRUE(at::equal(logits(*compact.graph), logits(*full.graph))) << dt;
    ASSERT_EQ(a.weights.size(), b.weights.size());
    for (const auto& [name, w] : a.weights) EXPECT_TRUE(at::equal(w.q, b.weights.at(name).q)) << name;
  }
}

TEST(LlmHfLlama, ConfigParsingAndErrors) {
  nlohmann::json j = llamaConfigToHf(smallConfig(false), "float32");
  models::LlamaConfig c = llamaConfigFromHf(j);
  EXPECT_EQ(c.ffn, 48);
  EXPECT_EQ(c.rms_eps, 1e-6);
  nlohmann::json k = j;
  k.erase("num_key_value_heads");
  EXPECT_EQ(llamaConfigFromHf(k).kv_heads, 4);  // HF default: MHA
  auto bad = [&](nlohmann::json x, const char* needle) {
    try {
      llamaConfigFromHf(x);
      ADD_FAILURE() << x.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  nlohmann::json x = j;
  x["model_type"] = "mistral";
  bad(x, "model_type 'mistral'");
  x = j;
  x["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  bad(x, "rope_scaling");
  x = j;
  x.erase("hidden_size");
  bad(x, "missing 'hidden_size'");
  // Found by fuzz/fuzz_hf_config: zero heads with a head_dim (was an integer division by zero),
  // a head_dim of the wrong type (was an uncaught JSON exception), sizes beyond memory, an
  // epsilon beyond float range.
  x = j;
  x["num_attention_heads"] = 0;
  x["head_dim"] = 8;
  bad(x, "HF config.json: llama: need dim % heads == 0");
  x = j;
  x["head_dim"] = "8";
  bad(x, "'head_dim' has the wrong type");
  x = j;
  x["num_hidden_layers"] = int64_t{1} << 40;
  bad(x, "out of range");
  x = j;
  x["max_position_embeddings"] = -1;
  bad(x, "must be positive");
  x = j;
  x["rms_norm_eps"] = 1e308;  // was a c10::Error when the float constant was built
  bad(x, "rms_eps must be in (0, 1)");

  // Missing tensor / wrong shape / stray tensor, each named in the message.
  models::LlamaConfig sc = smallConfig(false);
  auto g = models::buildLlama(sc, 1);
  const std::string dir = test::tempDir("hf_bad");
  saveHfLlama(*g, sc, dir);
  SafetensorsFile f(dir + "/model.safetensors");
  TensorFile all = f.readAll();
  auto expectLoadError = [&](std::map<std::string, at::Tensor> t, const char* needle) {
    const std::string d2 = test::tempDir("hf_bad2");
    fs::copy_file(dir + "/config.json", d2 + "/config.json");
    writeSafetensors(d2 + "/model.safetensors", t);
    try {
      loadHfLlama(d2);
      ADD_FAILURE() << "loaded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto t = all.tensors;
  t.erase("model.layers.1.mlp.down_proj.weight");
  expectLoadError(t, "'model.layers.1.mlp.down_proj.weight' is missing");
  t = all.tensors;
  t["model.norm.weight"] = at::ones({31});
  expectLoadError(t, "'model.norm.weight' has shape");
  t = all.tensors;
  t["model.layers.2.mlp.up_proj.weight"] = at::ones({2, 2});
  expectLoadError(t, "unexpected tensor 'model.layers.2.mlp.up_proj.weight'");
  t = all.tensors;
  t["model.layers.0.self_attn.rotary_emb.inv_freq"] = at::ones({4});  // older HF files: ignored
  const std::string d3 = test::tempDir("hf_ok");
  fs::copy_file(dir + "/config.json", d3 + "/config.json");
  writeSafetensors(d3 + "/model.safetensors", t);
  EXPECT_NO_THROW(loadHfLlama(d3));
}

}  // namespace
}  // namespace gs::llm
