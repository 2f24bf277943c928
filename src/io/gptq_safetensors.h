// GPTQ-layout quantized checkpoints (AutoGPTQ / Hugging Face "gptq" format, checkpoint_format
// "gptq" = v1): qweight / qzeros / scales / g_idx tensors per linear layer in safetensors, plus
// quantize_config.json; conversion from/to MatMulNBits weights.
//
// Layout of one linear layer `<prefix>` (y = x @ W, W[K, N]; bits b in {2, 4, 8}, p = 32 / b):
//   <prefix>.qweight  int32 [K / p, N]        qweight[i, n] bits [b*j, b*j+b) = q[i*p + j, n]
//   <prefix>.qzeros   int32 [n_groups, N / p] qzeros[g, i] bits [b*j, b*j+b) = (zp[g, i*p + j] - 1)
//                                             mod 2^b  (v1 stores zero point minus one)
//   <prefix>.scales   float16 [n_groups, N]
//   <prefix>.g_idx    int32 [K]                group of input row k (k / group_size unless act-order)
//   <prefix>.bias     float16 [N]              optional
//   W[k, n] = (q[k, n] - zp[g_idx[k], n]) * scales[g_idx[k], n]
// n_groups = ceil(K / group_size) (group_size -1 in the config = one group over K). Words are
// little-endian int32; bit 31 set reads as a negative value.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>

#include "quant/int4_pack.h"

namespace gs::gptq {

/// One quantized linear layer in GPTQ layout.
struct GptqLinear {
  int bits = 4;
  int64_t group_size = 128;  ///< -1: one group over K (per-channel)
  at::Tensor qweight;        ///< int32 [K * bits / 32, N]
  at::Tensor qzeros;         ///< int32 [n_groups, N * bits / 32]
  at::Tensor scales;         ///< float16 [n_groups, N]
  at::Tensor g_idx;          ///< int32 [K]
  at::Tensor bias;           ///< float16 [N] or undefined

  int64_t K() const { return qweight.size(0) * 32 / bits; }
  int64_t N() const { return qweight.size(1); }
};

/// Packs codes q [K, N] (values in [0, 2^bits)) along K into int32 words: [K*bits/32, N].
at::Tensor packQweight(const at::Tensor& q, int bits);
/// Inverse of packQweight: int32 [K*bits/32, N] -> int64 codes [K, N].
at::Tensor unpackQweight(const at::Tensor& qweight, int bits);
/// Packs true zero points zp [G, N] along N, storing zp - 1 (v1): int32 [G, N*bits/32].
at::Tensor packQzeros(const at::Tensor& zp, int bits);
/// Inverse of packQzeros: the true zero points (stored + 1), int64 [G, N].
at::Tensor unpackQzeros(const at::Tensor& qzeros, int bits);

/// Converts a MatMulNBits weight (block_size = group size) to GPTQ layout. `g_idx` (int [K]) may
/// give act-order groups; default k / block_size. Needs bits 2/4/8, K and N multiples of 32/bits.
/// Scales become float16 (rounded). Throws gs::Error naming the constraint that fails.
GptqLinear fromNBits(const nbits::NBitsWeight& w, const at::Tensor& g_idx = {});
/// Converts back to MatMulNBits operands (scales float32, packed uint8 zero points). When g_idx is
/// not the trivial k / group_size, the caller must also pass `g_idx` to the MatMulNBits node (its
/// deprecated g_idx input); this function still returns block-ordered operands.
nbits::NBitsWeight toNBits(const GptqLinear& l);
/// W[K, N] in float32 from the GPTQ tensors (reference dequantization, honours g_idx).
at::Tensor dequantize(const GptqLinear& l);

/// Writes layers (`<prefix>.qweight`, ...) and `extra` tensors (embeddings, norms, unquantized
/// layers, written as given) to a safetensors file with metadata {"format": "pt"}; throws
/// gs::Error for a name collision.
void writeGptqSafetensors(const std::string& path, const std::map<std::string, GptqLinear>& layers,
                          const std::map<std::string, at::Tensor>& extra = {});
/// Reads every `<prefix>.qweight` group of a GPTQ safetensors file; `bits` and `group_size` come
/// from quantize_config.json (see readQuantizeConfig). Other tensors go to `extra` if given.
std::map<std::string, GptqLinear> readGptqSafetensors(const std::string& path, int bits,
                                                      int64_t group_size,
                                                      std::map<std::string, at::Tensor>* extra = nullptr);

/// AutoGPTQ's quantize_config.json.
struct QuantizeConfig {
  int bits = 4;
  int64_t group_size = 128;
  bool sym = true;
  bool desc_act = false;
  bool static_groups = false;
  double damp_percent = 0.01;
};
/// Writes quantize_config.json (quant_method "gptq", checkpoint_format "gptq").
void writeQuantizeConfig(const std::string& path, const QuantizeConfig& c);
/// Reads quantize_config.json; throws gs::Error naming the file for missing/invalid fields.
QuantizeConfig readQuantizeConfig(const std::string& path);

}  // namespace gs::gptq
