// Real int8 kernels (see int8_kernels.h): QConv2d / QLinear on the own GEMM and depthwise
// kernels (int8_gemm.cpp), an AVX2 QLinearAdd, max pooling on the 8-bit values.
#include "runtime/int8_kernels.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/quantized/Quantizer.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/int8_gemm.h"
#include "support/error.h"

namespace gs::int8 {

std::string kernelPath() {
  switch (detail::resolveIsa(detail::Isa::kAuto)) {
    case detail::Isa::kAvx512Vnni: return "gstick-avx512vnni";
    case detail::Isa::kAvx2: return "gstick-avx2";
    default: return "gstick-scalar";
  }
}

// ---------------------------------------------------------------- conv / linear

namespace {

using detail::Requant;

at::ScalarType qtype(const QParams& q) { return q.is_signed ? at::kChar : at::kByte; }

/// Per-layer constants shared by QConv2d and QLinear: weight scales and biases, padded so the
/// vector kernels may read 16 channels past the last one.
struct LayerConsts {
  int64_t o = 0;
  std::vector<float> wscale;     // [O + 16]
  std::vector<float> bias;       // [O + 16] float bias, or empty
  std::vector<int32_t> bias_acc; // [O + 16] int32 accumulator-unit bias, or empty

  explicit LayerConsts(const QWeight& w) : o(w.w.size(0)) {
    GS_CHECK(w.w.scalar_type() == at::kChar, "int8 kernel: weight must be int8");
    GS_CHECK(!(w.bias.defined() && w.bias_acc.defined()), "int8 kernel: two biases given");
    at::Tensor s = w.scale.to(at::kFloat).reshape({-1}).contiguous();
    GS_CHECK(s.numel() == 1 || s.numel() == o, "int8 kernel: weight scale has ", s.numel(),
             " elements for ", o, " output channels");
    wscale.assign(static_cast<size_t>(o + 16), 0.0f);
    for (int64_t c = 0; c < o; ++c) wscale[c] = s.data_ptr<float>()[s.numel() == 1 ? 0 : c];
    if (w.bias.defined()) {
      at::Tensor b = w.bias.to(at::kFloat).reshape({-1}).contiguous();
      GS_CHECK(b.numel() == o, "int8 kernel: bias has ", b.numel(), " elements, expected ", o);
      bias.assign(static_cast<size_t>(o + 16), 0.0f);
      std::copy(b.data_ptr<float>(), b.data_ptr<float>() + o, bias.begin());
    }
    if (w.bias_acc.defined()) {
      at::Tensor b = w.bias_acc.to(at::kInt).reshape({-1}).contiguous();
      GS_CHECK(b.numel() == o, "int8 kernel: bias has ", b.numel(), " elements, expected ", o);
      bias_acc.assign(static_cast<size_t>(o + 16), 0);
      std::copy(b.data_ptr<int32_t>(), b.data_ptr<int32_t>() + o, bias_acc.begin());
    }
  }

  /// The requantization of one call (multipliers in thread-local scratch, valid until the
  /// thread's next call).
  Requant requant(const QParams& xq, const QParams& yq, const Activation& act) const {
    thread_local std::vector<float> mult, bias_f;
    return makeRequant(xq, yq, act, o, wscale.data(), bias.empty() ? nullptr : bias.data(),
                       bias_acc.empty() ? nullptr : bias_acc.data(), mult, bias_f);
  }
};

}  // namespace

detail::Requant makeRequant(const QParams& xq, const QParams& yq, const Activation& act, int64_t o,
                            const float* wscale, const float* bias, const int32_t* bias_acc,
                            std::vector<float>& mult, std::vector<float>& bias_f) {
  const size_t padded = static_cast<size_t>(o + 16);
  if (mult.size() < padded) mult.resize(padded);
  for (int64_t c = 0; c < o; ++c) mult[c] = xq.scale * wscale[c] / yq.scale;  // ORT's order
  detail::Requant rq;
  rq.mult = mult.data();
  if (bias) {
    if (bias_f.size() < padded) bias_f.resize(padded);
    for (int64_t c = 0; c < o; ++c) bias_f[c] = bias[c] / yq.scale;
    rq.bias_f = bias_f.data();
  }
  rq.bias_acc = bias_acc;
  int32_t lo = yq.qmin(), hi = yq.qmax();
  auto quant = [&](float v) {  // QuantizeLinear of a real bound, saturated
    float r = std::nearbyint(v / yq.scale) + static_cast<float>(yq.zero_point);
    return static_cast<int32_t>(std::clamp(r, static_cast<float>(yq.qmin()), static_cast<float>(yq.qmax())));
  };
  if (act.kind == Activation::kRelu) lo = std::max(lo, yq.zero_point);
  if (act.kind == Activation::kClip) {
    if (act.lo > -std::numeric_limits<float>::infinity()) lo = std::max(lo, quant(act.lo));
    if (act.hi < std::numeric_limits<float>::infinity()) hi = std::min(hi, quant(act.hi));
  }
  rq.lo = static_cast<float>(lo - yq.zero_point);
  rq.hi = static_cast<float>(std::max(lo, hi) - yq.zero_point);
  rq.zp = yq.zero_point;
  rq.out_signed = yq.is_signed;
  return rq;
}

struct QConv2d::Impl {
  LayerConsts consts;
  int64_t c = 0, kh = 0, kw = 0, groups = 1;
  std::vector<int64_t> strides, pads, dilations;
  bool depthwise = false;
  detail::PackedGemm gemm;
  detail::PackedDw dw;
  explicit Impl(const QWeight& w) : consts(w) {}
};

QConv2d::QConv2d(const QWeight& w, std::vector<int64_t> strides, std::vector<int64_t> pads,
                 std::vector<int64_t> dilations, int64_t groups)
    : impl_(std::make_unique<Impl>(w)) {
  GS_CHECK(w.w.dim() == 4, "int8 conv: weight must be 4-D, got rank ", w.w.dim());
  GS_CHECK(strides.size() == 2 && pads.size() == 2 && dilations.size() == 2 && groups >= 1,
           "int8 conv: expected 2-D strides, pads, dilations");
  const int64_t o = w.w.size(0), cg = w.w.size(1);
  GS_CHECK(o % groups == 0, "int8 conv: ", o, " output channels not divisible by group ", groups);
  Impl& m = *impl_;
  m.c = cg * groups;
  m.kh = w.w.size(2);
  m.kw = w.w.size(3);
  m.groups = groups;
  m.strides = std::move(strides);
  m.pads = std::move(pads);
  m.dilations = std::move(dilations);
  at::Tensor wc = w.w.contiguous();
  m.depthwise = cg == 1 && groups == o && groups > 1;
  if (m.depthwise) m.dw = detail::packDw(wc.data_ptr<int8_t>(), o, m.kh, m.kw);
  else m.gemm = detail::packGemm(wc.data_ptr<int8_t>(), o, cg, m.kh, m.kw, groups);
}

QConv2d::~QConv2d() = default;

at::Tensor QConv2d::run(const at::Tensor& x, const QParams& xq, const QParams& yq,
                        const Activation& act) const {
  const Impl& m = *impl_;
  GS_CHECK(x.dim() == 4 && x.size(1) == m.c, "int8 conv: expected input [N, ", m.c,
           ", H, W], got ", x.sizes());
  GS_CHECK(x.scalar_type() == qtype(xq), "int8 conv: input dtype does not match its zero point");
  detail::ConvGeom g;
  g.n = x.size(0);
  g.c = m.c;
  g.h = x.size(2);
  g.w = x.size(3);
  g.o = m.consts.o;
  g.kh = m.kh;
  g.kw = m.kw;
  g.sh = m.strides[0];
  g.sw = m.strides[1];
  g.ph = m.pads[0];
  g.pw = m.pads[1];
  g.dh = m.dilations[0];
  g.dw = m.dilations[1];
  g.groups = m.groups;
  g.oh = (g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1) / g.sh + 1;
  g.ow = (g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1) / g.sw + 1;
  GS_CHECK(g.oh > 0 && g.ow > 0, "int8 conv: input ", x.sizes(), " is smaller than the kernel");
  // Channels-last input (a no-op for the previous int8 layer's output and for C == 1).
  const at::Tensor xc = x.is_contiguous(at::MemoryFormat::ChannelsLast)
                            ? x
                            : x.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor y = at::empty({g.n, g.o, g.oh, g.ow},
                           x.options().dtype(qtype(yq)).memory_format(at::MemoryFormat::ChannelsLast));
  const Requant rq = m.consts.requant(xq, yq, act);
  if (m.depthwise)
    detail::convDw(xc.data_ptr(), xq.is_signed, xq.zero_point, g, m.dw, rq, y.data_ptr(), detail::Isa::kAuto);
  else
    detail::convGemm(xc.data_ptr(), xq.is_signed, xq.zero_point, g, m.gemm, rq, y.data_ptr(),
                     detail::Isa::kAuto);
  return y;
}

struct QLinear::Impl {
  LayerConsts consts;
  int64_t k = 0;
  detail::PackedGemm gemm;
  explicit Impl(const QWeight& w) : consts(w) {}
};

QLinear::QLinear(const QWeight& w) : impl_(std::make_unique<Impl>(w)) {
  GS_CHECK(w.w.dim() == 2, "int8 linear: weight must be 2-D, got rank ", w.w.dim());
  impl_->k = w.w.size(1);
  at::Tensor wc = w.w.contiguous();
  impl_->gemm = detail::packGemm(wc.data_ptr<int8_t>(), w.w.size(0), impl_->k, 1, 1, 1);
}

QLinear::~QLinear() = default;

at::Tensor QLinear::run(const at::Tensor& x, const QParams& xq, const QParams& yq,
                        const Activation& act) const {
  const Impl& m = *impl_;
  GS_CHECK(x.dim() >= 1 && x.size(-1) == m.k, "int8 linear: input has ", x.size(-1),
           " features, the weight expects ", m.k);
  GS_CHECK(x.scalar_type() == qtype(xq), "int8 linear: input dtype does not match its zero point");
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape.back() = m.consts.o;
  const at::Tensor x2 = x.reshape({-1, m.k}).contiguous();
  detail::ConvGeom g;
  g.n = x2.size(0);
  g.c = m.k;
  g.o = m.consts.o;
  at::Tensor y = at::empty(out_shape, x.options().dtype(qtype(yq)));
  detail::convGemm(x2.data_ptr(), xq.is_signed, xq.zero_point, g, m.gemm, m.consts.requant(xq, yq, act),
                   y.data_ptr(), detail::Isa::kAuto);
  return y;
}

// ---------------------------------------------------------------- add

AddArgs addArgs(const QParams& aq, const QParams& bq, const QParams& yq, bool relu) {
  AddArgs p{};
  p.ra = aq.scale / yq.scale;
  p.rb = bq.scale / yq.scale;
  // ORT's compiled `zy - (ra * za + rb * zb)` contracts the first product into an FMA (measured:
  // with both zero points nonzero only this form reproduces its outputs).
  float tb = p.rb * static_cast<float>(bq.zero_point);
  __asm__("" : "+x"(tb));
  p.k = static_cast<float>(yq.zero_point) - std::fma(p.ra, static_cast<float>(aq.zero_point), tb);
  p.fused = !aq.is_signed && !bq.is_signed && !yq.is_signed;
  p.sa = aq.scale;
  p.sb = bq.scale;
  p.sy = yq.scale;
  p.zy = static_cast<float>(yq.zero_point);
  p.za = static_cast<float>(aq.zero_point);
  p.zb = static_cast<float>(bq.zero_point);
  p.lo = static_cast<float>(relu ? std::max(yq.qmin(), yq.zero_point) : yq.qmin());
  p.hi = static_cast<float>(yq.qmax());
  p.relu = relu;
  return p;
}

namespace {

/// The two QLinearAdd roundings (see int8_kernels.h). kFused is ONNX Runtime's AVX2 kernel
/// (MLAS, default "XNNFloatMultiply" method):
///   ra = sa / sy, rb = sb / sy, k = float(zy) - fma(ra, za, rb * zb)    (float, once)
///   y = saturate(round_half_even(fma(a, ra, fma(b, rb, k))))           (per element)
/// kFloatOps is DequantizeLinear, Add, [Relu], QuantizeLinear as float ops:
///   y = saturate(round_half_even((float((a - za) * sa) + float((b - zb) * sb)) / sy) + zy).
/// Relu is folded as y >= zy (for kFused ORT removes a Relu before Q when zy is the type
/// minimum; the clamp is then the saturation it relies on).
template <class A, class B, class Y>
void addScalar(const A* a, const B* b, Y* y, int64_t n, const AddArgs& p) {
  for (int64_t i = 0; i < n; ++i) {
    y[i] = static_cast<Y>(addOne(float(a[i]), float(b[i]), p));
  }
}

template <class T>
__attribute__((target("avx2"))) inline __m256 load8f(const T* p) {
  __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  if constexpr (std::is_signed_v<T>) return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
  else return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
}

// Same operations as addScalar, in the same order.
template <class A, class B, class Y>
__attribute__((target("avx2,fma"))) void addAvx2(const A* a, const B* b, Y* y, int64_t n,
                                                 const AddArgs& p) {
  const __m256 ra = _mm256_set1_ps(p.ra), rb = _mm256_set1_ps(p.rb), k = _mm256_set1_ps(p.k);
  const __m256 sa = _mm256_set1_ps(p.sa), sb = _mm256_set1_ps(p.sb), sy = _mm256_set1_ps(p.sy);
  const __m256 za = _mm256_set1_ps(p.za), zb = _mm256_set1_ps(p.zb), zy = _mm256_set1_ps(p.zy);
  const __m256 lo = _mm256_set1_ps(p.lo), hi = _mm256_set1_ps(p.hi);
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v;
    if (p.fused) {
      v = _mm256_round_ps(_mm256_fmadd_ps(load8f(a + i), ra, _mm256_fmadd_ps(load8f(b + i), rb, k)), kNearest);
    } else {
      __m256 fa = _mm256_mul_ps(_mm256_sub_ps(load8f(a + i), za), sa);
      __m256 fb = _mm256_mul_ps(_mm256_sub_ps(load8f(b + i), zb), sb);
      __asm__("" : "+x"(fa), "+x"(fb));  // no contraction into FMAs
      v = _mm256_add_ps(_mm256_round_ps(_mm256_div_ps(_mm256_add_ps(fa, fb), sy), kNearest), zy);
    }
    __m256i qi = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));
    __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(qi), _mm256_extracti128_si256(qi, 1));
    __m128i p8 = std::is_signed_v<Y> ? _mm_packs_epi16(p16, p16) : _mm_packus_epi16(p16, p16);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(y + i), p8);
  }
  addScalar(a + i, b + i, y + i, n - i, p);
}

template <class A, class B, class Y>
void addDense(const at::Tensor& a, const at::Tensor& b, at::Tensor& y, const AddArgs& p) {
  const A* pa = static_cast<const A*>(a.data_ptr());
  const B* pb = static_cast<const B*>(b.data_ptr());
  Y* py = static_cast<Y*>(y.data_ptr());
  const bool vec = detail::resolveIsa(detail::Isa::kAuto) != detail::Isa::kScalar &&
                   __builtin_cpu_supports("fma");
  at::parallel_for(0, a.numel(), 1 << 15, [&](int64_t s, int64_t e) {
    if (vec) addAvx2(pa + s, pb + s, py + s, e - s, p);
    else addScalar(pa + s, pb + s, py + s, e - s, p);
  });
}

template <class A, class B>
void addDispatchY(const at::Tensor& a, const at::Tensor& b, at::Tensor& y, const AddArgs& p) {
  if (y.scalar_type() == at::kChar) addDense<A, B, int8_t>(a, b, y, p);
  else addDense<A, B, uint8_t>(a, b, y, p);
}

template <class A>
void addDispatchB(const at::Tensor& a, const at::Tensor& b, at::Tensor& y, const AddArgs& p) {
  if (b.scalar_type() == at::kChar) addDispatchY<A, int8_t>(a, b, y, p);
  else addDispatchY<A, uint8_t>(a, b, y, p);
}

}  // namespace

at::Tensor add(const at::Tensor& a, const QParams& aq, const at::Tensor& b, const QParams& bq,
               const QParams& yq, bool relu) {
  GS_CHECK(a.scalar_type() == qtype(aq) && b.scalar_type() == qtype(bq),
           "int8 add: input dtypes do not match their zero points");
  const AddArgs p = addArgs(aq, bq, yq, relu);
  // One pass over memory in a's layout (conv outputs are channels-last); broadcast operands
  // (rare in QDQ CNNs) are materialized first.
  at::MemoryFormat fmt = a.dim() == 4 ? a.suggest_memory_format() : at::MemoryFormat::Contiguous;
  std::vector<int64_t> shape = at::infer_size(a.sizes(), b.sizes());
  at::Tensor ac = a.expand(shape).contiguous(fmt), bc = b.expand(shape).contiguous(fmt);
  at::Tensor y = at::empty(shape, a.options().dtype(qtype(yq)).memory_format(fmt));
  if (ac.scalar_type() == at::kChar) addDispatchB<int8_t>(ac, bc, y, p);
  else addDispatchB<uint8_t>(ac, bc, y, p);
  return y;
}

// ---------------------------------------------------------------- max pool

at::Tensor maxPool2d(const at::Tensor& x, const QParams& xq, std::vector<int64_t> kernel,
                     std::vector<int64_t> strides, std::vector<int64_t> pads,
                     std::vector<int64_t> dilations, bool ceil_mode) {
  GS_CHECK(x.dim() == 4 && pads.size() == 4 && pads[0] == pads[2] && pads[1] == pads[3],
           "int8 max pool: 4-D input with symmetric padding required");
  at::Tensor keep = x;
  at::Tensor qx = at::from_blob_quantized_per_tensor_affine(
      x.data_ptr(), x.sizes(), x.strides(), [keep](void*) {}, xq.scale, xq.zero_point,
      at::TensorOptions().dtype(xq.is_signed ? at::kQInt8 : at::kQUInt8));
  at::Tensor y = at::max_pool2d(qx, kernel, strides, {pads[0], pads[1]}, dilations, ceil_mode);
  at::Tensor yk = y;
  return at::from_blob(y.data_ptr(), y.sizes(), y.strides(), [yk](void*) {},
                       at::TensorOptions().dtype(qtype(xq)));
}

}  // namespace gs::int8
