// Opset upgrade, numerically: legacy-opset models run on opset-17 kernels and match ATen.
// A case fails when an op it needs is missing from the registry (the check names the op).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "io/onnx.h"
#include "op_test_util.h"
#include "ops/registry.h"
#include "runtime/executor.h"

namespace gs {
namespace {

using namespace gs::test;  // NOLINT: ModelProto builders

/// First op of `g` without a registered kernel, or "".
std::string missingOp(const Graph& g) {
  for (const auto& n : g.nodes())
    if (!OpRegistry::global().find(n->domain(), n->opType())) return n->opType();
  return "";
}

/// One-node legacy model: inputs x (f32, `xdims`) plus initializers, outputs named as given.
struct Legacy {
  onnx::ModelProto m;
  onnx::NodeProto* node;
  Legacy(int64_t opset, const std::string& op, const std::vector<int64_t>& xdims,
         const std::vector<std::string>& outs, bool typed_input = true)
      : m(makeModel(opset)) {
    if (typed_input)
      addValue(m.mutable_graph()->mutable_input(), "x", onnx::TensorProto::FLOAT, xdims);
    else
      m.mutable_graph()->add_input()->set_name("x");
    for (const auto& o : outs) m.mutable_graph()->add_output()->set_name(o);
    node = addNode(m, op, {"x"}, outs, "legacy");
  }
  /// Imports, checks every op is available, runs; sets `missing` when an op is not registered.
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& ins, std::string* missing) {
    auto g = importOnnxBytes(m.SerializeAsString(), "legacy.onnx");
    EXPECT_EQ(g->opsets.at(""), 17);
    *missing = missingOp(*g);
    if (!missing->empty()) return {};
    Executor ex(*g);
    return ex.run(ins);
  }
};

#define RUN_LEGACY(legacy, outs, ins)                                       \
  std::string missing_;                                                     \
  auto outs = (legacy).run(ins, &missing_);                                 \
  ASSERT_TRUE(missing_.empty()) << "op " << missing_ << " is not registered"

TEST(OnnxUpgradeRun, ReduceSum11AxesAttribute) {
  Legacy l(11, "ReduceSum", {3, 4, 5}, {"y"});
  attrInts(l.node, "axes", {1});
  attrInt(l.node, "keepdims", 0);
  at::Tensor x = randn({3, 4, 5}, 1);
  RUN_LEGACY(l, out, {x});
  EXPECT_LT(maxRelDiff(out[0], x.sum({1})), 1e-6);
}

TEST(OnnxUpgradeRun, TopK9KAttribute) {
  Legacy l(9, "TopK", {3, 5}, {"v", "i"});
  attrInt(l.node, "k", 2);
  at::Tensor x = randn({3, 5}, 2);
  RUN_LEGACY(l, out, {x});
  auto [v, i] = at::topk(x, 2);
  EXPECT_TRUE(at::equal(out[0], v));
  EXPECT_TRUE(at::equal(out[1], i));
}

TEST(OnnxUpgradeRun, SqueezeUnsqueeze11) {
  Legacy l(11, "Squeeze", {1, 3, 1, 4}, {"y"});
  attrInts(l.node, "axes", {0, -2});
  at::Tensor x = randn({1, 3, 1, 4}, 3);
  RUN_LEGACY(l, out, {x});
  EXPECT_TRUE(at::equal(out[0], x.reshape({3, 4})));
  Legacy u(11, "Unsqueeze", {2, 3}, {"y"});
  attrInts(u.node, "axes", {0, 3});
  at::Tensor x2 = randn({2, 3}, 4);
  std::string s2;
  auto out2 = u.run({x2}, &s2);
  ASSERT_TRUE(s2.empty());
  EXPECT_TRUE(at::equal(out2[0], x2.reshape({1, 2, 3, 1})));
}

TEST(OnnxUpgradeRun, Split11SplitAttribute) {
  Legacy l(11, "Split", {2, 4}, {"a", "b"});
  attrInts(l.node, "split", {1, 3});
  attrInt(l.node, "axis", 1);
  at::Tensor x = randn({2, 4}, 5);
  RUN_LEGACY(l, out, {x});
  EXPECT_TRUE(at::equal(out[0], x.slice(1, 0, 1)));
  EXPECT_TRUE(at::equal(out[1], x.slice(1, 1, 4)));
}

TEST(OnnxUpgradeRun, Slice9Attributes) {
  Legacy l(9, "Slice", {3, 5}, {"y"});
  attrInts(l.node, "starts", {1});
  attrInts(l.node, "ends", {4});
  attrInts(l.node, "axes", {1});
  at::Tensor x = randn({3, 5}, 6);
  RUN_LEGACY(l, out, {x});
  EXPECT_TRUE(at::equal(out[0], x.slice(1, 1, 4)));
}

TEST(OnnxUpgradeRun, Pad10Attributes) {
  Legacy l(10, "Pad", {2, 3}, {"y"});
  attrInts(l.node, "pads", {0, 1, 1, 2});  // [x0_begin, x1_begin, x0_end, x1_end]
  attrFloat(l.node, "value", 1.5f);
  at::Tensor x = randn({2, 3}, 7);
  RUN_LEGACY(l, out, {x});
  EXPECT_TRUE(at::equal(out[0], at::constant_pad_nd(x, {1, 2, 0, 1}, 1.5)));
}

TEST(OnnxUpgradeRun, Clip9Attributes) {
  Legacy l(9, "Clip", {10}, {"y"});
  attrFloat(l.node, "min", -0.5f);
  attrFloat(l.node, "max", 0.25f);
  at::Tensor x = randn({10}, 8);
  RUN_LEGACY(l, out, {x});
  EXPECT_TRUE(at::equal(out[0], x.clamp(-0.5, 0.25)));
}

TEST(OnnxUpgradeRun, Dropout10RatioIsIdentityInEval) {
  Legacy l(10, "Dropout", {4, 4}, {"y"});
  attrFloat(l.node, "ratio", 0.3f);
  at::Tensor x = randn({4, 4}, 9);
  RUN_LEGACY(l, out, {x});
  EXPECT_TRUE(at::equal(out[0], x));
}

TEST(OnnxUpgradeRun, Softmax11CoercesTo2D) {
  // axis=1 of a rank-3 input: softmax over the flattened trailing 12 elements.
  Legacy l(11, "Softmax", {2, 3, 4}, {"y"});
  attrInt(l.node, "axis", 1);
  at::Tensor x = randn({2, 3, 4}, 10);
  RUN_LEGACY(l, out, {x});
  EXPECT_LT(maxRelDiff(out[0], x.reshape({2, 12}).softmax(1).reshape({2, 3, 4})), 1e-6);
}

TEST(OnnxUpgradeRun, LogSoftmax11UnknownRank) {
  Legacy l(11, "LogSoftmax", {}, {"y"}, /*typed_input=*/false);
  at::Tensor x = randn({2, 3, 4}, 11);
  RUN_LEGACY(l, out, {x});  // default axis 1, rank unknown at import: Flatten/Reshape form
  EXPECT_LT(maxRelDiff(out[0], x.reshape({2, 12}).log_softmax(1).reshape({2, 3, 4})), 1e-6);
}

TEST(OnnxUpgradeRun, Upsample9NearestIsAsymmetricFloor) {
  Legacy l(9, "Upsample", {1, 1, 2, 3}, {"y"});
  l.node->add_input("scales");
  addInit(l.m, at::tensor({1.f, 1.f, 2.f, 1.5f}), "scales");
  attrString(l.node, "mode", "nearest");
  at::Tensor x = at::arange(6, at::kFloat).reshape({1, 1, 2, 3});
  RUN_LEGACY(l, out, {x});
  // Output 4x4; source index floor(i / scale): rows 0,0,1,1; cols floor(j/1.5) = 0,0,1,2.
  at::Tensor want = at::tensor(std::vector<float>{0, 0, 1, 2, 0, 0, 1, 2, 3, 3, 4, 5, 3, 3, 4, 5}).reshape({1, 1, 4, 4});
  EXPECT_TRUE(at::equal(out[0], want)) << out[0];
}

TEST(OnnxUpgradeRun, Resize11TfHalfPixelForNn) {
  // x_in = floor-ish((x_out + 0.5) / s): 1-D 8 -> 3 with sizes; s = 3/8, so y = 4/3, 4, 20/3.
  for (const char* nearest : {"round_prefer_floor", "floor"}) {
    Legacy l(11, "Resize", {1, 8}, {"y"});
    l.node->add_input("roi");
    l.node->add_input("scales");
    l.node->add_input("sizes");
    addInit(l.m, at::zeros({0}), "roi");
    addInit(l.m, at::zeros({0}), "scales");
    addInit(l.m, at::tensor(std::vector<int64_t>{1, 3}), "sizes");
    attrString(l.node, "coordinate_transformation_mode", "tf_half_pixel_for_nn");
    attrString(l.node, "mode", "nearest");
    attrString(l.node, "nearest_mode", nearest);
    at::Tensor x = at::arange(8, at::kFloat).reshape({1, 8});
    RUN_LEGACY(l, out, {x});
    // round_prefer_floor(4/3, 4, 20/3) = 1, 4, 7;  floor(...) = 1, 4, 6.
    std::vector<float> want = std::string(nearest) == "floor" ? std::vector<float>{1, 4, 6}
                                                              : std::vector<float>{1, 4, 7};
    EXPECT_TRUE(at::equal(out[0], at::tensor(want).reshape({1, 3}))) << nearest << out[0];
  }
}

TEST(OnnxUpgradeRun, Scatter10IsScatterElements) {
  Legacy l(10, "Scatter", {3, 3}, {"y"});
  l.node->add_input("idx");
  l.node->add_input("upd");
  attrInt(l.node, "axis", 1);
  at::Tensor idx = at::tensor(std::vector<int64_t>{2, 0, 1, 1, 2, 0}).reshape({3, 2});
  at::Tensor upd = randn({3, 2}, 12);
  addInit(l.m, idx, "idx");
  addInit(l.m, upd, "upd");
  at::Tensor x = randn({3, 3}, 13);
  RUN_LEGACY(l, out, {x});
  EXPECT_TRUE(at::equal(out[0], x.scatter(1, idx, upd)));
}

}  // namespace
}  // namespace gs
