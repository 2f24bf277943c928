// Rewriter: every mutation keeps the graph valid, cleans up dead code and notifies listeners.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "ir/text.h"
#include "ir/verifier.h"
#include "rewrite/rewriter.h"
#include "support/error.h"

namespace gs {
namespace {

/// Records every notification as one line.
struct Recorder : RewriteListener {
  std::vector<std::string> events;
  void nodeInserted(Node& n) override { events.push_back("insert " + n.name()); }
  void nodeErased(const Node& n) override { events.push_back("erase " + n.name()); }
  void nodeModified(Node& n) override { events.push_back("modify " + n.name()); }
  void valueReplaced(Value& a, Value& b) override {
    events.push_back("replace " + a.name() + " -> " + b.name());
  }
  void paramChanged(Value& p, bool removed) override {
    events.push_back((removed ? "remove param " : "param ") + p.name());
  }
};

const char* kChain = R"(graph "chain" {
  opset "" 17
  input %x: f32[N,4]
  param %w: f32[4] = tensor<f32[4]>[1, 2, 3, 4]
  param frozen %b: f32[4] = tensor<f32[4]>[0.5, 0.5, 0.5, 0.5]
  %m = Mul(%x, %w) @m
  %a = Add(%m, %b) @a
  %r = Relu(%a) @r
  output %r
}
)";

std::vector<std::string> nodeNames(const Graph& g) {
  std::vector<std::string> v;
  for (const auto& n : g.nodes()) v.push_back(n->name());
  return v;
}

TEST(Rewriter, InsertBeforeAndAfterKeepOrderAndNotify) {
  auto g = parseGraph(kChain);
  Rewriter rw(*g);
  Recorder rec;
  rw.addListener(&rec);
  Node* m = g->findNode("m");
  Node* neg = rw.insertAfter(m, "Neg", {m->output(0)}, 1, "neg");
  Node* sig = rw.insertBefore(m, "Sigmoid", {g->inputs()[0]}, 1, "sig");
  EXPECT_EQ(nodeNames(*g), (std::vector<std::string>{"sig", "m", "neg", "a", "r"}));
  EXPECT_EQ(rec.events, (std::vector<std::string>{"insert neg", "insert sig"}));
  EXPECT_EQ(neg->output(0)->name(), "neg");
  EXPECT_EQ(sig->input(0)->name(), "x");
  EXPECT_EQ(rw.changes(), 2);
  // Unused new nodes are dead and can be erased again.
  EXPECT_EQ(rw.eraseIfDead(neg), 1);
  EXPECT_EQ(rw.eraseIfDead(g->findNode("a")), 0);
  EXPECT_TRUE(verifyGraph(*g).empty());
}

TEST(Rewriter, ReplaceAllUsesNotifiesUsers) {
  auto g = parseGraph(kChain);
  Rewriter rw(*g);
  Recorder rec;
  rw.addListener(&rec);
  rw.replaceAllUsesWith(g->findValue("m"), g->inputs()[0]);
  EXPECT_EQ(rec.events, (std::vector<std::string>{"replace m -> x", "modify a"}));
  EXPECT_EQ(g->findNode("a")->input(0)->name(), "x");
  EXPECT_TRUE(g->findValue("m")->uses().empty());
}

TEST(Rewriter, ReplaceNodeErasesDeadProducersAndParams) {
  auto g = parseGraph(kChain);
  Rewriter rw(*g);
  Recorder rec;
  rw.addListener(&rec);
  // Relu(x) replaces the whole chain: a, m, w and b all become dead.
  Node* r = g->findNode("r");
  Node* nr = rw.insertBefore(r, "Relu", {g->inputs()[0]}, 1, "r2");
  rw.replaceNode(r, {nr->output(0)});
  EXPECT_EQ(nodeNames(*g), (std::vector<std::string>{"r"}));
  EXPECT_TRUE(g->params().empty());
  // The graph output keeps its name: the replacement inherits "r", and its node is named r2.
  ASSERT_EQ(g->outputs().size(), 1u);
  EXPECT_EQ(g->outputs()[0]->name(), "r");
  EXPECT_EQ(g->outputs()[0]->producer(), nr);
  EXPECT_EQ(nr->name(), "r2");
  std::vector<std::string> want{"insert r2", "replace r -> r2", "erase r", "erase a",
                                "remove param b", "erase m", "remove param w", "modify r2"};
  EXPECT_EQ(rec.events, want);
  EXPECT_TRUE(verifyGraph(*g).empty());
}

TEST(Rewriter, ReplaceSubgraphRefusesEscapingValuesWithoutChanges) {
  auto g = parseGraph(kChain);
  Rewriter rw(*g);
  Node* side = rw.insertBefore(nullptr, "Neg", {g->findValue("m")}, 1, "side");
  g->addOutput(side->output(0));
  std::string before = printGraph(*g);
  Node* a = g->findNode("a");
  Node* m = g->findNode("m");
  try {
    rw.replaceSubgraph({m, a}, {{a->output(0), g->inputs()[0]}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("value 'm' is also used by node 'side' (Neg)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(printGraph(*g), before);
}

TEST(Rewriter, EraseRefusesUsedNodes) {
  auto g = parseGraph(kChain);
  Rewriter rw(*g);
  EXPECT_THROW(rw.eraseNode(g->findNode("m")), Error);
  EXPECT_THROW(rw.eraseNode(g->findNode("r")), Error);  // graph output
  EXPECT_EQ(g->numNodes(), 3u);
}

TEST(Rewriter, RenameAndMoveBetweenScopes) {
  auto g = parseGraph(R"(graph "s" {
  input %x: f32[2]
  %block.conv = Relu(%x) @block.conv
  %block.conv:1 = Neg(%block.conv) @other
  %y = Relu(%block.conv:1) @block
  output %y
}
)");
  Rewriter rw(*g);
  Recorder rec;
  rw.addListener(&rec);
  rw.moveToScope(g->findNode("block.conv"), "block", "layer1.0");
  Node* n = g->findNode("layer1.0.conv");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->output(0)->name(), "layer1.0.conv");  // output named after the node follows
  rw.moveToScope(g->findNode("block"), "block", "head");
  EXPECT_NE(g->findNode("head"), nullptr);
  EXPECT_EQ(g->outputs()[0]->name(), "y");  // not named after the node: unchanged
  EXPECT_THROW(rw.moveToScope(g->findNode("other"), "block", "x"), Error);
  rw.moveToScope(g->findNode("other"), "", "root");
  EXPECT_NE(g->findNode("root.other"), nullptr);
  rw.setAttr(g->findNode("head"), "note", int64_t{1});
  rw.removeAttr(g->findNode("head"), "note");
  EXPECT_EQ(rec.events, (std::vector<std::string>{"modify layer1.0.conv", "modify head",
                                                  "modify root.other", "modify head",
                                                  "modify head"}));
  EXPECT_TRUE(verifyGraph(*g, {.check_schemas = false}).empty());
}

TEST(Rewriter, ParamsAndInputsThroughRewriter) {
  auto g = parseGraph(kChain);
  Rewriter rw(*g);
  Recorder rec;
  rw.addListener(&rec);
  Value* p = rw.addParam("w", at::ones({4}), false);  // name taken: made unique
  EXPECT_EQ(p->name(), "w_1");
  EXPECT_FALSE(p->trainable());
  Node* a = g->findNode("a");
  rw.setInput(a, 1, p);
  EXPECT_EQ(rw.eraseIfUnused(g->findValue("b")), 0);  // params are removed, not counted as nodes
  EXPECT_EQ(g->findValue("b"), nullptr);
  rw.setParamData(p, at::full({4}, 2.0));
  EXPECT_EQ(p->data().sum().item<double>(), 8.0);
  // Appending past the end pads with omitted slots.
  Node* c = rw.insertBefore(nullptr, "Clip", {g->findValue("r")}, 1, "clip");
  rw.setInput(c, 2, p);
  EXPECT_EQ(c->numInputs(), 3u);
  EXPECT_FALSE(c->hasInput(1));
  EXPECT_EQ(rec.events,
            (std::vector<std::string>{"param w_1", "modify a", "remove param b", "param w_1",
                                      "insert clip", "modify clip"}));
}

}  // namespace
}  // namespace gs
