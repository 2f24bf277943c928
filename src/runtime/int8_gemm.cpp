// Int8 GEMM for dense / grouped / pointwise convs and linear layers (see int8_gemm.h): activations
// widened to int16 (x - x_zp) — once per call into a padded copy read in place (dense convs) or
// per im2col tile of 4 output rows (the rest) — weights prepacked as int16 pairs, vpmaddwd into
// int32 (exact: |(x - zp) * w| <= 255 * 128, pair sums fit easily).
#include "runtime/int8_gemm.h"
#include "runtime/int8_simd.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace gs::int8::detail {

namespace {
constexpr int64_t kMr = 4;   // output rows per micro-tile
constexpr int64_t kNr = 16;  // output channels per packed block
std::atomic<Isa> g_forced{Isa::kAuto};
}  // namespace

Isa setIsa(Isa isa) { return g_forced.exchange(isa); }

Isa resolveIsa(Isa isa) {
  if (isa == Isa::kAuto) isa = g_forced.load(std::memory_order_relaxed);
  if (isa != Isa::kAuto) return isa;
  static const Isa best = [] {
    const char* e = std::getenv("GS_INT8_ISA");
    const std::string cap = e ? e : "";
    if (cap == "scalar" || !__builtin_cpu_supports("avx2")) return Isa::kScalar;
    if (cap != "avx2" && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
      return Isa::kAvx512Vnni;
    return Isa::kAvx2;
  }();
  return best;
}

PackedGemm packGemm(const int8_t* w, int64_t o, int64_t cg, int64_t kh, int64_t kw, int64_t groups) {
  PackedGemm p;
  p.groups = groups;
  p.og = o / groups;
  p.k = cg * kh * kw;
  p.kp = (p.k + 1) / 2 * 2;
  p.blocks = (p.og + kNr - 1) / kNr;
  p.plain.assign(static_cast<size_t>(o * p.kp), 0);
  // Reorder [O][Cg][kh][kw] to the im2col row order [O][kh][kw][Cg].
  for (int64_t oc = 0; oc < o; ++oc)
    for (int64_t c = 0; c < cg; ++c)
      for (int64_t i = 0; i < kh; ++i)
        for (int64_t j = 0; j < kw; ++j)
          p.plain[static_cast<size_t>(oc * p.kp + (i * kw + j) * cg + c)] =
              w[((oc * cg + c) * kh + i) * kw + j];
  // Calls f(block index, lane, output channel) for every real channel of every 16-wide block.
  auto forEachLane = [&](auto&& f) {
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t b = 0; b < p.blocks; ++b)
        for (int64_t lane = 0; lane < kNr; ++lane)
          if (b * kNr + lane < p.og) f(g * p.blocks + b, lane, g * p.og + b * kNr + lane);
  };
  p.avx.assign(static_cast<size_t>(groups * p.blocks * p.kp * kNr), 0);
  forEachLane([&](int64_t blk, int64_t lane, int64_t oc) {
    int16_t* dst = p.avx.data() + blk * p.kp * kNr;
    const int16_t* src = p.plain.data() + oc * p.kp;
    for (int64_t k = 0; k < p.kp; ++k) dst[(k / 2) * kNr * 2 + lane * 2 + k % 2] = src[k];
  });
  // VNNI layout: each kernel row (kw * cg values) padded to a multiple of 4, so a K quad never
  // straddles two kernel rows and a row of a dense conv can be read in place from the image.
  p.kh = kh;
  p.seg = kw * cg;
  p.segp = (p.seg + 3) / 4 * 4;
  p.kq = kh * p.segp;
  // AVX2 in-place layout for odd kernel rows: a zero weight after each row, so the pair that
  // reads one element past the row (the next pixel's value, finite) adds exactly 0.
  p.sege = (p.seg + 1) / 2 * 2;
  if (p.seg % 2 == 1 && groups == 1) {
    p.avx_rows.assign(static_cast<size_t>(p.blocks * kh * p.sege * kNr), 0);
    forEachLane([&](int64_t blk, int64_t lane, int64_t oc) {
      int16_t* dst = p.avx_rows.data() + blk * kh * p.sege * kNr;
      const int16_t* src = p.plain.data() + oc * p.kp;
      for (int64_t k = 0; k < p.k; ++k) {
        const int64_t kk = (k / p.seg) * p.sege + k % p.seg;
        dst[(kk / 2) * kNr * 2 + lane * 2 + kk % 2] = src[k];
      }
    });
  }
  if (kh == 3 && kw == 3 && groups == 1) packWinograd(w, o, cg, p);
  p.vnni.assign(static_cast<size_t>(groups * p.blocks * p.kq * kNr), 0);
  p.wsum.assign(static_cast<size_t>(o + kNr), 0);
  forEachLane([&](int64_t blk, int64_t lane, int64_t oc) {
    int8_t* dst = p.vnni.data() + blk * p.kq * kNr;
    const int16_t* src = p.plain.data() + oc * p.kp;
    for (int64_t k = 0; k < p.k; ++k) {
      const int64_t kk = (k / p.seg) * p.segp + k % p.seg;
      dst[(kk / 4) * kNr * 4 + lane * 4 + kk % 4] = static_cast<int8_t>(src[k]);
      p.wsum[oc] += src[k];
    }
  });
  return p;
}

namespace {

/// Where output row m (flattened n, oy, ox) reads its receptive field.
struct RowPos {
  int64_t n, iy0, ix0;
};

inline RowPos rowPos(const ConvGeom& g, int64_t m) {
  const int64_t hw = g.oh * g.ow;
  const int64_t n = m / hw, r = m % hw;
  return {n, (r / g.ow) * g.sh - g.ph, (r % g.ow) * g.sw - g.pw};
}

template <class T>
inline void widenScalar(const T* src, int64_t len, int32_t zp, int16_t* dst) {
  for (int64_t c = 0; c < len; ++c) dst[c] = static_cast<int16_t>(static_cast<int32_t>(src[c]) - zp);
}

template <class T>
__attribute__((target("avx2"))) inline void widenAvx2(const T* src, int64_t len, int32_t zp,
                                                      int16_t* dst) {
  const __m256i z = _mm256_set1_epi16(static_cast<int16_t>(zp));
  int64_t c = 0;
  for (; c + 16 <= len; c += 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + c));
    __m256i x = std::is_signed_v<T> ? _mm256_cvtepi8_epi16(v) : _mm256_cvtepu8_epi16(v);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c), _mm256_sub_epi16(x, z));
  }
  widenScalar(src + c, len - c, zp, dst + c);
}

/// im2col of kMr output rows into int16 (x - zp), K padded to kp with zeros; rows past `rows`
/// are zero. Padding taps contribute (x_zp - x_zp) = 0.
template <class T, bool kAvx>
void packRows(const T* x, int32_t zp, const ConvGeom& g, int64_t gi, int64_t cg, int64_t m0,
              int64_t rows, int64_t kp, int16_t* a) {
  RowPos p = rowPos(g, m0);
  int64_t ox = (m0 % (g.oh * g.ow)) % g.ow;
  for (int64_t r = 0; r < kMr; ++r) {
    int16_t* dst = a + r * kp;
    if (r >= rows) {
      std::memset(dst, 0, static_cast<size_t>(kp) * sizeof(int16_t));
      continue;
    }
    if (r > 0) p = ++ox < g.ow ? RowPos{p.n, p.iy0, p.ix0 + g.sw} : (ox = 0, rowPos(g, m0 + r));
    // The kw taps of a kernel row are one contiguous run when they are all inside the image
    // and read every channel (no groups, no horizontal dilation).
    const bool runs = cg == g.c && g.dw == 1 && p.ix0 >= 0 && p.ix0 + g.kw <= g.w;
    int64_t k = 0;
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t iy = p.iy0 + i * g.dh;
      if (runs) {
        const int64_t len = g.kw * cg;
        if (iy < 0 || iy >= g.h) {
          std::memset(dst + k, 0, static_cast<size_t>(len) * sizeof(int16_t));
        } else {
          const T* src = x + ((p.n * g.h + iy) * g.w + p.ix0) * g.c;
          if constexpr (kAvx) widenAvx2(src, len, zp, dst + k);
          else widenScalar(src, len, zp, dst + k);
        }
        k += len;
        continue;
      }
      for (int64_t j = 0; j < g.kw; ++j, k += cg) {
        const int64_t ix = p.ix0 + j * g.dw;
        if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) {
          std::memset(dst + k, 0, static_cast<size_t>(cg) * sizeof(int16_t));
          continue;
        }
        const T* src = x + ((p.n * g.h + iy) * g.w + ix) * g.c + gi * cg;
        if constexpr (kAvx) widenAvx2(src, cg, zp, dst + k);
        else widenScalar(src, cg, zp, dst + k);
      }
    }
    for (; k < kp; ++k) dst[k] = 0;
  }
}

void kernelScalar(const int16_t* a, const PackedGemm& p, int64_t gi, int64_t rows, int64_t m0,
                  const Requant& rq, uint8_t* y, int64_t ldy) {
  for (int64_t r = 0; r < rows; ++r) {
    const int16_t* ar = a + r * p.kp;
    uint8_t* yr = y + (m0 + r) * ldy + gi * p.og;
    for (int64_t oc = 0; oc < p.og; ++oc) {
      const int16_t* wr = p.plain.data() + (gi * p.og + oc) * p.kp;
      int32_t acc = 0;
      for (int64_t k = 0; k < p.kp; ++k) acc += static_cast<int32_t>(ar[k]) * wr[k];
      yr[oc] = static_cast<uint8_t>(requantOne(acc, gi * p.og + oc, rq));
    }
  }
}

}  // namespace

namespace {

/// Requantizes one output row's 16 accumulators (channels [ch, ch + 16), `count` of them real)
/// and stores them at dst.
__attribute__((target("avx2"), always_inline)) inline void storeBlock(__m256i a0, __m256i a1,
                                                                     int64_t ch, int64_t count,
                                                                     const Requant& rq,
                                                                     uint8_t* dst) {
  __m128i lo = narrow8(requant8(a0, ch, rq), rq.out_signed);
  __m128i hi = narrow8(requant8(a1, ch + 8, rq), rq.out_signed);
  __m128i v = _mm_unpacklo_epi64(lo, hi);
  if (count == kNr) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), v);
  } else {
    alignas(16) uint8_t tmp[kNr];
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), v);
    std::memcpy(dst, tmp, static_cast<size_t>(count));
  }
}

__attribute__((target("avx2"))) void kernelAvx2(const int16_t* a, const PackedGemm& p, int64_t gi,
                                                int64_t rows, int64_t m0, const Requant& rq,
                                                uint8_t* y, int64_t ldy) {
  const int64_t pairs = p.kp / 2;
  const int32_t* a0 = reinterpret_cast<const int32_t*>(a);
  const int32_t* a1 = reinterpret_cast<const int32_t*>(a + p.kp);
  const int32_t* a2 = reinterpret_cast<const int32_t*>(a + 2 * p.kp);
  const int32_t* a3 = reinterpret_cast<const int32_t*>(a + 3 * p.kp);
  for (int64_t b = 0; b < p.blocks; ++b) {
    const int16_t* wb = p.avx.data() + (gi * p.blocks + b) * p.kp * kNr;
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
            c30 = c00, c31 = c00;
    for (int64_t k = 0; k < pairs; ++k) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + k * 32));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + k * 32 + 16));
      __m256i x = _mm256_set1_epi32(a0[k]);
      c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(x, w0));
      c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(x, w1));
      x = _mm256_set1_epi32(a1[k]);
      c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(x, w0));
      c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(x, w1));
      x = _mm256_set1_epi32(a2[k]);
      c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(x, w0));
      c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(x, w1));
      x = _mm256_set1_epi32(a3[k]);
      c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(x, w0));
      c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(x, w1));
    }
    const __m256i acc[kMr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
    const int64_t ch = gi * p.og + b * kNr;
    const int64_t count = std::min<int64_t>(kNr, p.og - b * kNr);
    for (int64_t r = 0; r < rows; ++r)
      storeBlock(acc[r][0], acc[r][1], ch, count, rq, y + (m0 + r) * ldy + ch);
  }
}

// ---- AVX2 dense convs without im2col: the input is widened to int16 (x - zp) once per call into
// a zero-padded NHWC copy, so every kernel row of a receptive field (kw * C values) is one
// contiguous run that the micro-kernel reads in place (instead of widening each input pixel
// kh * kw times into an im2col tile).

constexpr int64_t kMrIn = 6;  // output rows per in-place micro-tile: 12 accumulators + 3 regs

template <class T>
PaddedInput widenPaddedT(const T* x, int32_t zp, const ConvGeom& g, int64_t cs, int64_t hp_min,
                         int64_t wp_min, std::vector<int16_t>& buf) {
  const int64_t bottom = std::max<int64_t>(0, (g.oh - 1) * g.sh - g.ph + (g.kh - 1) * g.dh - (g.h - 1));
  const int64_t right = std::max<int64_t>(0, (g.ow - 1) * g.sw - g.pw + (g.kw - 1) * g.dw - (g.w - 1));
  const int64_t hp = std::max(g.ph + g.h + bottom, hp_min);
  const int64_t wp = std::max(g.pw + g.w + right, wp_min);
  const int64_t rowlen = wp * cs;
  // Two spare elements: an odd kernel row's last pair reads one value past the row (zero weight).
  buf.resize(static_cast<size_t>(g.n * hp * rowlen + 2));
  int16_t* out = buf.data();
  at::parallel_for(0, g.n * hp, std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(1, rowlen)),
                   [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int16_t* dst = out + r * rowlen;
      const int64_t n = r / hp, iy = r % hp - g.ph;
      if (iy < 0 || iy >= g.h) {
        std::memset(dst, 0, static_cast<size_t>(rowlen) * sizeof(int16_t));
        continue;
      }
      std::memset(dst, 0, static_cast<size_t>(g.pw * cs) * sizeof(int16_t));
      const T* src = x + (n * g.h + iy) * g.w * g.c;
      if (cs == g.c) {
        widenAvx2(src, g.w * g.c, zp, dst + g.pw * cs);
      } else {
        for (int64_t ix = 0; ix < g.w; ++ix) {
          int16_t* px = dst + (g.pw + ix) * cs;
          widenAvx2(src + ix * g.c, g.c, zp, px);
          std::memset(px + g.c, 0, static_cast<size_t>(cs - g.c) * sizeof(int16_t));
        }
      }
      std::memset(dst + (g.pw + g.w) * cs, 0, static_cast<size_t>((wp - g.pw - g.w) * cs) * sizeof(int16_t));
    }
  });
  out[g.n * hp * rowlen] = out[g.n * hp * rowlen + 1] = 0;
  return {out, hp, wp, cs};
}

}  // namespace

PaddedInput widenPadded(const void* x, bool x_signed, int32_t zp, const ConvGeom& g, int64_t cs,
                        int64_t hp_min, int64_t wp_min) {
  thread_local std::vector<int16_t> buf;
  if (x_signed) return widenPaddedT(static_cast<const int8_t*>(x), zp, g, cs, hp_min, wp_min, buf);
  return widenPaddedT(static_cast<const uint8_t*>(x), zp, g, cs, hp_min, wp_min, buf);
}

namespace {

/// Broadcasts the int16 pair at p (any alignment) to all 8 lanes.
__attribute__((target("avx2"), always_inline)) inline __m256i bcastPair(const int16_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

/// kMrIn output rows x all output channels; a[r] points at row r's receptive-field origin in the
/// padded input, kernel rows `kstride` elements apart, each seg = kw * C values long (read as
/// sege / 2 pairs; an odd row's extra value meets a zero weight).
__attribute__((target("avx2"))) void kernelInPlace(const int16_t* const* a, int64_t kstride,
                                                   const PackedGemm& p, int64_t rows, int64_t m0,
                                                   const Requant& rq, uint8_t* y, int64_t ldy) {
  const int64_t pairs = p.sege / 2;
  // Even rows: the im2col layout has no gaps between kernel rows and is used as is.
  const int16_t* wall = p.seg % 2 ? p.avx_rows.data() : p.avx.data();
  for (int64_t b = 0; b < p.blocks; ++b) {
    const int16_t* w = wall + b * p.kh * p.sege * kNr;
    __m256i acc[kMrIn][2];
#pragma GCC unroll 6
    for (int r = 0; r < kMrIn; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (int64_t i = 0; i < p.kh; ++i, w += p.sege * kNr) {
      const int16_t* ar[kMrIn];
#pragma GCC unroll 6
      for (int r = 0; r < kMrIn; ++r) ar[r] = a[r] + i * kstride;
      for (int64_t k = 0; k < pairs; ++k) {
        const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k * 32));
        const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k * 32 + 16));
#pragma GCC unroll 6
        for (int r = 0; r < kMrIn; ++r) {  // fully unrolled: the accumulators stay in registers
          const __m256i x = bcastPair(ar[r] + 2 * k);
          acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(x, w0));
          acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(x, w1));
        }
      }
    }
    const int64_t ch = b * kNr;
    const int64_t count = std::min<int64_t>(kNr, p.og - ch);
    for (int64_t r = 0; r < rows; ++r)
      storeBlock(acc[r][0], acc[r][1], ch, count, rq, y + (m0 + r) * ldy + ch);
  }
}

/// Whether the in-place AVX2 path applies: a dense (ungrouped) conv with no horizontal dilation
/// (a kernel row is then one contiguous run of the padded input); 1x1 only at stride 1 (strided,
/// widening every input pixel would be wasted work).
bool inPlaceApplies(const ConvGeom& g) {
  return g.groups == 1 && g.dw == 1 && (g.kh * g.kw > 1 || (g.sh == 1 && g.sw == 1));
}

template <class T>
void convGemmInPlace(const T* x, int32_t x_zp, const ConvGeom& g, const PackedGemm& p,
                     const Requant& rq, uint8_t* y) {
  const PaddedInput in = widenPadded(x, std::is_signed_v<T>, x_zp, g, g.c, 0, 0);
  const int64_t m = g.n * g.oh * g.ow;
  const int64_t tiles = (m + kMrIn - 1) / kMrIn;
  const int64_t work = kMrIn * p.kp * p.og;  // MACs per tile
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 17) / std::max<int64_t>(1, work));
  const int64_t kstride = g.dh * in.wp * g.c;
  at::parallel_for(0, tiles, grain, [&](int64_t t0, int64_t t1) {
    const int16_t* a[kMrIn];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t m0 = t * kMrIn, rows = std::min(kMrIn, m - m0);
      RowPos pos = rowPos(g, m0);
      int64_t ox = (m0 % (g.oh * g.ow)) % g.ow;
      for (int64_t r = 0; r < kMrIn; ++r) {
        if (r >= rows) {  // tail: recompute row 0 (results not stored)
          a[r] = a[0];
          continue;
        }
        if (r > 0) pos = ++ox < g.ow ? RowPos{pos.n, pos.iy0, pos.ix0 + g.sw} : (ox = 0, rowPos(g, m0 + r));
        a[r] = in.data + ((pos.n * in.hp + pos.iy0 + g.ph) * in.wp + pos.ix0 + g.pw) * g.c;
      }
      kernelInPlace(a, kstride, p, rows, m0, rq, y, g.o);
    }
  });
}

template <class T>
void convGemmT(const T* x, int32_t x_zp, const ConvGeom& g, const PackedGemm& p, const Requant& rq,
               uint8_t* y, Isa isa) {
  const int64_t m = g.n * g.oh * g.ow;
  const int64_t tiles = (m + kMr - 1) / kMr;
  const int64_t cg = g.c / g.groups;
  const int64_t work = kMr * p.kp * p.og * p.groups;  // MACs per tile
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 17) / std::max<int64_t>(1, work));
  const bool avx = isa == Isa::kAvx2;
  if (avx && winogradApplies(g, p)) return convWinogradAvx2(x, std::is_signed_v<T>, x_zp, g, p, rq, y);
  if (avx && inPlaceApplies(g)) return convGemmInPlace(x, x_zp, g, p, rq, y);
  at::parallel_for(0, tiles, grain, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<int16_t> abuf;
    if (abuf.size() < static_cast<size_t>(kMr * p.kp)) abuf.resize(static_cast<size_t>(kMr * p.kp));
    int16_t* a = abuf.data();
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t m0 = t * kMr, rows = std::min(kMr, m - m0);
      for (int64_t gi = 0; gi < p.groups; ++gi) {
        if (avx) {
          packRows<T, true>(x, x_zp, g, gi, cg, m0, rows, p.kp, a);
          kernelAvx2(a, p, gi, rows, m0, rq, y, g.o);
        } else {
          packRows<T, false>(x, x_zp, g, gi, cg, m0, rows, p.kp, a);
          kernelScalar(a, p, gi, rows, m0, rq, y, g.o);
        }
      }
    }
  });
}

}  // namespace

void convGemm(const void* x, bool x_signed, int32_t x_zp, const ConvGeom& g, const PackedGemm& p,
              const Requant& rq, void* y, Isa isa) {
  isa = resolveIsa(isa);
  auto* yb = static_cast<uint8_t*>(y);
  if (isa == Isa::kAvx512Vnni) return convGemmVnni(x, x_signed, x_zp, g, p, rq, yb);
  if (x_signed) convGemmT(static_cast<const int8_t*>(x), x_zp, g, p, rq, yb, isa);
  else convGemmT(static_cast<const uint8_t*>(x), x_zp, g, p, rq, yb, isa);
}

// ---------------------------------------------------------------- depthwise

PackedDw packDw(const int8_t* w, int64_t c, int64_t kh, int64_t kw) {
  PackedDw p;
  p.c = c;
  p.cp = (c + 7) / 8 * 8;
  p.taps = kh * kw;
  p.w.assign(static_cast<size_t>(p.taps * p.cp), 0);
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t t = 0; t < p.taps; ++t)
      p.w[static_cast<size_t>(t * p.cp + ch)] =
          static_cast<int32_t>(static_cast<uint16_t>(static_cast<int16_t>(w[ch * p.taps + t])));
  return p;
}

namespace {

/// Scalar depthwise for channels [c0, c1) of one output pixel.
template <class T>
inline void dwPixelScalar(const T* x, int32_t zp, const ConvGeom& g, const PackedDw& p,
                          const RowPos& pos, int64_t c0, int64_t c1, const Requant& rq,
                          uint8_t* dst) {
  for (int64_t c = c0; c < c1; ++c) {
    int32_t acc = 0;
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t iy = pos.iy0 + i * g.dh;
      if (iy < 0 || iy >= g.h) continue;
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t ix = pos.ix0 + j * g.dw;
        if (ix < 0 || ix >= g.w) continue;
        const int32_t xv = static_cast<int32_t>(x[((pos.n * g.h + iy) * g.w + ix) * g.c + c]) - zp;
        acc += xv * static_cast<int16_t>(p.w[static_cast<size_t>((i * g.kw + j) * p.cp + c)]);
      }
    }
    dst[c] = static_cast<uint8_t>(requantOne(acc, c, rq));
  }
}

/// NB * 8 channels from c of one output pixel whose receptive field starts at xb (taps
/// [i0, i1) x [j0, j1) in range).
template <int NB, class T>
__attribute__((target("avx2"), always_inline)) inline void dwBlocks(
    const T* xb, __m256i z, const ConvGeom& g, const PackedDw& p, int64_t c, int64_t i0, int64_t i1,
    int64_t j0, int64_t j1, const Requant& rq, uint8_t* dst) {
  __m256i acc[NB];
#pragma GCC unroll 4
  for (int b = 0; b < NB; ++b) acc[b] = _mm256_setzero_si256();
  for (int64_t i = i0; i < i1; ++i) {
    const T* xr = xb + i * g.dh * g.w * g.c + c;
    const int32_t* wr = p.w.data() + i * g.kw * p.cp + c;
    for (int64_t j = j0; j < j1; ++j) {
      const T* xp = xr + j * g.dw * g.c;
      const int32_t* wp = wr + j * p.cp;
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) {
        __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(xp + 8 * b));
        __m256i xv = std::is_signed_v<T> ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v);
        xv = _mm256_sub_epi32(xv, z);  // |x - zp| <= 255: its low 16 bits are exact
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + 8 * b));
        acc[b] = _mm256_add_epi32(acc[b], _mm256_madd_epi16(xv, wv));
      }
    }
  }
#pragma GCC unroll 4
  for (int b = 0; b < NB; ++b)
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + c + 8 * b),
                     narrow8(requant8(acc[b], c + 8 * b, rq), rq.out_signed));
}

template <class T>
__attribute__((target("avx2"))) void dwRowAvx2(const T* x, int32_t zp, const ConvGeom& g,
                                               const PackedDw& p, int64_t row, const Requant& rq,
                                               uint8_t* y) {
  const int64_t full = g.c / 8 * 8;
  const __m256i z = _mm256_set1_epi32(zp);
  const RowPos first = rowPos(g, row * g.ow);  // one division per output row
  for (int64_t ox = 0; ox < g.ow; ++ox) {
    const RowPos pos{first.n, first.iy0, first.ix0 + ox * g.sw};
    uint8_t* dst = y + (row * g.ow + ox) * g.o;
    // Valid tap ranges (padding taps contribute 0).
    int64_t i0 = 0, i1 = g.kh, j0 = 0, j1 = g.kw;
    while (i0 < i1 && pos.iy0 + i0 * g.dh < 0) ++i0;
    while (i1 > i0 && pos.iy0 + (i1 - 1) * g.dh >= g.h) --i1;
    while (j0 < j1 && pos.ix0 + j0 * g.dw < 0) ++j0;
    while (j1 > j0 && pos.ix0 + (j1 - 1) * g.dw >= g.w) --j1;
    // Up to 4 independent 8-channel accumulators: one chain would wait on vpmaddwd's latency.
    const T* xb = x + ((pos.n * g.h + pos.iy0) * g.w + pos.ix0) * g.c;
    int64_t c = 0;
    for (; c + 32 <= full; c += 32) dwBlocks<4>(xb, z, g, p, c, i0, i1, j0, j1, rq, dst);
    switch ((full - c) / 8) {  // the rest in one pass too
      case 3: dwBlocks<3>(xb, z, g, p, c, i0, i1, j0, j1, rq, dst); break;
      case 2: dwBlocks<2>(xb, z, g, p, c, i0, i1, j0, j1, rq, dst); break;
      case 1: dwBlocks<1>(xb, z, g, p, c, i0, i1, j0, j1, rq, dst); break;
      default: break;
    }
    if (full < g.c) dwPixelScalar(x, zp, g, p, pos, full, g.c, rq, dst);
  }
}

template <class T>
void convDwT(const T* x, int32_t zp, const ConvGeom& g, const PackedDw& p, const Requant& rq,
             uint8_t* y, Isa isa) {
  const int64_t rows = g.n * g.oh;
  const int64_t work = g.ow * g.c * p.taps;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, work));
  at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      if (isa != Isa::kScalar) {
        dwRowAvx2(x, zp, g, p, r, rq, y);
      } else {
        for (int64_t ox = 0; ox < g.ow; ++ox)
          dwPixelScalar(x, zp, g, p, rowPos(g, r * g.ow + ox), 0, g.c, rq, y + (r * g.ow + ox) * g.o);
      }
    }
  });
}

}  // namespace

void convDw(const void* x, bool x_signed, int32_t x_zp, const ConvGeom& g, const PackedDw& p,
            const Requant& rq, void* y, Isa isa) {
  isa = resolveIsa(isa);
  auto* yb = static_cast<uint8_t*>(y);
  if (x_signed) convDwT(static_cast<const int8_t*>(x), x_zp, g, p, rq, yb, isa);
  else convDwT(static_cast<const uint8_t*>(x), x_zp, g, p, rq, yb, isa);
}

}  // namespace gs::int8::detail
