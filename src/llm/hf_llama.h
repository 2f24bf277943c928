// Hugging Face Llama checkpoints: config.json + model.safetensors (single, or sharded with
// model.safetensors.index.json), HF tensor names, fp32/fp16/bf16; memory-mapped reads.
#pragma once
#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "models/zoo.h"

namespace gs::llm {

/// LlamaConfig from an HF config.json object: vocab_size, hidden_size, num_hidden_layers,
/// num_attention_heads, num_key_value_heads (default: heads), intermediate_size,
/// max_position_embeddings, rope_theta (default 10000), rms_norm_eps (default 1e-6),
/// tie_word_embeddings (default false). Rejects (gs::Error naming the key) a model_type other
/// than "llama", hidden_act other than "silu", rope_scaling, and attention or MLP biases.
models::LlamaConfig llamaConfigFromHf(const nlohmann::json& j);
/// The HF config.json object of `c` (model_type llama, architectures LlamaForCausalLM).
nlohmann::json llamaConfigToHf(const models::LlamaConfig& c, const std::string& torch_dtype);

/// HF tensor names of a Llama with config c, in HF's order (embed, per layer q/k/v/o, gate/up/
/// down, the two norms, final norm, lm_head unless tied).
std::vector<std::string> hfLlamaTensorNames(const models::LlamaConfig& c);

/// A loaded checkpoint: the zoo graph with the checkpoint's weights bound, and its config.
struct HfLlama {
  models::LlamaConfig config;
  std::unique_ptr<Graph> graph;
  std::string dtype;           ///< storage dtype of the weights ("F32", "F16", "BF16")
  int64_t bytes = 0;           ///< tensor bytes in the checkpoint
  std::vector<std::string> files;  ///< safetensors files read
};

/// Loads directory `dir` (config.json + model.safetensors or model.safetensors.index.json).
/// Weights are memory-mapped: f32 tensors are bound as zero-copy views of the mapping (pages are
/// read when first used); f16/bf16 are converted to f32, unless `keep_dtype`: then they are bound
/// as zero-copy f16/bf16 views too, and the graph runs only after floatParams() (quantizeDecoder
/// converts one block at a time, so an f16 checkpoint never holds a float copy of the whole
/// model). `max_seq` > 0 overrides max_position_embeddings (the rotary / mask tables are
/// [max_seq, ...]). Throws gs::Error naming the file and tensor for a missing tensor, a shape
/// mismatch or an unsupported dtype.
HfLlama loadHfLlama(const std::string& dir, int64_t max_seq = 0, bool keep_dtype = false);

/// Writes graph `g` (a zoo Llama built with `c`) as an HF checkpoint in `dir`: config.json and
/// model.safetensors, or, when `shard_bytes` > 0, model-0000k-of-0000n.safetensors files of at
/// most ~shard_bytes each plus model.safetensors.index.json. `dtype` is kFloat, kHalf or
/// kBFloat16. Returns the files written.
std::vector<std::string> saveHfLlama(const Graph& g, const models::LlamaConfig& c,
                                     const std::string& dir, at::ScalarType dtype = at::kFloat,
                                     int64_t shard_bytes = 0);

}  // namespace gs::llm
