// Export of LLM PTQ results as a GPTQ-layout checkpoint (AutoGPTQ / Hugging Face "gptq" v1:
// qweight / qzeros / scales / g_idx per linear, quantize_config.json, config.json).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "io/gptq_safetensors.h"
#include "ir/graph.h"
#include "llm/ptq_config.h"
#include "llm/quantizer.h"
#include "models/zoo.h"

namespace gs::llm {

/// GPTQ tensors of a quantized linear W [out, in] = scale * (q - zero): the codes transposed to
/// [K = in, N = out] and packed along K, zero points [groups, N] packed along N (stored minus
/// one), scales [groups, N], g_idx [K]. Per-channel weights become group_size -1. Throws
/// gs::Error for bit widths other than 2, 4, 8 or an `out` that does not fill whole int32 words.
gptq::GptqLinear toGptqLinear(const QuantizedWeight& w);

/// Writes a GPTQ checkpoint of a quantized Hugging Face Llama (graph `g` after quantizeDecoder,
/// config `c`, codes `weights` by linear node name) to directory `dir` (created if needed):
/// model.safetensors with `<layer>.qweight/.qzeros/.scales/.g_idx` for every quantized linear
/// (`<layer>` = its HF weight name without ".weight"; for a linear the driver already lowered,
/// its node name) and the other HF tensors (embeddings,
/// norms — which hold folded AWQ scales —, unquantized linears, lm_head) from `g` in float32;
/// quantize_config.json; config.json with a "quantization_config" entry. Each file is written
/// atomically. Weight-only recipes only, one bit width / group size for every quantized layer
/// (gs::Error otherwise). Returns the files written.
std::vector<std::string> writeGptqCheckpoint(const std::string& dir, const Graph& g,
                                             const models::LlamaConfig& c,
                                             const std::map<std::string, QuantizedWeight>& weights,
                                             const PtqConfig& recipe);

/// Throws gs::Error unless `recipe` can be stored as a GPTQ checkpoint: weight-only (no int8
/// activations or KV cache), 2/4/8-bit weights, per-group or per-channel.
void checkGptqExportable(const PtqConfig& recipe);

}  // namespace gs::llm
