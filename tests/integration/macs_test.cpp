// MAC counting rules of `gstick info` (src/cli/macs.cpp) on hand-made tensors, closed-form
// expected.
#include "cli/macs.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "ir/graph.h"

namespace gs::cli {
namespace {

/// One node of `op` with `n_in` graph inputs and the given attributes.
const Node& makeNode(Graph& g, const std::string& op, size_t n_in,
                     std::map<std::string, Attribute> attrs = {}) {
  std::vector<Value*> in;
  for (size_t i = 0; i < n_in; ++i)
    in.push_back(g.addInput("x" + std::to_string(i), DType::Float32, std::nullopt));
  return *g.addNode(op, in, 1, "n", std::move(attrs));
}

TEST(Macs, ConvCountsPerOutputTimesKernelVolume) {
  Graph g;
  const Node& n = makeNode(g, "Conv", 2, {{"group", int64_t{2}}});
  // x [2,4,9,9], W [6, 4/2, 3, 3], y [2,6,7,7]: each output needs 2*3*3 MACs.
  EXPECT_EQ(
      nodeMacs(n, {at::zeros({2, 4, 9, 9}), at::zeros({6, 2, 3, 3})}, {at::zeros({2, 6, 7, 7})}),
      2 * 6 * 7 * 7 * 2 * 3 * 3);
}

TEST(Macs, ConvTransposeCountsPerInput) {
  Graph g;
  const Node& n = makeNode(g, "ConvTranspose", 2);
  // x [1,3,5,5], W [3, 4, 2, 2] (Cout/g = 4): every input element feeds 4*2*2 outputs.
  EXPECT_EQ(
      nodeMacs(n, {at::zeros({1, 3, 5, 5}), at::zeros({3, 4, 2, 2})}, {at::zeros({1, 4, 10, 10})}),
      3 * 5 * 5 * 4 * 2 * 2);
}

TEST(Macs, MatMulAndGemm) {
  Graph g;
  const Node& mm = makeNode(g, "MatMul", 2);
  EXPECT_EQ(nodeMacs(mm, {at::zeros({5, 2, 3, 7}), at::zeros({7, 4})}, {at::zeros({5, 2, 3, 4})}),
            5 * 2 * 3 * 4 * 7);
  Graph g2;
  const Node& gemm = makeNode(g2, "Gemm", 3, {{"transA", int64_t{1}}});
  // A is [K=6, M=3] transposed: y [3, 5] needs 6 MACs each.
  EXPECT_EQ(
      nodeMacs(gemm, {at::zeros({6, 3}), at::zeros({6, 5}), at::zeros({5})}, {at::zeros({3, 5})}),
      3 * 5 * 6);
}

TEST(Macs, EinsumExplicitImplicitAndEllipsis) {
  Graph g1;
  const Node& bmm = makeNode(g1, "Einsum", 2, {{"equation", "bij, bjk -> bik"}});
  EXPECT_EQ(nodeMacs(bmm, {at::zeros({2, 3, 4}), at::zeros({2, 4, 5})}, {at::zeros({2, 3, 5})}),
            2 * 3 * 5 * 4);
  Graph g2;
  const Node& implicit = makeNode(g2, "Einsum", 2, {{"equation", "ij,jk"}});  // -> ik, sums j
  EXPECT_EQ(nodeMacs(implicit, {at::zeros({3, 4}), at::zeros({4, 5})}, {at::zeros({3, 5})}),
            3 * 5 * 4);
  Graph g3;
  const Node& ell = makeNode(g3, "Einsum", 2, {{"equation", "...ij,...jk->...ik"}});
  EXPECT_EQ(
      nodeMacs(ell, {at::zeros({7, 2, 3, 4}), at::zeros({7, 2, 4, 5})}, {at::zeros({7, 2, 3, 5})}),
      7 * 2 * 3 * 5 * 4);
}

TEST(Macs, QuantizedFormsAndNonMacOps) {
  Graph g;
  const Node& q = makeNode(g, "QLinearConv", 8);
  at::Tensor s = at::ones({});
  EXPECT_EQ(nodeMacs(q, {at::zeros({1, 2, 4, 4}), s, s, at::zeros({3, 2, 1, 1}), s, s, s, s},
                     {at::zeros({1, 3, 4, 4})}),
            3 * 4 * 4 * 2);
  Graph g2;
  const Node& add = makeNode(g2, "Add", 2);
  EXPECT_EQ(nodeMacs(add, {at::zeros({4}), at::zeros({4})}, {at::zeros({4})}), 0);
}

}  // namespace
}  // namespace gs::cli
