// Fuzz target: the config.json of a Hugging Face Llama checkpoint, written next to a fixed small
// checkpoint (model.safetensors of a 2-layer Llama built here) and loaded with loadHfLlama as
// `gstick compress` does. An input starting with '{' is the config.json text itself; any other
// input is a recipe of (key, value) byte pairs applied to the checkpoint's own config, so that
// byte mutations reach every field with zeros, negatives, huge numbers, wrong types and nulls.
// Configs that match the checkpoint load and run on a short input; everything else must fail
// with gs::Error (sizes out of range, wrong types, missing tensors, shape mismatches), never
// crash or exhaust memory.
#include <ATen/ATen.h>
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "llm/hf_llama.h"
#include "models/zoo.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace {

/// Created once; removed at exit (the string is never destroyed, so the exit handler can read it).
const std::string& checkpointDir() {
  static const std::string& dir = *new std::string([] {
    std::string t = (std::filesystem::temp_directory_path() / "gs-fuzz-hf-XXXXXX").string();
    if (!mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed");
    gs::models::LlamaConfig c;
    c.vocab = 32;
    c.dim = 16;
    c.layers = 2;
    c.heads = 2;
    c.kv_heads = 1;
    c.ffn = 24;
    c.max_seq = 16;
    gs::llm::saveHfLlama(*gs::models::buildLlama(c, 1), c, t);
    std::filesystem::copy_file(t + "/config.json", t + "/config.json.orig");
    std::atexit([] { std::filesystem::remove_all(checkpointDir()); });
    return t;
  }());
  return dir;
}

/// The checkpoint's config.json with the recipe's (key, value) pairs applied.
std::string recipeConfig(const uint8_t* data, size_t size) {
  static const char* keys[] = {"vocab_size", "hidden_size", "num_hidden_layers",
                               "num_attention_heads", "num_key_value_heads", "intermediate_size",
                               "max_position_embeddings", "rope_theta", "rms_norm_eps",
                               "tie_word_embeddings", "head_dim", "model_type", "hidden_act",
                               "rope_scaling", "attention_bias", "mlp_bias"};
  static const nlohmann::json values[] = {
      0, -1, 1, 2, 3, 4, 8, 16, 24, 32, int64_t{1} << 40, -(int64_t{1} << 62), 1.5, -0.0, 1e308,
      "llama", "mistral", "silu", "gelu", true, false, nullptr, nlohmann::json::array({2}),
      nlohmann::json::object()};
  constexpr size_t nk = sizeof(keys) / sizeof(keys[0]), nv = sizeof(values) / sizeof(values[0]);
  std::ifstream f(checkpointDir() + "/config.json.orig");
  nlohmann::json j = nlohmann::json::parse(f);
  for (size_t i = 0; i + 1 < size; i += 2) {
    const char* k = keys[data[i] % nk];
    if (data[i + 1] == 0xff) j.erase(k);
    else j[k] = values[data[i + 1] % nv];
  }
  return j.dump();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = checkpointDir();
  const std::string text = size > 0 && data[0] == '{'
                               ? std::string(reinterpret_cast<const char*>(data), size)
                               : recipeConfig(data, size);
  std::ofstream(dir + "/config.json", std::ios::binary | std::ios::trunc) << text;
  try {
    gs::llm::HfLlama m = gs::llm::loadHfLlama(dir);
    const int64_t t = std::min<int64_t>(4, m.config.max_seq);
    at::Tensor ids = at::arange(t, at::kLong).remainder(m.config.vocab).unsqueeze(0);
    at::Tensor logits = gs::Executor(*m.graph).run({ids})[0];
    GS_ASSERT(logits.sizes() == at::IntArrayRef({1, t, m.config.vocab}),
              "loaded checkpoint gives logits of shape ", logits.sizes());
  } catch (const gs::Error& e) {
    if (std::string(e.what()).rfind("internal error", 0) == 0) throw;
  }
  return 0;
}
