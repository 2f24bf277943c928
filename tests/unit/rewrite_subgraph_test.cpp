// SubgraphRewriter: pattern and replacement as IR text.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "ir/text.h"
#include "ir/verifier.h"
#include "rewrite/subgraph_rewriter.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace gs {
namespace {

const char* kDoubleTranspose = R"(graph "p" {
  input %x
  %t1 = Transpose(%x) {perm=[1,0]}
  %t2 = Transpose(%t1) {perm=[1,0]}
  output %t2
})";
const char* kIdentity = R"(graph "r" {
  input %x
  %i = Identity(%x) @id
  output %i
})";

TEST(SubgraphRewriter, ReplacesEveryOccurrenceAndKeepsOutputNames) {
  auto g = parseGraph(R"(graph "g" {
  opset "" 17
  input %a: f32[2,3]
  %t1 = Transpose(%a) @t1 {perm=[1,0]}
  %t2 = Transpose(%t1) @t2 {perm=[1,0]}
  %r = Relu(%t2) @r
  %u1 = Transpose(%r) @u1 {perm=[1,0]}
  %u2 = Transpose(%u1) @u2 {perm=[1,0]}
  %odd = Transpose(%u2) @odd {perm=[0,1]}
  output %odd
}
)");
  struct Count : RewriteListener {
    int inserted = 0, erased = 0;
    void nodeInserted(Node&) override { ++inserted; }
    void nodeErased(const Node&) override { ++erased; }
  } count;
  EXPECT_EQ(rewriteSubgraphs(*g, kDoubleTranspose, kIdentity, &count), 2);
  EXPECT_EQ(count.inserted, 2);
  EXPECT_EQ(count.erased, 4);
  EXPECT_EQ(printGraph(*g), R"(graph "g" {
  opset "" 17
  input %a: f32[2,3]
  %t2.id = Identity(%a) @t2.id
  %r = Relu(%t2.id) @r
  %u2.id = Identity(%r) @u2.id
  %odd = Transpose(%u2.id) @odd {perm=[0,1]}
  output %odd
}
)");
  EXPECT_TRUE(verifyGraph(*g).empty());
}

TEST(SubgraphRewriter, AttributesMustMatchWhenWritten) {
  auto g = parseGraph(R"(graph "g" {
  input %a: f32[2,3,4]
  %t1 = Transpose(%a) @t1 {perm=[1,0,2]}
  %t2 = Transpose(%t1) @t2 {perm=[1,0,2]}
  output %t2
}
)");
  EXPECT_EQ(rewriteSubgraphs(*g, kDoubleTranspose, kIdentity), 0);
  EXPECT_EQ(g->numNodes(), 2u);
}

TEST(SubgraphRewriter, ReplacementParamsAndNamesFromPatternNodes) {
  // x*2 + x  =>  Mul(x, 3): the pattern's root node name "sum" is inherited by the new node.
  const char* pat = R"(graph "p" {
  input %x
  input %two
  %m = Mul(%x, %two)
  %sum = Add(%m, %x) @sum
  output %sum
})";
  const char* rep = R"(graph "r" {
  input %x
  param frozen %three: f32[] = tensor<f32[]>[3]
  %sum = Mul(%x, %three) @sum
  output %sum
})";
  auto g = parseGraph(R"(graph "g" {
  opset "" 17
  input %a: f32[4]
  param frozen %c2: f32[] = tensor<f32[]>[2]
  %m = Mul(%a, %c2) @block.m
  %s = Add(%m, %a) @block.sum
  %y = Relu(%s) @y
  output %y
}
)");
  auto before = g->clone();
  EXPECT_EQ(rewriteSubgraphs(*g, pat, rep), 1);
  Node* n = g->findNode("block.sum");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->opType(), "Mul");
  EXPECT_EQ(n->input(1)->name(), "block.sum.three");
  EXPECT_EQ(n->input(1)->data().item<float>(), 3.0f);
  EXPECT_EQ(g->findValue("c2"), nullptr);  // the pattern's constant became dead
  ASSERT_TRUE(verifyGraph(*g).empty()) << verifyGraph(*g)[0];
  at::Tensor x = at::tensor({1.0f, -2.0f, 0.5f, 4.0f});
  Executor e0(*before), e1(*g);
  EXPECT_TRUE(at::allclose(e0.run({x})[0], e1.run({x})[0]));
  EXPECT_TRUE(at::allclose(e1.run({x})[0], at::relu(x * 3)));
}

TEST(SubgraphRewriter, InternalValueWithOutsideUserBlocksRewrite) {
  auto g = parseGraph(R"(graph "g" {
  input %a: f32[2,3]
  %t1 = Transpose(%a) @t1 {perm=[1,0]}
  %t2 = Transpose(%t1) @t2 {perm=[1,0]}
  %side = Relu(%t1) @side
  output %t2
  output %side
}
)");
  SubgraphRewriter sr("dt", kDoubleTranspose, kIdentity);
  Rewriter rw(*g);
  std::string why;
  EXPECT_FALSE(sr.matchAndRewrite(*g->findNode("t2"), rw, why));
  EXPECT_EQ(why, "value 't1' inside the match is also used by node 'side' (Relu)");
  EXPECT_EQ(g->numNodes(), 3u);
}

TEST(SubgraphRewriter, MultiOutputPatternsAndOmittedInputs) {
  // Split into two halves then Concat back in order => the input itself.
  const char* pat = R"(graph "p" {
  input %x
  input %sizes
  %a, %b = Split(%x, %sizes) {axis=0}
  %c = Concat(%a, %b) {axis=0}
  output %c
})";
  const char* rep = R"(graph "r" {
  input %x
  output %x
})";
  auto g = parseGraph(R"(graph "g" {
  opset "" 17
  input %v: f32[4]
  param frozen %sz: i64[2] = tensor<i64[2]>[2, 2]
  %h0, %h1 = Split(%v, %sz) @split {axis=0}
  %cat = Concat(%h0, %h1) @cat {axis=0}
  %y = Neg(%cat) @y
  output %y
}
)");
  EXPECT_EQ(rewriteSubgraphs(*g, pat, rep), 1);
  EXPECT_EQ(g->numNodes(), 1u);
  EXPECT_EQ(g->findNode("y")->input(0)->name(), "v");
  EXPECT_TRUE(g->params().empty());
  // `_` in a pattern requires the input to be omitted.
  const char* conv_nobias = R"(graph "p" {
  input %x
  input %w
  %c = Conv(%x, %w, _)
  output %c
})";
  const char* relu_only = R"(graph "r" {
  input %x
  %r = Relu(%x) @r
  output %r
})";
  auto h = parseGraph(R"(graph "h" {
  opset "" 17
  input %x: f32[1,1,2,2]
  param %w: f32[1,1,1,1] = tensor<f32[1,1,1,1]>[1]
  param %b: f32[1] = tensor<f32[1]>[1]
  %c1 = Conv(%x, %w, %b) @c1
  %c2 = Conv(%c1, %w) @c2
  output %c2
}
)");
  EXPECT_EQ(rewriteSubgraphs(*h, conv_nobias, relu_only), 1);
  EXPECT_EQ(h->findNode("c1")->opType(), "Conv");
  EXPECT_EQ(h->findNode("c2.r")->opType(), "Relu");
}

TEST(SubgraphRewriter, RejectsMalformedTexts) {
  auto expectError = [](const char* pat, const char* rep, const std::string& needle) {
    try {
      SubgraphRewriter sr("t", pat, rep);
      ADD_FAILURE() << "expected an error containing " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expectError("graph \"p\" { input %x\n %y = Relu(%x\n output %y }", kIdentity, "t pattern:");
  expectError(kDoubleTranspose, "graph \"r\" { input %zz\n %i = Identity(%zz)\n output %i }",
              "replacement: input 'zz' is not a pattern input");
  expectError(R"(graph "p" {
  input %x
  %a = Relu(%x)
  %b = Neg(%x)
  output %b
})", kIdentity, "pattern: node 'Relu' does not feed the last node");
  expectError(kDoubleTranspose, "graph \"r\" { input %x\n output %x\n output %x }",
              "pattern has 1 outputs, replacement has 2");
}

}  // namespace
}  // namespace gs
