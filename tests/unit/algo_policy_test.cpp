// Layer policies: ignored scopes, op blacklist, regex overrides, priority and conflict detection.
#include "algo/layer_policy.h"

#include <gtest/gtest.h>

#include "algo/registry.h"
#include "algo_test_util.h"

namespace gs {
namespace {

using test::algoErrorOf;

/// A schema with two per-layer fields (like a quantizer) and one global field.
ConfigSchema schema() {
  ConfigSchema s = baseConfigFields();
  s.push_back(FieldSpec::integer("bits", 8, 2, 8, "weight bits").layer());
  s.push_back(FieldSpec::enumeration("granularity", "per_channel", {"per_tensor", "per_channel"},
                                     "g")
                  .layer());
  s.push_back(FieldSpec::integer("seed", 0, 0, std::nullopt, "global only"));
  return s;
}

LayerPolicies policies(const std::string& json) {
  return LayerPolicies(validateConfig(schema(), Json::parse(json)), schema());
}

/// name -> policy of every layer of smallNet (op types Conv, Gemm, MatMul).
std::map<std::string, LayerPolicy> resolveAll(const LayerPolicies& p) {
  auto g = test::smallNet(1);
  std::map<std::string, LayerPolicy> out;
  for (auto& [n, pol] : p.resolve(*g, {})) out[n->name()] = pol;
  return out;
}

TEST(AlgoPolicy, LayersAreNodesWithWeights) {
  auto g = test::smallNet(1);
  std::vector<std::string> names;
  for (auto& [n, pol] : policies("{}").resolve(*g, {})) names.push_back(n->name());
  EXPECT_EQ(names, (std::vector<std::string>{"backbone.conv1", "backbone.conv2", "head.fc",
                                             "head.proj"}));
  names.clear();
  for (auto& [n, pol] : policies("{}").resolve(*g, {"Gemm"})) names.push_back(n->name());
  EXPECT_EQ(names, (std::vector<std::string>{"head.fc"}));
}

TEST(AlgoPolicy, DefaultsComeFromTheConfig) {
  auto r = resolveAll(policies(R"({"bits": 4})"));
  ASSERT_EQ(r.size(), 4u);
  for (auto& [name, p] : r) {
    EXPECT_FALSE(p.skip) << name;
    EXPECT_EQ(p.settings.getInt("bits"), 4) << name;
    EXPECT_EQ(p.settings.getString("granularity"), "per_channel");
    EXPECT_FALSE(p.settings.has("seed")) << "only per-layer fields are layer settings";
  }
}

TEST(AlgoPolicy, CustomRegexOverridesDefault) {
  auto r = resolveAll(policies(
      R"({"bits": 8, "layer_policies": {"backbone\\..*": {"bits": 4}, "head.fc": {"granularity": "per_tensor"}}})"));
  EXPECT_EQ(r["backbone.conv1"].settings.getInt("bits"), 4);
  EXPECT_EQ(r["backbone.conv2"].settings.getInt("bits"), 4);
  EXPECT_EQ(r["backbone.conv2"].matched, (std::vector<std::string>{"backbone\\..*"}));
  EXPECT_EQ(r["head.fc"].settings.getInt("bits"), 8);
  EXPECT_EQ(r["head.fc"].settings.getString("granularity"), "per_tensor");
  EXPECT_EQ(r["head.proj"].settings.getInt("bits"), 8);
  EXPECT_TRUE(r["head.proj"].matched.empty());
}

TEST(AlgoPolicy, RegexMustMatchWholeName) {
  // "conv1" alone does not match "backbone.conv1" (whole-name match), so it matches no node.
  std::string m = algoErrorOf([] { resolveAll(policies(R"({"layer_policies": {"conv1": "skip"}})")); });
  EXPECT_EQ(m,
            "layer_policies 'conv1' matches no node of the graph (regexes must match the whole "
            "node name)");
  auto r = resolveAll(policies(R"({"layer_policies": {".*conv1": "skip"}})"));
  EXPECT_TRUE(r["backbone.conv1"].skip);
  EXPECT_EQ(r["backbone.conv1"].reason, "layer_policies '.*conv1' says skip");
  EXPECT_FALSE(r["backbone.conv2"].skip);
}

TEST(AlgoPolicy, IgnoredScopesArePrefixesOnComponentBoundaries) {
  auto r = resolveAll(policies(R"({"ignored_scopes": ["head"]})"));
  EXPECT_TRUE(r["head.fc"].skip);
  EXPECT_EQ(r["head.fc"].reason, "ignored scope 'head'");
  EXPECT_TRUE(r["head.proj"].skip);
  EXPECT_FALSE(r["backbone.conv1"].skip);
  // "backbone.conv" is not a component prefix of "backbone.conv1".
  r = resolveAll(policies(R"({"ignored_scopes": ["backbone.conv"]})"));
  EXPECT_FALSE(r["backbone.conv1"].skip);
  r = resolveAll(policies(R"({"ignored_scopes": ["backbone.conv2"]})"));
  EXPECT_TRUE(r["backbone.conv2"].skip);
  EXPECT_FALSE(r["backbone.conv1"].skip);
}

TEST(AlgoPolicy, BlacklistSkipsOpTypes) {
  auto r = resolveAll(policies(R"({"blacklist": ["Gemm", "MatMul"]})"));
  EXPECT_TRUE(r["head.fc"].skip);
  EXPECT_EQ(r["head.fc"].reason, "op 'Gemm' is blacklisted");
  EXPECT_TRUE(r["head.proj"].skip);
  EXPECT_FALSE(r["backbone.conv1"].skip);
}

TEST(AlgoPolicy, ExclusionsWinOverCustomSettings) {
  auto r = resolveAll(policies(
      R"({"ignored_scopes": ["head"], "layer_policies": {"head\\..*": {"bits": 4}}})"));
  EXPECT_TRUE(r["head.fc"].skip);
  EXPECT_EQ(r["head.fc"].reason, "ignored scope 'head'");
}

TEST(AlgoPolicy, AgreeingRegexesMerge) {
  auto r = resolveAll(policies(
      R"({"layer_policies": {"head\\..*": {"bits": 4}, ".*fc": {"bits": 4, "granularity": "per_tensor"}}})"));
  EXPECT_EQ(r["head.fc"].settings.getInt("bits"), 4);
  EXPECT_EQ(r["head.fc"].settings.getString("granularity"), "per_tensor");
  EXPECT_EQ(r["head.fc"].matched.size(), 2u);
  EXPECT_EQ(r["head.proj"].settings.getString("granularity"), "per_channel");
}

TEST(AlgoPolicy, ConflictNamesBothRegexesAndTheLayer) {
  auto p = policies(R"({"layer_policies": {"head\\..*": {"bits": 4}, ".*fc": {"bits": 6}}})");
  std::string m = algoErrorOf([&] { resolveAll(p); });
  EXPECT_EQ(m,
            "layer_policies conflict on layer 'head.fc': 'head\\..*' and '.*fc' both match it "
            "with different values for 'bits' (4 vs 6)");
  // policyFor reports the same conflict for that one node; other nodes resolve.
  auto g = test::smallNet(1);
  EXPECT_EQ(p.policyFor(*g->findNode("head.proj")).settings.getInt("bits"), 4);
  EXPECT_EQ(algoErrorOf([&] { p.policyFor(*g->findNode("head.fc")); }), m);
}

TEST(AlgoPolicy, SkipVersusSettingsIsAConflict) {
  std::string m = algoErrorOf([] {
    resolveAll(policies(R"({"layer_policies": {"head\\..*": {"bits": 4}, "head.proj": "skip"}})"));
  });
  EXPECT_EQ(m,
            "layer_policies conflict on layer 'head.proj': 'head\\..*' and 'head.proj' both "
            "match it with different settings (one says skip)");
}

TEST(AlgoPolicy, BadEntries) {
  EXPECT_EQ(algoErrorOf([] { policies(R"({"layer_policies": {"head.(": "skip"}})"); })
                .rfind("layer_policies 'head.(': invalid regex", 0),
            0u);
  EXPECT_EQ(algoErrorOf([] { policies(R"({"layer_policies": {"head.fc": {"seed": 1}}})"); }),
            "layer_policies 'head.fc': 'seed' is not a per-layer field (per-layer fields: bits, "
            "granularity)");
  EXPECT_EQ(algoErrorOf([] { policies(R"({"layer_policies": {"head.fc": {"bitz": 4}}})"); }),
            "layer_policies 'head.fc': 'bitz' is not a per-layer field (did you mean 'bits'?) "
            "(per-layer fields: bits, granularity)");
  EXPECT_EQ(algoErrorOf([] { policies(R"({"layer_policies": {"head.fc": {"bits": 12}}})"); }),
            "layer_policies 'head.fc': key 'bits': value 12 out of range (must be in [2, 8])");
  EXPECT_EQ(algoErrorOf([] { policies(R"({"layer_policies": {"head.fc": "skp"}})"); }),
            "layer_policies 'head.fc': expected \"skip\" or an object of per-layer fields, got "
            "\"skp\"");
}

TEST(AlgoPolicy, SkipAsObjectKey) {
  auto r = resolveAll(policies(R"({"layer_policies": {"head.fc": {"skip": true}}})"));
  EXPECT_TRUE(r["head.fc"].skip);
  EXPECT_FALSE(r["head.proj"].skip);
}

}  // namespace
}  // namespace gs
