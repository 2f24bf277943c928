// One-pass group fake quantization (see quantizer.h: fakeQuantGroups, rtnFakeQuant,
// rtnFakeQuantScaled). The AVX2 loop and the scalar loop perform the same IEEE single-precision
// operations in the same order as the ATen expressions they replace (multiply, min / max,
// divide, round half to even, add, clamp, subtract; no fused multiply-add: neither loop is
// compiled for FMA), so results are bit-identical to them (LlmRtn.Fused* tests).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "llm/quantizer.h"
#include "support/error.h"

#define GS_AVX2_ONLY __attribute__((target("avx2")))

namespace gs::llm {

namespace {

/// One row's columns of one group.
struct GroupArgs {
  const float* w;
  const float* col_scale;  ///< nullable: quantize w * col_scale, return the result / col_scale
  float* out;
  int64_t n;
  float s, z, lo, hi, maxq;
  bool clip, minus_w;
};

/// paramsFromRange for one group's [mn, mx], in the same float operations.
void groupParams(float mn, float mx, const WeightQuantSpec& spec, float& s, float& z) {
  const float lo = std::min(mn, 0.0f), hi = std::max(mx, 0.0f);
  if (spec.symmetric) {
    const float half = static_cast<float>(int64_t{1} << (spec.bits - 1));
    const float amax = std::max(hi, -lo);
    s = amax == 0.0f ? 1.0f : amax / (half - 1.0f);
    z = half;
  } else {
    const float maxq = static_cast<float>(spec.maxq());
    s = hi == lo ? 1.0f : (hi - lo) / maxq;
    z = std::min(std::max(std::nearbyint(-lo / s), 0.0f), maxq);
  }
}

void rangeScalar(const float* w, const float* cs, int64_t n, float& mn, float& mx) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = cs ? w[i] * cs[i] : w[i];
    mn = std::min(mn, v);
    mx = std::max(mx, v);
  }
}

void groupScalar(const GroupArgs& a) {
  for (int64_t i = 0; i < a.n; ++i) {
    float v = a.col_scale ? a.w[i] * a.col_scale[i] : a.w[i];
    if (a.clip) v = std::min(std::max(v, a.lo), a.hi);
    float q = std::nearbyint(v / a.s) + a.z;
    q = std::min(std::max(q, 0.0f), a.maxq);
    float r = a.s * (q - a.z);
    if (a.col_scale) r = r / a.col_scale[i];
    a.out[i] = a.minus_w ? r - a.w[i] : r;
  }
}

GS_AVX2_ONLY void rangeAvx2(const float* w, const float* cs, int64_t n, float& mn, float& mx) {
  __m256 vmn = _mm256_set1_ps(mn), vmx = _mm256_set1_ps(mx);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(w + i);
    if (cs) v = _mm256_mul_ps(v, _mm256_loadu_ps(cs + i));
    vmn = _mm256_min_ps(vmn, v);
    vmx = _mm256_max_ps(vmx, v);
  }
  alignas(32) float a[8], b[8];
  _mm256_store_ps(a, vmn);
  _mm256_store_ps(b, vmx);
  for (int k = 0; k < 8; ++k) {
    mn = std::min(mn, a[k]);
    mx = std::max(mx, b[k]);
  }
  rangeScalar(w + i, cs ? cs + i : nullptr, n - i, mn, mx);
}

GS_AVX2_ONLY void groupAvx2(const GroupArgs& a) {
  const __m256 s = _mm256_set1_ps(a.s), z = _mm256_set1_ps(a.z), lo = _mm256_set1_ps(a.lo),
               hi = _mm256_set1_ps(a.hi), zero = _mm256_setzero_ps(), maxq = _mm256_set1_ps(a.maxq);
  int64_t i = 0;
  for (; i + 8 <= a.n; i += 8) {
    const __m256 w = _mm256_loadu_ps(a.w + i);
    __m256 v = w, cs = zero;
    if (a.col_scale) {
      cs = _mm256_loadu_ps(a.col_scale + i);
      v = _mm256_mul_ps(v, cs);
    }
    if (a.clip) v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    __m256 q = _mm256_add_ps(
        _mm256_round_ps(_mm256_div_ps(v, s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), z);
    q = _mm256_min_ps(_mm256_max_ps(q, zero), maxq);
    __m256 r = _mm256_mul_ps(s, _mm256_sub_ps(q, z));
    if (a.col_scale) r = _mm256_div_ps(r, cs);
    if (a.minus_w) r = _mm256_sub_ps(r, w);
    _mm256_storeu_ps(a.out + i, r);
  }
  GroupArgs tail = a;
  tail.w += i;
  tail.col_scale = a.col_scale ? a.col_scale + i : nullptr;
  tail.out += i;
  tail.n -= i;
  groupScalar(tail);
}

/// GS_NBITS_SCALAR=1 (read on every call, so tests can compare both loops) selects the scalar
/// loop, as it does for the MatMulNBits kernels.
bool useAvx2() {
  static const bool cpu = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  const char* e = std::getenv("GS_NBITS_SCALAR");
  return cpu && !(e && e[0] == '1');
}

/// Where the (scale, zero[, lo, hi]) of each (row, group) come from: given tensors, or the
/// group's own min / max under `spec`.
struct Params {
  const float *s = nullptr, *z = nullptr, *lo = nullptr, *hi = nullptr;
  const WeightQuantSpec* spec = nullptr;
};

void run(const at::Tensor& w, const float* col_scale, at::Tensor& out, int64_t group_cols,
         int64_t maxq, const Params& p, bool minus_w) {
  const int64_t rows = w.size(0), in = w.size(1);
  const int64_t ng = (in + group_cols - 1) / group_cols;
  const float* wp = w.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const bool avx2 = useAvx2();
  // ~64k elements per task: a fraction of a millisecond, worth a thread hand-off.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, in));
  at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t c0 = g * group_cols, k = r * ng + g;
        GroupArgs a{wp + r * in + c0, col_scale ? col_scale + c0 : nullptr, op + r * in + c0,
                    std::min(group_cols, in - c0), 0.0f, 0.0f, 0.0f, 0.0f,
                    static_cast<float>(maxq), p.lo != nullptr, minus_w};
        if (p.spec) {
          // A ragged last group's zero padding never changes a range (ranges contain 0).
          float mn = std::numeric_limits<float>::infinity(), mx = -mn;
          if (avx2) rangeAvx2(a.w, a.col_scale, a.n, mn, mx);
          else rangeScalar(a.w, a.col_scale, a.n, mn, mx);
          groupParams(mn, mx, *p.spec, a.s, a.z);
        } else {
          a.s = p.s[k];
          a.z = p.z[k];
          if (a.clip) {
            a.lo = p.lo[k];
            a.hi = p.hi[k];
          }
        }
        if (avx2) groupAvx2(a);
        else groupScalar(a);
      }
  });
}

at::Tensor floatContiguous(const at::Tensor& t) { return t.to(at::kFloat).contiguous(); }

at::Tensor outputFor(const at::Tensor& w, at::Tensor out) {
  if (out.defined() && out.sizes() == w.sizes() && out.scalar_type() == at::kFloat &&
      out.is_contiguous())
    return out;
  return at::empty_like(w);
}

}  // namespace

at::Tensor fakeQuantGroups(const at::Tensor& w0, const at::Tensor& scale, const at::Tensor& zero,
                           int64_t group_cols, int64_t maxq, const at::Tensor& lo,
                           const at::Tensor& hi, bool minus_w) {
  GS_CHECK(w0.dim() == 2 && group_cols > 0, "fakeQuantGroups: expects a 2-D weight");
  const at::Tensor w = floatContiguous(w0);
  const int64_t rows = w.size(0), ng = (w.size(1) + group_cols - 1) / group_cols;
  auto param = [&](const at::Tensor& t) {
    GS_CHECK(t.numel() == rows * ng, "fakeQuantGroups: parameters must be [", rows, ", ", ng,
             "], got ", t.sizes());
    return floatContiguous(t.reshape({rows, ng}));
  };
  const at::Tensor s = param(scale), z = param(zero);
  const bool clip = lo.defined();
  const at::Tensor l = clip ? param(lo) : at::Tensor(), h = clip ? param(hi) : at::Tensor();
  Params p;
  p.s = s.data_ptr<float>();
  p.z = z.data_ptr<float>();
  if (clip) {
    p.lo = l.data_ptr<float>();
    p.hi = h.data_ptr<float>();
  }
  at::Tensor out = at::empty_like(w);
  run(w, nullptr, out, group_cols, maxq, p, minus_w);
  return out;
}

at::Tensor rtnFakeQuant(const at::Tensor& w, const WeightQuantSpec& spec) {
  GS_CHECK(w.dim() == 2, "weight quantization expects a 2-D [out, in] matrix, got ", w.dim(), "-D");
  spec.validate(w.size(1));
  if (spec.group_size < 0) {  // one range for the whole tensor
    QuantParams p = computeParams(w, spec);
    return fakeQuantGroups(w, p.scale, p.zero, w.size(1), spec.maxq()).to(w.scalar_type());
  }
  const at::Tensor wf = floatContiguous(w);
  at::Tensor out = at::empty_like(wf);
  Params p;
  p.spec = &spec;
  run(wf, nullptr, out, spec.groupCols(w.size(1)), spec.maxq(), p, false);
  return out.to(w.scalar_type());
}

at::Tensor rtnFakeQuantScaled(const at::Tensor& w0, const at::Tensor& col_scale,
                              const WeightQuantSpec& spec, at::Tensor out) {
  GS_CHECK(w0.dim() == 2 && col_scale.numel() == w0.size(1),
           "rtnFakeQuantScaled: expects W [out, in] and one scale per input column");
  if (spec.group_size < 0) return rtnFakeQuant(w0.to(at::kFloat) * col_scale, spec) / col_scale;
  spec.validate(w0.size(1));
  const at::Tensor w = floatContiguous(w0), cs = floatContiguous(col_scale.reshape({-1}));
  out = outputFor(w, std::move(out));
  Params p;
  p.spec = &spec;
  run(w, cs.data_ptr<float>(), out, spec.groupCols(w.size(1)), spec.maxq(), p, false);
  return out;
}

}  // namespace gs::llm
