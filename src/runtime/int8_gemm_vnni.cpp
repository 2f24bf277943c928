// AVX-512 VNNI path of the int8 im2col GEMM (see int8_gemm.h): vpdpbusd multiplies unsigned
// activations by signed weights, four products per int32 lane, exactly (4 * 255 * 128 fits).
// int8 activations are moved to uint8 by adding 128 (x ^ 0x80) with the zero point shifted alike;
// sum (x_u - zp_u) * w = sum x_u * w - zp_u * sum w, the second term from prepacked weight sums.
#include <ATen/Parallel.h>
// GCC 12's _mm512_extracti64x4_epi64 reads an "undefined" vector it reports as uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "runtime/int8_gemm.h"
#include "runtime/int8_simd.h"

namespace gs::int8::detail {

namespace {

constexpr int64_t kMr = 8;   // output rows per micro-tile
constexpr int64_t kNr = 16;  // output channels per packed block (one zmm of int32)

#define GS_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2")))

/// requant8 on 16 channels (same operations, so the same bits) narrowed to 16 bytes: the values
/// are already clamped to the output range, so vpmovdb's truncation is exact.
GS_VNNI_TARGET inline __m128i requant16(__m512i acc, int64_t c, const Requant& rq) {
  if (rq.bias_acc) acc = _mm512_add_epi32(acc, _mm512_loadu_si512(rq.bias_acc + c));
  __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_loadu_ps(rq.mult + c));
  if (rq.bias_f) {
    __asm__("" : "+v"(f));  // no FMA contraction (see requant8)
    f = _mm512_add_ps(f, _mm512_loadu_ps(rq.bias_f + c));
  }
  f = _mm512_min_ps(_mm512_max_ps(f, _mm512_set1_ps(rq.lo)), _mm512_set1_ps(rq.hi));
  return _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(f), _mm512_set1_epi32(rq.zp)));
}

/// Copies n activations as uint8 (int8 flipped by 0x80), 16 at a time.
template <class T>
inline void copyU8(uint8_t* d, const T* src, int64_t n) {
  const auto* s = reinterpret_cast<const uint8_t*>(src);
  const uint8_t flip = std::is_signed_v<T> ? 0x80 : 0;
  const __m128i f = _mm_set1_epi8(static_cast<char>(flip));
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i),
                     _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)), f));
  for (; i < n; ++i) d[i] = s[i] ^ flip;
}

/// im2col of kMr rows into uint8 (x, or x ^ 0x80 for int8 input), K padded to kq; padding taps
/// hold the zero point (so they cancel in the correction), rows past `rows` are zero.
template <class T>
void packRowsU8(const T* x, uint8_t zp_u, const ConvGeom& g, int64_t gi, int64_t cg, int64_t m0,
                int64_t rows, int64_t kq, uint8_t* a) {
  const int64_t hw = g.oh * g.ow;
  int64_t n = 0, ox = 0, iy0 = 0;
  for (int64_t r = 0; r < kMr; ++r) {
    uint8_t* dst = a + r * kq;
    if (r >= rows) {
      std::memset(dst, 0, static_cast<size_t>(kq));
      continue;
    }
    if (r == 0 || ++ox == g.ow) {  // divide only when a new output row starts
      const int64_t m = m0 + r, rem = m % hw;
      n = m / hw;
      ox = rem % g.ow;
      iy0 = (rem / g.ow) * g.sh - g.ph;
    }
    const int64_t ix0 = ox * g.sw - g.pw;
    // The kw taps of a kernel row are one contiguous run when they are all inside the image
    // and read every channel (no groups, no horizontal dilation).
    const bool runs = cg == g.c && g.dw == 1 && ix0 >= 0 && ix0 + g.kw <= g.w;
    int64_t k = 0;
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t iy = iy0 + i * g.dh;
      if (runs) {
        if (iy < 0 || iy >= g.h) std::memset(dst + k, zp_u, static_cast<size_t>(g.kw * cg));
        else copyU8(dst + k, x + ((n * g.h + iy) * g.w + ix0) * g.c, g.kw * cg);
        k += g.kw * cg;
        continue;
      }
      for (int64_t j = 0; j < g.kw; ++j, k += cg) {
        const int64_t ix = ix0 + j * g.dw;
        if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) {
          std::memset(dst + k, zp_u, static_cast<size_t>(cg));
          continue;
        }
        copyU8(dst + k, x + ((n * g.h + iy) * g.w + ix) * g.c + gi * cg, cg);
      }
    }
    if (k < kq) std::memset(dst + k, 0, static_cast<size_t>(kq - k));
  }
}

inline int32_t load32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

/// kMr rows of A (row stride lda bytes, K quads) times every block of group gi, requantized.
GS_VNNI_TARGET void kernelVnni(const uint8_t* a, int64_t lda, const PackedGemm& p, int64_t gi,
                               int64_t rows, int64_t m0, const Requant& rq, const int32_t* comp,
                               uint8_t* y, int64_t ldy) {
  const int64_t quads = p.kq / 4;
  for (int64_t b = 0; b < p.blocks; ++b) {
    const int8_t* wb = p.vnni.data() + (gi * p.blocks + b) * p.kq * kNr;
    __m512i c[kMr];
#pragma GCC unroll 8
    for (int64_t r = 0; r < kMr; ++r) c[r] = _mm512_setzero_si512();
    for (int64_t q = 0; q < quads; ++q) {
      const __m512i w = _mm512_loadu_si512(wb + q * 64);
#pragma GCC unroll 8
      for (int64_t r = 0; r < kMr; ++r)
        c[r] = _mm512_dpbusd_epi32(c[r], _mm512_set1_epi32(load32(a + r * lda + q * 4)), w);
    }
    const int64_t ch = gi * p.og + b * kNr;
    const int64_t count = std::min<int64_t>(kNr, p.og - b * kNr);
    const __m512i corr = _mm512_loadu_si512(comp + ch);
    for (int64_t r = 0; r < rows; ++r) {
      const __m128i v = requant16(_mm512_add_epi32(c[r], corr), ch, rq);
      uint8_t* dst = y + (m0 + r) * ldy + ch;
      if (count == kNr) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), v);
      else _mm_mask_storeu_epi8(dst, static_cast<__mmask16>((1u << count) - 1), v);
    }
  }
}

template <class T>
void convGemmVnniT(const T* x, int32_t x_zp, const ConvGeom& g, const PackedGemm& p,
                   const Requant& rq, uint8_t* y) {
  const int64_t m = g.n * g.oh * g.ow;
  const int64_t tiles = (m + kMr - 1) / kMr;
  const int64_t cg = g.c / g.groups;
  const int32_t zp_u = x_zp + (std::is_signed_v<T> ? 128 : 0);
  // Zero-point correction per output channel: -zp_u * sum_k w (the accumulator then equals the
  // exact sum of (x - x_zp) * w).
  thread_local std::vector<int32_t> comp_buf;
  if (comp_buf.size() < p.wsum.size()) comp_buf.resize(p.wsum.size());
  for (size_t c = 0; c < p.wsum.size(); ++c) comp_buf[c] = -zp_u * p.wsum[c];
  const int32_t* comp = comp_buf.data();
  // A pointwise conv on uint8 rows whose length is a multiple of 4 reads the input in place.
  const bool direct = !std::is_signed_v<T> && g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 &&
                      g.ph == 0 && g.pw == 0 && g.groups == 1 && g.c % 4 == 0;
  const int64_t work = kMr * p.kq * p.og * p.groups;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, work));
  at::parallel_for(0, tiles, grain, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<uint8_t> abuf;
    if (abuf.size() < static_cast<size_t>(kMr * p.kq)) abuf.resize(static_cast<size_t>(kMr * p.kq));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t m0 = t * kMr, rows = std::min(kMr, m - m0);
      for (int64_t gi = 0; gi < p.groups; ++gi) {
        if (direct && rows == kMr) {
          kernelVnni(reinterpret_cast<const uint8_t*>(x) + m0 * g.c, g.c, p, gi, rows, m0, rq, comp, y, g.o);
        } else {
          packRowsU8(x, static_cast<uint8_t>(zp_u), g, gi, cg, m0, rows, p.kq, abuf.data());
          kernelVnni(abuf.data(), p.kq, p, gi, rows, m0, rq, comp, y, g.o);
        }
      }
    }
  });
}

}  // namespace

void convGemmVnni(const void* x, bool x_signed, int32_t x_zp, const ConvGeom& g,
                  const PackedGemm& p, const Requant& rq, uint8_t* y) {
  if (x_signed) convGemmVnniT(static_cast<const int8_t*>(x), x_zp, g, p, rq, y);
  else convGemmVnniT(static_cast<const uint8_t*>(x), x_zp, g, p, rq, y);
}

}  // namespace gs::int8::detail
