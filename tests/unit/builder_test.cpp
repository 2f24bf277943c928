// GraphBuilder: scoped names, ONNX attribute conventions, seeded initialisation, and (once the
// conv/pool/norm kernels are registered) numerical agreement with an independent ATen forward.
#include "ir/builder.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>

#include "ir/text.h"
#include "ir/verifier.h"
#include "ops/registry.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "test_util.h"

namespace gs {
namespace {

TEST(Builder, ScopesQualifyNodeAndParamNames) {
  Graph g;
  GraphBuilder b(g);
  Value* x = b.input("x", DType::Float32, std::vector<Dim>{Dim("N"), 4});
  EXPECT_EQ(b.qualify("a"), "a");
  {
    auto s1 = b.scope("layer1");
    {
      auto s2 = b.scope("0");
      EXPECT_EQ(b.qualify("conv1"), "layer1.0.conv1");
      EXPECT_EQ(b.qualify(""), "layer1.0");
      Value* w = b.param("w", at::ones({4}));
      EXPECT_EQ(w->name(), "layer1.0.w");
      EXPECT_TRUE(w->trainable());
      Value* y = b.mul(x, w, "scale");
      EXPECT_EQ(y->producer()->name(), "layer1.0.scale");
      EXPECT_EQ(y->name(), "layer1.0.scale");
      EXPECT_EQ(y->dtype(), DType::Float32);
    }
    EXPECT_EQ(b.qualify("z"), "layer1.z");
    Value* c1 = b.constant("k", at::ones({1}));
    Value* c2 = b.constant("k", at::ones({1}));
    EXPECT_EQ(c1->name(), "layer1.k");
    EXPECT_EQ(c2->name(), "layer1.k_1");
    EXPECT_FALSE(c1->trainable());
    Value* r1 = b.relu(x);
    Value* r2 = b.relu(x);
    EXPECT_EQ(r1->producer()->name(), "layer1.relu");
    EXPECT_EQ(r2->producer()->name(), "layer1.relu_1");
  }
  EXPECT_EQ(b.qualify("a"), "a");
  Node* n = b.op("TopK", {x, b.constant("kk", at::tensor({int64_t{2}}))}, {{"axis", 1}}, "", 2);
  EXPECT_EQ(n->name(), "TopK");
  EXPECT_EQ(n->output(1)->name(), "TopK:1");
  Node* d = b.op("MatMulNBits", {x}, {{"bits", 4}}, "mm", 1, "com.microsoft");
  EXPECT_EQ(d->domain(), "com.microsoft");
  b.output(n->output(0));
  EXPECT_EQ(g.outputs().back(), n->output(0));
  EXPECT_TRUE(verifyGraph(g, {.check_schemas = false}).empty());
}

TEST(Builder, OpHelpersUseOnnxAttributes) {
  Graph g;
  GraphBuilder b(g);
  Value* x = b.input("x", DType::Float32, std::vector<Dim>{1, 3, 8, 8});
  Value* w = b.param("w", at::zeros({4, 3, 3, 3}));
  Value* bias = b.param("b", at::zeros({4}));
  Value* y = b.conv(x, w, bias, {.stride = 2, .pad = 1, .dilation = 1, .groups = 1}, "c");
  const Node* c = y->producer();
  EXPECT_EQ(c->opType(), "Conv");
  EXPECT_EQ(c->numInputs(), 3u);
  EXPECT_EQ(c->attrInts("kernel_shape"), (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(c->attrInts("pads"), (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(c->attrInts("strides"), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(c->attrInts("dilations"), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(c->attrInt("group", -1), 1);
  EXPECT_EQ(c->attrs().size(), 5u);
  EXPECT_EQ(b.conv(x, w, nullptr, {}, "nb")->producer()->numInputs(), 2u);
  Value* dw = b.param("dw", at::zeros({3, 1, 5, 5}));
  const Node* dc = b.conv(x, dw, nullptr, {.pad = 2, .groups = 3}, "dw")->producer();
  EXPECT_EQ(dc->attrInts("kernel_shape"), (std::vector<int64_t>{5, 5}));
  EXPECT_EQ(dc->attrInt("group", -1), 3);

  Value* s = b.param("s", at::ones({4}));
  const Node* bn = b.batchNorm(y, s, s, s, s, 1e-3f, "bn")->producer();
  EXPECT_EQ(bn->opType(), "BatchNormalization");
  EXPECT_EQ(bn->numInputs(), 5u);
  ASSERT_TRUE(bn->attr("epsilon").is(AttrKind::Float));
  EXPECT_EQ(bn->attr("epsilon").f(), 1e-3f);
  EXPECT_EQ(bn->attr("momentum").f(), 0.9f);

  const Node* mp = b.maxPool(y, 3, 2, 1)->producer();
  EXPECT_EQ(mp->opType(), "MaxPool");
  EXPECT_EQ(mp->attrInts("kernel_shape"), (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(mp->attrInts("strides"), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(mp->attrInts("pads"), (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(b.globalAvgPool(y)->producer()->opType(), "GlobalAveragePool");
  EXPECT_EQ(b.flatten(y, 1)->producer()->attrInt("axis", -5), 1);
  EXPECT_EQ(b.softmax(y, -1)->producer()->attrInt("axis", -5), -1);
  EXPECT_EQ(b.transpose(y, {0, 2, 3, 1})->producer()->attrInts("perm"),
            (std::vector<int64_t>{0, 2, 3, 1}));
  const Node* rs = b.reshape(y, {1, -1}, "rs")->producer();
  ASSERT_EQ(rs->numInputs(), 2u);
  EXPECT_TRUE(rs->input(1)->isParam());
  EXPECT_FALSE(rs->input(1)->trainable());
  EXPECT_EQ(rs->input(1)->name(), "rs.shape");
  EXPECT_TRUE(at::equal(rs->input(1)->data(), at::tensor({int64_t{1}, int64_t{-1}})));
  Value* m = b.param("m", at::zeros({4, 4}));
  const Node* gm = b.gemm(x, m, nullptr, true)->producer();
  EXPECT_EQ(gm->attrInt("transB", -1), 1);
  EXPECT_EQ(gm->numInputs(), 2u);
  EXPECT_EQ(b.gemm(x, m, m, false)->producer()->attrInt("transB", -1), 0);
  EXPECT_EQ(b.matmul(x, m)->producer()->opType(), "MatMul");
  EXPECT_EQ(b.add(x, x)->producer()->opType(), "Add");
  // Conv needs a static weight shape to derive kernel_shape.
  Value* dyn = b.input("dynw", DType::Float32, Shape());
  EXPECT_THROW(b.conv(x, dyn, nullptr, {}), Error);
}

TEST(Builder, ConvBnReluParamsAndKaimingInit) {
  Graph g;
  GraphBuilder b(g);
  Value* x = b.input("x", DType::Float32, std::vector<Dim>{Dim("N"), 16, 8, 8});
  auto s = b.scope("layer1");
  Value* y = b.convBnRelu(x, 16, 64, 3, 1, 1, true, true, 42, "conv1");
  EXPECT_EQ(y->producer()->opType(), "Relu");
  EXPECT_EQ(y->producer()->name(), "layer1.conv1.relu");
  const Node* bn = y->producer()->input(0)->producer();
  EXPECT_EQ(bn->opType(), "BatchNormalization");
  EXPECT_EQ(bn->name(), "layer1.conv1.bn");
  const Node* conv = bn->input(0)->producer();
  EXPECT_EQ(conv->name(), "layer1.conv1");
  EXPECT_EQ(conv->numInputs(), 2u);  // no conv bias in front of BN
  EXPECT_EQ(bn->input(1)->name(), "layer1.conv1.bn.weight");
  EXPECT_EQ(bn->input(3)->name(), "layer1.conv1.bn.running_mean");
  EXPECT_FALSE(bn->input(3)->trainable());
  EXPECT_FALSE(bn->input(4)->trainable());
  EXPECT_TRUE(bn->input(1)->trainable());
  EXPECT_TRUE(at::equal(bn->input(4)->data(), at::ones({64})));
  const at::Tensor& w = g.findValue("layer1.conv1.weight")->data();
  EXPECT_EQ(w.sizes(), (at::IntArrayRef{64, 16, 3, 3}));
  // Kaiming normal, fan_in = 16*3*3 = 144: std sqrt(2/144) = 0.11785.
  double sd = w.std().item<double>(), mean = w.mean().item<double>();
  EXPECT_NEAR(sd, std::sqrt(2.0 / 144.0), 0.03 * std::sqrt(2.0 / 144.0));
  EXPECT_NEAR(mean, 0.0, 0.01);
  // Same seed -> same draw as the generator gives directly; different seed -> different.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(42);
  at::Tensor ref = at::randn({64, 16, 3, 3}, gen) * std::sqrt(2.0 / 144.0);
  EXPECT_LT(test::maxRelDiff(w, ref), 1e-6);
  Value* y2 = b.convBnRelu(x, 16, 64, 3, 1, 1, false, false, 43, "conv2");
  EXPECT_EQ(y2->producer()->opType(), "Conv");
  ASSERT_EQ(y2->producer()->numInputs(), 3u);
  const at::Tensor& w2 = g.findValue("layer1.conv2.weight")->data();
  EXPECT_FALSE(at::equal(w, w2));
  const at::Tensor& b2 = g.findValue("layer1.conv2.bias")->data();
  EXPECT_LE(b2.abs().max().item<double>(), 1.0 / 12.0);  // U(-1/sqrt(144), 1/sqrt(144))
}

TEST(Builder, LinearIsGemmWithTorchInitBounds) {
  Graph g;
  GraphBuilder b(g);
  Value* x = b.input("x", DType::Float32, std::vector<Dim>{Dim("N"), 400});
  Value* y = b.linear(x, 400, 300, 7, "fc");
  const Node* n = y->producer();
  EXPECT_EQ(n->opType(), "Gemm");
  EXPECT_EQ(n->attrInt("transB", 0), 1);
  const at::Tensor& w = n->input(1)->data();
  const at::Tensor& bias = n->input(2)->data();
  EXPECT_EQ(w.sizes(), (at::IntArrayRef{300, 400}));
  EXPECT_EQ(bias.sizes(), (at::IntArrayRef{300}));
  double bound = 1.0 / 20.0;
  EXPECT_LE(w.abs().max().item<double>(), bound);
  EXPECT_GT(w.abs().max().item<double>(), 0.99 * bound);  // uniform: fills the interval
  // Variance of U(-a, a) is a^2/3.
  EXPECT_NEAR(w.var().item<double>(), bound * bound / 3.0, 0.03 * bound * bound / 3.0);
  EXPECT_LE(bias.abs().max().item<double>(), bound);
}

/// A tiny ResNet-style CNN; returns the output value.
Value* buildCnn(GraphBuilder& b, Value* x) {
  Value* h = b.convBnRelu(x, 1, 4, 3, 1, 1, true, true, 1, "stem");
  h = b.maxPool(h, 2, 2, 0, "pool");
  {
    auto s = b.scope("block");
    Value* r = b.convBnRelu(h, 4, 4, 3, 1, 1, true, true, 2, "conv1");
    r = b.convBnRelu(r, 4, 4, 3, 1, 1, true, false, 3, "conv2");
    h = b.relu(b.add(r, h), "out");
  }
  h = b.flatten(b.globalAvgPool(h), 1);
  return b.softmax(b.linear(h, 4, 3, 4, "fc"), 1);
}

TEST(Builder, CnnRunsInExecutorMatchingATen) {
  for (const char* op : {"Conv", "BatchNormalization", "Relu", "MaxPool", "GlobalAveragePool",
                         "Flatten", "Gemm", "Softmax"})
    ASSERT_TRUE(OpRegistry::global().find("", op)) << "op " << op << " is not registered";
  Graph g;
  GraphBuilder b(g);
  Value* x = b.input("x", DType::Float32, std::vector<Dim>{Dim("N"), 1, 8, 8});
  b.output(buildCnn(b, x));
  verifyGraphOrThrow(g);
  // Give BN non-trivial statistics so that the reference really exercises them.
  for (Value* p : g.params())
    if (p->name().find("running_mean") != std::string::npos) p->setData(test::randn({4}, 9) * 0.1);
  at::Tensor in = test::randn({2, 1, 8, 8}, 5);
  Executor ex(g);
  at::Tensor got = ex.run({in})[0];
  auto P = [&](const std::string& n) { return g.findValue(n)->data(); };
  auto cbr = [&](const at::Tensor& t, const std::string& n, bool relu) {
    at::Tensor y = at::conv2d(t, P(n + ".weight"), {}, 1, 1);
    y = at::batch_norm(y, P(n + ".bn.weight"), P(n + ".bn.bias"), P(n + ".bn.running_mean"),
                       P(n + ".bn.running_var"), false, 0.1, 1e-5, false);
    return relu ? at::relu(y) : y;
  };
  at::Tensor h = at::max_pool2d(cbr(in, "stem", true), {2, 2}, {2, 2});
  at::Tensor r = cbr(cbr(h, "block.conv1", true), "block.conv2", false);
  h = at::relu(r + h).mean({2, 3});
  at::Tensor ref = at::softmax(at::linear(h, P("fc.weight"), P("fc.bias")), 1);
  EXPECT_LT(test::maxRelDiff(got, ref), 1e-5);
}

TEST(Builder, CnnStructureVerifiesAndRoundTrips) {
  Graph g;
  GraphBuilder b(g);
  Value* x = b.input("x", DType::Float32, std::vector<Dim>{Dim("N"), 1, 8, 8});
  b.output(buildCnn(b, x));
  EXPECT_TRUE(verifyGraph(g, {.check_schemas = false}).empty());
  EXPECT_EQ(g.numNodes(), 15u);
  EXPECT_EQ(g.params().size(), 3u * 5u + 2u);
  auto h = parseGraph(printGraph(g));
  EXPECT_EQ(printGraph(*h), printGraph(g));
}

}  // namespace
}  // namespace gs

namespace gs {
namespace {

// Every builder node whose op is registered must satisfy its schema (arity, attribute names and
// kinds); ops without a kernel yet are skipped via allow_unknown_ops and checked once they land.
TEST(Builder, HelperNodesSatisfyRegisteredSchemas) {
  Graph g;
  GraphBuilder b(g);
  Value* x = b.input("x", DType::Float32, std::vector<Dim>{Dim("N"), 1, 8, 8});
  Value* h = buildCnn(b, x);
  h = b.reshape(h, {-1, 3}, "rs");
  h = b.transpose(h, {1, 0}, "tr");
  h = b.matmul(h, b.constant("m", at::ones({2, 2})));
  b.output(b.mul(h, h));
  auto errs = verifyGraph(g, {.allow_unknown_ops = true});
  std::string all;
  for (const auto& e : errs) all += e + "\n";
  EXPECT_TRUE(errs.empty()) << all;
}

}  // namespace
}  // namespace gs

namespace gs {
namespace {

// An MLP from the builder's helpers runs through the Executor and matches an ATen forward
// written independently from the parameters.
TEST(Builder, MlpRunsInExecutorMatchingATen) {
  for (const char* op : {"Gemm", "Relu", "Softmax", "MatMul", "Add", "Mul"})
    ASSERT_TRUE(OpRegistry::global().find("", op)) << "op " << op << " is not registered";
  Graph g;
  GraphBuilder b(g);
  Value* x = b.input("x", DType::Float32, std::vector<Dim>{Dim("N"), 6});
  Value* h;
  {
    auto s = b.scope("mlp");
    h = b.relu(b.linear(x, 6, 5, 11, "fc1"));
    Value* m = b.param("mix", test::randn({5, 5}, 12));
    h = b.add(b.matmul(h, m), b.mul(h, h));
    h = b.softmax(b.linear(h, 5, 3, 13, "fc2"), 1);
  }
  b.output(h);
  verifyGraphOrThrow(g);
  at::Tensor in = test::randn({4, 6}, 14);
  Executor ex(g);
  at::Tensor got = ex.run({in})[0];
  auto P = [&](const std::string& n) { return g.findValue(n)->data(); };
  at::Tensor r = at::relu(at::matmul(in, P("mlp.fc1.weight").t()) + P("mlp.fc1.bias"));
  r = at::matmul(r, P("mlp.mix")) + r * r;
  at::Tensor logits = at::matmul(r, P("mlp.fc2.weight").t()) + P("mlp.fc2.bias");
  at::Tensor ref = at::exp(logits) / at::exp(logits).sum(1, true);
  EXPECT_LT(test::maxRelDiff(got, ref), 1e-5);
  EXPECT_LT(test::maxRelDiff(got.sum(1), at::ones({4})), 1e-6);
}

}  // namespace
}  // namespace gs
