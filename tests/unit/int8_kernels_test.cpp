// Int8 runtime kernels (runtime/int8_kernels.h) against exact integer / float-op references,
// sweeping shapes (channels below/above vector widths, odd K, depthwise, strides, dilation):
// conv / linear bit for bit against an independent ONNX-Runtime-style requantization of the
// exact accumulator, on the AVX2 path and the forced scalar fallback.
#include "runtime/int8_kernels.h"

#include "runtime/int8_gemm.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "support/error.h"
#include "test_util.h"

namespace gs {
namespace {

using int8::Activation;
using int8::QParams;

at::Tensor randQ(at::IntArrayRef shape, bool is_signed, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor t = at::randint(is_signed ? -128 : 0, is_signed ? 128 : 256, shape, gen, at::kInt);
  return t.to(is_signed ? at::kChar : at::kByte);
}

at::Tensor randW(at::IntArrayRef shape, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randint(-127, 128, shape, gen, at::kInt).to(at::kChar);
}

/// The instruction paths to cover on this machine: the scalar fallback always, AVX2 and AVX-512
/// VNNI when present.
std::vector<int8::detail::Isa> isas() {
  std::vector<int8::detail::Isa> v{int8::detail::Isa::kScalar};
  if (__builtin_cpu_supports("avx2")) v.push_back(int8::detail::Isa::kAvx2);
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
    v.push_back(int8::detail::Isa::kAvx512Vnni);
  return v;
}

/// Forces one kernel path for a scope.
struct IsaScope {
  int8::detail::Isa prev;
  explicit IsaScope(int8::detail::Isa isa) : prev(int8::detail::setIsa(isa)) {}
  ~IsaScope() { int8::detail::setIsa(prev); }
};

/// Real-arithmetic reference: r = acc * x_scale * w_scale[o] + b[o] in double from the exact
/// integer accumulation, then round half to even, zero point, activation clamp, saturate.
at::Tensor requantRef(const at::Tensor& acc, const at::Tensor& wscale, const at::Tensor& bias,
                      const QParams& xq, const QParams& yq, const Activation& act, int64_t ch_dim) {
  std::vector<int64_t> shape(static_cast<size_t>(acc.dim()), 1);
  shape[static_cast<size_t>(ch_dim)] = -1;
  at::Tensor ws = wscale.to(at::kDouble).reshape(wscale.numel() == 1 ? std::vector<int64_t>{} : shape);
  at::Tensor r = acc * (static_cast<double>(xq.scale) * ws);
  if (bias.defined()) r = r + bias.to(at::kDouble).reshape(shape);
  if (act.kind == Activation::kRelu) r = r.clamp_min(0);
  if (act.kind == Activation::kClip) r = r.clamp(act.lo, act.hi);
  at::Tensor q = at::round(r / static_cast<double>(yq.scale)) + yq.zero_point;
  return q.clamp(yq.qmin(), yq.qmax());
}

/// |got - want| <= 1 everywhere and at most 0.2% of elements differ (differences only arise when
/// the real value sits within float rounding of a rounding boundary).
void expectWithinOneStep(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  at::Tensor d = (got.to(at::kDouble) - want).abs();
  EXPECT_LE(d.max().item<double>(), 1.0) << what;
  EXPECT_LE(d.gt(0).sum().item<int64_t>(), std::max<int64_t>(1, want.numel() / 500)) << what;
}

struct ConvCase {
  int64_t n, c, o, h, w, k, stride, pad, dil, groups;
  bool xs, ys, per_channel, bias;
  Activation::Kind act;
};

TEST(Int8Kernels, ConvMatchesExactIntegerReference) {
  std::vector<ConvCase> cases = {
      {1, 1, 6, 28, 28, 5, 1, 2, 1, 1, false, false, true, true, Activation::kRelu},   // LeNet stem
      {2, 3, 16, 9, 11, 3, 1, 1, 1, 1, false, false, true, true, Activation::kNone},
      {1, 16, 16, 14, 14, 3, 1, 1, 1, 16, false, false, true, true, Activation::kClip}, // depthwise
      {2, 16, 32, 15, 15, 3, 2, 1, 1, 1, true, true, true, true, Activation::kRelu},    // int8 acts
      {1, 32, 64, 7, 7, 1, 1, 0, 1, 1, false, true, false, false, Activation::kNone},   // 1x1
      {2, 8, 24, 10, 10, 3, 1, 2, 2, 2, true, false, true, true, Activation::kNone},    // dilation
      {3, 64, 64, 8, 8, 3, 1, 1, 1, 1, false, false, true, true, Activation::kRelu},
  };
  uint64_t seed = 10;
  for (const ConvCase& cc : cases) {
    std::string what = "case c=" + std::to_string(cc.c) + " o=" + std::to_string(cc.o) +
                       " k=" + std::to_string(cc.k) + " g=" + std::to_string(cc.groups);
    at::Tensor x = randQ({cc.n, cc.c, cc.h, cc.w}, cc.xs, seed++);
    at::Tensor w = randW({cc.o, cc.c / cc.groups, cc.k, cc.k}, seed++);
    at::Tensor ws = cc.per_channel ? test::randn({cc.o}, seed++).abs() * 0.01f + 0.001f
                                   : at::full({1}, 0.004f);
    at::Tensor b = cc.bias ? test::randn({cc.o}, seed++) : at::Tensor();
    QParams xq{0.02f, cc.xs ? -7 : 131, cc.xs}, yq{0.09f, cc.ys ? 5 : 97, cc.ys};
    Activation act{cc.act, -1.5f, 3.0f};
    if (cc.act == Activation::kClip) act.lo = 0.0f;
    int8::QConv2d conv({w, ws, b}, {cc.stride, cc.stride}, {cc.pad, cc.pad}, {cc.dil, cc.dil}, cc.groups);
    at::Tensor y = conv.run(x, xq, yq, act);
    ASSERT_EQ(y.scalar_type(), cc.ys ? at::kChar : at::kByte) << what;
    at::Tensor acc = at::conv2d(x.to(at::kDouble) - xq.zero_point, w.to(at::kDouble), {},
                                {cc.stride, cc.stride}, {cc.pad, cc.pad}, {cc.dil, cc.dil}, cc.groups);
    ASSERT_EQ(y.sizes(), acc.sizes()) << what;
    expectWithinOneStep(y, requantRef(acc, ws, b, xq, yq, act, 1), what);
  }
}

TEST(Int8Kernels, ConvAcceptsChannelsLastAndContiguousInputs) {
  at::Tensor x = randQ({2, 16, 12, 12}, false, 1);
  at::Tensor w = randW({16, 16, 3, 3}, 2);
  at::Tensor ws = at::full({16}, 0.003f);
  int8::QConv2d conv({w, ws, {}}, {1, 1}, {1, 1}, {1, 1}, 1);
  QParams xq{0.05f, 128, false}, yq{0.1f, 128, false};
  at::Tensor a = conv.run(x, xq, yq, {});
  at::Tensor b = conv.run(x.contiguous(at::MemoryFormat::ChannelsLast), xq, yq, {});
  EXPECT_TRUE(at::equal(a, b));
}

TEST(Int8Kernels, LinearMatchesExactIntegerReference) {
  uint64_t seed = 100;
  for (int64_t k : {1, 7, 16, 33, 64, 400}) {
    for (bool xs : {false, true}) {
      std::vector<int64_t> xshape = k == 33 ? std::vector<int64_t>{2, 3, k} : std::vector<int64_t>{5, k};
      at::Tensor x = randQ(xshape, xs, seed++);
      const int64_t o = 10 + k % 7;
      at::Tensor w = randW({o, k}, seed++);
      at::Tensor ws = test::randn({o}, seed++).abs() * 0.01f + 0.001f;
      at::Tensor b = test::randn({o}, seed++);
      QParams xq{0.03f, xs ? 3 : 120, xs}, yq{0.2f, xs ? -4 : 110, xs};
      Activation act{k % 2 ? Activation::kRelu : Activation::kNone};
      int8::QLinear lin({w, ws, b});
      at::Tensor y = lin.run(x, xq, yq, act);
      at::Tensor acc = at::matmul(x.to(at::kDouble) - xq.zero_point, w.to(at::kDouble).t());
      ASSERT_EQ(y.sizes(), acc.sizes());
      expectWithinOneStep(y, requantRef(acc, ws, b, xq, yq, act, acc.dim() - 1),
                          "k=" + std::to_string(k));
    }
  }
}

/// DequantizeLinear -> Add -> [Relu] -> QuantizeLinear as the float kernels compute it.
at::Tensor addRef(const at::Tensor& a, const QParams& aq, const at::Tensor& b, const QParams& bq,
                  const QParams& yq, bool relu) {
  auto dq = [](const at::Tensor& t, const QParams& q) {
    return at::mul(at::sub(t.to(at::kInt), q.zero_point).to(at::kFloat), at::scalar_tensor(q.scale));
  };
  at::Tensor r = at::add(dq(a, aq), dq(b, bq));
  if (relu) r = at::relu(r);
  at::Tensor q = at::add(at::round(at::div(r, at::scalar_tensor(yq.scale))), float(yq.zero_point));
  return at::clamp(q, yq.qmin(), yq.qmax()).to(yq.is_signed ? at::kChar : at::kByte);
}

/// ONNX Runtime's AVX2 QLinearAdd, written with ATen double ops: each fma(x, r, c) is the exact
/// x * r + c (a float product is exact in double) rounded once to float.
at::Tensor addOrtRef(const at::Tensor& a, const QParams& aq, const at::Tensor& b, const QParams& bq,
                     const QParams& yq, bool relu) {
  const float ra = aq.scale / yq.scale, rb = bq.scale / yq.scale;
  const float tb = rb * float(bq.zero_point);
  const float k = float(yq.zero_point) - float(double(ra) * double(aq.zero_point) + double(tb));
  at::Tensor inner = (b.to(at::kDouble) * double(rb) + double(k)).to(at::kFloat);
  at::Tensor v = (a.to(at::kDouble) * double(ra) + inner.to(at::kDouble)).to(at::kFloat);
  double lo = relu ? std::max(yq.qmin(), yq.zero_point) : yq.qmin();
  return at::clamp(at::round(v), lo, yq.qmax()).to(yq.is_signed ? at::kChar : at::kByte);
}

TEST(Int8Kernels, AddIsBitIdenticalToOrt) {
  uint64_t seed = 200;
  for (int64_t n : {1, 7, 8, 9, 100, 70001}) {
    for (int combo = 0; combo < 8; ++combo) {
      bool as = combo & 1, bs = combo & 2, ys = combo & 4;
      at::Tensor a = randQ({n}, as, seed++), b = randQ({n}, bs, seed++);
      QParams aq{0.031f, as ? -3 : 128, as}, bq{0.017f, bs ? 9 : 100, bs}, yq{0.045f, ys ? 0 : 120, ys};
      for (bool relu : {false, true}) {
        // ORT fuses (and rounds its own way) only all-uint8 adds; else it runs the float ops.
        at::Tensor want = !as && !bs && !ys ? addOrtRef(a, aq, b, bq, yq, relu)
                                            : addRef(a, aq, b, bq, yq, relu);
        for (auto isa : isas()) {
          IsaScope scope(isa);
          at::Tensor y = int8::add(a, aq, b, bq, yq, relu);
          EXPECT_TRUE(at::equal(y, want)) << "n=" << n << " combo=" << combo << " isa=" << int(isa);
          // Against the float ops DQ, Add, [Relu], Q: at most one step apart (near-ties).
          at::Tensor d = (y.to(at::kInt) - addRef(a, aq, b, bq, yq, relu).to(at::kInt)).abs();
          EXPECT_LE(d.max().item<int>(), 1) << "n=" << n << " combo=" << combo;
          EXPECT_LE(d.gt(0).sum().item<int64_t>(), std::max<int64_t>(1, n / 1000));
        }
      }
    }
  }
  // Mixed layouts (a channels-last as conv outputs are) and broadcasting.
  at::Tensor a = randQ({2, 8, 5, 5}, false, 1).contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor b = randQ({2, 8, 5, 5}, false, 2);
  QParams q{0.05f, 128, false}, qy{0.07f, 0, false};
  EXPECT_TRUE(at::equal(int8::add(a, q, b, q, qy, true), addOrtRef(a, q, b, q, qy, true)));
  at::Tensor c = randQ({8, 1, 1}, false, 3);
  at::Tensor bc = int8::add(b, q, c, q, qy, false);
  ASSERT_EQ(bc.sizes(), b.sizes());
  EXPECT_TRUE(at::equal(bc, addOrtRef(b, q, c.expand_as(b), q, qy, false)));
}

TEST(Int8Kernels, MaxPoolEqualsFloatPool) {
  for (bool s : {false, true}) {
    at::Tensor x = randQ({2, 6, 11, 11}, s, 7);
    QParams q{0.1f, s ? -20 : 30, s};
    at::Tensor y = int8::maxPool2d(x, q, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, true);
    at::Tensor want = at::max_pool2d(x.to(at::kFloat), {3, 3}, {2, 2}, {1, 1}, {1, 1}, true);
    EXPECT_TRUE(at::equal(y.to(at::kFloat), want));
  }
}

// ---------------------------------------------------------------- ORT-exact requantization

/// ONNX Runtime's requantization of an exact accumulator, written with ATen float32 tensor ops:
/// m = x_scale * w_scale / y_scale, v = float(acc + bias_acc) * m [+ bias / y_scale], clamp to
/// the activation's integer range minus y_zp, round half to even, + y_zp.
at::Tensor requantOrt(const at::Tensor& acc, const at::Tensor& wscale, const at::Tensor& bias,
                      const at::Tensor& bias_acc, const QParams& xq, const QParams& yq,
                      const Activation& act, int64_t ch_dim) {
  std::vector<int64_t> shape(static_cast<size_t>(acc.dim()), 1);
  shape[static_cast<size_t>(ch_dim)] = -1;
  auto chan = [&](const at::Tensor& t) { return t.numel() == 1 ? t.reshape({}) : t.reshape(shape); };
  at::Tensor m = at::div(at::mul(wscale.to(at::kFloat), xq.scale), yq.scale);
  at::Tensor a = acc.to(at::kLong);
  if (bias_acc.defined()) a = a + chan(bias_acc.to(at::kLong));
  at::Tensor v = a.to(at::kFloat) * chan(m);
  if (bias.defined()) v = v + chan(at::div(bias.to(at::kFloat), yq.scale));
  double lo = yq.qmin(), hi = yq.qmax();
  auto q = [&](double r) { return std::clamp<double>(std::nearbyint(float(r) / yq.scale) + yq.zero_point, yq.qmin(), yq.qmax()); };
  if (act.kind == Activation::kRelu) lo = std::max<double>(lo, yq.zero_point);
  if (act.kind == Activation::kClip) {
    lo = std::max(lo, q(act.lo));
    hi = std::min(hi, q(act.hi));
  }
  v = at::clamp(v, lo - yq.zero_point, hi - yq.zero_point);
  return (at::round(v).to(at::kInt) + yq.zero_point).to(yq.is_signed ? at::kChar : at::kByte);
}

struct OrtCase {
  int64_t n, c, o, h, w, kh, kw, stride, pad, dil, groups;
  bool xs, ys, per_channel;
  int bias;  // 0 none, 1 float, 2 int32 accumulator units
  Activation::Kind act;
};

TEST(Int8Kernels, ConvIsBitIdenticalToOrtRequantization) {
  using K = Activation::Kind;
  std::vector<OrtCase> cases = {
      // pointwise 1x1, stride 1 and 2, odd channel counts
      {1, 16, 48, 14, 14, 1, 1, 1, 0, 1, 1, false, false, true, 2, K::kClip},
      {1, 48, 12, 14, 14, 1, 1, 1, 0, 1, 1, false, false, true, 2, K::kNone},
      {2, 13, 33, 9, 7, 1, 1, 1, 0, 1, 1, true, true, true, 1, K::kRelu},
      {1, 24, 17, 10, 10, 1, 1, 2, 0, 1, 1, false, true, false, 2, K::kNone},
      {3, 96, 160, 4, 4, 1, 1, 1, 0, 1, 1, false, false, true, 2, K::kRelu},
      // depthwise 3x3 stride 1/2 pad 1, also odd channels, 5x5 and dilation
      {1, 48, 48, 14, 14, 3, 3, 1, 1, 1, 48, false, false, true, 2, K::kClip},
      {2, 72, 72, 13, 13, 3, 3, 2, 1, 1, 72, true, false, true, 2, K::kRelu},
      {1, 13, 13, 8, 9, 3, 3, 1, 1, 1, 13, false, true, false, 1, K::kNone},
      {1, 19, 19, 9, 9, 5, 5, 2, 2, 1, 19, true, true, true, 0, K::kNone},
      {2, 16, 16, 10, 10, 3, 3, 1, 2, 2, 16, false, false, true, 2, K::kRelu},
      // dense 3x3 (stem with C = 1, ResNet-style), grouped, asymmetric kernel, no padding
      {2, 1, 16, 28, 28, 3, 3, 1, 1, 1, 1, false, false, true, 2, K::kRelu},
      {1, 1, 6, 28, 28, 5, 5, 1, 2, 1, 1, false, false, true, 1, K::kRelu},
      {2, 16, 32, 15, 15, 3, 3, 2, 1, 1, 1, true, true, true, 2, K::kNone},
      {1, 12, 18, 9, 11, 3, 3, 1, 1, 1, 3, false, false, true, 2, K::kClip},
      {1, 5, 7, 6, 9, 2, 3, 1, 0, 1, 1, true, false, false, 1, K::kNone},
      // the AVX2 in-place path: ResNet stage 1 (16 -> 16 s1 p1), 16 -> 32 s2, odd C / O with
      // odd kernel rows, 6-row tiles crossing images (dilation 2 stays on the im2col path)
      {3, 16, 16, 12, 13, 3, 3, 1, 1, 1, 1, false, false, true, 2, K::kRelu},
      {2, 16, 32, 14, 14, 3, 3, 2, 1, 1, 1, false, false, true, 2, K::kRelu},
      {2, 7, 19, 11, 10, 3, 3, 2, 1, 1, 1, true, false, true, 1, K::kNone},
      {1, 3, 33, 7, 5, 3, 3, 1, 2, 1, 1, false, true, true, 2, K::kClip},
      {2, 6, 10, 9, 9, 3, 3, 1, 2, 2, 1, false, false, true, 2, K::kNone},
  };
  uint64_t seed = 500;
  for (const OrtCase& cc : cases) {
    const std::string what = "c=" + std::to_string(cc.c) + " o=" + std::to_string(cc.o) + " k=" +
                             std::to_string(cc.kh) + "x" + std::to_string(cc.kw) + " s=" +
                             std::to_string(cc.stride) + " g=" + std::to_string(cc.groups);
    at::Tensor x = randQ({cc.n, cc.c, cc.h, cc.w}, cc.xs, seed++);
    at::Tensor w = randW({cc.o, cc.c / cc.groups, cc.kh, cc.kw}, seed++);
    at::Tensor ws = cc.per_channel ? test::randn({cc.o}, seed++).abs() * 0.01f + 0.001f
                                   : at::full({1}, 0.0037f);
    QParams xq{0.021f, cc.xs ? -9 : 127, cc.xs}, yq{0.083f, cc.ys ? 3 : 101, cc.ys};
    int8::QWeight qw{w, ws, {}, {}};
    if (cc.bias == 1) qw.bias = test::randn({cc.o}, seed++) * 2;
    if (cc.bias == 2) qw.bias_acc = (test::randn({cc.o}, seed++) * 3000).to(at::kInt);
    Activation act{cc.act, 0.0f, 6.0f};
    int8::QConv2d conv(qw, {cc.stride, cc.stride}, {cc.pad, cc.pad}, {cc.dil, cc.dil}, cc.groups);
    at::Tensor acc = at::conv2d(x.to(at::kDouble) - xq.zero_point, w.to(at::kDouble), {},
                                {cc.stride, cc.stride}, {cc.pad, cc.pad}, {cc.dil, cc.dil}, cc.groups);
    at::Tensor want = requantOrt(acc, ws, qw.bias, qw.bias_acc, xq, yq, act, 1);
    for (auto isa : isas()) {
      IsaScope scope(isa);
      at::Tensor y = conv.run(x, xq, yq, act);
      ASSERT_EQ(y.sizes(), want.sizes()) << what;
      EXPECT_TRUE(y.is_contiguous(at::MemoryFormat::ChannelsLast)) << what;
      EXPECT_TRUE(at::equal(y.contiguous(), want)) << what << " isa=" << int(isa) << " differs in "
          << y.ne(want).sum().item<int64_t>() << " of " << want.numel();
    }
  }
}

TEST(Int8Kernels, LinearIsBitIdenticalToOrtRequantization) {
  uint64_t seed = 700;
  for (int64_t k : {1, 3, 16, 33, 120, 400}) {
    for (int64_t o : {1, 10, 16, 37}) {
      const bool xs = (k + o) % 2 == 1;
      std::vector<int64_t> xshape = k == 33 ? std::vector<int64_t>{2, 3, k} : std::vector<int64_t>{7, k};
      at::Tensor x = randQ(xshape, xs, seed++);
      at::Tensor w = randW({o, k}, seed++);
      at::Tensor ws = test::randn({o}, seed++).abs() * 0.01f + 0.001f;
      int8::QWeight qw{w, ws, {}, {}};
      if (o % 2 == 0) qw.bias_acc = (test::randn({o}, seed++) * 500).to(at::kInt);
      else qw.bias = test::randn({o}, seed++);
      QParams xq{0.03f, xs ? 3 : 120, xs}, yq{0.2f, xs ? -4 : 110, !xs};
      Activation act{k % 2 ? Activation::kRelu : Activation::kNone};
      int8::QLinear lin(qw);
      at::Tensor acc = at::matmul(x.to(at::kDouble) - xq.zero_point, w.to(at::kDouble).t());
      at::Tensor want = requantOrt(acc, ws, qw.bias, qw.bias_acc, xq, yq, act, acc.dim() - 1);
      for (auto isa : isas()) {
        IsaScope scope(isa);
        at::Tensor y = lin.run(x, xq, yq, act);
        EXPECT_TRUE(at::equal(y, want)) << "k=" << k << " o=" << o << " isa=" << int(isa);
      }
    }
  }
}

/// Stride-1 3x3 dense convs on the AVX2 path run the integer Winograd F(2x2, 3x3) kernel: its
/// outputs must equal the exact accumulator's requantization bit for bit (odd sizes cut tiles at
/// the image edge, pads 0..2 also asymmetric, C / O not multiples of 8 / 16, batch > 1,
/// extreme values).
TEST(Int8Kernels, WinogradIsBitIdenticalToDirectConv) {
  if (!__builtin_cpu_supports("avx2")) GTEST_SKIP() << "no AVX2";
  struct Case {
    int64_t n, c, o, h, w, ph, pw;
    bool xs, ys;
    int bias;
    Activation::Kind act;
  };
  using K = Activation::Kind;
  const std::vector<Case> cases = {
      {3, 16, 16, 12, 13, 1, 1, false, false, 2, K::kRelu},   // ResNet stage 1 shape, odd width
      {2, 32, 32, 14, 14, 1, 1, false, false, 2, K::kNone},   // stage 2
      {2, 64, 64, 7, 7, 1, 1, false, true, 1, K::kRelu},      // stage 3: odd tiles
      {2, 24, 40, 9, 7, 1, 1, true, false, 2, K::kClip},      // C, O not multiples of 16
      {1, 8, 5, 5, 6, 0, 0, false, false, 0, K::kNone},       // smallest C, no padding
      {2, 33, 17, 11, 10, 2, 2, true, true, 1, K::kNone},     // pad 2: output larger than input
      {1, 13, 19, 4, 3, 1, 0, false, false, 2, K::kRelu},     // asymmetric pads, tiny image
      {1, 150, 24, 6, 5, 1, 1, false, false, 2, K::kNone},    // long channel sums
  };
  uint64_t seed = 900;
  for (const Case& cc : cases) {
    const std::string what = "n=" + std::to_string(cc.n) + " c=" + std::to_string(cc.c) + " o=" +
                             std::to_string(cc.o) + " " + std::to_string(cc.h) + "x" +
                             std::to_string(cc.w) + " pad " + std::to_string(cc.ph) + "," +
                             std::to_string(cc.pw);
    at::Tensor x = randQ({cc.n, cc.c, cc.h, cc.w}, cc.xs, seed++);
    at::Tensor w = randW({cc.o, cc.c, 3, 3}, seed++);
    at::Tensor ws = test::randn({cc.o}, seed++).abs() * 0.01f + 0.001f;
    QParams xq{0.021f, cc.xs ? -9 : 127, cc.xs}, yq{0.083f, cc.ys ? 3 : 101, cc.ys};
    int8::QWeight qw{w, ws, {}, {}};
    if (cc.bias == 1) qw.bias = test::randn({cc.o}, seed++) * 2;
    if (cc.bias == 2) qw.bias_acc = (test::randn({cc.o}, seed++) * 3000).to(at::kInt);
    Activation act{cc.act, 0.0f, 6.0f};
    int8::QConv2d conv(qw, {1, 1}, {cc.ph, cc.pw}, {1, 1}, 1);
    at::Tensor acc = at::conv2d(x.to(at::kDouble) - xq.zero_point, w.to(at::kDouble), {}, {1, 1},
                                {cc.ph, cc.pw});
    at::Tensor want = requantOrt(acc, ws, qw.bias, qw.bias_acc, xq, yq, act, 1);
    IsaScope scope(int8::detail::Isa::kAvx2);
    at::Tensor y = conv.run(x, xq, yq, act);
    ASSERT_EQ(y.sizes(), want.sizes()) << what;
    EXPECT_TRUE(at::equal(y.contiguous(), want)) << what << " differs in "
        << y.ne(want).sum().item<int64_t>() << " of " << want.numel();
  }
  // Extreme values: |x - zp| = 255 and |w| = 128 / 127 everywhere the transforms can combine them
  // (input transform up to 4 * 255, transformed weights up to 9 * 128); the multiplier 1 / 2^16
  // keeps the accumulators' differences visible in the int8 output.
  for (int64_t c : {16, 64}) {
    at::Generator gen = at::detail::createCPUGenerator(77 + c);
    at::Tensor x = (at::randint(0, 2, {2, c, 8, 8}, gen, at::kInt) * 255).to(at::kByte);
    at::Tensor w = (at::randint(0, 2, {16, c, 3, 3}, gen, at::kInt) * 255 - 128).to(at::kChar);
    w.select(0, 0).fill_(-128);
    at::Tensor ws = at::full({16}, 1.0f / 65536);
    ws[0] = 1.0f / 262144;  // channel 0 (all -128) sums up to 9 * 64 * 255 * 128: keep it in range
    for (int32_t zp : {0, 255}) {
      QParams xq{1.0f, zp, false}, yq{1.0f, 128, false};
      int8::QConv2d conv({w, ws, {}, {}}, {1, 1}, {1, 1}, {1, 1}, 1);
      at::Tensor acc = at::conv2d(x.to(at::kDouble) - zp, w.to(at::kDouble), {}, {1, 1}, {1, 1});
      at::Tensor want = requantOrt(acc, ws, {}, {}, xq, yq, {}, 1);
      IsaScope scope(int8::detail::Isa::kAvx2);
      EXPECT_TRUE(at::equal(conv.run(x, xq, yq, {}).contiguous(), want)) << "c=" << c << " zp=" << zp;
    }
  }
}

/// Which convs take the Winograd path: dense 3x3 stride 1 dilation 1 with 8 <= C <= 1827 only
/// (the C bound keeps 4 * acc inside int32); everything else stays on the direct kernels.
TEST(Int8Kernels, WinogradAppliesOnlyToStride1Dense3x3) {
  namespace d = int8::detail;
  auto geom = [](int64_t c, int64_t k, int64_t s, int64_t dil, int64_t groups) {
    d::ConvGeom g;
    g.c = c;
    g.o = 16;
    g.h = g.w = 9;
    g.kh = g.kw = k;
    g.sh = g.sw = s;
    g.dh = g.dw = dil;
    g.ph = g.pw = 1;
    g.groups = groups;
    g.oh = (g.h + 2 * g.ph - dil * (k - 1) - 1) / s + 1;
    g.ow = g.oh;
    return g;
  };
  auto packed = [](int64_t c, int64_t k, int64_t groups) {
    std::vector<int8_t> w(static_cast<size_t>(16 * (c / groups) * k * k), 1);
    return d::packGemm(w.data(), 16, c / groups, k, k, groups);
  };
  EXPECT_TRUE(d::winogradApplies(geom(16, 3, 1, 1, 1), packed(16, 3, 1)));
  EXPECT_TRUE(d::winogradApplies(geom(8, 3, 1, 1, 1), packed(8, 3, 1)));
  EXPECT_TRUE(d::winogradApplies(geom(1827, 3, 1, 1, 1), packed(1827, 3, 1)));
  EXPECT_FALSE(d::winogradApplies(geom(1828, 3, 1, 1, 1), packed(1828, 3, 1)));  // int32 bound
  EXPECT_FALSE(d::winogradApplies(geom(7, 3, 1, 1, 1), packed(7, 3, 1)));
  EXPECT_FALSE(d::winogradApplies(geom(1, 3, 1, 1, 1), packed(1, 3, 1)));        // the stem
  EXPECT_FALSE(d::winogradApplies(geom(16, 3, 2, 1, 1), packed(16, 3, 1)));      // stride 2
  EXPECT_FALSE(d::winogradApplies(geom(16, 3, 1, 2, 1), packed(16, 3, 1)));      // dilation
  EXPECT_FALSE(d::winogradApplies(geom(16, 3, 1, 1, 2), packed(16, 3, 2)));      // grouped
  EXPECT_FALSE(d::winogradApplies(geom(16, 5, 1, 1, 1), packed(16, 5, 1)));      // 5x5
  EXPECT_FALSE(d::winogradApplies(geom(16, 1, 1, 1, 1), packed(16, 1, 1)));      // 1x1
}

// Closed form: multiplier exactly 0.5 puts every odd accumulator on a tie, which must round to
// even (0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -1.5 -> -2); large accumulators saturate.
TEST(Int8Kernels, RequantizationRoundsTiesToEvenAndSaturates) {
  at::Tensor x = at::tensor({1, 3, 5, 2, 0, 255}, at::kInt).to(at::kByte).reshape({6, 1});
  at::Tensor w = at::ones({2, 1}, at::kChar);
  w[1][0] = -1;
  int8::QLinear lin({w, at::full({1}, 0.5f), {}, {}});
  QParams xq{1.0f, 0, false}, yq{1.0f, 0, true};
  for (auto isa : isas()) {
    IsaScope scope(isa);
    at::Tensor y = lin.run(x, xq, yq, {}).to(at::kInt);
    // acc * 0.5 for w = +1 / -1: 0.5, 1.5, 2.5, 1, 0, 127.5 (-> 128 saturates to 127)
    EXPECT_TRUE(at::equal(y.select(1, 0), at::tensor({0, 2, 2, 1, 0, 127}, at::kInt))) << int(isa);
    EXPECT_TRUE(at::equal(y.select(1, 1), at::tensor({0, -2, -2, -1, 0, -128}, at::kInt))) << int(isa);
  }
}

TEST(Int8Kernels, ConvRejectsMismatchedInput) {
  int8::QConv2d conv({randW({4, 3, 3, 3}, 1), at::full({1}, 0.01f), {}, {}}, {1, 1}, {1, 1}, {1, 1}, 1);
  QParams q{0.1f, 128, false};
  EXPECT_THROW(conv.run(randQ({1, 4, 5, 5}, false, 2), q, q, {}), Error);
  EXPECT_THROW(conv.run(randQ({1, 3, 5, 5}, true, 2), q, q, {}), Error);
}

}  // namespace
}  // namespace gs
