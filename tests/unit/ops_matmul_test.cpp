// Matrix-product ops: MatMul, Gemm, Einsum, Det, MatMulInteger, QLinearMatMul.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "op_test_util.h"
#include "runtime/executor.h"

namespace gs {
namespace {

using namespace gs::test;  // NOLINT: shared op-test helpers

/// Reference matmul of 2-D double tensors by broadcasting multiply + sum (no BLAS).
at::Tensor refMM(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble).unsqueeze(2) * b.to(at::kDouble).unsqueeze(0)).sum(1);
}

TEST(OpsMatmul, OnnxConformanceCases) {
  GS_REQUIRE_ONNX_NODE_CASES();
  EXPECT_TRUE(runConformanceCases({"test_matmul_", "test_gemm_", "test_einsum_", "test_det_",
                                   "test_matmulinteger", "test_qlinearmatmul_"},
                                  {.rtol = 1e-4, .atol = 1e-5}));
}

TEST(OpsMatmul, MatMulOneDimensionalOperands) {
  at::Tensor v = test::randn({4}, 1), m = test::randn({4, 3}, 2), l = test::randn({2, 5, 4}, 3);
  at::Tensor dot = run1("MatMul", {v, v});
  EXPECT_EQ(dot.dim(), 0);
  EXPECT_NEAR(dot.item<float>(), (v * v).sum().item<float>(), 1e-5);
  at::Tensor vm = run1("MatMul", {v, m});  // [4] x [4,3] -> [3]
  ASSERT_EQ(vm.sizes(), (std::vector<int64_t>{3}));
  EXPECT_LT(test::maxRelDiff(vm, refMM(v.unsqueeze(0), m).squeeze(0)), 1e-5);
  at::Tensor lv = run1("MatMul", {l, v});  // [2,5,4] x [4] -> [2,5]
  ASSERT_EQ(lv.sizes(), (std::vector<int64_t>{2, 5}));
  EXPECT_LT(test::maxRelDiff(lv, (l.to(at::kDouble) * v.to(at::kDouble)).sum(-1)), 1e-5);
}

TEST(OpsMatmul, MatMulBatchBroadcasting) {
  at::Tensor a = test::randn({2, 1, 3, 4}, 4), b = test::randn({5, 4, 6}, 5);
  at::Tensor y = run1("MatMul", {a, b});
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 5, 3, 6}));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 5; ++j)
      EXPECT_LT(test::maxRelDiff(y[i][j], refMM(a[i][0], b[j])), 1e-5);
  at::Tensor ai = at::arange(6, at::kInt).reshape({2, 3});
  at::Tensor yi = run1("MatMul", {ai, ai.t().contiguous()});
  EXPECT_EQ(yi.scalar_type(), at::kInt);
  EXPECT_TRUE(at::equal(yi, at::tensor({5, 14, 14, 50}, at::kInt).reshape({2, 2})));
}

TEST(OpsMatmul, GemmTransposesAndCBroadcasting) {
  const int64_t M = 3, K = 4, N = 5;
  at::Tensor a = test::randn({M, K}, 6), b = test::randn({K, N}, 7);
  std::vector<at::Tensor> cs = {at::Tensor(), test::randn({}, 8), test::randn({N}, 9),
                                test::randn({M, 1}, 10), test::randn({1, N}, 11), test::randn({M, N}, 12)};
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (const at::Tensor& c : cs) {
        at::Tensor A = ta ? a.t().contiguous() : a, B = tb ? b.t().contiguous() : b;
        std::map<std::string, Attribute> attrs{{"transA", ta}, {"transB", tb}, {"alpha", 0.5f},
                                               {"beta", 2.0f}};
        std::vector<at::Tensor> ins{A, B};
        if (c.defined()) ins.push_back(c);
        at::Tensor y = run1("Gemm", ins, attrs);
        at::Tensor want = 0.5 * refMM(a, b);
        if (c.defined()) want = want + 2.0 * c.to(at::kDouble);
        ASSERT_EQ(y.sizes(), (std::vector<int64_t>{M, N}));
        EXPECT_LT(test::maxRelDiff(y, want), 1e-5) << "transA=" << ta << " transB=" << tb
                                                   << " C rank " << (c.defined() ? c.dim() : -1);
      }
}

TEST(OpsMatmul, GemmIntegerAndHalf) {
  at::Tensor a = at::tensor({1, 2, 3, 4}, at::kInt).reshape({2, 2}), c = at::tensor({1, -1}, at::kInt);
  // A @ A = [[7, 10], [15, 22]].
  at::Tensor y = run1("Gemm", {a, a, c}, {{"alpha", 2.0f}, {"beta", 3.0f}});
  EXPECT_EQ(y.scalar_type(), at::kInt);
  EXPECT_TRUE(at::equal(y, at::tensor({17, 17, 33, 41}, at::kInt).reshape({2, 2})));
  at::Tensor h = run1("Gemm", {a, a, c}, {{"alpha", 0.5f}});  // fractional alpha: truncated back
  EXPECT_TRUE(at::equal(h, at::tensor({4, 4, 8, 10}, at::kInt).reshape({2, 2})));
  at::Tensor x = test::randn({3, 4}, 30), w = test::randn({4, 2}, 31);
  at::Tensor yh = run1("MatMul", {x.to(at::kHalf), w.to(at::kHalf)});
  EXPECT_EQ(yh.scalar_type(), at::kHalf);
  EXPECT_LT(test::maxRelDiff(yh, refMM(x.to(at::kHalf), w.to(at::kHalf))), 2e-3);
  at::Tensor gh = run1("Gemm", {x.to(at::kHalf), w.to(at::kHalf)});
  EXPECT_TRUE(at::equal(gh, yh));
}

TEST(OpsMatmul, GemmTrainModeGradientReachesTransposedWeight) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{3, 4});
  Value* w = g.addParam("w", test::randn({5, 4}, 13).requires_grad_(true));
  Value* bias = g.addParam("b", test::randn({5}, 14).requires_grad_(true));
  Node* n = g.addNode("Gemm", {x, w, bias}, 1, "fc", {{"transB", 1}, {"alpha", 2.0f}});
  g.addOutput(n->output(0));
  Executor ex(g, {.training = true});
  at::Tensor xin = test::randn({3, 4}, 15);
  auto out = ex.run({xin});
  EXPECT_LT(test::maxRelDiff(out[0], 2.0 * refMM(xin, w->data().detach().t()) +
                                         bias->data().detach().to(at::kDouble)), 1e-5);
  out[0].sum().backward();
  // d sum(Y) / dW[n,k] = alpha * sum_m x[m,k]; d / db[n] = M.
  EXPECT_LT(test::maxRelDiff(w->data().grad(), (2.0 * xin.sum(0)).expand({5, 4})), 1e-5);
  EXPECT_LT(test::maxRelDiff(bias->data().grad(), at::full({5}, 3.0)), 1e-6);
}

TEST(OpsMatmul, EinsumWithSpacesAndDet) {
  at::Tensor a = test::randn({2, 3, 4}, 16), b = test::randn({2, 4, 5}, 17);
  at::Tensor y = run1("Einsum", {a, b}, {{"equation", "bij, bjk -> bik"}});
  for (int64_t i = 0; i < 2; ++i) EXPECT_LT(test::maxRelDiff(y[i], refMM(a[i], b[i])), 1e-5);
  at::Tensor tr = run1("Einsum", {test::randn({3, 3}, 18)}, {{"equation", "ii"}});
  EXPECT_EQ(tr.dim(), 0);
  at::Tensor d = run1("Det", {at::tensor({1.f, 2.f, 3.f, 4.f, 2.f, 0.f, 0.f, 3.f}).reshape({2, 2, 2})});
  EXPECT_LT(test::maxRelDiff(d, at::tensor({-2.0, 6.0})), 1e-6);
}

/// Exact int64 reference for (A - za)(B - zb) with per-row za and per-column zb.
at::Tensor refInt(const at::Tensor& a, const at::Tensor& za, const at::Tensor& b, const at::Tensor& zb) {
  at::Tensor x = a.to(at::kLong) - za.to(at::kLong).unsqueeze(1);
  at::Tensor y = b.to(at::kLong) - zb.to(at::kLong);
  return (x.unsqueeze(2) * y.unsqueeze(0)).sum(1);
}

TEST(OpsMatmul, MatMulIntegerExactWithRowAndColumnZeroPoints) {
  for (int64_t K : {7, 258, 300}) {  // both exact-accumulation paths (float and double)
    auto gen = at::make_generator<at::CPUGeneratorImpl>(K);
    at::Tensor a = at::randint(0, 256, {3, K}, gen, at::kByte);
    at::Tensor b = at::randint(-128, 128, {K, 4}, gen, at::kChar);
    at::Tensor za = at::tensor({0, 255, 17}, at::kByte);
    at::Tensor zb = at::tensor({-128, 127, 0, 5}, at::kChar);
    at::Tensor y = run1("MatMulInteger", {a, b, za, zb});
    EXPECT_EQ(y.scalar_type(), at::kInt);
    EXPECT_TRUE(at::equal(y.to(at::kLong), refInt(a, za, b, zb))) << "K=" << K;
    // Extreme operands: every |a - za| * |b - zb| = 255 * 255.
    at::Tensor ext = run1("MatMulInteger", {at::full({2, K}, 255, at::kByte), at::full({K, 2}, -128, at::kChar),
                                            at::tensor({0, 0}, at::kByte), at::scalar_tensor(127, at::kChar)});
    EXPECT_TRUE(at::equal(ext, at::full({2, 2}, -255 * 255 * K, at::kInt))) << "K=" << K;
  }
}

TEST(OpsMatmul, MatMulIntegerConstantWeightMatchesInputWeight) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(21);
  at::Tensor a = at::randint(0, 256, {2, 3, 300}, gen, at::kByte);
  at::Tensor b = at::randint(0, 256, {300, 6}, gen, at::kByte);
  at::Tensor zb = at::randint(0, 256, {6}, gen, at::kByte);
  Graph g;
  Value* x = g.addInput("a", DType::UInt8, shapeOf(a));
  Value* za = g.addInput("za", DType::UInt8, std::vector<Dim>{});
  Value* w = g.addParam("w", b, false);
  Value* wz = g.addParam("wz", zb, false);
  g.addOutput(g.addNode("MatMulInteger", {x, w, za, wz}, 1, "mmi")->output(0));
  Executor ex(g);
  at::Tensor zas = at::scalar_tensor(3, at::kByte);
  at::Tensor y = ex.run({a, zas})[0];
  at::Tensor want = run1("MatMulInteger", {a, b, zas, zb});
  EXPECT_TRUE(at::equal(y, want));
  EXPECT_TRUE(at::equal(y[1].to(at::kLong), refInt(a[1], at::full({3}, 3, at::kByte), b, zb)));
}

TEST(OpsMatmul, QLinearMatMulRequantizesHalfToEven) {
  // y = round((A - 1) @ (B - 2) * 0.5 * 1 / 1) + 10.
  at::Tensor a = at::tensor({2, 3, 4, 5}, at::kByte).reshape({2, 2});
  at::Tensor b = at::tensor({2, 3, 3, 4}, at::kByte).reshape({2, 2});
  auto f = [](float v) { return at::scalar_tensor(v, at::kFloat); };
  auto u8 = [](int v) { return at::scalar_tensor(v, at::kByte); };
  at::Tensor y = run1("QLinearMatMul", {a, f(0.5f), u8(1), b, f(1.0f), u8(2), f(1.0f), u8(10)});
  // acc = [[1*0+2*1, 1*1+2*2], [3*0+4*1, 3*1+4*2]] = [[2, 5], [4, 11]] -> *0.5 = [[1, 2.5], [2, 5.5]]
  EXPECT_TRUE(at::equal(y, at::tensor({11, 12, 12, 16}, at::kByte).reshape({2, 2})));
  at::Tensor sat = run1("QLinearMatMul", {a, f(1000.0f), u8(1), b, f(1.0f), u8(2), f(1.0f), u8(10)});
  EXPECT_TRUE(at::equal(sat, at::full({2, 2}, 255, at::kByte)));
}

}  // namespace
}  // namespace gs
