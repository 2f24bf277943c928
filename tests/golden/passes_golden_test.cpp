// Golden IR tests for the standard passes and every pattern kind: each
// tests/golden/expected/passes/<case>.before.gsir is transformed and printed, and must equal
// <case>.after.gsir (GS_UPDATE_GOLDEN=1 rewrites them); the graph before and after must compute
// the same outputs on seeded inputs (except the lossy Q/DQ demo).
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "ir/text.h"
#include "ir/verifier.h"
#include "passes/passes.h"
#include "rewrite/driver.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "test_util.h"

namespace gs {
namespace {

namespace fs = std::filesystem;

fs::path caseDir() { return fs::path(GS_TEST_DIR) / "golden" / "expected" / "passes"; }

std::string readText(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// Scope of a node name ("b1.conv" -> "b1", "c3" -> "").
std::string scopeOf(const std::string& name) {
  auto dot = name.rfind('.');
  return dot == std::string::npos ? "" : name.substr(0, dot);
}

// ---- pattern-kind demos (the rewrites a pattern kind enables) ----

/// DAG with a shared input and a commutative root: Add(x, Relu(Conv(x, W))) in either order.
/// Rewrite: move the three nodes into scope "<scope>.residual".
int64_t tagResidualBlocks(Graph& g) {
  Pattern p;
  ValuePat x = p.any("x");
  auto conv = p.op("Conv", {x, p.param("w")}, "conv");
  auto relu = p.op("Relu", {conv.out().singleUse()}, "relu");
  p.op("Add", {x, relu.out().singleUse()}, "add").commutative();
  PatternSet set;
  set.add("tag-residual", p, [](const Match& m, Rewriter& rw, std::string& why) {
    std::string scope = scopeOf(m.node("add")->name());
    if (scope.size() >= 9 && scope.compare(scope.size() - 9, 9, ".residual") == 0) {
      why = "already tagged";
      return false;
    }
    for (const char* k : {"conv", "relu", "add"})
      rw.moveToScope(m.node(k), scope, scope.empty() ? "residual" : scope + ".residual");
    return true;
  });
  return applyPatternsOnce(g, set).applied;
}

/// Q/DQ pair with equal quantization parameters: DequantizeLinear(QuantizeLinear(x, s, z), s', z')
/// with s == s', z == z'  =>  x (drops the simulated rounding: a lossy "strip fake-quant" rewrite).
int64_t stripQdqPairs(Graph& g) {
  Pattern p;
  auto q = p.op("QuantizeLinear", {p.any("x"), p.constant("s"), p.optional("z")}, "q");
  p.op("DequantizeLinear", {q.out().singleUse(), p.constant("s2"), p.optional("z2")}, "dq");
  PatternSet set;
  set.add("strip-qdq", p, [](const Match& m, Rewriter& rw, std::string& why) {
    auto same = [](Value* a, Value* b) {
      return a == b || (a && b && a->data().sizes() == b->data().sizes() &&
                        a->data().scalar_type() == b->data().scalar_type() &&
                        at::equal(a->data(), b->data()));
    };
    if (!same(m.value("s"), m.value("s2")) || !same(m.value("z"), m.value("z2"))) {
      why = "quantize and dequantize parameters differ";
      return false;
    }
    rw.replaceSubgraph({m.node("q"), m.node("dq")}, {{m.node("dq")->output(0), m.value("x")}});
    return true;
  });
  return applyPatternsOnce(g, set).applied;
}

/// Attention core MatMul(Softmax(MatMul(q, k), axis=last), v): move it into scope "attention".
int64_t tagAttention(Graph& g) {
  Pattern p;
  auto scores = p.op("MatMul", {p.any("q"), p.any("k")}, "scores");
  auto probs = p.op("Softmax", {scores.out().singleUse()}, "probs").where(
      [](const Node& n) {
        int64_t axis = n.attrInt("axis", -1);
        const Shape& s = n.input(0)->shape();
        return axis == -1 || (s && axis == static_cast<int64_t>(s->size()) - 1);
      },
      "softmax over the last axis");
  p.op("MatMul", {probs.out().singleUse(), p.any("v")}, "ctx");
  PatternSet set;
  set.add("tag-attention", p, [](const Match& m, Rewriter& rw, std::string& why) {
    if (m.node("ctx")->name().rfind("attention.", 0) == 0) {
      why = "already tagged";
      return false;
    }
    for (const char* k : {"scores", "probs", "ctx"}) rw.moveToScope(m.node(k), "", "attention");
    return true;
  });
  return applyPatternsOnce(g, set).applied;
}

/// Commutative identities with scalar constants: Mul(x, 1) and Add(x, 0) in either order => x.
int64_t removeNeutralOps(Graph& g) {
  PatternSet set;
  for (auto [op, neutral] : {std::pair<const char*, double>{"Mul", 1.0}, {"Add", 0.0}}) {
    Pattern p;
    double v = neutral;
    ValuePat c = p.constant("c").scalar().where(
        [v](const Value& c) { return c.data().item<double>() == v; }, "neutral element");
    p.op(op, {p.any("x"), c}, "op").commutative();
    set.add(std::string("remove-neutral-") + op, p, [](const Match& m, Rewriter& rw, std::string& why) {
      Value* x = m.value("x");
      int64_t crank = m.value("c")->data().dim();
      if (crank > 0 && !(x->shape() && static_cast<int64_t>(x->shape()->size()) >= crank)) {
        why = "broadcasting could change the shape";
        return false;
      }
      rw.replaceNode(m.node("op"), {x});
      return true;
    });
  }
  return applyPatternsGreedily(g, set).applied;
}

struct Case {
  const char* name;
  std::function<int64_t(Graph&)> run;
  int64_t expected_changes;
  bool numeric = true;
};

std::vector<Case> cases() {
  return {
      {"constant_folding", [](Graph& g) { return foldConstants(g).changes; }, 4},
      {"dce", [](Graph& g) { return eliminateDeadCode(g).changes; }, 3},
      {"identity_removal", [](Graph& g) { return removeIdentities(g).changes; }, 3},
      {"shape_inference", [](Graph& g) { return inferShapes(g).changes; }, 6},
      {"bn_fold_conv", [](Graph& g) { return foldBatchNorm(g).changes; }, 2},
      {"bn_fold_conv_transpose", [](Graph& g) { return foldBatchNorm(g).changes; }, 1},
      // MatMul folding needs the input rank: shape inference first.
      {"bn_fold_gemm_matmul", [](Graph& g) { return inferShapes(g).changes + 100 * foldBatchNorm(g).changes; }, 204},
      {"bn_fold_blocked", [](Graph& g) { return foldBatchNorm(g).changes; }, 0},
      {"conv_act_fusion", [](Graph& g) { return fuseConvActivation(g).changes; }, 3},
      {"pattern_residual", tagResidualBlocks, 2},
      {"pattern_qdq", stripQdqPairs, 1, /*numeric=*/false},
      {"pattern_attention", tagAttention, 1},
      {"pattern_commutative", removeNeutralOps, 4},
  };
}

/// Seeded inputs with symbolic dims = 2; integer inputs in [0, 10).
std::vector<at::Tensor> seeded(const Graph& g, uint64_t seed) {
  std::vector<at::Tensor> in;
  for (const Value* v : g.inputs()) {
    std::vector<int64_t> shape;
    for (const Dim& d : *v->shape()) shape.push_back(d.isStatic() ? d.value : 2);
    at::Tensor t = test::randn(shape, seed++);
    if (v->dtype() == DType::Int64) t = t.abs().mul(3).clamp_max(9).to(at::kLong);
    in.push_back(t.to(toScalarType(v->dtype())));
  }
  return in;
}

class PassesGolden : public ::testing::TestWithParam<Case> {};

TEST_P(PassesGolden, MatchesExpectedTextAndOutputs) {
  const Case& c = GetParam();
  std::string before_text = readText(caseDir() / (std::string(c.name) + ".before.gsir"));
  ASSERT_FALSE(before_text.empty()) << c.name;
  auto before = parseGraph(before_text, c.name);
  ASSERT_TRUE(verifyGraph(*before).empty()) << verifyGraph(*before)[0];
  auto g = parseGraph(before_text, c.name);
  int64_t changes = c.run(*g);
  EXPECT_EQ(changes, c.expected_changes) << c.name;
  auto errs = verifyGraph(*g);
  ASSERT_TRUE(errs.empty()) << c.name << ": " << errs[0];
  std::string got = printGraph(*g);
  fs::path expected = caseDir() / (std::string(c.name) + ".after.gsir");
  if (std::getenv("GS_UPDATE_GOLDEN")) {
    std::ofstream(expected, std::ios::binary) << got;
  }
  EXPECT_EQ(got, readText(expected)) << c.name << " (GS_UPDATE_GOLDEN=1 rewrites)";
  // The printed result parses back to the same text.
  EXPECT_EQ(printGraph(*parseGraph(got)), got);
  if (!c.numeric) return;
  auto in = seeded(*before, 11);
  Executor e0(*before), e1(*g);
  auto y0 = e0.run(in), y1 = e1.run(in);
  ASSERT_EQ(y0.size(), y1.size());
  for (size_t k = 0; k < y0.size(); ++k) {
    ASSERT_EQ(y0[k].sizes(), y1[k].sizes()) << c.name << " output " << k;
    if (y0[k].is_floating_point())
      EXPECT_LE(test::maxRelDiff(y1[k], y0[k]), 1e-5) << c.name << " output " << k;
    else
      EXPECT_TRUE(at::equal(y0[k], y1[k])) << c.name << " output " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, PassesGolden, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return std::string(info.param.name); });

// The blocked BN case must say why, naming the data dependency and the non-constant weight.
TEST(PassesGoldenReasons, BlockedFoldsExplainWhy) {
  auto g = parseGraph(readText(caseDir() / "bn_fold_blocked.before.gsir"));
  PassResult r = foldBatchNorm(*g);
  EXPECT_EQ(r.changes, 0);
  std::string all;
  for (const auto& n : r.notes) all += n + "\n";
  EXPECT_NE(all.find("fold-batchnorm-into-conv @ c1.bn: does not apply: value 'c1': single use"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("fold-batchnorm-into-conv @ c2.bn: does not apply: value 'w_dyn' is not a "
                     "parameter"),
            std::string::npos)
      << all;
}

// Fusion markers are removable: unfusing restores standard ONNX that computes the same outputs.
TEST(PassesGoldenReasons, UnfuseRestoresStandardOps) {
  auto before = parseGraph(readText(caseDir() / "conv_act_fusion.before.gsir"));
  auto g = parseGraph(readText(caseDir() / "conv_act_fusion.after.gsir"));
  EXPECT_EQ(unfuseConvActivation(*g).changes, 3);
  for (const auto& n : g->nodes()) EXPECT_EQ(n->domain(), "") << n->describe();
  EXPECT_EQ(g->opsets.count("com.microsoft"), 0u);
  ASSERT_TRUE(verifyGraph(*g).empty()) << verifyGraph(*g)[0];
  EXPECT_EQ(g->numNodes(), before->numNodes());
  auto in = seeded(*before, 5);
  Executor e0(*before), e1(*g);
  EXPECT_LE(test::maxRelDiff(e1.run(in)[0], e0.run(in)[0]), 1e-6);
}

// Constant-folding options: the size limit and keeping trainable structure.
TEST(PassesOptions, ConstantFoldingLimits) {
  const std::string text = readText(caseDir() / "constant_folding.before.gsir");
  {
    auto g = parseGraph(text);
    ConstantFoldingOptions o;
    o.fold_trainable = false;  // Transpose(%w) and everything after it read the trainable %w
    PassResult r = foldConstants(*g, o);
    EXPECT_EQ(r.changes, 1);  // only Add(%one, %two)
    EXPECT_EQ(g->findNode("three"), nullptr);
    EXPECT_NE(g->findNode("wt"), nullptr);
    Value* three = g->findValue("three");
    ASSERT_TRUE(three && three->isParam());
    EXPECT_FALSE(three->trainable());
    EXPECT_EQ(three->data().item<float>(), 3.0f);
  }
  {
    auto g = parseGraph(text);
    ConstantFoldingOptions o;
    o.max_output_elements = 4;  // the 6-element weight products stay
    PassResult r = foldConstants(*g, o);
    EXPECT_EQ(r.changes, 1);
    ASSERT_FALSE(r.notes.empty());
    EXPECT_NE(r.notes[0].find("node 'wt' (Transpose): not folded"), std::string::npos) << r.notes[0];
  }
}

// Shape inference reports (does not throw) when the graph cannot run on probe inputs.
TEST(PassesOptions, ShapeInferenceDoesNotApplyNote) {
  auto g = parseGraph(R"(graph "bad" {
  opset "" 17
  input %x: f32[N,3]
  param frozen %shape: i64[2] = tensor<i64[2]>[5, 7]
  %y = Reshape(%x, %shape) @r
  output %y
}
)");
  PassResult r = inferShapes(*g);
  EXPECT_EQ(r.changes, 0);
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_EQ(r.notes[0].rfind("does not apply: the graph does not run on probe inputs: ", 0), 0u)
      << r.notes[0];
}

}  // namespace
}  // namespace gs
