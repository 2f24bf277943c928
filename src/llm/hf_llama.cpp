// HF Llama checkpoint reader / writer on top of the zoo Llama builder and the safetensors mmap.
#include "llm/hf_llama.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string_view>

#include "io/safetensors.h"
#include "support/error.h"
#include "support/file_util.h"

namespace gs::llm {

namespace fs = std::filesystem;

namespace {

template <typename T>
T key(const nlohmann::json& j, const char* k) {
  GS_CHECK(j.contains(k), "HF config.json: missing '", k, "'");
  try {
    return j.at(k).get<T>();
  } catch (const nlohmann::json::exception&) {
    GS_FAIL("HF config.json: '", k, "' has the wrong type (", j.at(k).dump(), ")");
  }
}

template <typename T>
T keyOr(const nlohmann::json& j, const char* k, T def) {
  return j.contains(k) && !j.at(k).is_null() ? key<T>(j, k) : def;
}

}  // namespace

models::LlamaConfig llamaConfigFromHf(const nlohmann::json& j) {
  GS_CHECK(j.is_object(), "HF config.json must be a JSON object");
  const std::string mt = keyOr<std::string>(j, "model_type", "llama");
  GS_CHECK(mt == "llama", "HF config.json: model_type '", mt, "' is not supported (llama only)");
  const std::string act = keyOr<std::string>(j, "hidden_act", "silu");
  GS_CHECK(act == "silu", "HF config.json: hidden_act '", act, "' is not supported (silu only)");
  GS_CHECK(!j.contains("rope_scaling") || j.at("rope_scaling").is_null(),
           "HF config.json: rope_scaling is not supported");
  GS_CHECK(!keyOr<bool>(j, "attention_bias", false) && !keyOr<bool>(j, "mlp_bias", false),
           "HF config.json: attention_bias / mlp_bias are not supported");
  models::LlamaConfig c;
  c.vocab = key<int64_t>(j, "vocab_size");
  c.dim = key<int64_t>(j, "hidden_size");
  c.layers = key<int64_t>(j, "num_hidden_layers");
  c.heads = key<int64_t>(j, "num_attention_heads");
  c.kv_heads = keyOr<int64_t>(j, "num_key_value_heads", c.heads);
  c.ffn = key<int64_t>(j, "intermediate_size");
  c.max_seq = key<int64_t>(j, "max_position_embeddings");
  c.rope_theta = keyOr<double>(j, "rope_theta", 10000.0);
  c.rms_eps = keyOr<double>(j, "rms_norm_eps", 1e-6);
  c.tie_embeddings = keyOr<bool>(j, "tie_word_embeddings", false);
  try {
    c.validate();
  } catch (const Error& e) {
    GS_FAIL("HF config.json: ", e.what());
  }
  GS_CHECK(keyOr<int64_t>(j, "head_dim", c.headDim()) == c.headDim(),
           "HF config.json: head_dim != hidden_size / num_attention_heads is not supported");
  return c;
}

nlohmann::json llamaConfigToHf(const models::LlamaConfig& c, const std::string& torch_dtype) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"vocab_size", c.vocab},
          {"hidden_size", c.dim},
          {"num_hidden_layers", c.layers},
          {"num_attention_heads", c.heads},
          {"num_key_value_heads", c.kv_heads},
          {"intermediate_size", c.ffn},
          {"max_position_embeddings", c.max_seq},
          {"rope_theta", c.rope_theta},
          {"rms_norm_eps", c.rms_eps},
          {"tie_word_embeddings", c.tie_embeddings},
          {"hidden_act", "silu"},
          {"attention_bias", false},
          {"rope_scaling", nullptr},
          {"torch_dtype", torch_dtype}};
}

std::vector<std::string> hfLlamaTensorNames(const models::LlamaConfig& c) {
  std::vector<std::string> n{"model.embed_tokens.weight"};
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    for (const char* s : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                          "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
                          "input_layernorm", "post_attention_layernorm"})
      n.push_back(p + s + ".weight");
  }
  n.push_back("model.norm.weight");
  if (!c.tie_embeddings) n.push_back("lm_head.weight");
  return n;
}

HfLlama loadHfLlama(const std::string& dir, int64_t max_seq, bool keep_dtype) {
  const fs::path d(dir);
  const fs::path cfg_path = d / "config.json";
  GS_CHECK(fs::exists(cfg_path), "HF checkpoint '", dir, "': no config.json");
  nlohmann::json j = nlohmann::json::parse(readFile(cfg_path.string()), nullptr, false);
  GS_CHECK(!j.is_discarded(), "'", cfg_path.string(), "' is not valid JSON");
  HfLlama r;
  r.config = llamaConfigFromHf(j);
  if (max_seq > 0) r.config.max_seq = max_seq;

  // name -> file: single file, or the shard index's weight_map.
  std::map<std::string, std::string> where;
  const fs::path single = d / "model.safetensors", index = d / "model.safetensors.index.json";
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files;
  if (fs::exists(index)) {
    nlohmann::json ij = nlohmann::json::parse(readFile(index.string()), nullptr, false);
    GS_CHECK(!ij.is_discarded() && ij.contains("weight_map") && ij["weight_map"].is_object(),
             "'", index.string(), "': not a safetensors index (no weight_map object)");
    for (auto it = ij["weight_map"].begin(); it != ij["weight_map"].end(); ++it) {
      GS_CHECK(it.value().is_string(), "'", index.string(), "': weight_map['", it.key(),
               "'] is not a file name");
      where[it.key()] = (d / it.value().get<std::string>()).string();
    }
  } else {
    GS_CHECK(fs::exists(single), "HF checkpoint '", dir,
             "': neither model.safetensors nor model.safetensors.index.json");
    SafetensorsFile f(single.string());
    for (const std::string& n : f.names()) where[n] = single.string();
  }
  auto open = [&](const std::string& p) -> SafetensorsFile& {
    auto it = files.find(p);
    if (it == files.end()) {
      it = files.emplace(p, std::make_unique<SafetensorsFile>(p)).first;
      r.files.push_back(p);
    }
    return *it->second;
  };

  // Every tensor config.json implies must be in the checkpoint: checked before a graph of
  // config.json's size is built.
  const std::vector<std::string> names = hfLlamaTensorNames(r.config);
  for (const std::string& n : names)
    GS_CHECK(where.count(n), "HF checkpoint '", dir, "': tensor '", n, "' is missing");

  // Every weight is bound from the checkpoint below: build with placeholders so the random
  // initialisation never allocates a float copy of the whole model (peak RSS stays one block).
  models::LlamaConfig shape_only = r.config;
  shape_only.placeholder_weights = true;
  r.graph = models::buildLlama(shape_only, 0);
  std::set<std::string> expected;
  for (const std::string& n : names) {
    expected.insert(n);
    auto it = where.find(n);
    SafetensorsFile& f = open(it->second);
    GS_CHECK(f.contains(n), "'", it->second, "': tensor '", n, "' listed in the index is missing");
    at::Tensor t = f.tensor(n);
    Value* v = r.graph->findValue(n);
    GS_ASSERT(v && v->isParam(), "zoo llama has no parameter ", n);
    GS_CHECK(t.sizes() == v->data().sizes(), "'", it->second, "': tensor '", n, "' has shape ",
             t.sizes(), ", config.json implies ", v->data().sizes());
    const auto st = t.scalar_type();
    GS_CHECK(st == at::kFloat || st == at::kHalf || st == at::kBFloat16, "'", it->second,
             "': tensor '", n, "' has dtype ", safetensorsDtypeName(st),
             " (F32, F16 or BF16 expected)");
    r.dtype = safetensorsDtypeName(st);
    r.bytes += t.numel() * t.element_size();
    v->setData(st == at::kFloat || keep_dtype ? t : t.to(at::kFloat));
  }
  for (const auto& [n, p] : where) {
    const bool ignorable = std::string_view(n).ends_with("rotary_emb.inv_freq");
    GS_CHECK(expected.count(n) || ignorable, "HF checkpoint '", dir, "': unexpected tensor '", n,
             "' (not a Llama weight for this config.json)");
  }
  return r;
}

std::vector<std::string> saveHfLlama(const Graph& g, const models::LlamaConfig& c,
                                     const std::string& dir, at::ScalarType dtype,
                                     int64_t shard_bytes) {
  GS_CHECK(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16,
           "HF checkpoint: dtype must be float32, float16 or bfloat16");
  fs::create_directories(dir);
  const std::string tname = dtype == at::kFloat ? "float32" : dtype == at::kHalf ? "float16" : "bfloat16";
  writeFileAtomic((fs::path(dir) / "config.json").string(), llamaConfigToHf(c, tname).dump(2));
  std::vector<std::map<std::string, at::Tensor>> shards(1);
  int64_t cur = 0, total = 0;
  for (const std::string& n : hfLlamaTensorNames(c)) {
    Value* v = g.findValue(n);
    GS_CHECK(v && v->isParam(), "HF export: graph has no parameter '", n, "'");
    at::Tensor t = v->data().to(dtype).contiguous();
    const int64_t b = t.numel() * t.element_size();
    if (shard_bytes > 0 && cur > 0 && cur + b > shard_bytes) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back()[n] = t;
    cur += b;
    total += b;
  }
  std::vector<std::string> written{(fs::path(dir) / "config.json").string()};
  std::map<std::string, std::string> meta{{"format", "pt"}};
  if (shard_bytes <= 0) {
    const std::string p = (fs::path(dir) / "model.safetensors").string();
    writeSafetensors(p, shards[0], meta);
    written.push_back(p);
    return written;
  }
  nlohmann::json wm = nlohmann::json::object();
  for (size_t k = 0; k < shards.size(); ++k) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, shards.size());
    const std::string p = (fs::path(dir) / name).string();
    writeSafetensors(p, shards[k], meta);
    written.push_back(p);
    for (const auto& [n, t] : shards[k]) wm[n] = name;
  }
  nlohmann::json idx{{"metadata", {{"total_size", total}}}, {"weight_map", wm}};
  const std::string ip = (fs::path(dir) / "model.safetensors.index.json").string();
  writeFileAtomic(ip, idx.dump(2));
  written.push_back(ip);
  return written;
}

}  // namespace gs::llm
