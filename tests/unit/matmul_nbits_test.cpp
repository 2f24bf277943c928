// MatMulNBits: bit-packing round trips, RTN bounds, kernels (AVX2 and scalar) vs the ATen
// dequantize-then-matmul reference, train-mode gradients, g_idx, errors, ONNX export/import.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <tuple>

#include "io/onnx.h"
#include "ir/graph.h"
#include "op_test_util.h"
#include "ops/matmul_nbits_kernels.h"
#include "quant/int4_pack.h"
#include "runtime/executor.h"

namespace gs {
namespace {

using nbits::NBitsWeight;
using nbits::WeightLayout;

at::Tensor randomCodes(int64_t rows, int64_t cols, int bits, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(0, 1 << bits, {rows, cols}, gen, at::kLong);
}

/// A random quantized weight: random codes, positive scales, zero points per `zp_kind`
/// (0 none, 1 packed uint8, 2 float).
NBitsWeight randomWeight(int64_t K, int64_t N, int bits, int64_t bs, int zp_kind, uint64_t seed) {
  NBitsWeight w;
  w.K = K;
  w.N = N;
  w.bits = bits;
  w.block_size = bs;
  int64_t nb = w.numBlocks();
  w.B = nbits::packCodes(randomCodes(N, K, bits, seed), bits, bs);
  w.scales = test::randn({N, nb}, seed + 1).abs().add(0.05).mul(0.1);
  if (zp_kind == 1) w.zero_points = nbits::packZeroPoints(randomCodes(N, nb, bits, seed + 2), bits);
  if (zp_kind == 2) w.zero_points = test::randn({N, nb}, seed + 3).mul(2).add(1 << (bits - 1));
  return w;
}

/// runOp of a com.microsoft MatMulNBits node twice: operands as graph inputs (prepared per run)
/// and as parameters (prepared once); expects identical results and returns them.
at::Tensor runBoth(const std::vector<at::Tensor>& inputs, const test::Attrs& attrs) {
  at::Tensor a = test::runOp("MatMulNBits", inputs, attrs, 1, nbits::kDomain)[0];
  test::RunOptions o;
  o.operands_as_params = true;
  at::Tensor b = test::runOp("MatMulNBits", inputs, attrs, 1, nbits::kDomain, o)[0];
  EXPECT_TRUE(at::equal(a, b));
  return b;
}

/// Runs a one-node MatMulNBits graph (weights as parameters) on `a`.
at::Tensor runNode(const NBitsWeight& w, const at::Tensor& a, const at::Tensor& bias = {},
                   bool training = false) {
  Graph g;
  Value* x = g.addInput("a", DType::Float32, std::nullopt);
  Value* b = bias.defined() ? g.addParam("bias", bias, false) : nullptr;
  Node* n = nbits::addMatMulNBits(g, x, w, b, "mm");
  g.addOutput(n->output(0));
  Executor ex(g, {.training = training});
  return ex.run({a})[0];
}

at::Tensor reference(const NBitsWeight& w, const at::Tensor& a, const at::Tensor& bias = {}) {
  at::Tensor y = at::matmul(a.to(at::kDouble), nbits::dequantize(w, WeightLayout::KxN).to(at::kDouble));
  if (bias.defined()) y = y + bias.to(at::kDouble);
  return y.to(at::kFloat);
}

TEST(NBitsPack, CodesRoundTripExactly) {
  for (int bits : {2, 4, 8})
    for (int64_t bs : {16, 32, 64, 128})
      for (int64_t K : {16, 33, 128, 200}) {
        at::Tensor q = randomCodes(5, K, bits, K * 7 + bits + bs);
        at::Tensor B = nbits::packCodes(q, bits, bs);
        int64_t nb = (K + bs - 1) / bs;
        ASSERT_EQ(B.sizes(), (at::IntArrayRef{5, nb, bs * bits / 8}));
        EXPECT_TRUE(at::equal(nbits::unpackCodes(B, K, bits, bs).to(at::kLong), q))
            << "bits " << bits << " bs " << bs << " K " << K;
      }
}

TEST(NBitsPack, ByteLayoutIsLowBitsFirst) {
  // 4-bit: byte j = q[2j] | q[2j+1] << 4, within each block; tail padding is 0.
  at::Tensor q = at::arange(18, at::kLong).remainder(16).reshape({1, 18});
  at::Tensor B = nbits::packCodes(q, 4, 16);
  ASSERT_EQ(B.sizes(), (at::IntArrayRef{1, 2, 8}));
  const uint8_t* p = B.data_ptr<uint8_t>();
  EXPECT_EQ(p[0], 0x10);
  EXPECT_EQ(p[1], 0x32);
  EXPECT_EQ(p[7], 0xFE);
  EXPECT_EQ(p[8], 0x10);  // k = 16, 17 -> codes 0, 1 in the second block
  EXPECT_EQ(p[9], 0x00);
  // 2-bit: byte = q0 | q1 << 2 | q2 << 4 | q3 << 6.
  at::Tensor q2 = at::tensor({1, 2, 3, 0}, at::kLong).repeat({4}).reshape({1, 16});
  EXPECT_EQ(nbits::packCodes(q2, 2, 16).data_ptr<uint8_t>()[0], 1 | 2 << 2 | 3 << 4);
  // Zero points of 3 blocks at 4 bits: one row padded to 2 bytes.
  at::Tensor zp = at::tensor({1, 9, 15, 2, 3, 4}, at::kLong).reshape({2, 3});
  at::Tensor pz = nbits::packZeroPoints(zp, 4);
  ASSERT_EQ(pz.sizes(), (at::IntArrayRef{2, 2}));
  EXPECT_EQ(pz[0][0].item<int>(), 0x91);
  EXPECT_EQ(pz[0][1].item<int>(), 0x0F);
  EXPECT_EQ(pz[1][0].item<int>(), 0x32);
  EXPECT_EQ(pz[1][1].item<int>(), 0x04);
  EXPECT_TRUE(at::equal(nbits::unpackZeroPoints(pz, 3, 4).to(at::kLong), zp));
}

TEST(NBitsPack, QuantizeWithParamsInvertsDequantize) {
  for (int bits : {2, 4, 8})
    for (int zp_kind : {0, 1}) {
      NBitsWeight w = randomWeight(100, 7, bits, 32, zp_kind, 11 + bits);
      at::Tensor zp = zp_kind ? nbits::unpackZeroPoints(w.zero_points, w.numBlocks(), bits)
                              : at::Tensor();
      for (WeightLayout lay : {WeightLayout::KxN, WeightLayout::NxK}) {
        NBitsWeight r = nbits::quantizeWithParams(nbits::dequantize(w, lay), lay, w.scales, zp,
                                                  bits, 32);
        EXPECT_TRUE(at::equal(r.B, w.B)) << "bits " << bits << " zp " << zp_kind;
        if (zp_kind) {
          EXPECT_TRUE(at::equal(r.zero_points, w.zero_points));
        }
      }
    }
}

TEST(NBitsPack, RtnErrorWithinHalfStep) {
  at::Tensor W = test::randn({96, 40}, 5);  // [K, N]
  for (int bits : {2, 4, 8})
    for (bool sym : {true, false})
      for (int64_t bs : {int64_t{32}, int64_t{0}}) {  // 0: per-channel
        NBitsWeight q = nbits::quantizeRtn(W, WeightLayout::KxN, bits, bs, sym);
        EXPECT_EQ(q.zero_points.defined(), !sym);
        if (bs == 0) {  // one scale per channel, repeated over the 128-blocks
          EXPECT_EQ(q.block_size, nbits::kPerChannelBlock);
          EXPECT_TRUE(at::equal(q.scales, q.scales.select(1, 0).unsqueeze(1).expand_as(q.scales)));
        }
        at::Tensor step = nbits::expandPerK(q.scales, 96, q.block_size).t();  // [K, N]
        at::Tensor err = (nbits::dequantize(q, WeightLayout::KxN) - W).abs();
        EXPECT_TRUE((err <= step * 0.5 + 1e-6).all().item<bool>())
            << "bits " << bits << " sym " << sym << " bs " << bs;
      }
}

using KernelCase = std::tuple<int /*bits*/, int64_t /*K*/, int64_t /*N*/, int64_t /*bs*/, int /*zp*/>;
class NBitsKernel : public ::testing::TestWithParam<KernelCase> {};

TEST_P(NBitsKernel, MatchesDequantizedMatmul) {
  auto [bits, K, N, bs, zp_kind] = GetParam();
  NBitsWeight w = randomWeight(K, N, bits, bs, zp_kind, K * 31 + N + bs);
  // 1-2: GEMV; 3-48: per-thread tiles + gemmTileAvx2 (AVX2) ; 64, 100: tiles + BLAS.
  for (int64_t M : {1, 2, 3, 37, 64, 100}) {
    at::Tensor a = test::randn({M, K}, M + 100);
    at::Tensor bias = test::randn({N}, 7);
    at::Tensor ref = reference(w, a, bias);
    double tol = 1e-5 * std::sqrt(static_cast<double>(K)) * ref.abs().max().item<double>() + 1e-5;
    at::Tensor got = runNode(w, a, bias);
    ASSERT_EQ(got.sizes(), ref.sizes());
    EXPECT_LE((got - ref).abs().max().item<double>(), tol) << "M " << M;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Sweep, NBitsKernel,
    ::testing::Values(KernelCase{4, 64, 8, 32, 0}, KernelCase{4, 64, 9, 16, 1},
                      KernelCase{4, 100, 13, 32, 1}, KernelCase{4, 256, 33, 128, 2},
                      KernelCase{4, 300, 17, 64, 0}, KernelCase{4, 48, 5, 16, 2},
                      KernelCase{8, 64, 8, 32, 0}, KernelCase{8, 100, 11, 16, 1},
                      KernelCase{8, 256, 7, 128, 2}, KernelCase{2, 96, 9, 32, 0},
                      KernelCase{2, 70, 6, 16, 1}, KernelCase{4, 512, 300, 32, 1},
                      // GEMM with several row tiles (4 MB of fp32 per tile) and a partial last one
                      KernelCase{4, 4096, 600, 128, 1}, KernelCase{8, 2048, 1100, 64, 0}));

TEST(NBitsOp, ScalarAndAvx2AgreeOnEveryBlockSize) {
  if (!nbits::hasAvx2Fma()) GTEST_SKIP() << "CPU without AVX2+FMA";
  for (int bits : {4, 8})
    for (int64_t bs : {16, 32, 64, 128})
      for (int zp : {0, 1, 2}) {
        int64_t K = 3 * bs - 5, N = 6;
        NBitsWeight w = randomWeight(K, N, bits, bs, zp, bs + bits + zp);
        at::Tensor zpu = zp == 1 ? nbits::unpackZeroPoints(w.zero_points, w.numBlocks(), bits)
                                 : at::Tensor();
        at::Tensor zpf = zp == 2 ? w.zero_points.contiguous() : at::Tensor();
        nbits::PackedView v;
        v.K = K, v.N = N, v.nb = w.numBlocks(), v.bs = bs, v.blob = w.blobSize(), v.bits = bits;
        v.B = w.B.data_ptr<uint8_t>();
        v.scales = w.scales.data_ptr<float>();
        v.zp_u8 = zpu.defined() ? zpu.data_ptr<uint8_t>() : nullptr;
        v.zp_f32 = zpf.defined() ? zpf.data_ptr<float>() : nullptr;
        v.zp_default = static_cast<float>(nbits::defaultZeroPoint(bits));
        at::Tensor x = test::randn({K}, 3);
        std::vector<float> xp(v.paddedK()), xs(v.nb), y1(N), y2(N);
        nbits::prepareActivation(v, x.data_ptr<float>(), xp.data(), xs.data());
        nbits::gemvScalar(v, xp.data(), xs.data(), y1.data(), 0, N);
        nbits::gemvAvx2(v, xp.data(), xs.data(), y2.data(), 0, N);
        at::Tensor ref = reference(w, x.reshape({1, K})).reshape({N});
        for (int64_t n = 0; n < N; ++n) {
          // fp32 sums of K products whose partial sums reach ~max|y|: a few ulps of that.
          float r = ref[n].item<float>(), tol = 1e-5f * ref.abs().max().item<float>() + 1e-4f;
          EXPECT_NEAR(y1[n], r, tol) << "scalar bits " << bits << " bs " << bs;
          EXPECT_NEAR(y2[n], r, tol) << "avx2 bits " << bits << " bs " << bs;
        }
        std::vector<float> d1(N * v.paddedK()), d2(N * v.paddedK());
        nbits::dequantRowsScalar(v, 0, N, d1.data(), v.paddedK());
        nbits::dequantRowsAvx2(v, 0, N, d2.data(), v.paddedK());
        at::Tensor dq = nbits::dequantize(w);
        at::Tensor t1 = at::from_blob(d1.data(), {N, v.paddedK()}).narrow(1, 0, K);
        at::Tensor t2 = at::from_blob(d2.data(), {N, v.paddedK()}).narrow(1, 0, K);
        EXPECT_LE(test::maxRelDiff(t1, dq), 4e-6);  // q*s - zp*s (one FMA) vs (q - zp) * s
        EXPECT_LE(test::maxRelDiff(t2, dq), 4e-6);
      }
}

TEST(NBitsOp, TileKernelMatchesReferenceOnEveryEdge) {
  // gemmTileAvx2 directly: every remainder of the 6-row x 2-column register blocks (M 1..13,
  // NT 1..5), K with a tail that is not a multiple of 8, accumulation into C (C += A W^T), and
  // row strides larger than the used extents.
  if (!nbits::hasAvx2Fma()) GTEST_SKIP() << "CPU without AVX2+FMA";
  for (int64_t K : {8, 13, 67})
    for (int64_t M = 1; M <= 13; ++M)
      for (int64_t NT = 1; NT <= 5; ++NT) {
        const int64_t lda = K + 3, ldw = K + 5, ldc = NT + 2;
        at::Tensor A = test::randn({M, lda}, M * 7 + K);
        at::Tensor W = test::randn({NT, ldw}, NT * 11 + K);
        at::Tensor C = test::randn({M, ldc}, M + NT);
        at::Tensor ref = C.to(at::kDouble).clone();
        ref.narrow(1, 0, NT) += A.narrow(1, 0, K).to(at::kDouble).mm(
            W.narrow(1, 0, K).to(at::kDouble).t());
        nbits::gemmTileAvx2(A.data_ptr<float>(), lda, M, W.data_ptr<float>(), ldw, NT, K,
                            C.data_ptr<float>(), ldc);
        EXPECT_LE((C.to(at::kDouble) - ref).abs().max().item<double>(), 1e-4)
            << "M " << M << " NT " << NT << " K " << K;
      }
}

TEST(NBitsOp, Rank3InputAndNonConstantWeights) {
  NBitsWeight w = randomWeight(64, 10, 4, 32, 1, 9);
  at::Tensor a = test::randn({2, 3, 64}, 4);
  at::Tensor ref = reference(w, a.reshape({6, 64})).reshape({2, 3, 10});
  test::Attrs attrs{{"K", int64_t{64}}, {"N", int64_t{10}}, {"bits", int64_t{4}},
                    {"block_size", int64_t{32}}};
  // runBoth: weights as graph inputs (prepared per run) and as parameters (prepared once).
  at::Tensor got = runBoth({a, w.B, w.scales, w.zero_points}, attrs);
  EXPECT_LE(test::maxRelDiff(got, ref), 1e-5);
}

TEST(NBitsOp, TrainModeGradientReachesA) {
  NBitsWeight w = randomWeight(48, 5, 4, 16, 0, 2);
  at::Tensor a = test::randn({3, 48}, 1);
  Graph g;
  Value* x = g.addParam("a", a.clone().requires_grad_(true));
  Node* n = nbits::addMatMulNBits(g, x, w, nullptr, "mm");
  g.addOutput(n->output(0));
  Executor ex(g, {.training = true});
  ex.run({})[0].sum().backward();
  at::Tensor expect = nbits::dequantize(w).sum(0).expand({3, 48});
  EXPECT_LE(test::maxRelDiff(x->data().grad(), expect), 1e-5);
}

TEST(NBitsOp, GIdxReordersScales) {
  int64_t K = 64, N = 4, bs = 16;
  NBitsWeight w = randomWeight(K, N, 4, bs, 1, 21);
  // act-order: element k uses block g_idx[k] (a permutation of the trivial k / bs).
  at::Tensor gidx = at::arange(K, at::kLong).div(bs, "floor").flip(0).to(at::kInt);
  at::Tensor a = test::randn({2, K}, 8);
  test::Attrs attrs{{"K", K}, {"N", N}, {"bits", int64_t{4}}, {"block_size", bs}};
  at::Tensor got = runBoth({a, w.B, w.scales, w.zero_points, gidx}, attrs);
  at::Tensor q = nbits::unpackCodes(w.B, K, 4, bs).to(at::kFloat);
  at::Tensor gl = gidx.to(at::kLong);
  at::Tensor deq = (q - nbits::zeroPointsFloat(w).index_select(1, gl)) * w.scales.index_select(1, gl);
  EXPECT_LE(test::maxRelDiff(got, at::matmul(a, deq.t())), 1e-5);
  // The trivial g_idx is the same as none.
  at::Tensor triv = at::arange(K, at::kLong).div(bs, "floor").to(at::kInt);
  at::Tensor got2 = runBoth({a, w.B, w.scales, w.zero_points, triv}, attrs);
  EXPECT_LE(test::maxRelDiff(got2, reference(w, a)), 1e-5);
}

TEST(NBitsOp, BadOperandsAreClearErrors) {
  NBitsWeight w = randomWeight(64, 4, 4, 32, 0, 1);
  at::Tensor a = test::randn({1, 64}, 1);
  test::Attrs attrs{{"K", int64_t{64}}, {"N", int64_t{4}}, {"bits", int64_t{3}},
                    {"block_size", int64_t{32}}};
  test::expectError([&] { test::runOp("MatMulNBits", {a, w.B, w.scales}, attrs, 1, "com.microsoft"); },
                    "bits must be 2, 4 or 8");
  attrs["bits"] = int64_t{4};
  attrs["block_size"] = int64_t{24};
  test::expectError([&] { test::runOp("MatMulNBits", {a, w.B, w.scales}, attrs, 1, "com.microsoft"); },
                    "power of two");
  attrs["block_size"] = int64_t{16};
  test::expectError([&] { test::runOp("MatMulNBits", {a, w.B, w.scales}, attrs, 1, "com.microsoft"); },
                    "node 'n' (com.microsoft::MatMulNBits): B must be uint8 [N=4, n_blocks=4");
  attrs["block_size"] = int64_t{32};
  test::expectError(
      [&] { test::runOp("MatMulNBits", {test::randn({1, 60}, 1), w.B, w.scales}, attrs, 1, "com.microsoft"); },
      "A's last dimension must be K = 64");
}

TEST(NBitsOnnx, ExportImportRoundTrip) {
  NBitsWeight w = nbits::quantizeRtn(test::randn({96, 24}, 3), WeightLayout::KxN, 4, 32, false);
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{Dim("batch"), 96});
  Node* n = nbits::addMatMulNBits(g, x, w, g.addParam("bias", test::randn({24}, 4), false), "fc");
  Node* r = g.addNode("Relu", {n->output(0)}, 1, "relu");
  g.addOutput(r->output(0));
  std::string bytes = exportOnnxBytes(g);  // runs the ONNX checker (contrib nodes are skipped)
  auto g2 = importOnnxBytes(bytes, "nbits.onnx");
  EXPECT_EQ(g2->opsets.at("com.microsoft"), 1);
  const Node* n2 = g2->findNode("fc");
  ASSERT_NE(n2, nullptr);
  EXPECT_EQ(n2->domain(), "com.microsoft");
  NBitsWeight w2 = nbits::weightOf(*n2);
  EXPECT_TRUE(at::equal(w2.B, w.B));
  EXPECT_TRUE(at::equal(w2.zero_points, w.zero_points));
  at::Tensor in = test::randn({3, 96}, 9);
  Executor e1(g), e2(*g2);
  EXPECT_TRUE(at::equal(e1.run({in})[0], e2.run({in})[0]));
  EXPECT_LE(test::maxRelDiff(e1.run({in})[0], at::relu(reference(w, in, g.findValue("bias")->data()))),
            1e-5);
}

}  // namespace
}  // namespace gs
