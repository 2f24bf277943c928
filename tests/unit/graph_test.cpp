// Graph mutation API: naming, erase, RAUW, setInput, clone, rename, move — and exception safety.
#include "ir/graph.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "ir/graph_diff.h"
#include "ir/text.h"
#include "ir/verifier.h"
#include "support/error.h"

namespace gs {
namespace {

bool structurallyValid(const Graph& g) { return verifyGraph(g, {.check_schemas = false}).empty(); }

size_t countUses(const Value* v, const Node* n) {
  size_t k = 0;
  for (const Use& u : v->uses())
    if (u.user == n) ++k;
  return k;
}

TEST(Graph, AddNodeNamesNodesAndOutputsUniquely) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{2});
  Node* a = g.addNode("Split", {x}, 3, "split");
  EXPECT_EQ(a->name(), "split");
  EXPECT_EQ(a->output(0)->name(), "split");
  EXPECT_EQ(a->output(1)->name(), "split:1");
  EXPECT_EQ(a->output(2)->name(), "split:2");
  EXPECT_EQ(a->output(1)->producer(), a);
  EXPECT_EQ(a->output(1)->producerIndex(), 1);
  Node* b = g.addNode("Split", {x}, 2, "split");
  EXPECT_EQ(b->name(), "split_1");
  EXPECT_EQ(b->output(0)->name(), "split_1");
  Node* c = g.addNode("Relu", {x}, 1);  // name derived from the op type
  EXPECT_EQ(c->name(), "Relu");
  // Insert before an existing node.
  Node* d = g.addNode("Neg", {x}, 1, "neg", {}, a);
  EXPECT_EQ(g.nodes().front().get(), d);
  EXPECT_EQ(x->uses().size(), 4u);
  EXPECT_TRUE(structurallyValid(g));
}

TEST(Graph, AddNodeIsExceptionSafe) {
  Graph g, other;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{2});
  Value* f = other.addInput("f", DType::Float32, std::vector<Dim>{2});
  // Duplicate output names within one node: used to record x's use for a node that was then
  // destroyed (dangling Use) and leave a half-registered output value behind.
  EXPECT_THROW(g.addNodeNamedOutputs("Split", {x}, {"a", "a"}, "s"), Error);
  EXPECT_TRUE(x->uses().empty());
  EXPECT_EQ(g.findValue("a"), nullptr);
  EXPECT_EQ(g.findNode("s"), nullptr);
  // Foreign input after a valid one.
  EXPECT_THROW(g.addNode("Add", {x, f}, 1, "add"), Error);
  EXPECT_TRUE(x->uses().empty());
  EXPECT_TRUE(f->uses().empty());
  // Insertion point from another graph.
  Node* on = other.addNode("Relu", {f}, 1, "r");
  EXPECT_THROW(g.addNode("Relu", {x}, 1, "r", {}, on), Error);
  EXPECT_TRUE(x->uses().empty());
  EXPECT_EQ(g.numNodes(), 0u);
  EXPECT_TRUE(structurallyValid(g));
  EXPECT_TRUE(structurallyValid(other));
}

TEST(Graph, SetInputKeepsUseListsConsistent) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{2});
  Value* y = g.addInput("y", DType::Float32, std::vector<Dim>{2});
  Node* n = g.addNode("Add", {x, x}, 1, "add");
  EXPECT_EQ(countUses(x, n), 2u);
  n->setInput(1, y);
  EXPECT_EQ(countUses(x, n), 1u);
  EXPECT_EQ(countUses(y, n), 1u);
  EXPECT_EQ(y->uses()[0].index, 1);
  n->setInput(0, nullptr);
  EXPECT_TRUE(x->uses().empty());
  EXPECT_FALSE(n->hasInput(0));
  n->addInput(x);
  EXPECT_EQ(n->numInputs(), 3u);
  EXPECT_EQ(x->uses()[0].index, 2);
  n->truncateInputs(1);
  EXPECT_EQ(n->numInputs(), 1u);
  EXPECT_TRUE(x->uses().empty());
  EXPECT_TRUE(y->uses().empty());
  EXPECT_THROW(n->setInput(5, x), Error);
  EXPECT_TRUE(structurallyValid(g));
}

TEST(Graph, EraseNodeRemovesUsesAndValues) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{2});
  Node* a = g.addNode("Relu", {x}, 1, "a");
  Node* b = g.addNode("Neg", {a->output(0)}, 1, "b");
  g.addOutput(b->output(0));
  EXPECT_THROW(g.eraseNode(a), Error);  // output still used
  EXPECT_THROW(g.eraseNode(b), Error);  // output is a graph output
  g.replaceAllUsesWith(b->output(0), a->output(0));
  EXPECT_EQ(g.outputs()[0], a->output(0));
  g.eraseNode(b);
  EXPECT_EQ(g.findNode("b"), nullptr);
  EXPECT_EQ(g.findValue("b"), nullptr);
  EXPECT_TRUE(a->output(0)->uses().empty());
  EXPECT_EQ(g.numNodes(), 1u);
  // Names become reusable.
  Node* b2 = g.addNode("Neg", {x}, 1, "b");
  EXPECT_EQ(b2->output(0)->name(), "b");
  EXPECT_TRUE(structurallyValid(g));
}

TEST(Graph, ReplaceAllUsesWith) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{2});
  Value* y = g.addInput("y", DType::Float32, std::vector<Dim>{2});
  Node* a = g.addNode("Add", {x, x}, 1, "a");
  Node* b = g.addNode("Mul", {x, a->output(0)}, 1, "b");
  g.addOutput(x);
  g.addOutput(b->output(0));
  g.replaceAllUsesWith(x, y);
  EXPECT_TRUE(x->uses().empty());
  EXPECT_EQ(y->uses().size(), 3u);
  EXPECT_EQ(a->input(0), y);
  EXPECT_EQ(a->input(1), y);
  EXPECT_EQ(b->input(0), y);
  EXPECT_EQ(g.outputs()[0], y);
  EXPECT_THROW(g.replaceAllUsesWith(y, nullptr), Error);  // would put null into the outputs
  g.removeInput(x);
  EXPECT_EQ(g.findValue("x"), nullptr);
  EXPECT_EQ(g.inputs().size(), 1u);
  EXPECT_TRUE(structurallyValid(g));
}

TEST(Graph, RemoveInputAndParamGuards) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{2});
  Value* w = g.addParam("w", at::ones({2}));
  g.addOutput(x);
  g.addOutput(w);
  // Removing a graph-output input used to leave a dangling pointer in the output list.
  EXPECT_THROW(g.removeInput(x), Error);
  EXPECT_THROW(g.removeParam(w), Error);
  Node* n = g.addNode("Relu", {x}, 1, "r");
  EXPECT_THROW(g.removeInput(n->output(0)), Error);  // not an input
  EXPECT_THROW(g.removeParam(x), Error);             // not a param
  EXPECT_NE(g.findValue("r"), nullptr);
  g.removeOutput(1);
  EXPECT_EQ(g.removeDeadValues(), 1u);
  EXPECT_EQ(g.findValue("w"), nullptr);
  EXPECT_TRUE(structurallyValid(g));
}

TEST(Graph, RenameValueAndNode) {
  auto g = parseGraph("graph \"g\" {\n  input %x: f32[2]\n  %y = Relu(%x) @r\n  output %y\n}\n");
  Value* y = g->findValue("y");
  g->renameValue(y, "layer1.out");
  EXPECT_EQ(g->findValue("y"), nullptr);
  EXPECT_EQ(g->findValue("layer1.out"), y);
  EXPECT_EQ(y->name(), "layer1.out");
  EXPECT_THROW(g->renameValue(y, "x"), Error);  // taken
  EXPECT_THROW(g->renameValue(y, ""), Error);
  g->renameNode(g->findNode("r"), "relu1");
  EXPECT_THROW(g->renameNode(g->findNode("relu1"), ""), Error);
  EXPECT_EQ(printGraph(*g),
            "graph \"g\" {\n  input %x: f32[2]\n"
            "  %layer1.out = Relu(%x) @relu1\n  output %layer1.out\n}\n");
  EXPECT_TRUE(structurallyValid(*g));
}

TEST(Graph, CloneIsDeepAndStructurallyEqual) {
  auto g = parseGraph(
      "graph \"g\" {\n  opset \"\" 17\n  opset \"gs\" 1\n  input %x: f32[N,2]\n"
      "  param %w: f32[2] = tensor<f32[2]>[1, 2]\n  param frozen %k: i64[1] = tensor<i64[1]>[3]\n"
      "  %a: f32[N,2], _ = gs::Thing(%x, _, %w) @t {s=\"v\", t=tensor<f32[1]>[5]}\n"
      "  %b = Add(%a, %k) @add\n  output %b\n  output %x\n}\n");
  g->findValue("w")->data().requires_grad_(true);
  for (bool copy : {false, true}) {
    auto c = g->clone(copy);
    EXPECT_EQ(graphDiff(*g, *c), "");
    EXPECT_EQ(printGraph(*c), printGraph(*g));
    EXPECT_TRUE(structurallyValid(*c));
    for (const auto& n : c->nodes()) EXPECT_EQ(n->graph(), c.get());
    const at::Tensor& cw = c->findValue("w")->data();
    const at::Tensor& gw = g->findValue("w")->data();
    EXPECT_EQ(cw.is_same(gw), !copy);
    EXPECT_TRUE(cw.requires_grad());
    // A copied trainable param must stay a leaf (clone() of a requires_grad leaf is not).
    EXPECT_TRUE(cw.is_leaf());
    const at::Tensor& ct = c->findNode("t")->attr("t").t();
    EXPECT_EQ(ct.is_same(g->findNode("t")->attr("t").t()), !copy);
    // Mutating the clone leaves the original alone.
    c->renameValue(c->findValue("a"), "renamed");
    c->findNode("add")->setInput(1, c->findValue("x"));
    EXPECT_NE(g->findValue("a"), nullptr);
    EXPECT_EQ(g->findNode("add")->input(1)->name(), "k");
  }
}

TEST(Graph, CloneRefusesOutOfOrderGraph) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{2});
  Node* a = g.addNode("Relu", {x}, 1, "a");
  Node* b = g.addNode("Relu", {a->output(0)}, 1, "b");
  g.moveNodeBefore(b, a);
  // Used to silently turn b's input into an omitted input.
  EXPECT_THROW(g.clone(), Error);
}

TEST(Graph, MoveKeepsBackPointersAndSelfMoveIsHarmless) {
  auto src = parseGraph("graph \"g\" {\n  input %x: f32[2]\n  %y = Relu(%x) @r\n  output %y\n}\n");
  std::string text = printGraph(*src);
  Graph moved(std::move(*src));
  EXPECT_EQ(printGraph(moved), text);
  EXPECT_EQ(moved.findNode("r")->graph(), &moved);
  EXPECT_EQ(moved.findValue("y")->graph(), &moved);
  EXPECT_TRUE(structurallyValid(moved));
  Graph other;
  other = std::move(moved);
  EXPECT_EQ(printGraph(other), text);
  EXPECT_TRUE(structurallyValid(other));
  Graph& alias = other;
  other = std::move(alias);  // self-move used to clear the node list
  EXPECT_EQ(printGraph(other), text);
  EXPECT_TRUE(structurallyValid(other));
}

TEST(Graph, MoveNodeBeforeForeignNodeIsAnError) {
  Graph g, h;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{2});
  Value* z = h.addInput("z", DType::Float32, std::vector<Dim>{2});
  Node* a = g.addNode("Relu", {x}, 1, "a");
  Node* f = h.addNode("Relu", {z}, 1, "f");
  EXPECT_THROW(g.moveNodeBefore(a, f), Error);  // used to throw std::out_of_range
  g.moveNodeBefore(a, a);                       // no-op
  g.moveNodeBefore(a, nullptr);
  EXPECT_EQ(g.nodes().front().get(), a);
}

}  // namespace
}  // namespace gs
