// Lowering to QDQ: the lowered graph computes exactly what the fake quantizers compute, for
// per-channel / per-group weights, low-bit and narrow activation grids, LSQ steps; redundant
// quantizers are removed.
#include "quant/convert.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "op_test_util.h"
#include "quant/quantizer.h"
#include "runtime/executor.h"

namespace gs::quant {
namespace {

/// x [N, 16] -> MatMul(W [16, 8]) -> Relu -> Gemm(W2 [4, 8], transB) -> y.
std::unique_ptr<Graph> mlp() {
  auto g = std::make_unique<Graph>();
  Value* x = g->addInput("x", DType::Float32, std::vector<Dim>{Dim("N"), 16});
  Value* w = g->addParam("w", test::randn({16, 8}, 1));
  Value* w2 = g->addParam("w2", test::randn({4, 8}, 2));
  Value* b2 = g->addParam("b2", test::randn({4}, 3));
  Node* mm = g->addNode("MatMul", {x, w}, 1, "fc1");
  Node* r = g->addNode("Relu", {mm->output(0)}, 1, "relu");
  Node* gm = g->addNode("Gemm", {r->output(0), w2, b2}, 1, "fc2", {{"transB", Attribute(int64_t{1})}});
  g->addOutput(gm->output(0));
  return g;
}

void expectLoweredEqual(Graph& g, const std::string& tag) {
  at::Tensor x = test::randn({5, 16}, 9) * 2;
  at::Tensor want = Executor(g).run({x})[0];
  auto l = g.clone(true);
  lowerToQdq(*l);
  for (const auto& n : l->nodes()) EXPECT_NE(n->domain(), "gs") << tag;
  at::Tensor got = Executor(*l).run({x})[0];
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5) << tag;
}

TEST(QuantConvert, EveryGranularityAndGridLowersExactly) {
  struct Case {
    const char* tag;
    QuantSpec w, a;
    FqKind kind;
  };
  QuantSpec pc;
  pc.granularity = Granularity::PerChannel;
  QuantSpec pg;
  pg.bits = 4;
  pg.granularity = Granularity::PerGroup;
  pg.group_size = 4;  // groups along K: fc1 [16, 8] axis 0, fc2 [4, 8] (transB) axis 1
  QuantSpec u4;
  u4.bits = 4;
  u4.is_signed = false;
  u4.symmetric = false;
  QuantSpec n8;
  n8.narrow_range = true;
  QuantSpec l4 = n8;
  l4.bits = 4;
  std::vector<Case> cases{{"int8 per-channel / uint8 asym", pc, [] { QuantSpec s; s.is_signed = false; s.symmetric = false; return s; }(), FqKind::Static},
                          {"int4 per-group / uint4", pg, u4, FqKind::Static},
                          {"int8 narrow", n8, n8, FqKind::Static},
                          {"lsq 4-bit", l4, l4, FqKind::Lsq}};
  for (const Case& c : cases) {
    auto g = mlp();
    std::vector<LayerQuantConfig> ls;
    for (const char* n : {"fc1", "fc2"}) {
      LayerQuantConfig lc;
      lc.node = n;
      lc.weight = c.w;
      lc.act = c.a;
      lc.weight_kind = lc.act_kind = c.kind;
      ls.push_back(lc);
    }
    auto qs = insertQuantizers(*g, ls);
    ASSERT_EQ(qs.size(), 4u) << c.tag;
    // Activation grids that actually clip: scale 0.05 / step 0.2 on N(0, 4) inputs.
    for (const Quantizer& q : qs)
      if (!q.is_weight) {
        q.scale->setData(at::scalar_tensor(c.kind == FqKind::Lsq ? 0.2f : 0.05f));
        if (q.zero_point) q.zero_point->setData(at::scalar_tensor(c.a.is_signed ? 0.0f : 3.0f));
      }
    expectLoweredEqual(*g, c.tag);
  }
}

TEST(QuantConvert, WeightsBecomeInt8InitializersAndRedundantQuantizersGo) {
  auto g = mlp();
  LayerQuantConfig lc;
  lc.node = "fc1";
  lc.weight.granularity = Granularity::PerChannel;
  auto qs = insertQuantizers(*g, {lc});
  // A second identical quantizer right after the activation quantizer is redundant.
  Node* aq = qs[1].node;
  Node* dup = g->addNode("FakeQuant", {aq->output(0), qs[1].scale, qs[1].zero_point}, 1, "dup",
                         aq->attrs(), g->findNode("fc1"), "gs");
  g->findNode("fc1")->setInput(0, dup->output(0));
  EXPECT_EQ(removeRedundantQuantizers(*g), 1);
  EXPECT_EQ(g->findNode("dup"), nullptr);
  QdqReport r = lowerToQdq(*g);
  EXPECT_EQ(r.weights, 1);
  EXPECT_EQ(r.weight_bytes, 16 * 8);
  Value* wq = g->findValue("fc1.weight_fq.quantized");
  ASSERT_NE(wq, nullptr);
  EXPECT_EQ(wq->data().scalar_type(), at::kChar);
  EXPECT_EQ(g->opsets.count("gs"), 0u);
}

}  // namespace
}  // namespace gs::quant
