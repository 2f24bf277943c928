// Verifier: each structural and schema problem kind is detected with a message naming the node.
#include "ir/verifier.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "ir/text.h"
#include "ops/registry.h"
#include "support/error.h"

namespace gs {
namespace {

/// A private registry so the schema checks do not depend on which op families have landed.
const OpRegistry& testRegistry() {
  static const OpRegistry r = [] {
    OpRegistry r;
    r.add(OpDef("Relu").inputs(1));
    r.add(OpDef("Add").inputs(2));
    r.add(OpDef("Conv")
              .inputs(2, 3)
              .attr("kernel_shape", AttrKind::Ints)
              .attr("pads", AttrKind::Ints)
              .attr("group", AttrKind::Int)
              .attr("auto_pad", AttrKind::String));
    r.add(OpDef("LeakyRelu").inputs(1).attr("alpha", AttrKind::Float));
    r.add(OpDef("Need").inputs(1).attr("axis", AttrKind::Int, /*required=*/true));
    r.add(OpDef("Split").inputs(1, 2).outputs(1, -1).attr("axis", AttrKind::Int));
    r.add(OpDef("Dropout").inputs(1, 3).outputs(1, 2).attr("seed", AttrKind::Int));
    r.add(OpDef("Concat").inputs(1, -1).attr("axis", AttrKind::Int, true));
    r.add(OpDef("Loose", "gs").inputs(0, 1).allowUnknownAttrs());
    return r;
  }();
  return r;
}

std::vector<std::string> verify(const Graph& g, VerifyOptions o = {}) {
  o.registry = &testRegistry();
  return verifyGraph(g, o);
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& e : v) s += e + "\n";
  return s;
}

bool hasMessage(const std::vector<std::string>& errs, const std::string& text) {
  for (const auto& e : errs)
    if (e.find(text) != std::string::npos) return true;
  return false;
}

TEST(Verifier, ValidParsedGraphPasses) {
  auto g = parseGraph(
      "graph \"g\" {\n"
      "  input %x: f32[1,3,8,8]\n"
      "  param %w: f32[4,3,1,1] = tensor<f32[4,3,1,1]>[1,2,3,4,5,6,7,8,9,10,11,12]\n"
      "  %c = Conv(%x, %w, _) @conv1 {group=1, kernel_shape=[1,1], pads=[0,0,0,0]}\n"
      "  %a, %b, _ = Split(%c) @split {axis=1}\n"
      "  %d, _ = Dropout(%a, _, _) @drop\n"
      "  %r = LeakyRelu(%d) @lrelu {alpha=1}\n"
      "  %cat = Concat(%r, %b, %r) @cat {axis=1}\n"
      "  %l = gs::Loose() @loose {anything=\"goes\"}\n"
      "  output %cat\n"
      "  output %x\n"
      "}\n");
  auto errs = verify(*g);
  EXPECT_TRUE(errs.empty()) << joined(errs);
  EXPECT_NO_THROW(verifyGraphOrThrow(*g, {.registry = &testRegistry()}));
}

TEST(Verifier, GlobalRegistryKnowsElementwiseOps) {
  auto g = parseGraph(
      "graph \"g\" {\n  input %x: f32[2]\n  %y = Add(%x, %x) @add\n  %z = Mul(%y, %x) @mul\n"
      "  output %z\n}\n");
  EXPECT_TRUE(verifyGraph(*g).empty()) << joined(verifyGraph(*g));
}

TEST(Verifier, TopologicalOrderViolation) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{2});
  Node* a = g.addNode("Relu", {x}, 1, "first");
  Node* b = g.addNode("Relu", {a->output(0)}, 1, "second");
  g.addOutput(b->output(0));
  ASSERT_TRUE(verify(g).empty());
  g.moveNodeBefore(b, a);
  auto errs = verify(g);
  EXPECT_TRUE(hasMessage(errs,
                         "node 'second' (Relu): input 0 'first' is used before it is "
                         "produced by node 'first' (Relu) (nodes are not in topological order)"))
      << joined(errs);
  EXPECT_EQ(errs.size(), 1u) << joined(errs);
  g.moveNodeBefore(a, b);  // restoring the order makes it valid again
  EXPECT_TRUE(verify(g).empty());
}

TEST(Verifier, ForeignValuesAndDanglingUses) {
  Graph g, other;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{2});
  Value* foreign = other.addInput("f", DType::Float32, std::vector<Dim>{2});
  Node* n = g.addNode("Add", {x, x}, 1, "add");
  g.addOutput(n->output(0));
  // Node::setInput does not check ownership; the verifier catches both sides of the mistake.
  n->setInput(1, foreign);
  EXPECT_TRUE(hasMessage(verify(g), "node 'add' (Add): input 1 'f' does not belong to this graph"))
      << joined(verify(g));
  EXPECT_TRUE(hasMessage(verify(other),
                         "value 'f': use by a node that is not in this graph "
                         "(dangling use)"))
      << joined(verify(other));
  n->setInput(1, x);
  EXPECT_TRUE(verify(g).empty());
  EXPECT_TRUE(verify(other).empty());
}

TEST(Verifier, ParamAndOutputInvariants) {
  Graph g;
  Value* w = g.addParam("w", at::ones({2}));
  Node* n = g.addNode("Relu", {w}, 1, "r");
  g.addOutput(n->output(0));
  w->setDType(DType::Int64);
  EXPECT_TRUE(hasMessage(verify(g), "parameter 'w': dtype i64 differs from its data (f32)"))
      << joined(verify(g));
  w->setDType(DType::Float32);
  w->setShape(std::vector<Dim>{3});
  EXPECT_TRUE(
      hasMessage(verify(g), "parameter 'w': declared type f32[3] does not match its data f32[2]"))
      << joined(verify(g));
  w->setShape(std::vector<Dim>{Dim("K")});  // symbolic dims admit any size
  EXPECT_TRUE(verify(g).empty()) << joined(verify(g));
  w->setShape(std::vector<Dim>{2});
  // setData on a node output turns it into a parameter-like value: one producer rule breaks.
  n->output(0)->setData(at::zeros({2}));
  EXPECT_TRUE(
      hasMessage(verify(g), "node 'r' (Relu): output 0 'r' is also a graph input or parameter"))
      << joined(verify(g));
}

struct SchemaCase {
  const char* node_line;
  const char* expected;  // empty = valid
};

TEST(Verifier, SchemaChecks) {
  const SchemaCase cases[] = {
      {"%y = Frob(%x) @f", "node 'f' (Frob): unknown op 'Frob'"},
      {"%y = gs::Relu(%x) @f", "node 'f' (gs::Relu): unknown op 'gs::Relu'"},
      {"%y = Relu(%x, %x) @r", "node 'r' (Relu): too many inputs (op takes at most 1, got 2)"},
      {"%y = Relu(%x, _, _) @r", ""},  // trailing omitted inputs do not count
      {"%y = Add(%x, _) @a",
       "node 'a' (Add): required input 1 is missing (op takes at least 2 inputs, got 1)"},
      {"%y = Add(_, %x) @a", "node 'a' (Add): required input 0 is missing"},
      {"%y = Relu() @r", "node 'r' (Relu): required input 0 is missing"},
      {"%y = Conv(%x, %x, _) @c", ""},
      {"%y = Conv(%x, %x, %x, %x) @c",
       "node 'c' (Conv): too many inputs (op takes at most 3, got 4)"},
      {"%y = Conv(%x, %x) @c {group=1.5}",
       "node 'c' (Conv): attribute 'group' must be int, got float"},
      {"%y = Conv(%x, %x) @c {pads=[1.0,2.0]}",
       "node 'c' (Conv): attribute 'pads' must be ints, got floats"},
      {"%y = Conv(%x, %x) @c {auto_pad=3}",
       "node 'c' (Conv): attribute 'auto_pad' must be string, got int"},
      {"%y = Conv(%x, %x) @c {bogus=1}", "node 'c' (Conv): unknown attribute 'bogus'"},
      {"%y = LeakyRelu(%x) @l {alpha=1}", ""},  // Int where Float is declared is accepted
      {"%y = LeakyRelu(%x) @l {alpha=\"1\"}",
       "node 'l' (LeakyRelu): attribute 'alpha' must be float, got string"},
      {"%y = Need(%x) @n", "node 'n' (Need): missing required attribute 'axis'"},
      {"%y = Need(%x) @n {axis=0}", ""},
      {"%y = gs::Loose(%x) @l {whatever=[1,2]}", ""},
      {"%a, %b, %c, %d = Split(%x) @s {axis=0}", ""},
      {"_, %b = Split(%x) @s", "node 's' (Split): required output 0 is missing"},
      {"() = Relu(%x) @r", "node 'r' (Relu): required output 0 is missing"},
      {"%a, %b, %c = Dropout(%x) @d",
       "node 'd' (Dropout): too many outputs (op has at most 2, got 3)"},
      {"%a, _ = Dropout(%x) @d", ""},  // trailing omitted outputs do not count
      {"%y = Concat(%x, %x, %x, %x, %x) @c {axis=0}", ""},
  };
  for (const auto& c : cases) {
    std::string text = std::string("graph \"g\" {\n  input %x: f32[2]\n  ") + c.node_line + "\n}\n";
    auto g = parseGraph(text);
    auto errs = verify(*g);
    if (std::string(c.expected).empty()) {
      EXPECT_TRUE(errs.empty()) << c.node_line << "\n" << joined(errs);
    } else {
      EXPECT_EQ(errs.size(), 1u) << c.node_line << "\n" << joined(errs);
      EXPECT_TRUE(hasMessage(errs, c.expected)) << c.node_line << "\n" << joined(errs);
    }
  }
}

TEST(Verifier, OptionsRelaxSchemaChecks) {
  auto g = parseGraph(
      "graph \"g\" {\n  input %x: f32[2]\n  %y = Frob(%x) @f\n"
      "  %z = Relu(%y, %y) @r\n}\n");
  EXPECT_EQ(verify(*g).size(), 2u);
  auto errs = verify(*g, {.allow_unknown_ops = true});
  ASSERT_EQ(errs.size(), 1u) << joined(errs);  // Relu's arity is still checked
  EXPECT_TRUE(hasMessage(errs, "node 'r' (Relu): too many inputs"));
  EXPECT_TRUE(verify(*g, {.check_schemas = false}).empty());
}

TEST(Verifier, OrThrowReportsFirstProblemAndCount) {
  auto g = parseGraph(
      "graph \"net\" {\n  input %x: f32[2]\n  %y = Frob(%x) @f\n"
      "  %z = Relu(%y, %y) @r\n  %w = Need(%z) @n\n}\n");
  try {
    verifyGraphOrThrow(*g, {.registry = &testRegistry()});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "graph 'net' is invalid: node 'f' (Frob): unknown op 'Frob' (and 2 more problems)");
  }
}

}  // namespace
}  // namespace gs
