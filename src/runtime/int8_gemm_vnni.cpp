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

/// Output row position: image n, top-left input coordinate (iy0, ix0) of its receptive field.
struct Pos {
  int64_t n, iy0, ix0;
};

/// im2col of one output row into uint8 in the VNNI K layout (each kernel row zero-padded from
/// seg to segp values); padding taps hold the zero point, so they cancel in the correction.
void packRowU8(const uint8_t* x, uint8_t zp_u, const ConvGeom& g, int64_t gi, int64_t cg,
               const Pos& p, const PackedGemm& pk, uint8_t* dst) {
  for (int64_t i = 0; i < g.kh; ++i) {
    const int64_t iy = p.iy0 + i * g.dh;
    uint8_t* row = dst + i * pk.segp;
    for (int64_t j = 0; j < g.kw; ++j) {
      const int64_t ix = p.ix0 + j * g.dw;
      const bool pad = iy < 0 || iy >= g.h || ix < 0 || ix >= g.w;
      const uint8_t* src = x + ((p.n * g.h + iy) * g.w + ix) * g.c + gi * cg;
      uint8_t* d = row + j * cg;
      if (cg < 16) {  // few channels (stem convs): plain loops beat library calls
        for (int64_t c = 0; c < cg; ++c) d[c] = pad ? zp_u : src[c];
      } else if (pad) {
        std::memset(d, zp_u, static_cast<size_t>(cg));
      } else {
        copyU8(d, src, cg);
      }
    }
    for (int64_t k = pk.seg; k < pk.segp; ++k) row[k] = 0;
  }
}

constexpr int64_t kMaxSeg = 8;  // kernel rows read in place (taller kernels are packed)

/// A micro-tile's activations: for each of kMr rows, `nseg` segments of `seg_quads` * 4
/// consecutive uint8 values; segment s of every row multiplies K quads [s * seg_quads, ...).
/// Rows are read in place from the image (a kernel row of a dense conv is contiguous in NHWC)
/// or from a packed im2col row.
struct Tile {
  const uint8_t* seg[kMr][kMaxSeg];
  int64_t nseg, seg_quads;
};

inline int32_t load32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

/// The tile times NB consecutive blocks starting at block b of group gi (NB * 8 accumulators:
/// each broadcast activation feeds NB vpdpbusd), requantized into rows [m0, m0 + rows) of y.
template <int NB>
GS_VNNI_TARGET inline void blocksVnni(const Tile& t, const PackedGemm& p, int64_t gi, int64_t b,
                                      int64_t rows, int64_t m0, const Requant& rq,
                                      const int32_t* comp, uint8_t* y, int64_t ldy) {
  const int64_t bstride = p.kq * kNr;
  const int8_t* wb = p.vnni.data() + (gi * p.blocks + b) * bstride;
  __m512i c[NB][kMr];
#pragma GCC unroll 2
  for (int nb = 0; nb < NB; ++nb)
#pragma GCC unroll 8
    for (int64_t r = 0; r < kMr; ++r) c[nb][r] = _mm512_setzero_si512();
  for (int64_t s = 0; s < t.nseg; ++s) {
    const uint8_t* a[kMr];
#pragma GCC unroll 8
    for (int64_t r = 0; r < kMr; ++r) a[r] = t.seg[r][s];
    const int8_t* ws = wb + s * t.seg_quads * 64;
    for (int64_t q = 0; q < t.seg_quads; ++q) {
      __m512i w[NB];
#pragma GCC unroll 2
      for (int nb = 0; nb < NB; ++nb) w[nb] = _mm512_loadu_si512(ws + nb * bstride + q * 64);
#pragma GCC unroll 8
      for (int64_t r = 0; r < kMr; ++r) {
        const __m512i x = _mm512_set1_epi32(load32(a[r] + q * 4));
#pragma GCC unroll 2
        for (int nb = 0; nb < NB; ++nb) c[nb][r] = _mm512_dpbusd_epi32(c[nb][r], x, w[nb]);
      }
    }
  }
#pragma GCC unroll 2
  for (int nb = 0; nb < NB; ++nb) {
    const int64_t ch = gi * p.og + (b + nb) * kNr;
    const int64_t count = std::min<int64_t>(kNr, p.og - (b + nb) * kNr);
    const __m512i corr = _mm512_loadu_si512(comp + ch);
    for (int64_t r = 0; r < rows; ++r) {
      const __m128i v = requant16(_mm512_add_epi32(c[nb][r], corr), ch, rq);
      uint8_t* dst = y + (m0 + r) * ldy + ch;
      if (count == kNr) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), v);
      else _mm_mask_storeu_epi8(dst, static_cast<__mmask16>((1u << count) - 1), v);
    }
  }
}

/// The tile times every block of group gi, two blocks at a time.
GS_VNNI_TARGET void kernelVnni(const Tile& t, const PackedGemm& p, int64_t gi, int64_t rows,
                               int64_t m0, const Requant& rq, const int32_t* comp, uint8_t* y,
                               int64_t ldy) {
  int64_t b = 0;
  for (; b + 2 <= p.blocks; b += 2) blocksVnni<2>(t, p, gi, b, rows, m0, rq, comp, y, ldy);
  if (b < p.blocks) blocksVnni<1>(t, p, gi, b, rows, m0, rq, comp, y, ldy);
}

void convGemmVnniU8(const uint8_t* x, int32_t zp_u, const ConvGeom& g, const PackedGemm& p,
                    const Requant& rq, uint8_t* y) {
  const int64_t m = g.n * g.oh * g.ow, hw = g.oh * g.ow;
  const int64_t tiles = (m + kMr - 1) / kMr;
  const int64_t cg = g.c / g.groups;
  // Zero-point correction per output channel: -zp_u * sum_k w (the accumulator then equals the
  // exact sum of (x - x_zp) * w).
  thread_local std::vector<int32_t> comp_buf;
  if (comp_buf.size() < p.wsum.size()) comp_buf.resize(p.wsum.size());
  for (size_t c = 0; c < p.wsum.size(); ++c) comp_buf[c] = -zp_u * p.wsum[c];
  const int32_t* comp = comp_buf.data();
  // In-place rows: a kernel row of a dense conv (all channels, no horizontal dilation) is
  // kw * C contiguous bytes; reading segp >= seg of them is harmless (the extra bytes meet zero
  // weights) as long as it stays inside the tensor.
  const bool segmented = p.kh <= kMaxSeg;
  const bool in_place = segmented && cg == g.c && g.dw == 1;
  const int64_t total = g.n * g.h * g.w * g.c;
  thread_local std::vector<uint8_t> zrow_buf;
  zrow_buf.assign(static_cast<size_t>(p.segp), static_cast<uint8_t>(zp_u));
  const uint8_t* zrow = zrow_buf.data();
  const int64_t nseg = segmented ? p.kh : 1;
  const int64_t seg_len = segmented ? p.segp : p.kq;
  const int64_t work = kMr * p.kq * p.og * p.groups;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, work));
  at::parallel_for(0, tiles, grain, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<uint8_t> abuf;
    if (abuf.size() < static_cast<size_t>(kMr * p.kq)) abuf.resize(static_cast<size_t>(kMr * p.kq));
    Tile tile;
    tile.nseg = nseg;
    tile.seg_quads = seg_len / 4;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t m0 = t * kMr, rows = std::min(kMr, m - m0);
      Pos pos[kMr];
      int64_t ox = 0, iy0 = 0, n = 0;
      for (int64_t r = 0; r < rows; ++r) {
        if (r == 0 || ++ox == g.ow) {  // divide only when a new output row starts
          const int64_t mr = m0 + r, rem = mr % hw;
          n = mr / hw;
          ox = rem % g.ow;
          iy0 = (rem / g.ow) * g.sh - g.ph;
        }
        pos[r] = {n, iy0, ox * g.sw - g.pw};
      }
      for (int64_t gi = 0; gi < p.groups; ++gi) {
        for (int64_t r = 0; r < kMr; ++r) {
          if (r >= rows) {  // past the end: any valid memory (results are not stored)
            for (int64_t s = 0; s < nseg; ++s) tile.seg[r][s] = tile.seg[0][s];
            continue;
          }
          const Pos& ps = pos[r];
          // Kernel rows above / below the image read a zero-point row; a row that would read
          // past the tensor's end (the very last pixels) is packed instead.
          bool direct = in_place && ps.ix0 >= 0 && ps.ix0 + g.kw <= g.w;
          for (int64_t s = 0; direct && s < nseg; ++s) {
            const int64_t iy = ps.iy0 + s * g.dh;
            if (iy < 0 || iy >= g.h) {
              tile.seg[r][s] = zrow;
              continue;
            }
            const int64_t off = ((ps.n * g.h + iy) * g.w + ps.ix0) * g.c;
            direct = off + p.segp <= total;
            tile.seg[r][s] = x + off;
          }
          if (!direct) {
            uint8_t* row = abuf.data() + r * p.kq;
            packRowU8(x, static_cast<uint8_t>(zp_u), g, gi, cg, ps, p, row);
            for (int64_t s = 0; s < nseg; ++s) tile.seg[r][s] = row + s * seg_len;
          }
        }
        kernelVnni(tile, p, gi, rows, m0, rq, comp, y, g.o);
      }
    }
  });
}

}  // namespace

void convGemmVnni(const void* x, bool x_signed, int32_t x_zp, const ConvGeom& g,
                  const PackedGemm& p, const Requant& rq, uint8_t* y) {
  if (!x_signed) return convGemmVnniU8(static_cast<const uint8_t*>(x), x_zp, g, p, rq, y);
  // int8 input: one pass flips it to uint8 (x + 128) so every row can be read in place.
  const int64_t len = g.n * g.h * g.w * g.c;
  thread_local std::vector<uint8_t> flipped;
  if (flipped.size() < static_cast<size_t>(len)) flipped.resize(static_cast<size_t>(len));
  copyU8(flipped.data(), static_cast<const int8_t*>(x), len);
  convGemmVnniU8(flipped.data(), x_zp + 128, g, p, rq, y);
}

}  // namespace gs::int8::detail
