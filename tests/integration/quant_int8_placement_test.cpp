// Placement for deployment: after `ptq` / `simqat` + convert, every Conv, residual Add and
// hidden Gemm of the zoo CNNs runs as a real int8 group in gstick's runtime (quantized layer
// outputs and Add inputs), close to the op-by-op float QDQ reference.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "algo/registry.h"
#include "data/dataset.h"
#include "models/zoo.h"
#include "runtime/executor.h"
#include "runtime/int8_fusion.h"
#include "runtime/int8_kernels.h"
#include "test_util.h"

namespace gs {
namespace {

size_t countOps(const Graph& g, const std::string& op) {
  size_t n = 0;
  for (const auto& node : g.nodes()) n += node->domain().empty() && node->opType() == op;
  return n;
}

Graph quantize(const std::string& algo_name, std::unique_ptr<Graph> fp, Json cfg = Json::object()) {
  auto algo = AlgoRegistry::global().create(algo_name, cfg);
  AlgoContext ctx;
  at::Generator gen = at::detail::createCPUGenerator(3);
  ctx.calibration = CalibrationData{std::make_shared<TensorDataset>(at::rand({64, 1, 28, 28}, gen)), 2, 32};
  algo->setContext(ctx);
  return algo->convert(algo->apply(std::move(*fp)));
}

/// Every Conv and Add of `qdq` is the anchor of an int8 group, and every Gemm except the one
/// computing the graph output (the logits stay float, so that Gemm runs on dequantized inputs).
void expectAllInt8(const Graph& qdq, const std::string& name) {
  std::map<std::string, size_t> groups;
  for (const FusedGroup& fg : findInt8Fusions(qdq)) groups[fg.anchor->opType()]++;
  for (const char* op : {"Conv", "Add"})
    EXPECT_EQ(groups[op], countOps(qdq, op)) << name << ": " << op << " not all int8";
  EXPECT_EQ(groups["Gemm"], countOps(qdq, "Gemm") - 1) << name;
  EXPECT_GT(groups["Conv"], 0u) << name;
}

TEST(QuantInt8Placement, PtqZooModelsRunEntirelyInInt8) {
  for (const std::string name : {"lenet5", "resnet20", "mobilenetv2"}) {
    std::unique_ptr<Graph> fp = name == "lenet5"     ? models::buildLeNet5({}, 5)
                                : name == "resnet20" ? models::buildResNet20({}, 5)
                                                     : models::buildMobileNetV2({}, 5);
    auto ref = fp->clone(true);
    Graph qdq = quantize("ptq", std::move(fp));
    if (name == "resnet20") EXPECT_EQ(countOps(qdq, "Add"), 9u);
    expectAllInt8(qdq, name);
    // The int8 execution stays close to the float QDQ reference (same graph, op by op).
    at::Generator gen = at::detail::createCPUGenerator(9);
    at::Tensor x = at::rand({16, 1, 28, 28}, gen);
    at::Tensor a = Executor(qdq).run({x})[0], b = Executor(qdq, {.fuse = false}).run({x})[0];
    at::Tensor f = Executor(*ref).run({x})[0];
    double span = (f.max() - f.min()).item<double>();
    EXPECT_LT((a - b).abs().max().item<double>(), 0.1 * span) << name;
    EXPECT_GE(a.argmax(1).eq(b.argmax(1)).to(at::kDouble).mean().item<double>(), 14.0 / 16) << name;
  }
}

TEST(QuantInt8Placement, SimQatResidualBlocksRunInInt8AfterConvert) {
  Graph qdq = quantize("simqat", models::buildResNet20({}, 6));
  expectAllInt8(qdq, "resnet20 simqat");
}

TEST(QuantInt8Placement, DynamicPerTokenLeavesResidualAddsAlone) {
  // Per-token dynamic activations only quantize layer inputs (an int8 Add would gain nothing).
  Graph dyn = quantize("ptq", models::buildResNet20({}, 7), Json{{"mode", "dynamic"}});
  int adds = 0;
  for (const auto& n : dyn.nodes())
    if (n->opType() == "Add" && n->name().size() > 4 && n->name().substr(n->name().size() - 4) == ".add" &&
        ++adds)
      for (size_t i = 0; i < 2; ++i)
        EXPECT_EQ(n->input(i)->producer()->name().find("_fq"), std::string::npos) << n->describe();
  EXPECT_EQ(adds, 9);
}

}  // namespace
}  // namespace gs
