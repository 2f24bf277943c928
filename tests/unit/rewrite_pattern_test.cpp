// Pattern matching (every constraint kind, DAGs, commutativity), drivers and graph queries.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "ir/text.h"
#include "ir/verifier.h"
#include "models/zoo.h"
#include "rewrite/driver.h"
#include "rewrite/query.h"
#include "support/error.h"

namespace gs {
namespace {

const char* kNet = R"(graph "net" {
  opset "" 17
  input %x: f32[N,2,3,3]
  input %wdyn: f32[2,2,1,1]
  param %w: f32[2,2,1,1] = tensor<f32[2,2,1,1]>[1, 0, 0, 1]
  param frozen %s: f32[2] = tensor<f32[2]>[1, 1]
  param frozen %z: f32[2] = tensor<f32[2]>[0, 0]
  param frozen %half: f32[] = tensor<f32[]>[0.5]
  %c1 = Conv(%x, %w) @c1 {kernel_shape=[1,1]}
  %b1 = BatchNormalization(%c1, %s, %z, %z, %s) @b1 {epsilon=1e-05}
  %r1 = Relu(%b1) @r1
  %add = Add(%x, %r1) @add
  %c2 = Conv(%add, %wdyn) @c2 {kernel_shape=[1,1]}
  %r2 = LeakyRelu(%c2) @r2 {alpha=0.1}
  %m = Mul(%half, %r2) @m
  %both = Add(%m, %c2) @both
  output %both
}
)";

std::optional<Match> at(const Pattern& p, Graph& g, const std::string& node, std::string* why = nullptr) {
  return p.matchAt(g.findNode(node), why);
}

TEST(Pattern, ChainConvBnReluWithCaptures) {
  auto g = parseGraph(kNet);
  Pattern p;
  auto conv = p.op("Conv", {p.any("x"), p.param("w")}, "conv");
  auto bn = p.op("BatchNormalization",
                 {conv.out().singleUse(), p.constant(), p.constant(), p.constant(), p.constant()},
                 "bn");
  p.op({"Relu", "LeakyRelu"}, {bn}, "act");
  auto m = at(p, *g, "r1");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->node("conv")->name(), "c1");
  EXPECT_EQ(m->node("bn")->name(), "b1");
  EXPECT_EQ(m->value("w")->name(), "w");
  EXPECT_EQ(m->value("x")->name(), "x");
  EXPECT_EQ(m->nodes.size(), 3u);
  EXPECT_EQ(m->root->name(), "r1");
  EXPECT_THROW(m->node("nope"), Error);
  // The op-type alternatives include LeakyRelu, but r2's producer is no BatchNormalization.
  std::string why;
  EXPECT_FALSE(at(p, *g, "r2", &why));
  EXPECT_EQ(why, "node 'c2' (Conv): op type not in the pattern's alternatives");
  EXPECT_EQ(p.matchAll(*g).size(), 1u);
}

TEST(Pattern, ParamVersusGraphInputWeights) {
  auto g = parseGraph(kNet);
  Pattern p;
  p.op("Conv", {p.any(), p.param("w")});
  EXPECT_TRUE(at(p, *g, "c1"));
  std::string why;
  EXPECT_FALSE(at(p, *g, "c2", &why));
  EXPECT_EQ(why, "value 'wdyn' is not a parameter");
  Pattern q2;
  q2.op("Conv", {q2.any(), q2.graphInput("w")});
  EXPECT_TRUE(at(q2, *g, "c2"));
  // constant() requires a frozen parameter; %w is trainable.
  Pattern k;
  k.op("Conv", {k.any(), k.constant()});
  EXPECT_FALSE(at(k, *g, "c1", &why));
  EXPECT_EQ(why, "value 'w' is not a frozen parameter");
}

TEST(Pattern, SingleUseBlocksSharedValues) {
  auto g = parseGraph(kNet);
  Pattern p;
  auto conv = p.op("Conv", {p.any(), p.any()});
  p.op("LeakyRelu", {conv.out().singleUse()});
  std::string why;
  EXPECT_FALSE(at(p, *g, "r2", &why));  // c2 also feeds "both"
  EXPECT_EQ(why, "value 'c2': single use does not hold");
  Pattern q;
  auto conv2 = q.op("Conv", {q.any(), q.any()}).singleUse();
  q.op("LeakyRelu", {conv2});
  EXPECT_FALSE(at(q, *g, "r2", &why));
  EXPECT_EQ(why, "node 'c2' (Conv): outputs used once does not hold");
}

TEST(Pattern, AttributesShapesAndPredicates) {
  auto g = parseGraph(kNet);
  auto leaky = [](double alpha) {
    Pattern p;
    p.op("LeakyRelu", {p.any().rank(4).dtype(DType::Float32)}).attrEq("alpha", alpha);
    return p;
  };
  EXPECT_TRUE(at(leaky(0.1), *g, "r2"));
  EXPECT_FALSE(at(leaky(0.2), *g, "r2"));
  // c2's output has no shape annotation: rank(4) fails.
  Pattern r;
  r.op("LeakyRelu", {r.any().rank(4)});
  std::string why;
  g->findValue("c2")->setShape(std::nullopt);
  EXPECT_FALSE(at(r, *g, "r2", &why));
  EXPECT_EQ(why, "value 'c2': rank 4 does not hold");
  g->findValue("c2")->setShape(std::vector<Dim>{Dim("N"), 2, 3, 3});
  EXPECT_TRUE(at(r, *g, "r2"));
  // attrEqOrAbsent treats an absent attribute as the ONNX default.
  Pattern bn;
  bn.op("BatchNormalization", {bn.any(), bn.any(), bn.any(), bn.any(), bn.any()})
      .attrEqOrAbsent("training_mode", 0)
      .attrWhere("epsilon", [](const Attribute* a) { return a && a->f() < 1e-3f; })
      .where([](const Node& n) { return n.numOutputs() == 1; }, "one output");
  EXPECT_TRUE(at(bn, *g, "b1"));
  g->findNode("b1")->setAttr("training_mode", int64_t{1});
  EXPECT_FALSE(at(bn, *g, "b1", &why));
  EXPECT_EQ(why, "node 'b1' (BatchNormalization): attribute training_mode as required does not hold");
  // Scalar constants and arbitrary value predicates.
  Pattern s;
  s.op("Mul", {s.constant("c").scalar().where([](const Value& v) {
                 return v.data().item<float>() == 0.5f;
               }),
               s.any()});
  EXPECT_TRUE(at(s, *g, "m"));
}

TEST(Pattern, ResidualDagBindsSharedValueOnce) {
  auto g = parseGraph(kNet);
  // Add(x, Relu(BN(Conv(x, W)))): x appears twice and must be the same graph value.
  Pattern p;
  ValuePat x = p.any("x");
  auto conv = p.op("Conv", {x, p.param()});
  auto bn = p.op("BatchNormalization", {conv, p.any(), p.any(), p.any(), p.any()});
  auto relu = p.op("Relu", {bn});
  p.op("Add", {x, relu}, "add").commutative();
  auto m = at(p, *g, "add");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->value("x")->name(), "x");
  // Swap the Add's inputs: only the commutative pattern still matches.
  Node* add = g->findNode("add");
  Value* a0 = add->input(0);
  Value* a1 = add->input(1);
  add->setInput(0, a1);
  add->setInput(1, a0);
  EXPECT_TRUE(at(p, *g, "add"));
  Pattern strict;
  ValuePat sx = strict.any("x");
  auto sconv = strict.op("Conv", {sx, strict.param()});
  auto sbn = strict.op("BatchNormalization", {sconv, strict.any(), strict.any(), strict.any(), strict.any()});
  strict.op("Add", {sx, strict.op("Relu", {sbn})});
  std::string why;
  EXPECT_FALSE(at(strict, *g, "add", &why));
  // Not a residual when the skip reads another value: rewire the conv to read %wdyn's user.
  Pattern other;
  ValuePat ox = other.any("x");
  other.op("Add", {ox, other.op("Mul", {other.any(), ox})}).commutative();
  EXPECT_FALSE(at(other, *g, "both", &why));  // Add(m, c2): m = Mul(half, r2), r2 != c2
  EXPECT_NE(why.find("differs from the value already bound"), std::string::npos) << why;
}

TEST(Pattern, CommutativeBacktracksAcrossNodes) {
  // The first order that matches locally (x := a at the Add) fails later at the Mul; the matcher
  // must come back and try the other order.
  auto g = parseGraph(R"(graph "c" {
  input %a: f32[2]
  input %b: f32[2]
  %s = Add(%a, %b) @s
  %y = Mul(%s, %b) @y
  output %y
}
)");
  Pattern p;
  ValuePat x = p.any("x");
  auto add = p.op("Add", {x, p.any("other")}).commutative();
  p.op("Mul", {add, x});
  auto m = at(p, *g, "y");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->value("x")->name(), "b");
  EXPECT_EQ(m->value("other")->name(), "a");
}

TEST(Pattern, QdqPairAndAttentionBlock) {
  auto g = parseGraph(R"(graph "qa" {
  opset "" 17
  input %q: f32[1,2,4,8]
  input %k: f32[1,2,8,4]
  input %v: f32[1,2,4,8]
  param frozen %s: f32[] = tensor<f32[]>[0.1]
  param frozen %z: i8[] = tensor<i8[]>[0]
  %qq = QuantizeLinear(%q, %s, %z) @qq
  %dq = DequantizeLinear(%qq, %s, %z) @dq
  %scores = MatMul(%dq, %k) @scores
  %probs = Softmax(%scores) @probs {axis=-1}
  %ctx = MatMul(%probs, %v) @ctx
  output %ctx
}
)");
  Pattern qdq;
  auto qn = qdq.op("QuantizeLinear", {qdq.any("x"), qdq.constant("s"), qdq.optional("z")}, "q");
  qdq.op("DequantizeLinear", {qn.out().singleUse(), qdq.constant("s2"), qdq.optional("z2")}, "dq");
  auto m = at(qdq, *g, "dq");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->value("s"), m->value("s2"));
  EXPECT_TRUE(m->has("z"));
  Pattern att;
  auto sc = att.op("MatMul", {att.any("q"), att.any("k")}, "scores");
  auto pr = att.op("Softmax", {sc.out().singleUse()}).attrEqOrAbsent("axis", -1);
  att.op("MatMul", {pr.out().singleUse(), att.any("v")}, "ctx");
  auto a = at(att, *g, "ctx");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->value("q")->name(), "dq");
  EXPECT_EQ(a->node("scores")->name(), "scores");
  // The inner MatMul is no attention root: its input is not a Softmax.
  EXPECT_FALSE(at(att, *g, "scores"));
}

TEST(Pattern, ArityOptionalAndOmittedInputs) {
  auto g = parseGraph(R"(graph "a" {
  opset "" 17
  input %x: f32[1,1,2,2]
  param %w: f32[1,1,1,1] = tensor<f32[1,1,1,1]>[2]
  param %b: f32[1] = tensor<f32[1]>[1]
  %c1 = Conv(%x, %w, %b) @c1
  %c2 = Conv(%c1, %w) @c2
  output %c2
}
)");
  Pattern two;
  two.op("Conv", {two.any(), two.any()});
  std::string why;
  EXPECT_FALSE(at(two, *g, "c1", &why));
  EXPECT_EQ(why, "node 'c1' (Conv): has 3 inputs, pattern expects 2");
  EXPECT_TRUE(at(two, *g, "c2"));
  Pattern extra;
  extra.op("Conv", {extra.any(), extra.any()}).allowExtraInputs();
  EXPECT_TRUE(at(extra, *g, "c1"));
  Pattern opt;
  opt.op("Conv", {opt.any(), opt.any(), opt.optional("b")});
  auto m1 = at(opt, *g, "c1");
  auto m2 = at(opt, *g, "c2");
  ASSERT_TRUE(m1 && m2);
  EXPECT_TRUE(m1->has("b"));
  EXPECT_FALSE(m2->has("b"));
  Pattern om;
  om.op("Conv", {om.any(), om.any(), om.omitted()});
  EXPECT_FALSE(at(om, *g, "c1"));
  EXPECT_TRUE(at(om, *g, "c2"));
}

// ---------------------------------------------------------------- drivers

const char* kNegs = R"(graph "negs" {
  input %x: f32[2]
  %a = Neg(%x) @a
  %b = Neg(%a) @b
  %c = Neg(%b) @c
  %d = Neg(%c) @d
  %e = Relu(%d) @e
  output %e
}
)";

/// Neg(Neg(y)) => y
void addDoubleNeg(PatternSet& set) {
  Pattern p;
  auto inner = p.op("Neg", {p.any("y")}, "inner");
  p.op("Neg", {inner.out().singleUse()}, "outer");
  set.add("double-neg", p, [](const Match& m, Rewriter& rw, std::string&) {
    rw.replaceNode(m.node("outer"), {m.value("y")});
    return true;
  });
}

TEST(Driver, OnceVersusGreedy) {
  PatternSet set;
  addDoubleNeg(set);
  {
    auto g = parseGraph(kNegs);
    DriverResult r = applyPatternsOnce(*g, set);
    // In order: at b, Neg(Neg(x)) -> x; c then reads x and no longer matches; d folds (c, d).
    EXPECT_EQ(r.applied, 2);
    EXPECT_EQ(r.iterations, 1);
    EXPECT_EQ(g->numNodes(), 1u);
    EXPECT_EQ(g->findNode("e")->input(0)->name(), "x");
  }
  {
    auto g = parseGraph(R"(graph "n3" {
  input %x: f32[2]
  %a = Neg(%x) @a
  %b = Neg(%a) @b
  %c = Neg(%b) @c
  output %c
}
)");
    DriverResult r = applyPatternsGreedily(*g, set);
    EXPECT_EQ(r.applied, 1);
    EXPECT_TRUE(r.converged);
    EXPECT_EQ(r.iterations, 2);  // the second sweep finds nothing
    EXPECT_EQ(g->numNodes(), 1u);
    EXPECT_EQ(g->outputs()[0]->name(), "c");  // output name kept
  }
}

TEST(Driver, IterationCapAndReasonLog) {
  // A pattern that always applies (renames the Relu) never converges.
  PatternSet set;
  Pattern p;
  p.op("Relu", {p.any()}, "r");
  set.add("rename-forever", p, [](const Match& m, Rewriter& rw, std::string&) {
    rw.rename(m.node("r"), m.node("r")->name() + "x");
    return true;
  });
  auto g = parseGraph(kNegs);
  DriverOptions o;
  o.max_iterations = 3;
  DriverResult r = applyPatternsGreedily(*g, set, o);
  EXPECT_FALSE(r.converged);
  EXPECT_EQ(r.iterations, 3);
  EXPECT_NE(g->findNode("exxx"), nullptr);
  // Reason log: the double-neg pattern does not apply at `a` (its input is a graph input).
  PatternSet neg;
  addDoubleNeg(neg);
  auto h = parseGraph(kNegs);
  o.log_reasons = true;
  DriverResult r2 = applyPatternsOnce(*h, neg, o);
  ASSERT_FALSE(r2.reasons.empty());
  EXPECT_EQ(r2.reasons[0], "double-neg @ a: does not apply: value 'x' is not output 0 of a node");
}

TEST(Driver, ListenerSeesDriverChanges) {
  struct Count : RewriteListener {
    int erased = 0, inserted = 0;
    void nodeErased(const Node&) override { ++erased; }
    void nodeInserted(Node&) override { ++inserted; }
  } count;
  PatternSet set;
  addDoubleNeg(set);
  auto g = parseGraph(kNegs);
  applyPatternsGreedily(*g, set, {}, &count);
  EXPECT_EQ(count.erased, 4);
  EXPECT_EQ(count.inserted, 0);
}

// ---------------------------------------------------------------- queries

TEST(Query, ByOpTypeNameRegexAndScope) {
  auto g = parseGraph(kNet);
  EXPECT_EQ(nodesByOpType(*g, {"Conv"}).size(), 2u);
  EXPECT_EQ(nodesByOpType(*g, {"Relu", "LeakyRelu"}).size(), 2u);
  EXPECT_EQ(nodesByOpType(*g, {"Conv"}, "gs").size(), 0u);
  auto r = nodesByNameRegex(*g, "r[0-9]");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[1]->name(), "r2");
  EXPECT_TRUE(nodesByNameRegex(*g, "r").empty());  // whole-name match
  EXPECT_THROW(nodesByNameRegex(*g, "("), Error);
  auto net = models::buildModel("resnet20");
  auto l1 = nodesInScope(*net, "layer1");
  ASSERT_FALSE(l1.empty());
  for (Node* n : l1) EXPECT_EQ(n->name().rfind("layer1.", 0), 0u) << n->name();
  EXPECT_TRUE(inScope("layer1.0.conv1", "layer1.0"));
  EXPECT_FALSE(inScope("layer10.conv", "layer1"));
  EXPECT_TRUE(inScope("layer1", "layer1"));
}

TEST(Query, ProducersAndConsumers) {
  auto g = parseGraph(kNet);
  auto p = producers(*g->findNode("both"));
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0]->name(), "m");
  EXPECT_EQ(p[1]->name(), "c2");
  auto c = consumers(*g->findNode("c2"));
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0]->name(), "r2");
  EXPECT_EQ(c[1]->name(), "both");
  EXPECT_TRUE(producers(*g->findNode("c1")).empty());
}

TEST(Query, LayersOfZooModels) {
  auto resnet = models::buildModel("resnet20");
  auto ls = layers(*resnet);
  // 19 3x3 convs + 2 projection shortcuts + the FC head.
  EXPECT_EQ(ls.size(), 22u);
  EXPECT_EQ(ls.front().node->opType(), "Conv");
  EXPECT_EQ(ls.back().node->opType(), "Gemm");
  EXPECT_EQ(ls.back().weight->name(), "fc.weight");
  EXPECT_NE(ls.back().bias, nullptr);
  auto llama = models::buildModel("llama-tiny");
  auto ll = layers(*llama);
  ASSERT_FALSE(ll.empty());
  EXPECT_EQ(ll.front().node->opType(), "Gather");
  EXPECT_EQ(ll.front().weight->name(), "model.embed_tokens.weight");
  int transposed = 0;
  for (const Layer& l : ll) transposed += l.transposed;
  EXPECT_GT(transposed, 0);
  for (const Layer& l : ll)
    if (l.node->opType() == "MatMul") EXPECT_TRUE(l.weight->isParam());
}

}  // namespace
}  // namespace gs
