// Real int8 kernels (see int8_kernels.h): ATen quantized engine wrappers and an AVX2 QLinearAdd.
#include "runtime/int8_kernels.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>
#include <ATen/quantized/Quantizer.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "support/error.h"

namespace gs::int8 {
namespace {

/// Runs `f` with the oneDNN quantized engine selected (prepacking picks the engine from the
/// global context), restoring the previous engine afterwards.
template <class F>
auto withOnednn(F&& f) {
  at::Context& ctx = at::globalContext();
  at::QEngine prev = ctx.qEngine();
  ctx.setQEngine(at::QEngine::ONEDNN);
  struct Restore {
    at::Context& c;
    at::QEngine e;
    ~Restore() { c.setQEngine(e); }
  } restore{ctx, prev};
  return f();
}

/// Zero-copy view of an 8-bit activation as a quint8 quantized tensor (the engines take quint8
/// only: int8 input is shifted by 128, exactly, into a new buffer).
at::Tensor asQuantized(const at::Tensor& x, const QParams& q) {
  at::Tensor u = x;
  int64_t zp = q.zero_point;
  if (q.is_signed) {
    u = at::bitwise_xor(x, -128).view(at::kByte);  // q + 128 in two's complement
    zp += 128;
  }
  GS_ASSERT(u.scalar_type() == at::kByte, "int8 kernel: expected an 8-bit activation");
  at::Tensor keep = u;
  return at::from_blob_quantized_per_tensor_affine(
      u.data_ptr(), u.sizes(), u.strides(), [keep](void*) {}, q.scale, zp,
      at::TensorOptions().dtype(at::kQUInt8));
}

/// Output zero point in the engine's quint8 domain.
int64_t engineZeroPoint(const QParams& q) { return q.zero_point + (q.is_signed ? 128 : 0); }

/// Integer view of a quint8 engine result, clamped for the activation, converted to int8 when
/// the output is signed.
at::Tensor fromQuantized(const at::Tensor& yq, const QParams& q, const Activation& act) {
  at::Tensor keep = yq;
  at::Tensor u = at::from_blob(yq.data_ptr(), yq.sizes(), yq.strides(), [keep](void*) {},
                               at::TensorOptions().dtype(at::kByte));
  if (act.kind == Activation::kClip) {
    // Q(clip(v, lo, hi)) == clamp(Q(v), Q(lo), Q(hi)) with Q computed as QuantizeLinear does.
    auto quant = [&](float v) {
      float r = std::nearbyint(v / q.scale) + static_cast<float>(engineZeroPoint(q));
      return static_cast<int64_t>(std::clamp(r, 0.0f, 255.0f));
    };
    at::clamp_(u, quant(act.lo), quant(act.hi));
  }
  if (q.is_signed) return at::bitwise_xor(u.view(at::kChar), -128);
  return u;
}

at::Tensor quantizedWeight(const QWeight& w) {
  GS_ASSERT(w.w.scalar_type() == at::kChar, "int8 weight must be int8");
  at::Tensor s = w.scale.to(at::kDouble).reshape({-1});
  if (s.numel() == 1) return at::_make_per_tensor_quantized_tensor(w.w.contiguous(), s.item<double>(), 0);
  return at::_make_per_channel_quantized_tensor(w.w.contiguous(), s,
                                                at::zeros({s.numel()}, at::kLong), 0);
}

c10::optional<at::Tensor> floatBias(const QWeight& w) {
  if (!w.bias.defined()) return c10::nullopt;
  return w.bias.to(at::kFloat).reshape({-1}).contiguous();
}

}  // namespace

bool engineAvailable(std::string* name) {
  for (at::QEngine e : at::globalContext().supportedQEngines())
    if (e == at::QEngine::ONEDNN) {
      if (name) *name = "onednn";
      return true;
    }
  return false;
}

// ---------------------------------------------------------------- conv / linear

struct QConv2d::Impl {
  c10::intrusive_ptr<ConvPackedParamsBase<2>> packed;
};

QConv2d::QConv2d(const QWeight& w, std::vector<int64_t> strides, std::vector<int64_t> pads,
                 std::vector<int64_t> dilations, int64_t groups)
    : impl_(std::make_unique<Impl>()) {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("quantized::conv2d_prepack", "");
  impl_->packed = withOnednn([&] {
    torch::jit::Stack st{quantizedWeight(w), floatBias(w), c10::List<int64_t>(strides),
                         c10::List<int64_t>(pads), c10::List<int64_t>(dilations), groups};
    op.callBoxed(&st);
    return st[0].toCustomClass<ConvPackedParamsBase<2>>();
  });
}

QConv2d::~QConv2d() = default;

at::Tensor QConv2d::run(const at::Tensor& x, const QParams& xq, const QParams& yq,
                        const Activation& act) const {
  at::Tensor qx = asQuantized(x, xq);
  at::Tensor y = act.kind == Activation::kRelu
                     ? impl_->packed->apply_relu(qx, yq.scale, engineZeroPoint(yq))
                     : impl_->packed->apply(qx, yq.scale, engineZeroPoint(yq));
  return fromQuantized(y, yq, act);
}

struct QLinear::Impl {
  c10::intrusive_ptr<LinearPackedParamsBase> packed;
  int64_t k = 0;
};

QLinear::QLinear(const QWeight& w) : impl_(std::make_unique<Impl>()) {
  static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("quantized::linear_prepack", "");
  impl_->k = w.w.size(1);
  impl_->packed = withOnednn([&] {
    torch::jit::Stack st{quantizedWeight(w), floatBias(w)};
    op.callBoxed(&st);
    return st[0].toCustomClass<LinearPackedParamsBase>();
  });
}

QLinear::~QLinear() = default;

at::Tensor QLinear::run(const at::Tensor& x, const QParams& xq, const QParams& yq,
                        const Activation& act) const {
  GS_CHECK(x.dim() >= 1 && x.size(-1) == impl_->k, "int8 linear: input has ", x.size(-1),
           " features, the weight expects ", impl_->k);
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  at::Tensor x2 = x.reshape({-1, impl_->k}).contiguous();
  at::Tensor qx = asQuantized(x2, xq);
  at::Tensor y = act.kind == Activation::kRelu
                     ? impl_->packed->apply_relu(qx, yq.scale, engineZeroPoint(yq))
                     : impl_->packed->apply(qx, yq.scale, engineZeroPoint(yq));
  out_shape.back() = y.size(-1);
  return fromQuantized(y, yq, act).reshape(out_shape);
}

// ---------------------------------------------------------------- add

namespace {

struct AddArgs {
  float sa, sb, sy, zy, lo, hi;
  int32_t za, zb;
  bool relu;
};

template <class A, class B, class Y>
void addScalar(const A* a, const B* b, Y* y, int64_t n, const AddArgs& p) {
  for (int64_t i = 0; i < n; ++i) {
    float fa = static_cast<float>(static_cast<int32_t>(a[i]) - p.za) * p.sa;
    float fb = static_cast<float>(static_cast<int32_t>(b[i]) - p.zb) * p.sb;
    float r = fa + fb;
    if (p.relu) r = std::max(r, 0.0f);
    float q = std::nearbyint(r / p.sy) + p.zy;
    y[i] = static_cast<Y>(std::clamp(q, p.lo, p.hi));
  }
}

template <class T>
__attribute__((target("avx2"))) inline __m256i load8(const T* p) {
  __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  if constexpr (std::is_signed_v<T>) return _mm256_cvtepi8_epi32(v);
  else return _mm256_cvtepu8_epi32(v);
}

// Same operation order as addScalar (mul, add, div, round, add, clamp; no FMA), so both paths
// and the float reference ops agree bit for bit.
template <class A, class B, class Y>
__attribute__((target("avx2"))) void addAvx2(const A* a, const B* b, Y* y, int64_t n,
                                             const AddArgs& p) {
  const __m256 sa = _mm256_set1_ps(p.sa), sb = _mm256_set1_ps(p.sb), sy = _mm256_set1_ps(p.sy);
  const __m256 zy = _mm256_set1_ps(p.zy), lo = _mm256_set1_ps(p.lo), hi = _mm256_set1_ps(p.hi);
  const __m256i za = _mm256_set1_epi32(p.za), zb = _mm256_set1_epi32(p.zb);
  const __m256 zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 fa = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(load8(a + i), za)), sa);
    __m256 fb = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(load8(b + i), zb)), sb);
    __m256 r = _mm256_add_ps(fa, fb);
    if (p.relu) r = _mm256_max_ps(r, zero);
    __m256 q = _mm256_round_ps(_mm256_div_ps(r, sy), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(q, zy), lo), hi);
    __m256i qi = _mm256_cvtps_epi32(q);
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
  static const bool avx2 = __builtin_cpu_supports("avx2");
  at::parallel_for(0, a.numel(), 1 << 15, [&](int64_t s, int64_t e) {
    if (avx2) addAvx2(pa + s, pb + s, py + s, e - s, p);
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

at::ScalarType qtype(const QParams& q) { return q.is_signed ? at::kChar : at::kByte; }

}  // namespace

at::Tensor add(const at::Tensor& a, const QParams& aq, const at::Tensor& b, const QParams& bq,
               const QParams& yq, bool relu) {
  GS_CHECK(a.scalar_type() == qtype(aq) && b.scalar_type() == qtype(bq),
           "int8 add: input dtypes do not match their zero points");
  AddArgs p{aq.scale, bq.scale, yq.scale, static_cast<float>(yq.zero_point),
            static_cast<float>(yq.qmin()), static_cast<float>(yq.qmax()), aq.zero_point,
            bq.zero_point, relu};
  if (a.sizes() != b.sizes()) {
    // Broadcasting: the reference's float ops, in the same order (rare in QDQ CNNs).
    auto dq = [](const at::Tensor& t, const QParams& q) {
      return at::mul(at::sub(t.to(at::kInt), q.zero_point).to(at::kFloat), q.scale);
    };
    at::Tensor r = at::add(dq(a, aq), dq(b, bq));
    if (relu) r = at::relu(r);
    at::Tensor q = at::add(at::round(at::div(r, yq.scale)), p.zy);
    return at::clamp(q, p.lo, p.hi).to(qtype(yq));
  }
  // One pass over memory in a's layout (conv outputs are channels-last).
  at::MemoryFormat fmt = a.suggest_memory_format();
  at::Tensor ac = a.contiguous(fmt), bc = b.contiguous(fmt);
  at::Tensor y = at::empty(a.sizes(), a.options().dtype(qtype(yq)).memory_format(fmt));
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
