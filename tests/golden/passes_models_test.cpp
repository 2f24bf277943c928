// optimize() on every zoo model and the imported ONNX fixtures: the verifier passes after each
// pass and outputs before/after agree on seeded inputs.
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "io/onnx.h"
#include "ir/verifier.h"
#include "models/zoo.h"
#include "passes/passes.h"
#include "rewrite/query.h"
#include "runtime/executor.h"
#include "test_util.h"

namespace gs {
namespace {

namespace fs = std::filesystem;

/// Seeded inputs: symbolic dims = 2 (sequence dims too), floats N(0,1) (image models get [0,1)
/// pixels), integers in [0, 10).
std::vector<at::Tensor> seeded(const Graph& g, uint64_t seed) {
  std::vector<at::Tensor> in;
  for (const Value* v : g.inputs()) {
    std::vector<int64_t> shape;
    for (const Dim& d : *v->shape()) shape.push_back(d.isStatic() ? d.value : 2);
    at::Tensor t = test::randn(shape, seed++);
    if (!at::isFloatingType(toScalarType(v->dtype()))) t = t.abs().mul(3).clamp_max(9);
    in.push_back(t.to(toScalarType(v->dtype())));
  }
  return in;
}

size_t countOp(const Graph& g, const std::string& op) { return nodesByOpType(g, {op}).size(); }

/// Optimizes a copy of `g` at `level` (verifier after every pass) and compares outputs.
std::unique_ptr<Graph> checkOptimize(const Graph& g, int level, const std::string& tag,
                                     double tol = 1e-4) {
  auto opt = g.clone(/*copy_data=*/true);
  PassManagerOptions o;
  o.verify = true;
  auto steps = optimize(*opt, level, o);
  EXPECT_FALSE(steps.empty());
  auto errs = verifyGraph(*opt, {.allow_unknown_ops = true});
  EXPECT_TRUE(errs.empty()) << tag << ": " << (errs.empty() ? "" : errs[0]);
  auto in = seeded(g, 3);
  Executor e0(g), e1(*opt);
  auto y0 = e0.run(in);
  auto y1 = e1.run(in);
  EXPECT_EQ(y0.size(), y1.size()) << tag;
  for (size_t k = 0; k < y0.size() && k < y1.size(); ++k) {
    EXPECT_EQ(y0[k].sizes(), y1[k].sizes()) << tag;
    if (y0[k].sizes() != y1[k].sizes()) continue;
    EXPECT_LE(test::maxRelDiff(y1[k], y0[k]), tol) << tag << " output " << k;
    EXPECT_GT(y0[k].abs().max().item<double>(), 0.0) << tag << ": degenerate output";
  }
  for (size_t k = 0; k < g.outputs().size(); ++k)
    EXPECT_EQ(opt->outputs()[k]->name(), g.outputs()[k]->name()) << tag;
  return opt;
}

class ZooOptimize : public ::testing::TestWithParam<std::string> {};

TEST_P(ZooOptimize, Level2And3PreserveOutputs) {
  auto g = models::buildModel(GetParam());
  auto l2 = checkOptimize(*g, 2, GetParam() + " level 2");
  auto l3 = checkOptimize(*g, 3, GetParam() + " level 3");
  // Every BatchNormalization of the CNNs folds away; at level 3 Conv+act pairs fuse.
  EXPECT_EQ(countOp(*l2, "BatchNormalization"), 0u) << GetParam();
  EXPECT_LE(l3->numNodes(), l2->numNodes());
  EXPECT_LE(l2->numNodes(), g->numNodes());
  // Every value has a dtype and a known rank after shape inference.
  for (const auto& n : l2->nodes())
    for (const Value* o : n->outputs())
      if (o) {
        EXPECT_NE(o->dtype(), DType::Undefined) << o->name();
        EXPECT_TRUE(o->shape().has_value()) << o->name();
      }
  std::printf("[ %s ] nodes %zu -> %zu (level 2) -> %zu (level 3), params %zu -> %zu\n",
              GetParam().c_str(), g->numNodes(), l2->numNodes(), l3->numNodes(),
              g->params().size(), l2->params().size());
}

INSTANTIATE_TEST_SUITE_P(Zoo, ZooOptimize,
                         ::testing::Values("lenet5", "resnet20", "mobilenetv2", "vit-tiny",
                                           "llama-tiny"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

TEST(ZooOptimizeCounts, ResNetFoldsEveryBatchNormAndFusesRelus) {
  auto g = models::buildModel("resnet20");
  size_t bns = countOp(*g, "BatchNormalization");
  EXPECT_EQ(bns, 21u);
  auto opt = g->clone();
  auto steps = optimize(*opt, 3);
  int64_t folded = 0, fused = 0;
  for (const auto& s : steps) {
    if (s.result.pass == "bn-folding") folded = s.result.changes;
    if (s.result.pass == "conv-act-fusion") fused = s.result.changes;
  }
  EXPECT_EQ(folded, 21);
  // The stem and the first conv of each of the 9 blocks feed a Relu directly; the second conv
  // of a block feeds the residual Add.
  EXPECT_EQ(fused, 10);
  EXPECT_EQ(countOp(*opt, "Conv"), 11u);
  EXPECT_EQ(opt->numNodes(), g->numNodes() - 21 - 10);
}

class FixtureOptimize : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureOptimize, ImportedModelsKeepOutputs) {
  auto g = importOnnxFile(GetParam());
  checkOptimize(*g, 2, GetParam());
  checkOptimize(*g, 3, GetParam());
}

std::vector<std::string> fixtures() {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(std::string(GS_TEST_DIR) + "/data/models"))
    if (e.path().extension() == ".onnx") v.push_back(e.path().string());
  std::sort(v.begin(), v.end());
  return v;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureOptimize, ::testing::ValuesIn(fixtures()),
                         [](const auto& info) { return fs::path(info.param).stem().string(); });

}  // namespace
}  // namespace gs
