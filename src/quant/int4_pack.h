// MatMulNBits (com.microsoft) weight format: packing block-quantized weights into ONNX Runtime's
// layout and back, round-to-nearest quantization, and building MatMulNBits nodes.
//
// The format (ONNX Runtime contrib op MatMulNBits, domain com.microsoft, opset 1; ORT 1.30):
//
//   Y[..., n] = sum_k A[..., k] * W[k, n] (+ bias[n])       A float [..., K], Y float [..., N]
//   W[k, n]   = (q[n, k] - zp[n, b]) * scale[n, b]           b = k / block_size (the K-block)
//
//   attributes  K, N, bits (2, 4 or 8; ORT 1.30 has no 3-bit kernel), block_size (power of two
//               >= 16; "per-channel" = one block covering K: perChannelBlockSize(K)),
//               accuracy_level (0 = compute in the type of A; gstick always computes in fp32).
//   B           uint8 [N, n_blocks, blob_size], n_blocks = ceil(K / block_size),
//               blob_size = block_size * bits / 8. Row n holds output channel n's codes along K;
//               codes are packed low bits first within each byte:
//                 bits=4: byte j of a blob = q[2j] | q[2j+1] << 4
//                 bits=8: byte j = q[j]
//                 bits=2: byte j = q[4j] | q[4j+1] << 2 | q[4j+2] << 4 | q[4j+3] << 6
//               Codes of the padded tail of the last block (k >= K) are written as 0 and ignored.
//   scales      float [N, n_blocks] (same dtype as A).
//   zero_points optional. uint8 [N, ceil(n_blocks * bits / 8)]: zero points packed along the
//               block axis like B (4-bit: block 2i in the low nibble of byte i, 2i+1 in the
//               high nibble; each row of N padded to whole bytes); or float [N, n_blocks] (same
//               dtype as A, used as is). Absent: zp = 2^(bits-1) (8 for 4-bit) = symmetric.
//
// Weight matrices in gstick/ONNX MatMul form are W[K, N] (WeightLayout::KxN); nn.Linear and
// Hugging Face checkpoints store W[N, K] (WeightLayout::NxK) — MatMulNBits' row-per-output layout.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "ir/graph.h"

namespace gs::nbits {

/// Domain and opset version of MatMulNBits.
inline constexpr const char* kDomain = "com.microsoft";
inline constexpr int64_t kOpsetVersion = 1;

/// Orientation of a float weight matrix.
enum class WeightLayout {
  KxN,  ///< W[K, N]: ONNX MatMul's right operand (y = x @ W)
  NxK,  ///< W[N, K]: nn.Linear / Hugging Face (y = x @ W^T); MatMulNBits' own row layout
};

/// The operands of one MatMulNBits node (everything but A and bias).
struct NBitsWeight {
  int64_t K = 0, N = 0;
  int bits = 4;
  int64_t block_size = 32;
  at::Tensor B;            ///< uint8 [N, n_blocks, blob_size]
  at::Tensor scales;       ///< float32 [N, n_blocks]
  /// uint8 [N, ceil(n_blocks*bits/8)] packed, float [N, n_blocks], or undefined (zp = 2^(bits-1)).
  at::Tensor zero_points;

  int64_t numBlocks() const { return (K + block_size - 1) / block_size; }
  int64_t blobSize() const { return block_size * bits / 8; }
  /// Bytes of B + scales + zero_points (the model-size contribution).
  int64_t bytes() const;
};

/// Throws gs::Error (prefixed by `what`) unless bits is 2, 4 or 8 and block_size is a power of
/// two >= 16.
void checkFormat(int bits, int64_t block_size, const std::string& what = "MatMulNBits");
/// The smallest valid block size that covers K in one block (per-channel quantization).
int64_t perChannelBlockSize(int64_t K);
/// Default zero point when the zero_points input is omitted: 2^(bits-1).
inline int defaultZeroPoint(int bits) { return 1 << (bits - 1); }

/// Packs integer codes q [N, K] (any integer dtype, values in [0, 2^bits)) into B
/// [N, n_blocks, blob_size]. Throws gs::Error for out-of-range codes.
at::Tensor packCodes(const at::Tensor& q, int bits, int64_t block_size);
/// Inverse of packCodes: B -> codes uint8 [N, K].
at::Tensor unpackCodes(const at::Tensor& B, int64_t K, int bits, int64_t block_size);
/// Packs integer zero points [N, n_blocks] (values in [0, 2^bits)) into uint8
/// [N, ceil(n_blocks * bits / 8)].
at::Tensor packZeroPoints(const at::Tensor& zp, int bits);
/// Inverse of packZeroPoints: packed uint8 -> uint8 [N, n_blocks].
at::Tensor unpackZeroPoints(const at::Tensor& packed, int64_t n_blocks, int bits);

/// Zero points of `w` as float [N, n_blocks] (the default 2^(bits-1) when omitted).
at::Tensor zeroPointsFloat(const NBitsWeight& w);
/// Scales broadcast per K element: float [N, K] (the oracle helper for dequantize()).
at::Tensor expandPerK(const at::Tensor& per_block, int64_t K, int64_t block_size);

/// Quantizes a float weight with the given per-block scales [N, n_blocks] and integer zero
/// points [N, n_blocks] (undefined = symmetric, zp = 2^(bits-1), zero_points left undefined):
/// q = clamp(round_half_even(w / s) + zp, 0, 2^bits - 1). Zero scales give code zp.
NBitsWeight quantizeWithParams(const at::Tensor& W, WeightLayout layout, const at::Tensor& scales,
                               const at::Tensor& zero_points, int bits, int64_t block_size);

/// Round-to-nearest min/max quantization. Symmetric: s = max|w| / (2^(bits-1) - 1), zp omitted
/// (codes in [1, 2^bits - 1], the default zp in the middle). Asymmetric: the block range is
/// widened to include 0, s = (max - min) / (2^bits - 1), zp = round(-min / s) (packed uint8).
NBitsWeight quantizeRtn(const at::Tensor& W, WeightLayout layout, int bits, int64_t block_size,
                        bool symmetric);

/// The float weight W[k, n] = (q - zp) * s, float32, in the requested layout. Reference
/// implementation with ATen ops (the oracle of the kernels).
at::Tensor dequantize(const NBitsWeight& w, WeightLayout layout = WeightLayout::NxK);

/// Checks that the tensors of `w` have the MatMulNBits shapes/dtypes; throws gs::Error prefixed
/// by `what`.
void checkWeight(const NBitsWeight& w, const std::string& what = "MatMulNBits");

/// Adds `Y = MatMulNBits(A, w) (+ bias)` to g before `before` (nullptr = at the end): parameters
/// `<name>.B`, `<name>.scales`, `<name>.zero_points` (frozen), the node `name` in domain
/// com.microsoft (opset import com.microsoft=1 is added to g.opsets), attributes K, N, bits,
/// block_size, accuracy_level=0. The output gets dtype float32 and, when A's shape is known, shape
/// A[..., :-1] + [N] (ONNX shape inference does not know contrib ops). bias may be nullptr.
Node* addMatMulNBits(Graph& g, Value* A, const NBitsWeight& w, Value* bias, const std::string& name,
                     Node* before = nullptr);

/// Reads the operands of a MatMulNBits node whose B, scales (and zero_points) are parameters;
/// throws gs::Error naming the node otherwise.
NBitsWeight weightOf(const Node& n);

}  // namespace gs::nbits
