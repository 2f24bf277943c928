// AVX2 helpers shared by the int8 GEMM / depthwise / VNNI kernels (int8_gemm*.cpp): the vector
// form of requantOne and the narrowing store.
#pragma once
#include <immintrin.h>

#include "runtime/int8_gemm.h"

namespace gs::int8::detail {

/// Requantizes 8 int32 accumulators of channels [c, c + 8) to int32 outputs (zp added).
/// (The empty asm keeps mul and add separate: no FMA contraction when inlined into an
/// AVX-512 function, so every path rounds the float-bias case identically.)
__attribute__((target("avx2"))) inline __m256i requant8(__m256i acc, int64_t c, const Requant& rq) {
  if (rq.bias_acc)
    acc = _mm256_add_epi32(acc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rq.bias_acc + c)));
  __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_loadu_ps(rq.mult + c));
  if (rq.bias_f) {
    __asm__("" : "+x"(f));
    f = _mm256_add_ps(f, _mm256_loadu_ps(rq.bias_f + c));
  }
  f = _mm256_min_ps(_mm256_max_ps(f, _mm256_set1_ps(rq.lo)), _mm256_set1_ps(rq.hi));
  return _mm256_add_epi32(_mm256_cvtps_epi32(f), _mm256_set1_epi32(rq.zp));
}

/// 8 requantized int32 values (in range) to 8 bytes.
__attribute__((target("avx2"))) inline __m128i narrow8(__m256i q, bool out_signed) {
  __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
  return out_signed ? _mm_packs_epi16(p16, p16) : _mm_packus_epi16(p16, p16);
}

}  // namespace gs::int8::detail
