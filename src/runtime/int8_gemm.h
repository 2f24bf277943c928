// Own int8 conv / linear kernels behind QConv2d / QLinear: exact int32 accumulation of
// (x_q - x_zp) * w_q on channels-last activations, requantization bit-identical to ONNX
// Runtime's MLAS (float(acc + bias) * (x_scale * w_scale / y_scale), clamp, round half to even,
// + zero point). AVX-512 VNNI and AVX2 paths with runtime dispatch and a scalar fallback, all
// computing the same bits.
#pragma once
#include <cstdint>
#include <vector>

namespace gs::int8::detail {

/// Instruction set used by the kernels: kAuto picks the best the CPU has (AVX-512 VNNI for the
/// GEMM when present, else AVX2, else scalar; the environment variable GS_INT8_ISA = scalar |
/// avx2 caps it); kScalar / kAvx2 / kAvx512Vnni force a path (tests). Depthwise convs use AVX2
/// on both vector paths.
enum class Isa { kAuto, kScalar, kAvx2, kAvx512Vnni };

/// The path kAuto resolves to: the one forced by setIsa, else the best this CPU supports.
Isa resolveIsa(Isa isa);

/// Forces the path every later kernel call uses (kAuto restores the default); for tests that
/// cover the scalar fallback on an AVX2 machine. Returns the previous setting.
Isa setIsa(Isa isa);

/// Per-call requantization parameters of one layer, per output channel (arrays of size O).
/// Output element: q = clamp(round_half_even(float(acc + bias_acc[c]) * mult[c] + bias_f[c]),
/// lo, hi) + zp, where lo/hi already include the activation clamp (relative to zp).
struct Requant {
  const float* mult = nullptr;        ///< x_scale * w_scale[c] / y_scale, computed as ORT does
  const int32_t* bias_acc = nullptr;  ///< int32 bias in accumulator units, or nullptr
  const float* bias_f = nullptr;      ///< float bias / y_scale (float-bias graphs), or nullptr
  float lo = 0, hi = 255;             ///< clamp bounds minus zp (integers)
  int32_t zp = 0;
  bool out_signed = false;
};

/// Geometry of a 2-D convolution on NHWC input (a linear layer is a 1x1 conv on 1x1 images).
struct ConvGeom {
  int64_t n = 1, h = 1, w = 1, c = 1;  ///< input
  int64_t oh = 1, ow = 1, o = 1;       ///< output
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1, groups = 1;
};

/// Int8 weights of a dense / grouped conv prepacked once: per group, K = kh*kw*C/g (tap-major,
/// channel-minor, matching the NHWC im2col row) padded to even, output channels in blocks of 16
/// interleaved by K pairs for vpmaddwd; the same blocks interleaved by K quads for vpdpbusd,
/// with each kernel row (seg = kw*C/g values) zero-padded to segp (a multiple of 4); for odd seg
/// the int16 pair blocks again with each kernel row zero-padded to even length (AVX2 in place); and
/// per-channel weight sums for the zero-point correction; also a plain copy [O][Kp] for the
/// scalar path.
struct PackedGemm {
  int64_t k = 0, kp = 0, kq = 0, og = 0, blocks = 0, groups = 1;
  int64_t kh = 1, seg = 0, segp = 0;  // VNNI: kq = kh * segp
  int64_t sege = 0;            // seg rounded up to even (the AVX2 in-place kernel's row length)
  std::vector<int16_t> avx;    // [g][block][kp/2][16][2]
  std::vector<int16_t> avx_rows;  // odd seg, 1 group: [block][kh * sege/2][16][2], row ends 0
  std::vector<int8_t> vnni;    // [g][block][kq/4][16][4]
  std::vector<int32_t> wsum;   // [O + 16] sum over K of w
  std::vector<int16_t> plain;  // [O][kp]
  // Exact integer Winograd F(2x2, 3x3) (int8_winograd.cpp), packed for dense 3x3 convs with
  // kWinogradMinC <= C <= kWinogradMaxC: the 16 transformed taps G'gG'^T (G' = 2G, integers,
  // |u| <= 9 * 128) per (output, input channel), C padded to wino_cv (a multiple of 16).
  int64_t wino_cv = 0;
  std::vector<int16_t> wino;   // [16 taps][block][wino_cv/2][16][2]
};

/// Packs w (int8 [O, C/g, kh, kw] row-major) for `groups` groups.
PackedGemm packGemm(const int8_t* w, int64_t o, int64_t cg, int64_t kh, int64_t kw, int64_t groups);

/// y[n, oh, ow, o] (NHWC, 8-bit) = requant(sum over the receptive field of (x - x_zp) * w).
/// x is NHWC 8-bit (x_signed: int8, else uint8). Parallel over output rows.
void convGemm(const void* x, bool x_signed, int32_t x_zp, const ConvGeom& g, const PackedGemm& p,
              const Requant& rq, void* y, Isa isa);

/// The AVX-512 VNNI form of convGemm (int8_gemm_vnni.cpp); y is the 8-bit output.
void convGemmVnni(const void* x, bool x_signed, int32_t x_zp, const ConvGeom& g,
                  const PackedGemm& p, const Requant& rq, uint8_t* y);

/// The zero-padded int16 copy of an NHWC input that the AVX2 kernels read in place: (x - x_zp)
/// with the image at (ph, pw) and zeros (= x_zp - x_zp) around it, `cs` >= C int16 per pixel
/// (channels past C are 0), at least hp_min x wp_min pixels per image and at least the extent
/// the conv's output reads; two spare zero elements at the end.
struct PaddedInput {
  const int16_t* data;
  int64_t hp, wp, cs;  // padded height / width, channel stride
};

/// Fills the calling thread's scratch buffer with the padded copy of x (NHWC, int8 if x_signed
/// else uint8); valid until the thread's next call. One buffer for the in-place and Winograd
/// paths, so consecutive layers reuse memory that is already in cache.
PaddedInput widenPadded(const void* x, bool x_signed, int32_t zp, const ConvGeom& g, int64_t cs,
                        int64_t hp_min, int64_t wp_min);

/// Channel range of the Winograd path: below kWinogradMinC the 16-channel vector transforms
/// would mostly process padding; above kWinogradMaxC the transformed accumulator 4 * acc
/// (|acc| <= 9 * C * 255 * 128) could leave int32.
constexpr int64_t kWinogradMinC = 8, kWinogradMaxC = 1827;

/// Fills p.wino / p.wino_cv for a dense 3x3 conv (w: int8 [O, C, 3, 3]); p.blocks must be set.
/// Leaves them empty outside [kWinogradMinC, kWinogradMaxC].
void packWinograd(const int8_t* w, int64_t o, int64_t c, PackedGemm& p);

/// Whether convWinogradAvx2 computes this conv: packed, 3x3, stride 1, dilation 1, groups 1
/// (and the environment variable GS_INT8_WINOGRAD is not "0", read once).
bool winogradApplies(const ConvGeom& g, const PackedGemm& p);

/// Same contract and bits as convGemm (the int32 accumulators equal the direct convolution's),
/// computed with integer Winograd F(2x2, 3x3) on AVX2.
void convWinogradAvx2(const void* x, bool x_signed, int32_t x_zp, const ConvGeom& g,
                      const PackedGemm& p, const Requant& rq, uint8_t* y);

/// Depthwise weights (groups == C == O) packed as [tap][C padded to 8] int32 holding the int8
/// value in the low 16 bits (vpmaddwd multiplies it exactly with a 16-bit activation).
struct PackedDw {
  int64_t c = 0, cp = 0, taps = 0;
  std::vector<int32_t> w;
};

PackedDw packDw(const int8_t* w, int64_t c, int64_t kh, int64_t kw);

/// Depthwise conv, NHWC in and out, same requantization as convGemm.
void convDw(const void* x, bool x_signed, int32_t x_zp, const ConvGeom& g, const PackedDw& p,
            const Requant& rq, void* y, Isa isa);

/// One output element's requantization (the scalar definition every path reproduces).
inline int32_t requantOne(int32_t acc, int64_t c, const Requant& rq) {
  if (rq.bias_acc) acc += rq.bias_acc[c];
  float v = static_cast<float>(acc) * rq.mult[c];
  if (rq.bias_f) {
    __asm__("" : "+x"(v));  // no FMA contraction: mul and add round separately on every path
    v += rq.bias_f[c];
  }
  v = v < rq.lo ? rq.lo : v;
  v = v > rq.hi ? rq.hi : v;
  // Round half to even like MLAS's magic-number addition (the default FP rounding mode).
  return static_cast<int32_t>(__builtin_nearbyintf(v)) + rq.zp;
}

}  // namespace gs::int8::detail
