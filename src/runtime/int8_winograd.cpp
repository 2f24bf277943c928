// Exact integer Winograd F(2x2, 3x3) for stride-1 3x3 dense int8 convs on the AVX2 path (see
// int8_gemm.h): 16 int16 GEMMs (vpmaddwd) per 2x2 output tile instead of 36 products per output
// quad, with int32 accumulators identical to the direct convolution's, so the requantized
// outputs are bit-identical to every other path.
//
// Why it is exact: with d = x - x_zp (padding = 0), V = B^T d B has entries |v| <= 4 * 255
// (each row of B^T holds two +-1), U' = G' g G'^T with G' = 2G is an integer matrix with
// |u| <= 3 * 3 * 128 = 1152, so V and U' are exact int16 and each vpmaddwd pair sum
// (<= 2 * 1020 * 1152) is exact in int32. Every later step is int32 addition, exact modulo 2^32,
// and A^T (U' . V summed over channels) A = 4 * acc, the direct accumulator. When
// |4 * acc| <= 4 * 9 * C * 255 * 128 < 2^31 (C <= kWinogradMaxC = 1827) the wrapped int32 result
// IS 4 * acc, and an arithmetic shift by 2 gives acc exactly.
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "runtime/int8_gemm.h"
#include "runtime/int8_simd.h"

namespace gs::int8::detail {

namespace {
constexpr int64_t kNr = 16;    // output channels per packed block (two ymm of int32)
constexpr int64_t kTr = 6;     // tiles per micro-kernel call: 12 accumulators + 3 registers
constexpr int64_t kChunk = 6;  // tiles transformed together (multiple of kTr): V and M stay in L1
constexpr int kTaps = 16;      // 4 x 4 transformed positions

// G' = 2G of F(2, 3): rows g0, g0 + g1 + g2, g0 - g1 + g2, g2 (twice G, integer).
constexpr int kG2[4][3] = {{2, 0, 0}, {1, 1, 1}, {1, -1, 1}, {0, 0, 2}};
}  // namespace

void packWinograd(const int8_t* w, int64_t o, int64_t c, PackedGemm& p) {
  p.wino.clear();
  p.wino_cv = 0;
  if (c < kWinogradMinC || c > kWinogradMaxC) return;
  const int64_t cv = (c + 15) / 16 * 16;
  p.wino_cv = cv;
  p.wino.assign(static_cast<size_t>(kTaps * p.blocks * cv * kNr), 0);
  for (int64_t oc = 0; oc < o; ++oc) {
    const int64_t blk = oc / kNr, lane = oc % kNr;
    for (int64_t ci = 0; ci < c; ++ci) {
      const int8_t* g = w + (oc * c + ci) * 9;
      int32_t t[4][3];  // G' g
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 3; ++j)
          t[i][j] = kG2[i][0] * g[j] + kG2[i][1] * g[3 + j] + kG2[i][2] * g[6 + j];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {  // (G' g) G'^T, |u| <= 9 * 128
          const int32_t u = t[i][0] * kG2[j][0] + t[i][1] * kG2[j][1] + t[i][2] * kG2[j][2];
          int16_t* dst = p.wino.data() + ((i * 4 + j) * p.blocks + blk) * cv * kNr;
          dst[(ci / 2) * kNr * 2 + lane * 2 + ci % 2] = static_cast<int16_t>(u);
        }
    }
  }
}

bool winogradApplies(const ConvGeom& g, const PackedGemm& p) {
  static const bool enabled = [] {  // GS_INT8_WINOGRAD=0: direct kernels only (A/B timing)
    const char* e = std::getenv("GS_INT8_WINOGRAD");
    return !(e && std::string(e) == "0");
  }();
  return enabled && !p.wino.empty() && g.groups == 1 && g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 &&
         g.dh == 1 && g.dw == 1 && p.wino_cv == (g.c + 15) / 16 * 16;
}

namespace {

/// Tile coordinates (image, tile row, tile column) of consecutive tiles without divisions.
struct TileCursor {
  int64_t n, ty, tx, th, tw;
  TileCursor(int64_t t, int64_t th_, int64_t tw_)
      : n(t / (th_ * tw_)), ty(t % (th_ * tw_) / tw_), tx(t % tw_), th(th_), tw(tw_) {}
  void next() {
    if (++tx < tw) return;
    tx = 0;
    if (++ty < th) return;
    ty = 0;
    ++n;
  }
};

/// V[t][tap][cv] = B^T d B for `count` tiles starting at t0 (16 channels per vector; the padded
/// input has cv channels per pixel, zero past C). In padded coordinates tile (ty, tx) reads rows
/// 2ty .. 2ty + 3 and columns 2tx .. 2tx + 3.
__attribute__((target("avx2"))) void inputTransform(const PaddedInput& in, int64_t th, int64_t tw,
                                                    int64_t t0, int64_t count, int16_t* v) {
  const int64_t cv = in.cs;
  const int64_t rs = in.wp * cv;  // padded row stride
  TileCursor tc(t0, th, tw);
  for (int64_t t = 0; t < count; ++t, tc.next()) {
    const int16_t* base = in.data + ((tc.n * in.hp + 2 * tc.ty) * in.wp + 2 * tc.tx) * cv;
    int16_t* vt = v + t * kTaps * cv;
    for (int64_t c = 0; c < cv; c += 16) {
      __m256i e[4][4];  // d B per input row: d0 - d2, d1 + d2, d2 - d1, d1 - d3
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const int16_t* row = base + i * rs + c;
        const __m256i d0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
        const __m256i d1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + cv));
        const __m256i d2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * cv));
        const __m256i d3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 3 * cv));
        e[i][0] = _mm256_sub_epi16(d0, d2);
        e[i][1] = _mm256_add_epi16(d1, d2);
        e[i][2] = _mm256_sub_epi16(d2, d1);
        e[i][3] = _mm256_sub_epi16(d1, d3);
      }
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {  // B^T (d B): |v| <= 4 * 255
        const __m256i r0 = _mm256_sub_epi16(e[0][j], e[2][j]);
        const __m256i r1 = _mm256_add_epi16(e[1][j], e[2][j]);
        const __m256i r2 = _mm256_sub_epi16(e[2][j], e[1][j]);
        const __m256i r3 = _mm256_sub_epi16(e[1][j], e[3][j]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(vt + (0 * 4 + j) * cv + c), r0);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(vt + (1 * 4 + j) * cv + c), r1);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(vt + (2 * 4 + j) * cv + c), r2);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(vt + (3 * 4 + j) * cv + c), r3);
      }
    }
  }
}

/// M rows (kTr tiles, one tap) x all output blocks: tile r's V row of this tap (cv int16) is at
/// a + r * lda, w holds the tap's packed weights, M row r is at m + r * ldm (int32, blocks * 16
/// wide).
__attribute__((target("avx2"))) void gemmTap(const int16_t* a, int64_t lda, const int16_t* w,
                                             int64_t pairs, int64_t blocks, int32_t* m,
                                             int64_t ldm) {
  for (int64_t b = 0; b < blocks; ++b, w += pairs * 2 * kNr) {
    __m256i acc[kTr][2];
#pragma GCC unroll 6
    for (int r = 0; r < kTr; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (int64_t k = 0; k < pairs; ++k) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k * 32));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k * 32 + 16));
#pragma GCC unroll 6
      for (int r = 0; r < kTr; ++r) {
        int32_t pair;
        std::memcpy(&pair, a + r * lda + 2 * k, sizeof pair);
        const __m256i x = _mm256_set1_epi32(pair);
        acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(x, w0));
        acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(x, w1));
      }
    }
    // All kTr rows (M has room for them; tail rows are never read): a store loop bounded by
    // `rows` would keep the accumulators in memory instead of registers.
#pragma GCC unroll 6
    for (int r = 0; r < kTr; ++r) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(m + r * ldm + b * kNr), acc[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(m + r * ldm + b * kNr + 8), acc[r][1]);
    }
  }
}

/// Y = A^T M A / 4 (= the direct accumulators) for `count` tiles, requantized and stored to the
/// NHWC output (pixels past the image edge are dropped).
__attribute__((target("avx2"))) void outputTransform(const int32_t* m, int64_t op, const ConvGeom& g,
                                                     int64_t th, int64_t tw, int64_t t0,
                                                     int64_t count, const Requant& rq_in, uint8_t* y) {
  // A local copy: the byte stores to y may alias *rq_in, which would reload its fields after
  // every store.
  const Requant rq = rq_in;
  const int64_t oh = g.oh, ow = g.ow, o = g.o;
  TileCursor tc(t0, th, tw);
  for (int64_t t = 0; t < count; ++t, tc.next()) {
    const int64_t n = tc.n, oy = 2 * tc.ty, ox = 2 * tc.tx;
    const bool has_r1 = oy + 1 < oh, has_c1 = ox + 1 < ow;
    uint8_t* y00 = y + ((n * oh + oy) * ow + ox) * o;
    uint8_t* dst[4] = {y00, y00 + o, y00 + ow * o, y00 + (ow + 1) * o};
    const bool keep[4] = {true, has_c1, has_r1, has_r1 && has_c1};
    const int32_t* mt = m + t * kTaps * op;
    for (int64_t c = 0; c < o; c += 8) {
      __m256i s[2][4];  // A^T M: rows m0 + m1 + m2 and m1 - m2 - m3 (int32, wrapping)
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const __m256i m0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mt + (0 + j) * op + c));
        const __m256i m1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mt + (4 + j) * op + c));
        const __m256i m2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mt + (8 + j) * op + c));
        const __m256i m3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mt + (12 + j) * op + c));
        s[0][j] = _mm256_add_epi32(_mm256_add_epi32(m0, m1), m2);
        s[1][j] = _mm256_sub_epi32(_mm256_sub_epi32(m1, m2), m3);
      }
      __m256i q[4];
#pragma GCC unroll 2
      for (int i = 0; i < 2; ++i) {  // (A^T M) A, then / 4 (exact)
        q[2 * i] = _mm256_srai_epi32(_mm256_add_epi32(_mm256_add_epi32(s[i][0], s[i][1]), s[i][2]), 2);
        q[2 * i + 1] = _mm256_srai_epi32(_mm256_sub_epi32(_mm256_sub_epi32(s[i][1], s[i][2]), s[i][3]), 2);
      }
      const int64_t cnt = std::min<int64_t>(8, o - c);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        if (!keep[k]) continue;
        const __m128i b = narrow8(requant8(q[k], c, rq), rq.out_signed);
        if (cnt == 8) {
          _mm_storel_epi64(reinterpret_cast<__m128i*>(dst[k] + c), b);
        } else {
          alignas(16) uint8_t tmp[16];
          _mm_store_si128(reinterpret_cast<__m128i*>(tmp), b);
          std::memcpy(dst[k] + c, tmp, static_cast<size_t>(cnt));
        }
      }
    }
  }
}

}  // namespace

void convWinogradAvx2(const void* x, bool x_signed, int32_t x_zp, const ConvGeom& g,
                      const PackedGemm& p, const Requant& rq, uint8_t* y) {
  const int64_t th = (g.oh + 1) / 2, tw = (g.ow + 1) / 2, tiles = g.n * th * tw;
  const int64_t cv = p.wino_cv, op = p.blocks * kNr;
  const PaddedInput in = widenPadded(x, x_signed, x_zp, g, cv, 2 * th + 2, 2 * tw + 2);
  const int64_t chunks = (tiles + kChunk - 1) / kChunk;
  const int64_t work = kChunk * kTaps * cv * op;  // MACs per chunk
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 17) / std::max<int64_t>(1, work));
  at::parallel_for(0, chunks, grain, [&](int64_t c0, int64_t c1) {
    thread_local std::vector<int16_t> vbuf;
    thread_local std::vector<int32_t> mbuf;
    // (resize value-initializes: rows never written by a transform are zeros, not garbage)
    if (vbuf.size() < static_cast<size_t>(kChunk * kTaps * cv)) vbuf.resize(static_cast<size_t>(kChunk * kTaps * cv));
    if (mbuf.size() < static_cast<size_t>(kChunk * kTaps * op)) mbuf.resize(static_cast<size_t>(kChunk * kTaps * op));
    int16_t* v = vbuf.data();
    int32_t* m = mbuf.data();
    for (int64_t ch = c0; ch < c1; ++ch) {
      const int64_t t0 = ch * kChunk, count = std::min(kChunk, tiles - t0);
      inputTransform(in, th, tw, t0, count, v);
      for (int tap = 0; tap < kTaps; ++tap) {
        const int16_t* w = p.wino.data() + tap * p.blocks * cv * kNr;
        // Tiles past `count` in the last group read stale (finite) V rows of the chunk buffer;
        // their M rows are never read.
        for (int64_t tg = 0; tg < count; tg += kTr)
          gemmTap(v + (tg * kTaps + tap) * cv, kTaps * cv, w, cv / 2, p.blocks,
                  m + (tg * kTaps + tap) * op, kTaps * op);
      }
      outputTransform(m, op, g, th, tw, t0, count, rq, y);
    }
  });
}

}  // namespace gs::int8::detail
