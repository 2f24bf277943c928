// `gstick optimize` end to end: exported zoo models, optimized by the CLI, run in ONNX Runtime with
// the same outputs as gstick's executor on the original graph; CLI table and error contract.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "cli_util.h"
#include "io/onnx.h"
#include "models/zoo.h"
#include "ort_runner.h"
#include "rewrite/query.h"
#include "runtime/executor.h"
#include "test_util.h"

namespace gs {
namespace {

std::map<std::string, at::Tensor> seededInputs(const Graph& g, uint64_t seed) {
  std::map<std::string, at::Tensor> m;
  for (const Value* v : g.inputs()) {
    std::vector<int64_t> shape;
    for (const Dim& d : *v->shape()) shape.push_back(d.isStatic() ? d.value : 2);
    at::Tensor t = test::randn(shape, seed++);
    if (v->dtype() == DType::Int64) t = t.abs().mul(3).clamp_max(9).to(at::kLong);
    m[v->name()] = t.to(toScalarType(v->dtype()));
  }
  return m;
}

struct OptCase {
  const char* model;
  const char* args;  // extra `gstick optimize` arguments
};

class OptimizeOrt : public ::testing::TestWithParam<OptCase> {};

TEST_P(OptimizeOrt, OrtRunsOptimizedModelWithSameOutputs) {
  std::string why = ort::ortMissingReason();
  ASSERT_TRUE(why.empty()) << why;
  const OptCase& c = GetParam();
  auto g = models::buildModel(c.model);
  std::string dir = test::tempDir(std::string("opt_") + c.model);
  exportOnnxFile(*g, dir + "/in.onnx");
  auto r = test::gstick("optimize " + dir + "/in.onnx -o " + dir + "/out.onnx " + c.args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("bn-folding"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("wrote " + dir + "/out.onnx"), std::string::npos) << r.out;
  auto opt = importOnnxFile(dir + "/out.onnx");
  EXPECT_EQ(nodesByOpType(*opt, {"BatchNormalization"}).size(), 0u);
  EXPECT_LT(opt->numNodes(), g->numNodes());
  auto inputs = seededInputs(*g, 9);
  Executor ex(*g);
  auto ours = ex.runNamed(inputs);
  auto theirs = ort::runOrt(dir + "/out.onnx", inputs, dir + "/ort");
  ASSERT_EQ(ours.size(), theirs.outputs.size());
  for (const auto& [name, t] : ours) {
    ASSERT_TRUE(theirs.outputs.count(name)) << name;
    EXPECT_LE(test::maxRelDiff(theirs.outputs.at(name), t), 1e-4) << c.model << " " << name;
  }
  // gstick runs its own optimized output identically.
  Executor ex2(*opt);
  auto again = ex2.runNamed(inputs);
  for (const auto& [name, t] : ours) EXPECT_LE(test::maxRelDiff(again.at(name), t), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Zoo, OptimizeOrt,
                         ::testing::Values(OptCase{"resnet20", ""}, OptCase{"mobilenetv2", ""},
                                           OptCase{"lenet5", "--level 3"},
                                           OptCase{"resnet20", "--level 3"},
                                           OptCase{"mobilenetv2", "--level 3 --no-verify"}),
                         [](const auto& info) {
                           return std::string(info.param.model) + "_" +
                                  (info.param.args[0] ? "level3" : "default") +
                                  std::to_string(info.index);
                         });

TEST(OptimizeCli, PrintsPassTableAndRemovesMarkers) {
  auto g = models::buildModel("resnet20");
  std::string dir = test::tempDir("opt_cli");
  exportOnnxFile(*g, dir + "/in.onnx");
  auto r = test::gstick("optimize " + dir + "/in.onnx -o " + dir +
                        "/out.onnx --passes bn-folding,conv-act-fusion,unfuse-conv-act,dce");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("bn-folding               21"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("conv-act-fusion          10"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unfuse-conv-act          10"), std::string::npos) << r.out;
  auto opt = importOnnxFile(dir + "/out.onnx");
  for (const auto& n : opt->nodes()) EXPECT_EQ(n->domain(), "") << n->describe();
  EXPECT_EQ(opt->numNodes(), g->numNodes() - 21);
}

TEST(OptimizeCli, BadInputIsOneErrorLine) {
  std::string dir = test::tempDir("opt_err");
  test::expectOneErrorLine(test::gstick("optimize " + dir + "/missing.onnx -o " + dir + "/o.onnx"),
                           1, "missing.onnx");
  auto g = models::buildModel("lenet5");
  exportOnnxFile(*g, dir + "/in.onnx");
  test::expectOneErrorLine(
      test::gstick("optimize " + dir + "/in.onnx -o " + dir + "/o.onnx --passes dce,nope"), 1,
      "unknown pass 'nope'");
  EXPECT_FALSE(std::filesystem::exists(dir + "/o.onnx"));
  test::expectOneErrorLine(test::gstick("optimize " + dir + "/in.onnx"), 2, "--output");
}

}  // namespace
}  // namespace gs
