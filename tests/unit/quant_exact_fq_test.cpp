// Exact fake-quant layers (runtime/fq_exact_fusion.h): fused Conv / Gemm / MatMul between gs
// quantizers against a float64 reference on the dequantized operands; fallback and train mode.
#include "runtime/fq_exact_fusion.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "ir/graph.h"
#include "op_test_util.h"
#include "runtime/executor.h"

namespace gs {
namespace {

/// One quantized layer: x -> FakeQuant(uint8, scale sx, zero point zx) -> op <- FakeQuant(W)
/// (int8 symmetric, per channel along `w_axis` or per tensor), optional bias and Relu.
struct LayerCase {
  std::string op = "Conv";
  std::vector<int64_t> x_shape, w_shape;
  std::map<std::string, Attribute> attrs;
  int64_t w_axis = 0;        ///< -1: per-tensor weight scale
  bool bias = true;
  bool relu = false;
  double sx = 0.05, zx = 128;
  bool positive_x = false;   ///< post-ReLU style input (codes 0..255 with zero point 0)
  bool lsq = false;          ///< gs::LsqQuant quantizers (int8 grid, no zero point) instead
  uint64_t seed = 1;
};

struct Built {
  std::unique_ptr<Graph> g;
  at::Tensor x, w, ws, b;
  Value* x_enable = nullptr;
};

int64_t outChannels(const LayerCase& c) {
  if (c.op == "Conv") return c.w_shape[0];
  if (c.op == "Gemm" && c.attrs.count("transB") && c.attrs.at("transB").i() != 0) return c.w_shape[0];
  return c.w_shape[1];
}

Built build(const LayerCase& c, bool with_enable = false) {
  Built r;
  r.g = std::make_unique<Graph>();
  Graph& g = *r.g;
  std::vector<Dim> xs(c.x_shape.begin(), c.x_shape.end());
  Value* x = g.addInput("x", DType::Float32, xs);
  r.x = c.positive_x ? at::rand(c.x_shape, at::TensorOptions().dtype(at::kFloat)) * (255 * c.sx)
                     : test::randn(c.x_shape, c.seed) * (60 * c.sx);
  r.w = test::randn(c.w_shape, c.seed + 1) * 0.2;
  const int64_t m = outChannels(c);
  at::Tensor amax = c.w_axis < 0 ? r.w.abs().max().reshape({})
                                 : std::get<0>(r.w.abs().movedim(c.w_axis, 0).reshape({m, -1}).max(1));
  r.ws = amax / 127.0f;
  Value* w = g.addParam("w", r.w.clone());
  Value* ws = g.addParam("w_scale", r.ws.clone());
  Value *xq, *wq;
  if (c.lsq) {
    std::map<std::string, Attribute> qa{{"quant_min", int64_t{-128}}, {"quant_max", int64_t{127}},
                                        {"symmetric", int64_t{1}}};
    Value* step = g.addParam("x_step", at::full({}, c.sx, at::kFloat));
    xq = g.addNode("LsqQuant", {x, step}, 1, "xq", qa, nullptr, "gs")->output(0);
    if (c.w_axis >= 0) qa["axis"] = c.w_axis;
    wq = g.addNode("LsqQuant", {w, ws}, 1, "wq", qa, nullptr, "gs")->output(0);
  } else {
    std::vector<Value*> xin{x, g.addParam("x_scale", at::full({}, c.sx, at::kFloat)),
                            g.addParam("x_zp", at::full({}, c.zx, at::kFloat))};
    if (with_enable) {
      r.x_enable = g.addParam("x_enable", at::ones({}, at::kFloat));
      xin.push_back(r.x_enable);
    }
    xq = g.addNode("FakeQuant", xin, 1, "xq", {{"quant_min", int64_t{0}}, {"quant_max", int64_t{255}}},
                   nullptr, "gs")->output(0);
    std::map<std::string, Attribute> wa{{"quant_min", int64_t{-128}}, {"quant_max", int64_t{127}},
                                        {"symmetric", int64_t{1}}};
    if (c.w_axis >= 0) wa["axis"] = c.w_axis;
    Value* wz = g.addParam("w_zp", at::zeros(r.ws.sizes(), at::kFloat));
    wq = g.addNode("FakeQuant", {w, ws, wz}, 1, "wq", wa, nullptr, "gs")->output(0);
  }
  std::vector<Value*> lin{xq, wq};
  if (c.bias) {
    r.b = test::randn({m}, c.seed + 2);
    lin.push_back(g.addParam("b", r.b.clone()));
  }
  Value* y = g.addNode(c.op, lin, 1, "layer", c.attrs)->output(0);
  if (c.relu) y = g.addNode("Relu", {y}, 1, "relu")->output(0);
  g.addOutput(y);
  return r;
}

/// The layer in float64 on independently dequantized operands: codes clamp(round(v / s) + zp)
/// (float32 division, as QuantizeLinear), real values (code - zp) * s in float64.
at::Tensor reference(const LayerCase& c, const Built& b) {
  at::Tensor sx = at::full({}, c.sx, at::kFloat);
  const double xmin = c.lsq ? -128 : 0, xmax = c.lsq ? 127 : 255, zx = c.lsq ? 0 : c.zx;
  at::Tensor qx = at::clamp(at::round(b.x / sx) + zx, xmin, xmax);
  at::Tensor xd = (qx.to(at::kDouble) - zx) * static_cast<double>(sx.item<float>());
  at::Tensor wsb = b.ws;
  if (c.w_axis >= 0) {
    std::vector<int64_t> shape(b.w.dim(), 1);
    shape[c.w_axis] = b.ws.numel();
    wsb = b.ws.reshape(shape);
  }
  at::Tensor qw = at::clamp(at::round(b.w / wsb), -128, 127);
  at::Tensor wd = qw.to(at::kDouble) * wsb.to(at::kDouble);
  at::Tensor bd = c.bias ? b.b.to(at::kDouble) : at::Tensor();
  at::Tensor y;
  if (c.op == "Conv") {
    const int64_t nd = b.w.dim() - 2;
    auto ints = [&](const char* k, int64_t def) {
      return c.attrs.count(k) ? c.attrs.at(k).ints() : std::vector<int64_t>(nd, def);
    };
    std::vector<int64_t> pads = ints("pads", 0), strides = ints("strides", 1), dil = ints("dilations", 1);
    std::vector<int64_t> pad_nd;  // constant_pad_nd order: last dim first, (begin, end)
    for (int64_t i = nd - 1; i >= 0; --i) {
      pad_nd.push_back(pads.size() > static_cast<size_t>(i) ? pads[i] : 0);
      pad_nd.push_back(pads.size() > static_cast<size_t>(i + nd) ? pads[i + nd] : 0);
    }
    const int64_t group = c.attrs.count("group") ? c.attrs.at("group").i() : 1;
    y = at::convolution(at::constant_pad_nd(xd, pad_nd, 0), wd, bd, strides,
                        std::vector<int64_t>(nd, 0), dil, false, std::vector<int64_t>(nd, 0), group);
  } else {
    const bool tb = c.attrs.count("transB") && c.attrs.at("transB").i() != 0;
    y = at::matmul(xd, tb ? wd.t() : wd);
    if (c.bias) y = y + bd;
  }
  return c.relu ? at::relu(y) : y;
}

/// Elements of float32 `got` farther from the float64 `want` than float32 rounding of `want`
/// allows (half an ulp, with a hair of slack for the reference's own float64 roundoff).
int64_t beyondRounding(const at::Tensor& got, const at::Tensor& want) {
  at::Tensor tol = want.abs() * std::ldexp(1.0, -24) * 1.0001 + 1e-30;
  return (got.to(at::kDouble) - want).abs().gt(tol).sum().item<int64_t>();
}

/// Runs `c` fused and unfused: the fused result must equal the float64 reference rounded once;
/// returns how many elements of the plain float32 path are beyond rounding.
int64_t checkExact(const LayerCase& c, const std::string& kind) {
  Built b = build(c);
  std::vector<FusedGroup> groups = findFusions(*b.g);
  EXPECT_EQ(groups.size(), 1u);
  if (!groups.empty()) EXPECT_EQ(groups[0].kind, kind);
  at::Tensor want = reference(c, b);
  at::Tensor got = Executor(*b.g).run({b.x})[0];
  EXPECT_EQ(got.scalar_type(), at::kFloat);
  EXPECT_EQ(got.sizes(), want.sizes());
  EXPECT_EQ(beyondRounding(got, want), 0) << kind;
  at::Tensor plain = Executor(*b.g, {.fuse = false}).run({b.x})[0];
  EXPECT_LT(test::maxRelDiff(plain, got), 1e-4) << kind;  // same layer, float roundoff apart
  return beyondRounding(plain, want);
}

TEST(ExactFakeQuant, ConvLargeKPerChannelStridesAsymmetricPads) {
  LayerCase c;
  c.x_shape = {2, 64, 9, 9};
  c.w_shape = {32, 64, 3, 3};  // K = 576: 576 * 128 * 127 < 2^24, one exact float32 pass
  c.attrs = {{"strides", std::vector<int64_t>{2, 1}}, {"pads", std::vector<int64_t>{1, 0, 2, 1}}};
  EXPECT_GT(checkExact(c, "ExactFakeQuantConv"), 0) << "plain float32 should be off here";
}

TEST(ExactFakeQuant, ConvPostReluInputWithRelu) {
  LayerCase c;
  c.x_shape = {2, 128, 6, 6};
  c.w_shape = {16, 128, 3, 3};  // K = 1152, codes up to 255: > 2^24, the split float32 path
  c.attrs = {{"pads", std::vector<int64_t>{1, 1, 1, 1}}};
  c.positive_x = true;
  c.zx = 0;
  c.relu = true;
  c.seed = 7;
  EXPECT_GT(checkExact(c, "ExactFakeQuantConv+Relu"), 0);
}

TEST(ExactFakeQuant, DepthwiseAndGroupedConv) {
  LayerCase dw;
  dw.x_shape = {2, 16, 10, 10};
  dw.w_shape = {16, 1, 3, 3};
  dw.attrs = {{"group", int64_t{16}}, {"strides", std::vector<int64_t>{2, 2}},
              {"pads", std::vector<int64_t>{1, 1, 1, 1}}, {"dilations", std::vector<int64_t>{2, 1}}};
  dw.seed = 3;
  checkExact(dw, "ExactFakeQuantConv");
  LayerCase gr;
  gr.x_shape = {1, 32, 8, 8};
  gr.w_shape = {16, 8, 3, 3};
  gr.attrs = {{"group", int64_t{4}}};
  gr.w_axis = -1;  // per-tensor weight scale
  gr.seed = 4;
  checkExact(gr, "ExactFakeQuantConv");
  LayerCase c1;  // 1-D conv
  c1.x_shape = {2, 40, 30};
  c1.w_shape = {8, 40, 5};
  c1.attrs = {{"pads", std::vector<int64_t>{2, 1}}};
  c1.seed = 5;
  checkExact(c1, "ExactFakeQuantConv");
}

/// A Gemm case: x [N, K], weight [M, K] with transB else [K, M] (per-channel axis to match).
LayerCase gemmCase(std::vector<int64_t> x_shape, std::vector<int64_t> w_shape, bool trans_b,
                   uint64_t seed) {
  LayerCase c;
  c.op = "Gemm";
  c.x_shape = std::move(x_shape);
  c.w_shape = std::move(w_shape);
  if (trans_b) c.attrs = {{"transB", int64_t{1}}};
  c.w_axis = trans_b ? 0 : 1;
  c.seed = seed;
  return c;
}

TEST(ExactFakeQuant, GemmTransBLargeKUsesFloat64) {
  // K = 9000: 9000 * 16 * 127 > 2^24, neither float32 path is exact.
  LayerCase c = gemmCase({4, 9000}, {10, 9000}, true, 11);
  EXPECT_GT(checkExact(c, "ExactFakeQuantGemm"), 0);
}

TEST(ExactFakeQuant, GemmWithoutTransposeAndMatMul) {
  checkExact(gemmCase({3, 300}, {300, 20}, false, 12), "ExactFakeQuantGemm");
  LayerCase m;
  m.op = "MatMul";
  m.x_shape = {2, 5, 700};
  m.w_shape = {700, 12};
  m.w_axis = 1;
  m.bias = false;
  m.positive_x = true;  // 700 * 255 * 127 > 2^24: split path on a rank-3 input
  m.zx = 0;
  m.seed = 13;
  EXPECT_GT(checkExact(m, "ExactFakeQuantMatMul"), 0);
}

TEST(ExactFakeQuant, LsqQuantizers) {
  LayerCase c = gemmCase({6, 800}, {24, 800}, true, 21);
  c.lsq = true;
  checkExact(c, "ExactFakeQuantGemm");
}

TEST(ExactFakeQuant, DisabledQuantizerFallsBackToTheOriginalNodes) {
  LayerCase c;
  c.x_shape = {2, 8, 6, 6};
  c.w_shape = {4, 8, 3, 3};
  Built b = build(c, /*with_enable=*/true);
  b.x_enable->data().fill_(0);
  at::Tensor got = Executor(*b.g).run({b.x})[0];
  at::Tensor plain = Executor(*b.g, {.fuse = false}).run({b.x})[0];
  EXPECT_TRUE(at::equal(got, plain));
  b.x_enable->data().fill_(1);  // re-enabled: exact again
  EXPECT_EQ(beyondRounding(Executor(*b.g).run({b.x})[0], reference(c, b)), 0);
}

TEST(ExactFakeQuant, TrainModeIsUnfusedAndGivesGradients) {
  LayerCase c;
  c.x_shape = {2, 8, 6, 6};
  c.w_shape = {4, 8, 3, 3};
  Built b = build(c);
  Value* w = nullptr;
  for (Value* p : b.g->params())
    if (p->name() == "w") w = p;
  ASSERT_NE(w, nullptr);
  w->data().requires_grad_(true);
  at::Tensor plain = Executor(*b.g, {.fuse = false}).run({b.x})[0];
  Executor tr(*b.g, {.training = true});
  at::Tensor y = tr.run({b.x})[0];
  EXPECT_TRUE(at::equal(y.detach(), plain));  // the float path, bit for bit
  y.sum().backward();
  ASSERT_TRUE(w->data().grad().defined());
  // Straight-through estimator: dL/dW = dL/dW_dq for in-range weights (all are: scale = max/127).
  at::Tensor x_dq = (at::clamp(at::round(b.x / static_cast<float>(c.sx)) + c.zx, 0, 255) - c.zx) *
                    static_cast<float>(c.sx);
  at::Tensor wd = w->data().detach().clone().requires_grad_(true);
  at::conv2d(x_dq, wd, b.b).sum().backward();
  EXPECT_LT(test::maxRelDiff(w->data().grad(), wd.grad()), 1e-5);
}

}  // namespace
}  // namespace gs
