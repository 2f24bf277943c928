// com.microsoft MatMulNBits (ONNX Runtime contrib op, opset 1): Y = A @ dequant(B)^T (+ bias),
// with B block-quantized to 2/4/8 bits (layout: quant/int4_pack.h). Eval mode runs packed-weight
// kernels that never materialise the fp32 weight: a GEMV (M <= kGemvMaxRows) that dequantizes in
// registers, and for larger M a tiled GEMM that dequantizes a few rows of W at a time into a small
// buffer and multiplies it with an AVX2 register-blocked kernel (M <= 48) or ATen's BLAS. Train
// mode (or A requiring grad) dequantizes with ATen ops so gradients reach A and bias.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "ops/kernel_util.h"
#include "ops/matmul_nbits_kernels.h"
#include "ops/registry.h"
#include "quant/int4_pack.h"

namespace gs {
namespace nbits {

void prepareActivation(const PackedView& w, const float* x, float* xp, float* xsum) {
  const int64_t Kp = w.paddedK();
  for (int64_t b = 0; b < w.nb; ++b) {
    float s = 0.f;
    for (int64_t k = b * w.bs; k < std::min(w.K, (b + 1) * w.bs); ++k) s += x[k];
    xsum[b] = s;
  }
  if (w.bits != 4) {
    std::copy(x, x + w.K, xp);
    std::fill(xp + w.K, xp + Kp, 0.f);
    return;
  }
  for (int64_t u = 0; u < Kp; u += 16)
    for (int j = 0; j < 8; ++j) {
      int64_t e = u + 2 * j, o = e + 1;
      xp[u + j] = e < w.K ? x[e] : 0.f;
      xp[u + 8 + j] = o < w.K ? x[o] : 0.f;
    }
}

void gemvScalar(const PackedView& w, const float* xp, const float* xsum, float* y, int64_t n0,
                int64_t n1) {
  const int per = 8 / w.bits;
  const unsigned mask = (1u << w.bits) - 1u;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* row = w.B + n * w.nb * w.blob;
    float acc = 0.f;
    for (int64_t b = 0; b < w.nb; ++b) {
      const uint8_t* p = row + b * w.blob;
      const float* xb = xp + b * w.bs;
      float d = 0.f;
      if (w.bits == 4) {  // permuted activation: [8 even, 8 odd] per 8 bytes
        for (int64_t u = 0; u < w.bs; u += 16)
          for (int j = 0; j < 8; ++j) {
            uint8_t v = p[u / 2 + j];
            d += static_cast<float>(v & 0xF) * xb[u + j] + static_cast<float>(v >> 4) * xb[u + 8 + j];
          }
      } else {
        for (int64_t k = 0; k < w.bs; ++k)
          d += static_cast<float>((p[k / per] >> ((k % per) * w.bits)) & mask) * xb[k];
      }
      const int64_t i = n * w.nb + b;
      acc += w.scales[i] * (d - w.zeroPoint(i) * xsum[b]);
    }
    y[n] = acc;
  }
}

void dequantRowsScalar(const PackedView& w, int64_t n0, int64_t n1, float* out, int64_t ld) {
  const int per = 8 / w.bits;
  const unsigned mask = (1u << w.bits) - 1u;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* row = w.B + n * w.nb * w.blob;
    float* o = out + (n - n0) * ld;
    for (int64_t b = 0; b < w.nb; ++b) {
      const int64_t i = n * w.nb + b;
      const float s = w.scales[i], z = w.zeroPoint(i);
      const uint8_t* p = row + b * w.blob;
      for (int64_t k = 0; k < w.bs; ++k)
        o[b * w.bs + k] = (static_cast<float>((p[k / per] >> ((k % per) * w.bits)) & mask) - z) * s;
    }
  }
}

}  // namespace nbits

namespace {

using nbits::PackedView;

/// Up to this many rows of A run as repeated GEMVs; more rows use the dequantized-tile GEMM.
constexpr int64_t kGemvMaxRows = 2;
/// Up to this many rows the GEMM runs gemmTileAvx2 on per-thread dequantized tiles; above, the
/// BLAS-tile path (at M = 64 both measured 0.85x fp32, at M = 128 BLAS tiles 0.85x vs 0.8x).
constexpr int64_t kTileKernelMaxRows = 48;
/// Rows of W per tile of the AVX2 tile kernel and K columns per slice (16 x 4096 fp32 = 256 KB).
constexpr int64_t kTileRows = 16, kTileK = 512;
/// Bytes of fp32 weight rows dequantized per GEMM tile: large enough that BLAS packs A rarely
/// (A is re-packed per tile call), small enough to stay in L3.
constexpr int64_t kTileBytes = int64_t{4} << 20;

/// The packed weight in kernel-ready form, built once from constant inputs (or per run).
struct Prepared {
  PackedView view;
  nbits::NBitsWeight w;       // B (contiguous uint8) and the original tensors
  at::Tensor scales, zp_u8, zp_f32;
  at::Tensor g_idx;           // int64 [K] when non-trivial (act-order without static groups)
};

std::shared_ptr<Prepared> prepare(const Node& node, const nbits::NBitsWeight& attrs,
                                  const at::Tensor& B, const at::Tensor& scales,
                                  const at::Tensor& zp, const at::Tensor& g_idx) {
  auto p = std::make_shared<Prepared>();
  nbits::NBitsWeight& w = p->w;
  w = attrs;
  w.B = B.contiguous();
  w.scales = scales;
  w.zero_points = zp;
  nbits::checkWeight(w, node.describe());
  int64_t nb = w.numBlocks();
  p->scales = scales.to(at::kFloat).reshape({w.N, nb}).contiguous();
  if (zp.defined()) {
    if (zp.is_floating_point())
      p->zp_f32 = zp.to(at::kFloat).reshape({w.N, nb}).contiguous();
    else
      p->zp_u8 = nbits::unpackZeroPoints(zp, nb, w.bits);
  }
  if (g_idx.defined()) {
    GS_CHECK(g_idx.numel() == w.K && !g_idx.is_floating_point(), node.describe(),
             ": g_idx must be an integer tensor with K = ", w.K, " elements");
    at::Tensor gi = g_idx.to(at::kLong).reshape({w.K});
    if (!at::equal(gi, at::arange(w.K, at::kLong).div(w.block_size, "floor"))) {
      GS_CHECK(gi.min().item<int64_t>() >= 0 && gi.max().item<int64_t>() < nb, node.describe(),
               ": g_idx values must lie in [0, n_blocks = ", nb, ")");
      p->g_idx = gi;
    }
  }
  PackedView& v = p->view;
  v.K = w.K;
  v.N = w.N;
  v.nb = nb;
  v.bs = w.block_size;
  v.blob = w.blobSize();
  v.bits = w.bits;
  v.B = w.B.data_ptr<uint8_t>();
  v.scales = p->scales.data_ptr<float>();
  v.zp_u8 = p->zp_u8.defined() ? p->zp_u8.data_ptr<uint8_t>() : nullptr;
  v.zp_f32 = p->zp_f32.defined() ? p->zp_f32.data_ptr<float>() : nullptr;
  v.zp_default = static_cast<float>(nbits::defaultZeroPoint(w.bits));
  return p;
}

/// Dequantized W [N, K] with ATen ops (differentiable path and g_idx reordering).
at::Tensor dequantizeAten(const Prepared& p) {
  const nbits::NBitsWeight& w = p.w;
  if (!p.g_idx.defined()) return nbits::dequantize(w);
  at::Tensor q = nbits::unpackCodes(w.B, w.K, w.bits, w.block_size).to(at::kFloat);
  at::Tensor s = p.scales.index_select(1, p.g_idx);
  at::Tensor z = nbits::zeroPointsFloat(w).index_select(1, p.g_idx);
  return (q - z) * s;
}

bool fastPath(const PackedView& v) { return nbits::hasAvx2Fma() && (v.bits == 4 || v.bits == 8); }

/// out[M, N] = a[M, K] @ W^T with the packed kernels.
void runPacked(const Prepared& p, const at::Tensor& a, at::Tensor& out) {
  const PackedView& v = p.view;
  const int64_t M = a.size(0), N = v.N, Kp = v.paddedK();
  const bool fast = fastPath(v);
  float* y = out.data_ptr<float>();
  const float* x = a.data_ptr<float>();
  if (M <= kGemvMaxRows) {
    std::vector<float> xp(static_cast<size_t>(Kp)), xsum(static_cast<size_t>(v.nb));
    // Rows of W cost K*bits/8 bytes each; ~16 KB of weights per task keeps scheduling cheap.
    const int64_t grain = std::max<int64_t>(8, (16 << 10) / std::max<int64_t>(1, v.nb * v.blob));
    for (int64_t m = 0; m < M; ++m) {
      nbits::prepareActivation(v, x + m * v.K, xp.data(), xsum.data());
      float* ym = y + m * N;
      at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) {
        if (fast)
          nbits::gemvAvx2(v, xp.data(), xsum.data(), ym, n0, n1);
        else
          nbits::gemvScalar(v, xp.data(), xsum.data(), ym, n0, n1);
      });
    }
    return;
  }
  if (fast && M <= kTileKernelMaxRows) {
    // Few rows: each thread dequantizes 16-row tiles of W into its own L2-resident buffer and
    // runs the register-blocked AVX2 kernel on them (K in 512-column slices so A's slice stays in
    // L2 too). Measured 1.2x fp32 OpenBLAS at M = 32 and 2x at M = 8 (one thread, CPU time).
    std::fill(y, y + M * N, 0.f);
    const int64_t tiles = (N + kTileRows - 1) / kTileRows;
    at::parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
      std::vector<float> tile(static_cast<size_t>(kTileRows * Kp));
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t n0 = t * kTileRows, cur = std::min(kTileRows, N - n0);
        nbits::dequantRowsAvx2(v, n0, n0 + cur, tile.data(), Kp);
        for (int64_t k0 = 0; k0 < v.K; k0 += kTileK)
          nbits::gemmTileAvx2(x + k0, v.K, M, tile.data() + k0, Kp, cur,
                              std::min(kTileK, v.K - k0), y + n0, N);
      }
    });
    return;
  }
  // More rows: the GEMM is compute-bound, OpenBLAS's kernel is faster than gemmTileAvx2 there;
  // dequantize ~4 MB row tiles (both threads) and multiply each with BLAS.
  const int64_t nt = std::min<int64_t>(N, std::max<int64_t>(16, kTileBytes / (Kp * 4)));
  at::Tensor buf = at::empty({nt, Kp}, at::kFloat);
  float* bp = buf.data_ptr<float>();
  for (int64_t n0 = 0; n0 < N; n0 += nt) {
    const int64_t cur = std::min(nt, N - n0);
    at::parallel_for(0, cur, 4, [&](int64_t r0, int64_t r1) {
      if (fast)
        nbits::dequantRowsAvx2(v, n0 + r0, n0 + r1, bp + r0 * Kp, Kp);
      else
        nbits::dequantRowsScalar(v, n0 + r0, n0 + r1, bp + r0 * Kp, Kp);
    });
    at::Tensor wt = buf.narrow(0, 0, cur).narrow(1, 0, v.K);
    at::Tensor o = out.narrow(1, n0, cur);
    at::mm_out(o, a, wt.t());
  }
}

Kernel matmulNBitsKernel(const Node& node) {
  nbits::NBitsWeight attrs;
  attrs.K = node.attr("K").i();
  attrs.N = node.attr("N").i();
  attrs.bits = static_cast<int>(node.attrInt("bits", 4));
  attrs.block_size = node.attr("block_size").i();
  nbits::checkFormat(attrs.bits, attrs.block_size, node.describe());
  GS_CHECK(attrs.K > 0 && attrs.N > 0, node.describe(), ": K and N must be positive");
  int64_t acc = node.attrInt("accuracy_level", 0);
  GS_CHECK(acc >= 0 && acc <= 4, node.describe(), ": accuracy_level must be in [0, 4], got ", acc);
  GS_CHECK(node.attrInt("weight_prepacked", 0) == 0, node.describe(),
           ": weight_prepacked layouts (CUDA fpA_intB) are not supported on CPU");
  auto constant = [&](size_t i) -> at::Tensor {
    Value* v = node.input(i);
    return v && v->isParam() ? v->data() : at::Tensor();
  };
  bool all_const = node.input(1)->isParam() && node.input(2)->isParam() &&
                   (!node.hasInput(3) || node.input(3)->isParam()) &&
                   (!node.hasInput(4) || node.input(4)->isParam());
  std::shared_ptr<Prepared> fixed;
  if (all_const) fixed = prepare(node, attrs, constant(1), constant(2), constant(3), constant(4));
  const Node* np = &node;
  return [attrs, fixed, np](const KernelContext& ctx, const std::vector<at::Tensor>& in,
                            std::vector<at::Tensor>& out) {
    auto opt = [&](size_t i) { return in.size() > i ? in[i] : at::Tensor(); };
    std::shared_ptr<Prepared> p =
        fixed ? fixed : prepare(*np, attrs, in[1], in[2], opt(3), opt(4));
    const at::Tensor& A = in[0];
    GS_CHECK(A.dim() >= 1 && A.size(-1) == attrs.K, np->describe(), ": A's last dimension must be K = ",
             attrs.K, ", got shape ", A.sizes());
    GS_CHECK(A.is_floating_point(), np->describe(), ": A must be float, got ", A.scalar_type());
    at::Tensor bias = opt(5);
    if (bias.defined())
      GS_CHECK(bias.numel() == attrs.N, np->describe(), ": bias must have N = ", attrs.N,
               " elements, got ", bias.sizes());
    std::vector<int64_t> oshape(A.sizes().begin(), A.sizes().end() - 1);
    oshape.push_back(attrs.N);
    if (ctx.training || A.requires_grad() || (bias.defined() && bias.requires_grad()) ||
        p->g_idx.defined()) {
      at::Tensor y = at::matmul(A.to(at::kFloat), dequantizeAten(*p).t());
      if (bias.defined()) y = y + bias.to(at::kFloat);
      out[0] = y.to(A.scalar_type());
      return;
    }
    at::Tensor a = A.to(at::kFloat).reshape({-1, attrs.K}).contiguous();
    at::Tensor y = at::empty({a.size(0), attrs.N}, at::kFloat);
    runPacked(*p, a, y);
    if (bias.defined()) y.add_(bias.to(at::kFloat).reshape({attrs.N}));
    out[0] = y.reshape(oshape).to(A.scalar_type());
  };
}

}  // namespace

void registerMatmulNBitsOps(OpRegistry& r) {
  r.add(OpDef("MatMulNBits", nbits::kDomain)
            .inputs(3, 6)
            .attr("K", AttrKind::Int, true)
            .attr("N", AttrKind::Int, true)
            .attr("bits", AttrKind::Int)
            .attr("block_size", AttrKind::Int, true)
            .attr("accuracy_level", AttrKind::Int)
            .attr("weight_prepacked", AttrKind::Int)
            .kernel(matmulNBitsKernel));
}

}  // namespace gs
