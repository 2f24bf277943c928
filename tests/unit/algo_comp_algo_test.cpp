// CompAlgo base behaviour: calibration batches, the calibration requirement of PTQ algorithms,
// and a PTQ-style algorithm that runs the graph on calibration data with the Executor.
#include "algo/comp_algo.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "algo/registry.h"
#include "algo_test_util.h"
#include "runtime/executor.h"

namespace gs {
namespace {

using test::algoErrorOf;

TEST(AlgoCalibration, BatchesAreConsecutiveAndBounded) {
  at::Tensor x = at::arange(10 * 3, at::kFloat).reshape({10, 3});
  auto ds = std::make_shared<TensorDataset>(x);
  CalibrationData c{ds, /*numBatches=*/8, /*batchSize=*/4};
  EXPECT_EQ(c.size(), 3);  // ceil(10 / 4)
  Batch b = c.batch(2);
  EXPECT_TRUE(at::equal(b.indices, at::tensor({8, 9}, at::kLong)));
  EXPECT_TRUE(at::equal(b.inputs, x.slice(0, 8, 10)));
  EXPECT_TRUE(at::equal(c.batch(0).inputs, x.slice(0, 0, 4)));
  EXPECT_EQ(algoErrorOf([&] { c.batch(3); }), "calibration: batch 3 out of range [0, 3)");
  CalibrationData two{ds, 2, 4};
  EXPECT_EQ(two.size(), 2);
  EXPECT_EQ(CalibrationData{}.size(), 0);
}

/// A minimal PTQ-style algorithm: records the max |output| of every active layer over the
/// calibration batches (what an activation observer does), using an Executor observer.
class ActRange : public CompAlgo {
 public:
  using CompAlgo::CompAlgo;
  std::string name() const override { return "act_range"; }
  bool needsCalibration() const override { return true; }
  std::map<std::string, float> ranges;

 protected:
  Graph applyImpl(Graph g) override {
    std::set<std::string> active;
    for (auto* l : activeLayers()) active.insert(l->name);
    Executor ex(g);
    ex.setObserver([&](const Node& n, const std::vector<at::Tensor>&,
                       const std::vector<at::Tensor>& out) {
      if (!active.count(n.name())) return;
      float m = out[0].abs().max().item<float>();
      ranges[n.name()] = std::max(ranges[n.name()], m);
    });
    const CalibrationData& cal = *context().calibration;
    for (int64_t i = 0; i < cal.size(); ++i) ex.run({cal.batch(i).inputs});
    return g;
  }
  void describeLayer(const Graph& g, const Node* node, const LayerRecord& layer,
                     SummaryRow& row) const override {
    CompAlgo::describeLayer(g, node, layer, row);
    row.metrics["max_abs"] = ranges.at(layer.name);
  }
};

TEST(AlgoCalibration, PtqAlgorithmRunsOnCalibrationBatches) {
  AlgoRegistry reg;
  reg.add({"act_range", "max |activation| per layer", {}, algoFactory<ActRange>(), {}});
  auto algo = reg.create("act_range", Json::parse(R"({"blacklist": ["MatMul"]})"));

  auto g = test::smallNet(11);
  EXPECT_EQ(algoErrorOf([&] { algo->apply(std::move(*g->clone())); }),
            "act_range: needs calibration data (give --data)");

  at::Tensor x = test::randn({20, 1, 8, 8}, 12);
  AlgoContext ctx;
  ctx.calibration = CalibrationData{std::make_shared<TensorDataset>(x), 2, 8};  // 16 of 20 used
  algo->setContext(ctx);
  // Reference: the Gemm output over the first 16 samples, computed by running the graph directly.
  Graph ref_graph = std::move(*g->clone());
  ref_graph.addOutput(ref_graph.findValue("head.fc"));
  at::Tensor fc_out = Executor(ref_graph).run({x.slice(0, 0, 16)})[1];

  Graph out = algo->apply(std::move(*g));
  auto& ranges = static_cast<ActRange&>(*algo).ranges;
  EXPECT_EQ(ranges.size(), 3u);  // conv1, conv2, fc; head.proj (MatMul) blacklisted
  EXPECT_FLOAT_EQ(ranges.at("head.fc"), fc_out.abs().max().item<float>());
  SummaryTable t = algo->summary(out);
  ASSERT_EQ(t.rows.size(), 4u);
  EXPECT_FLOAT_EQ(t.rows[2].metrics.at("max_abs"), ranges.at("head.fc"));
  EXPECT_EQ(t.rows[3].policy, "skip");
  EXPECT_EQ(t.rows[3].note, "op 'MatMul' is blacklisted");
}

}  // namespace
}  // namespace gs
