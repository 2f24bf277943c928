// The worked example of docs/algorithms.md: a complete new algorithm ("weight_clip") in under 100
// lines, registered in a local registry and checked against an independent ATen computation.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "algo/registry.h"
#include "algo_test_util.h"

namespace gs {
namespace {

// ---- example: begin ----
/// Clips every weight of Conv / Gemm / MatMul layers to mean +- k * std of that weight (outlier
/// clipping, a common preparation for quantization). `k` is a per-layer field.
class WeightClip : public CompAlgo {
 public:
  using CompAlgo::CompAlgo;  // (const Config&, const ConfigSchema&)
  std::string name() const override { return "weight_clip"; }
  std::set<std::string> layerOps() const override { return {"Conv", "Gemm", "MatMul"}; }

 protected:
  /// Layers are resolved (policies applied, skips decided) before applyImpl runs.
  Graph applyImpl(Graph g) override {
    at::NoGradGuard no_grad;
    for (const LayerRecord* layer : activeLayers()) {
      double k = layer->policy.settings.getFloat("k");
      for (Value* v : g.findNode(layer->name)->inputs()) {
        if (!v || !v->isParam() || v->data().dim() < 2) continue;  // weights only, not biases
        const at::Tensor& w = v->data();
        double mean = w.mean().item<double>(), sd = w.std().item<double>();
        clipped_[layer->name] =
            ((w - mean).abs() > k * sd).sum().item<double>() / static_cast<double>(w.numel());
        v->setData(w.clamp(mean - k * sd, mean + k * sd));
      }
    }
    return g;
  }
  /// Shown in the summary's policy column.
  std::string policyString(const LayerRecord& layer) const override {
    return "clip=" + std::to_string(layer.policy.settings.getFloat("k")).substr(0, 4) + "sd";
  }
  /// Adds the fraction of clipped weights as a metric column.
  void describeLayer(const Graph& g, const Node* node, const LayerRecord& layer,
                     SummaryRow& row) const override {
    CompAlgo::describeLayer(g, node, layer, row);  // params / bytes after
    row.metrics["clipped"] = clipped_.at(layer.name);
  }

 private:
  std::map<std::string, double> clipped_;
};

void registerWeightClip(AlgoRegistry& r) {
  r.add({"weight_clip", "clip weights to mean +- k standard deviations",
         {FieldSpec::real("k", 3.0, 0.5, 10.0, "clip at k standard deviations").layer()},
         algoFactory<WeightClip>(), /*check=*/{}});
}
// ---- example: end ----

TEST(AlgoExample, WeightClipMatchesATenAndFollowsPolicies) {
  AlgoRegistry reg;
  registerWeightClip(reg);
  auto algo = reg.create("weight_clip", Json::parse(R"({"k": 1.5,
      "layer_policies": {"head.fc": {"k": 0.5}}, "ignored_scopes": ["head.proj"]})"));
  auto g = test::smallNet(9);
  std::map<std::string, at::Tensor> orig;
  for (auto& v : g->params()) orig[v->name()] = v->data().clone();
  Graph out = algo->convert(algo->apply(std::move(*g)));

  auto expected = [&](const std::string& name, double k) {
    at::Tensor w = orig.at(name).to(at::kDouble);  // independent double-precision reference
    double mean = w.mean().item<double>(), sd = w.std().item<double>();
    return at::minimum(at::maximum(w, at::scalar_tensor(mean - k * sd, at::kDouble)),
                       at::scalar_tensor(mean + k * sd, at::kDouble));
  };
  EXPECT_LT(test::maxRelDiff(out.findValue("backbone.conv1.weight")->data().to(at::kDouble),
                             expected("backbone.conv1.weight", 1.5)),
            1e-6);
  EXPECT_LT(test::maxRelDiff(out.findValue("head.fc.weight")->data().to(at::kDouble),
                             expected("head.fc.weight", 0.5)),
            1e-6);
  EXPECT_TRUE(at::equal(out.findValue("head.proj.weight")->data(), orig.at("head.proj.weight")));
  EXPECT_TRUE(at::equal(out.findValue("head.fc.bias")->data(), orig.at("head.fc.bias")));

  SummaryTable t = algo->summary(out);
  ASSERT_EQ(t.rows.size(), 4u);
  EXPECT_EQ(t.rows[0].policy, "clip=1.50sd");
  EXPECT_EQ(t.rows[2].policy, "clip=0.50sd");
  EXPECT_EQ(t.rows[3].policy, "skip");
  // Fraction clipped at 0.5 sd, computed independently.
  at::Tensor w = orig.at("head.fc.weight").to(at::kDouble);
  double frac = ((w - w.mean()).abs() > 0.5 * w.std()).sum().item<double>() / w.numel();
  EXPECT_NEAR(t.rows[2].metrics.at("clipped"), frac, 2.0 / w.numel());
  EXPECT_GT(frac, 0.4);  // |z| > 0.5 for ~62% of a normal sample: a real amount clipped
}

}  // namespace
}  // namespace gs
