// Int8 runtime kernels (runtime/int8_kernels.h) against exact integer / float-op references,
// sweeping shapes (channels below/above vector widths, odd K, depthwise, strides, dilation).
#include "runtime/int8_kernels.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

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

TEST(Int8Kernels, AddIsBitIdenticalToFloatOps) {
  uint64_t seed = 200;
  for (int64_t n : {1, 7, 8, 9, 100, 70001}) {
    for (int combo = 0; combo < 8; ++combo) {
      bool as = combo & 1, bs = combo & 2, ys = combo & 4;
      at::Tensor a = randQ({n}, as, seed++), b = randQ({n}, bs, seed++);
      QParams aq{0.031f, as ? -3 : 128, as}, bq{0.017f, bs ? 9 : 100, bs}, yq{0.045f, ys ? 0 : 120, ys};
      for (bool relu : {false, true}) {
        at::Tensor y = int8::add(a, aq, b, bq, yq, relu);
        EXPECT_TRUE(at::equal(y, addRef(a, aq, b, bq, yq, relu))) << "n=" << n << " combo=" << combo;
      }
    }
  }
  // Mixed layouts (a channels-last as conv outputs are) and broadcasting.
  at::Tensor a = randQ({2, 8, 5, 5}, false, 1).contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor b = randQ({2, 8, 5, 5}, false, 2);
  QParams q{0.05f, 128, false};
  EXPECT_TRUE(at::equal(int8::add(a, q, b, q, q, true), addRef(a, q, b, q, q, true)));
  at::Tensor c = randQ({8, 1, 1}, false, 3);
  EXPECT_TRUE(at::equal(int8::add(b, q, c, q, q, false), addRef(b, q, c, q, q, false)));
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

}  // namespace
}  // namespace gs
