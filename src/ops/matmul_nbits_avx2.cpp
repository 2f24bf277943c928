// MatMulNBits AVX2+FMA kernels (4- and 8-bit): GEMV on packed codes and row-tile dequantization.
// Compiled with per-function target attributes so the rest of gstick keeps the baseline ISA; the
// dispatcher (matmul_nbits.cpp) calls them only after hasAvx2Fma().
#include <immintrin.h>

#include <cstdlib>

#include "ops/matmul_nbits_kernels.h"

#define GS_AVX2 __attribute__((target("avx2,fma")))

namespace gs::nbits {

bool hasAvx2Fma() {
  static const bool ok = [] {
    const char* e = std::getenv("GS_NBITS_SCALAR");
    if (e && e[0] == '1') return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
}

namespace {

GS_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

GS_AVX2 inline __m256 u8x8ToFloat(__m128i v) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
}

/// One row of 4-bit codes against the [even, odd]-permuted activation.
GS_AVX2 float rowDot4(const PackedView& w, const uint8_t* row, const float* srow, int64_t zrow,
                      const float* xp, const float* xsum) {
  const __m128i m0f = _mm_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  float corr = 0.f;
  const int64_t bs = w.bs, blob = w.blob;
  for (int64_t b = 0; b < w.nb; ++b) {
    const uint8_t* p = row + b * blob;
    const float* xb = xp + b * bs;
    __m256 v0 = _mm256_setzero_ps(), v1 = v0, v2 = v0, v3 = v0;
    int64_t u = 0;
    for (; u + 32 <= bs; u += 32) {
      __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + u / 2));
      __m128i lo = _mm_and_si128(raw, m0f);
      __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m0f);
      v0 = _mm256_fmadd_ps(u8x8ToFloat(lo), _mm256_loadu_ps(xb + u), v0);
      v1 = _mm256_fmadd_ps(u8x8ToFloat(hi), _mm256_loadu_ps(xb + u + 8), v1);
      v2 = _mm256_fmadd_ps(u8x8ToFloat(_mm_srli_si128(lo, 8)), _mm256_loadu_ps(xb + u + 16), v2);
      v3 = _mm256_fmadd_ps(u8x8ToFloat(_mm_srli_si128(hi, 8)), _mm256_loadu_ps(xb + u + 24), v3);
    }
    if (u < bs) {  // block_size 16: one 8-byte unit
      __m128i raw = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + u / 2));
      __m128i lo = _mm_and_si128(raw, m0f);
      __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m0f);
      v0 = _mm256_fmadd_ps(u8x8ToFloat(lo), _mm256_loadu_ps(xb + u), v0);
      v1 = _mm256_fmadd_ps(u8x8ToFloat(hi), _mm256_loadu_ps(xb + u + 8), v1);
    }
    const float s = srow[b];
    acc = _mm256_fmadd_ps(_mm256_add_ps(_mm256_add_ps(v0, v1), _mm256_add_ps(v2, v3)),
                          _mm256_set1_ps(s), acc);
    corr += s * w.zeroPoint(zrow + b) * xsum[b];
  }
  return hsum(acc) - corr;
}

/// One row of 8-bit codes against the natural-order activation.
GS_AVX2 float rowDot8(const PackedView& w, const uint8_t* row, const float* srow, int64_t zrow,
                      const float* xp, const float* xsum) {
  __m256 acc = _mm256_setzero_ps();
  float corr = 0.f;
  const int64_t bs = w.bs;
  for (int64_t b = 0; b < w.nb; ++b) {
    const uint8_t* p = row + b * bs;
    const float* xb = xp + b * bs;
    __m256 v0 = _mm256_setzero_ps(), v1 = v0, v2 = v0, v3 = v0;
    int64_t u = 0;
    for (; u + 32 <= bs; u += 32) {
      __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + u));
      __m128i r1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + u + 16));
      v0 = _mm256_fmadd_ps(u8x8ToFloat(r0), _mm256_loadu_ps(xb + u), v0);
      v1 = _mm256_fmadd_ps(u8x8ToFloat(_mm_srli_si128(r0, 8)), _mm256_loadu_ps(xb + u + 8), v1);
      v2 = _mm256_fmadd_ps(u8x8ToFloat(r1), _mm256_loadu_ps(xb + u + 16), v2);
      v3 = _mm256_fmadd_ps(u8x8ToFloat(_mm_srli_si128(r1, 8)), _mm256_loadu_ps(xb + u + 24), v3);
    }
    if (u < bs) {  // block_size 16
      __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + u));
      v0 = _mm256_fmadd_ps(u8x8ToFloat(r0), _mm256_loadu_ps(xb + u), v0);
      v1 = _mm256_fmadd_ps(u8x8ToFloat(_mm_srli_si128(r0, 8)), _mm256_loadu_ps(xb + u + 8), v1);
    }
    const float s = srow[b];
    acc = _mm256_fmadd_ps(_mm256_add_ps(_mm256_add_ps(v0, v1), _mm256_add_ps(v2, v3)),
                          _mm256_set1_ps(s), acc);
    corr += s * w.zeroPoint(zrow + b) * xsum[b];
  }
  return hsum(acc) - corr;
}

/// C[0..MR) x [0..NR) += A rows . W rows over k in [0, K): MR x NR accumulators of 8 k-lanes
/// each, reduced horizontally once at the end.
template <int MR, int NR>
GS_AVX2 __attribute__((always_inline)) inline void microKernel(const float* A, int64_t lda, const float* W, int64_t ldw, int64_t K,
                                float* C, int64_t ldc) {
  __m256 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 w[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) w[j] = _mm256_loadu_ps(W + j * ldw + k);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_loadu_ps(A + i * lda + k);
  #pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_fmadd_ps(a, w[j], acc[i][j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      float s = hsum(acc[i][j]);
      for (int64_t t = k; t < K; ++t) s += A[i * lda + t] * W[j * ldw + t];
      C[i * ldc + j] += s;
    }
}

/// MR rows of A against all NT rows of the tile (A's rows stay in L1, the tile streams from L2).
template <int MR>
GS_AVX2 void colsKernel(const float* A, int64_t lda, const float* W, int64_t ldw, int64_t NT,
                        int64_t K, float* C, int64_t ldc) {
  int64_t n = 0;
  for (; n + 2 <= NT; n += 2) microKernel<MR, 2>(A, lda, W + n * ldw, ldw, K, C + n, ldc);
  if (n < NT) microKernel<MR, 1>(A, lda, W + n * ldw, ldw, K, C + n, ldc);
}

}  // namespace

GS_AVX2 void gemmTileAvx2(const float* A, int64_t lda, int64_t M, const float* W, int64_t ldw,
                          int64_t NT, int64_t K, float* C, int64_t ldc) {
  int64_t m = 0;
  for (; m + 6 <= M; m += 6) colsKernel<6>(A + m * lda, lda, W, ldw, NT, K, C + m * ldc, ldc);
  const float* a = A + m * lda;
  float* c = C + m * ldc;
  switch (M - m) {
    case 5: colsKernel<5>(a, lda, W, ldw, NT, K, c, ldc); break;
    case 4: colsKernel<4>(a, lda, W, ldw, NT, K, c, ldc); break;
    case 3: colsKernel<3>(a, lda, W, ldw, NT, K, c, ldc); break;
    case 2: colsKernel<2>(a, lda, W, ldw, NT, K, c, ldc); break;
    case 1: colsKernel<1>(a, lda, W, ldw, NT, K, c, ldc); break;
    default: break;
  }
}

GS_AVX2 void gemvAvx2(const PackedView& w, const float* xp, const float* xsum, float* y,
                      int64_t n0, int64_t n1) {
  const int64_t row_bytes = w.nb * w.blob;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* row = w.B + n * row_bytes;
    const float* srow = w.scales + n * w.nb;
    y[n] = w.bits == 4 ? rowDot4(w, row, srow, n * w.nb, xp, xsum)
                       : rowDot8(w, row, srow, n * w.nb, xp, xsum);
  }
}

GS_AVX2 void dequantRowsAvx2(const PackedView& w, int64_t n0, int64_t n1, float* out,
                             int64_t ld) {
  const __m128i m0f = _mm_set1_epi8(0x0F);
  const int64_t row_bytes = w.nb * w.blob, bs = w.bs;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* row = w.B + n * row_bytes;
    float* o = out + (n - n0) * ld;
    for (int64_t b = 0; b < w.nb; ++b) {
      const int64_t i = n * w.nb + b;
      const __m256 s = _mm256_set1_ps(w.scales[i]);
      const __m256 nzs = _mm256_set1_ps(-w.zeroPoint(i) * w.scales[i]);
      const uint8_t* p = row + b * w.blob;
      float* ob = o + b * bs;
      if (w.bits == 4) {
        for (int64_t u = 0; u < bs; u += 16) {  // 8 bytes -> 16 codes in natural order
          __m128i raw = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + u / 2));
          __m128i lo = _mm_and_si128(raw, m0f);
          __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m0f);
          __m128i q = _mm_unpacklo_epi8(lo, hi);
          _mm256_storeu_ps(ob + u, _mm256_fmadd_ps(u8x8ToFloat(q), s, nzs));
          _mm256_storeu_ps(ob + u + 8, _mm256_fmadd_ps(u8x8ToFloat(_mm_srli_si128(q, 8)), s, nzs));
        }
      } else {
        for (int64_t u = 0; u < bs; u += 16) {
          __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + u));
          _mm256_storeu_ps(ob + u, _mm256_fmadd_ps(u8x8ToFloat(q), s, nzs));
          _mm256_storeu_ps(ob + u + 8, _mm256_fmadd_ps(u8x8ToFloat(_mm_srli_si128(q, 8)), s, nzs));
        }
      }
    }
  }
}

}  // namespace gs::nbits
