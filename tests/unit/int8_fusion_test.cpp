// Int8 QDQ fusion (runtime/int8_fusion.h): which groups form, and fused int8 execution against
// the unfused float QDQ reference (DequantizeLinear -> op -> QuantizeLinear kernels).
#include "runtime/int8_fusion.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "runtime/executor.h"
#include "runtime/int8_kernels.h"
#include "test_util.h"

namespace gs {
namespace {

/// Small QDQ graph builder: activations quantized per tensor, weights per channel.
struct QdqB {
  Graph g;
  int id = 0;
  std::string nm(const std::string& b) { return b + std::to_string(id++); }
  Value* scalarF(float v) { return g.addParam(nm("s"), at::scalar_tensor(v, at::kFloat), false); }
  Value* zp(int v, bool s) {
    return g.addParam(nm("z"), at::scalar_tensor(v, at::kInt).to(s ? at::kChar : at::kByte), false);
  }
  /// Q then DQ of `x`; returns {q output, dq output}.
  std::pair<Value*, Value*> qdq(Value* x, float scale, int z, bool s) {
    Value *sv = scalarF(scale), *zv = zp(z, s);
    Node* q = g.addNode("QuantizeLinear", {x, sv, zv}, 1, nm("q"));
    Node* dq = g.addNode("DequantizeLinear", {q->output(0), sv, zv}, 1, nm("dq"));
    return {q->output(0), dq->output(0)};
  }
  Value* q(Value* x, float scale, int z, bool s) {
    return g.addNode("QuantizeLinear", {x, scalarF(scale), zp(z, s)}, 1, nm("q"))->output(0);
  }
  Value* dq(Value* xq, float scale, int z, bool s) {
    return g.addNode("DequantizeLinear", {xq, scalarF(scale), zp(z, s)}, 1, nm("dq"))->output(0);
  }
  /// DQ of a seeded int8 weight, per channel along `axis` (zero points: `wz` for all channels).
  Value* weight(std::vector<int64_t> shape, int64_t axis, uint64_t seed, int wz = 0) {
    at::Generator gen = at::detail::createCPUGenerator(seed);
    at::Tensor w = at::randint(-127, 128, shape, gen, at::kInt).to(at::kChar);
    at::Tensor s = test::randn({shape[static_cast<size_t>(axis)]}, seed + 1).abs() * 0.01f + 0.002f;
    Value* wv = g.addParam(nm("w"), w, false);
    Value* sv = g.addParam(nm("ws"), s, false);
    Value* zv = g.addParam(nm("wz"), at::full({s.numel()}, wz, at::kChar), false);
    return g.addNode("DequantizeLinear", {wv, sv, zv}, 1, nm("wdq"), {{"axis", axis}})->output(0);
  }
};

std::vector<std::string> kinds(const Graph& g) {
  std::vector<std::string> k;
  for (const FusedGroup& fg : findInt8Fusions(g)) k.push_back(fg.kind);
  return k;
}

/// Runs fused and unfused; returns max |difference| in quantization steps (int outputs) and the
/// number of differing elements.
std::pair<double, int64_t> compareFused(const Graph& g, const std::vector<at::Tensor>& in) {
  Executor fused(g), ref(g, {.fuse = false});
  auto a = fused.run(in);
  auto b = ref.run(in);
  double worst = 0;
  int64_t ndiff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].scalar_type(), b[i].scalar_type());
    EXPECT_EQ(a[i].sizes(), b[i].sizes());
    at::Tensor d = (a[i].to(at::kDouble) - b[i].to(at::kDouble)).abs();
    worst = std::max(worst, d.max().item<double>());
    ndiff += d.gt(0).sum().item<int64_t>();
  }
  return {worst, ndiff};
}

TEST(Int8Fusion, ConvChainStaysInt8AndMatchesReference) {
  QdqB b;
  Value* x = b.g.addInput("x", DType::Float32, std::vector<Dim>{Dim("N"), 8, 12, 12});
  auto [xq, xd] = b.qdq(x, 0.02f, 128, false);
  (void)xq;
  Node* c1 = b.g.addNode("Conv", {xd, b.weight({16, 8, 3, 3}, 0, 1), b.g.addParam("b1", test::randn({16}, 3))},
                         1, "conv1", {{"pads", std::vector<int64_t>{1, 1, 1, 1}}});
  Node* r1 = b.g.addNode("Relu", {c1->output(0)}, 1, "relu1");
  Value* y1 = b.q(r1->output(0), 0.05f, 0, false);
  Value* d1 = b.dq(y1, 0.05f, 0, false);
  Node* c2 = b.g.addNode("Conv", {d1, b.weight({16, 1, 3, 3}, 0, 4), b.g.addParam("b2", test::randn({16}, 5))},
                         1, "conv2", {{"pads", std::vector<int64_t>{1, 1, 1, 1}}, {"group", int64_t{16}},
                                      {"strides", std::vector<int64_t>{2, 2}}});
  Node* clip = b.g.addNode("Clip", {c2->output(0), b.scalarF(0.0f), b.scalarF(6.0f)}, 1, "relu6");
  Value* y2 = b.q(clip->output(0), 0.03f, -100, true);
  b.g.addOutput(y2);
  EXPECT_EQ(kinds(b.g), (std::vector<std::string>{"QDQ:Conv+Relu", "QDQ:Conv+Clip"}));
  Executor ex(b.g), ref(b.g, {.fuse = false});
  // Q(x), DQ(x) [absorbed] + conv1 group + conv2 group: Q(x) and two fused steps.
  EXPECT_EQ(ex.numSteps(), 3u);
  EXPECT_EQ(ref.numSteps(), b.g.numNodes());
  auto [worst, ndiff] = compareFused(b.g, {test::randn({2, 8, 12, 12}, 9)});
  EXPECT_LE(worst, 1.0);
  EXPECT_LE(ndiff, 2);  // of 2*16*6*6 = 1152 outputs; near-ties only
}

TEST(Int8Fusion, SingleConvOutputsWithinOneStepOfReference) {
  for (bool s : {false, true}) {
    QdqB b;
    Value* xq = b.g.addInput("xq", s ? DType::Int8 : DType::UInt8, std::vector<Dim>{2, 16, 10, 10});
    Node* c = b.g.addNode("Conv", {b.dq(xq, 0.04f, s ? 3 : 130, s), b.weight({24, 16, 3, 3}, 0, 11),
                                   b.g.addParam("b", test::randn({24}, 12))},
                          1, "conv", {{"pads", std::vector<int64_t>{1, 1, 1, 1}}});
    b.g.addOutput(b.q(c->output(0), 0.25f, s ? 0 : 128, s));
    ASSERT_EQ(kinds(b.g), std::vector<std::string>{"QDQ:Conv"});
    at::Generator gen = at::detail::createCPUGenerator(13);
    at::Tensor x = at::randint(s ? -128 : 0, s ? 128 : 256, {2, 16, 10, 10}, gen, at::kInt)
                       .to(s ? at::kChar : at::kByte);
    auto [worst, ndiff] = compareFused(b.g, {x});
    EXPECT_LE(worst, 1.0);
    EXPECT_LE(ndiff, 5);  // of 4800
  }
}

TEST(Int8Fusion, ResidualAddIsExactAndSharedDqIsAbsorbed) {
  QdqB b;
  Value* x = b.g.addInput("x", DType::Float32, std::vector<Dim>{2, 8, 6, 6});
  auto [xq, xd] = b.qdq(x, 0.03f, 120, false);
  (void)xq;
  // xd feeds both the conv and the residual add (one shared DQ, as ONNX Runtime's quantizer emits).
  Node* c = b.g.addNode("Conv", {xd, b.weight({8, 8, 1, 1}, 0, 21)}, 1, "conv");
  Value* cd = b.dq(b.q(c->output(0), 0.04f, 128, false), 0.04f, 128, false);
  Node* add = b.g.addNode("Add", {cd, xd}, 1, "add");
  Node* relu = b.g.addNode("Relu", {add->output(0)}, 1, "relu");
  b.g.addOutput(b.q(relu->output(0), 0.05f, 0, false));
  EXPECT_EQ(kinds(b.g), (std::vector<std::string>{"QDQ:Conv", "QDQ:Add+Relu"}));
  Executor ex(b.g);
  EXPECT_EQ(ex.numSteps(), 3u);  // Q(x), conv, add
  at::Tensor in = test::randn({2, 8, 6, 6}, 22);
  auto [worst, ndiff] = compareFused(b.g, {in});
  EXPECT_LE(worst, 1.0);
  EXPECT_LE(ndiff, 2);
}

TEST(Int8Fusion, GemmAndMatMulVariants) {
  for (int variant = 0; variant < 4; ++variant) {
    QdqB b;
    const bool matmul = variant >= 2;
    Value* xq = b.g.addInput("xq", DType::UInt8,
                             matmul ? std::vector<Dim>{2, 3, 40} : std::vector<Dim>{5, 40});
    Value* xd = b.dq(xq, 0.05f, 128, false);
    Value* y = nullptr;
    if (!matmul) {
      const bool trans_b = variant == 1;
      Value* w = b.weight(trans_b ? std::vector<int64_t>{12, 40} : std::vector<int64_t>{40, 12},
                          trans_b ? 0 : 1, 31);
      y = b.g.addNode("Gemm", {xd, w, b.g.addParam("c", test::randn({12}, 32))}, 1, "gemm",
                      {{"transB", int64_t{trans_b}}})->output(0);
    } else {
      y = b.g.addNode("MatMul", {xd, b.weight({40, 12}, 1, 33)}, 1, "mm")->output(0);
      if (variant == 3)
        y = b.g.addNode("Add", {b.g.addParam("bias", test::randn({12}, 34)), y}, 1, "bias")->output(0);
    }
    b.g.addOutput(b.q(y, 0.1f, 128, false));
    ASSERT_EQ(kinds(b.g).size(), 1u) << variant;
    at::Generator gen = at::detail::createCPUGenerator(35);
    at::Tensor x = at::randint(0, 256, matmul ? std::vector<int64_t>{2, 3, 40} : std::vector<int64_t>{5, 40},
                               gen, at::kInt).to(at::kByte);
    auto [worst, ndiff] = compareFused(b.g, {x});
    EXPECT_LE(worst, 1.0) << variant;
    EXPECT_LE(ndiff, 1) << variant;
  }
}

TEST(Int8Fusion, Int32BiasAndMaxPool) {
  QdqB b;
  Value* xq = b.g.addInput("xq", DType::UInt8, std::vector<Dim>{1, 4, 9, 9});
  Value* xd = b.dq(xq, 0.02f, 100, false);
  Value* bq = b.g.addParam("bq", at::arange(-3, 3, at::kInt).mul(57), false);
  Value* bs = b.g.addParam("bs", at::full({6}, 0.0004f), false);
  Value* bias = b.g.addNode("DequantizeLinear", {bq, bs}, 1, "bdq", {{"axis", int64_t{0}}})->output(0);
  Node* c = b.g.addNode("Conv", {xd, b.weight({6, 4, 3, 3}, 0, 41), bias}, 1, "conv");
  Value* cq = b.q(c->output(0), 0.07f, 90, false);
  Node* mp = b.g.addNode("MaxPool", {b.dq(cq, 0.07f, 90, false)}, 1, "pool",
                         {{"kernel_shape", std::vector<int64_t>{2, 2}}, {"strides", std::vector<int64_t>{2, 2}}});
  b.g.addOutput(b.q(mp->output(0), 0.07f, 90, false));
  EXPECT_EQ(kinds(b.g), (std::vector<std::string>{"QDQ:Conv", "QDQ:MaxPool"}));
  at::Generator gen = at::detail::createCPUGenerator(42);
  at::Tensor x = at::randint(0, 256, {1, 4, 9, 9}, gen, at::kInt).to(at::kByte);
  auto [worst, ndiff] = compareFused(b.g, {x});
  EXPECT_LE(worst, 1.0);
  EXPECT_LE(ndiff, 1);
}

TEST(Int8Fusion, QLinearConvRunsOnTheInt8Engine) {
  QdqB b;
  Value* xq = b.g.addInput("xq", DType::UInt8, std::vector<Dim>{2, 8, 9, 9});
  at::Generator gen = at::detail::createCPUGenerator(61);
  Value* w = b.g.addParam("w", at::randint(-127, 128, {12, 8, 3, 3}, gen, at::kInt).to(at::kChar), false);
  Value* ws = b.g.addParam("ws", test::randn({12}, 62).abs() * 0.01f + 0.002f, false);
  Value* wz = b.g.addParam("wz", at::zeros({12}, at::kChar), false);
  Value* bias = b.g.addParam("bias", at::randint(-3000, 3000, {12}, gen, at::kInt), false);
  Node* qc = b.g.addNode("QLinearConv", {xq, b.scalarF(0.03f), b.zp(120, false), w, ws, wz,
                                         b.scalarF(0.2f), b.zp(-5, true), bias},
                         1, "qconv", {{"pads", std::vector<int64_t>{1, 1, 1, 1}},
                                      {"strides", std::vector<int64_t>{2, 2}}});
  b.g.addOutput(qc->output(0));
  EXPECT_EQ(kinds(b.g), std::vector<std::string>{"QLinearConv"});
  at::Tensor x = at::randint(0, 256, {2, 8, 9, 9}, gen, at::kInt).to(at::kByte);
  auto [worst, ndiff] = compareFused(b.g, {x});
  EXPECT_LE(worst, 1.0);
  EXPECT_LE(ndiff, 1);  // of 2*12*5*5 = 600
}

TEST(Int8Fusion, UnsupportedPatternsFallBackToFloatKernels) {
  QdqB b;
  Value* xq = b.g.addInput("xq", DType::UInt8, std::vector<Dim>{1, 4, 5, 5});
  Value* xd = b.dq(xq, 0.02f, 100, false);
  // Asymmetric weights (zero point 3) have no int8 engine path: the float kernels run.
  Node* c = b.g.addNode("Conv", {xd, b.weight({4, 4, 3, 3}, 0, 51, 3)}, 1, "conv");
  b.g.addOutput(b.q(c->output(0), 0.07f, 90, false));
  // A DQ that is also a graph output keeps running.
  b.g.addOutput(xd);
  EXPECT_TRUE(kinds(b.g).empty());
  at::Generator gen = at::detail::createCPUGenerator(52);
  at::Tensor x = at::randint(0, 256, {1, 4, 5, 5}, gen, at::kInt).to(at::kByte);
  auto [worst, ndiff] = compareFused(b.g, {x});
  EXPECT_EQ(worst, 0.0);
}

}  // namespace
}  // namespace gs
