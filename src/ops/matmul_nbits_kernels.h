// Internal MatMulNBits compute kernels (scalar reference-order and AVX2+FMA) and their dispatch.
// The weight stays packed; kernels dequantize blocks in registers (GEMV) or one row tile at a time
// into a small buffer (GEMM). Layout: see quant/int4_pack.h.
#pragma once
#include <cstdint>

namespace gs::nbits {

/// A packed MatMulNBits weight ready for the kernels: raw pointers into owned tensors.
struct PackedView {
  int64_t K = 0, N = 0, nb = 0, bs = 0, blob = 0;
  int bits = 4;
  const uint8_t* B = nullptr;       ///< [N, nb, blob]
  const float* scales = nullptr;    ///< [N, nb]
  const uint8_t* zp_u8 = nullptr;   ///< unpacked integer zero points [N, nb], or null
  const float* zp_f32 = nullptr;    ///< float zero points [N, nb], or null
  float zp_default = 8.f;           ///< used when both are null

  float zeroPoint(int64_t i) const {
    return zp_f32 ? zp_f32[i] : zp_u8 ? static_cast<float>(zp_u8[i]) : zp_default;
  }
  /// Length of a K-padded activation row (nb * bs).
  int64_t paddedK() const { return nb * bs; }
};

/// Rearranges one activation row x[0..K) into the order the GEMV kernel consumes and pads it with
/// zeros to nb*bs: for bits=4, every 16 consecutive elements become [8 even, 8 odd] (matching the
/// low/high nibbles of 8 packed bytes); other bit widths keep the natural order. Also writes the
/// per-block sums of x (for the zero-point correction) to xsum[0..nb).
void prepareActivation(const PackedView& w, const float* x, float* xp, float* xsum);

/// y[n] = sum_b scale[n,b] * (sum_k q[n,b,k] * x[b*bs+k] - zp[n,b] * xsum[b]) for n in [n0, n1),
/// where xp/xsum come from prepareActivation. Scalar version: any bits.
void gemvScalar(const PackedView& w, const float* xp, const float* xsum, float* y, int64_t n0,
                int64_t n1);
/// Dequantizes rows [n0, n1) into out (row stride ld >= nb*bs, natural K order, the padded tail
/// of the last block included): w = (q - zp) * s.
void dequantRowsScalar(const PackedView& w, int64_t n0, int64_t n1, float* out, int64_t ld);

/// AVX2+FMA versions (bits 4 and 8; callers must check hasAvx2Fma() and the bit width).
void gemvAvx2(const PackedView& w, const float* xp, const float* xsum, float* y, int64_t n0,
              int64_t n1);
void dequantRowsAvx2(const PackedView& w, int64_t n0, int64_t n1, float* out, int64_t ld);

/// C[m, n] += sum_{k < K} A[m, k] * W[n, k] for m < M, n < NT: a register-blocked (6 rows of A x
/// 2 rows of W, 8-wide k vectors) fp32 kernel over an L2-resident dequantized weight tile
/// (row stride ldw), A with row stride lda, C with row stride ldc.
void gemmTileAvx2(const float* A, int64_t lda, int64_t M, const float* W, int64_t ldw, int64_t NT,
                  int64_t K, float* C, int64_t ldc);

/// True when the CPU runs AVX2 and FMA (checked once at run time); GS_NBITS_SCALAR=1 forces false.
bool hasAvx2Fma();

}  // namespace gs::nbits
