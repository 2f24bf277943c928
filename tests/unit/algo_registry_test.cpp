// Registry: lookup, schemas with base fields, creation, and the identity algorithm end to end.
#include "algo/registry.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "algo/registry_docs.h"
#include "algo_test_util.h"
#include "runtime/executor.h"

namespace gs {
namespace {

using test::algoErrorOf;

TEST(AlgoRegistry, ListsAlgorithmsSortedByName) {
  std::vector<std::string> names;
  for (auto* i : AlgoRegistry::global().all()) names.push_back(i->name);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_NE(std::find(names.begin(), names.end(), "identity"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "magnitude_prune"), names.end());
}

TEST(AlgoRegistry, UnknownAlgorithmSuggests) {
  std::string m = algoErrorOf([] { AlgoRegistry::global().get("magnitude_prun"); });
  EXPECT_EQ(m.rfind("unknown algorithm 'magnitude_prun' (did you mean 'magnitude_prune'?); known: ",
                    0),
            0u)
      << m;
}

TEST(AlgoRegistry, SchemaStartsWithBaseFields) {
  ConfigSchema s = AlgoRegistry::global().schemaOf("magnitude_prune");
  ConfigSchema base = baseConfigFields();
  ASSERT_GT(s.size(), base.size());
  for (size_t i = 0; i < base.size(); ++i) EXPECT_EQ(s[i].name, base[i].name);
  EXPECT_EQ(base[0].name, "export_path");
  EXPECT_EQ(base[1].name, "ignored_scopes");
  EXPECT_EQ(base[2].name, "blacklist");
  EXPECT_EQ(base[3].name, "layer_policies");
  EXPECT_TRUE(findField(s, "sparsity")->perLayer);
}

TEST(AlgoRegistry, ValidateNamesAlgorithmInErrors) {
  EXPECT_EQ(algoErrorOf([] {
              AlgoRegistry::global().validate("magnitude_prune", Json::parse(R"({"sparsty": 0.5})"));
            }),
            "magnitude_prune config: unknown key 'sparsty' (did you mean 'sparsity'?)");
  EXPECT_EQ(algoErrorOf([] {
              AlgoRegistry::global().validate(
                  "identity", Json::parse(R"({"layer_policies": {"fc": {"bits": 4}}})"));
            }),
            "identity config: layer_policies 'fc': 'bits' is not a per-layer field (this "
            "algorithm has none; use \"skip\")");
}

TEST(AlgoRegistry, LocalRegistryRejectsDuplicatesAndShadowing) {
  AlgoRegistry r;
  registerIdentityAlgo(r);
  EXPECT_THROW(registerIdentityAlgo(r), Error);
  AlgoInfo bad{"bad", "shadows a base field", {FieldSpec::string("export_path", "", "")},
               [](const Config&, const ConfigSchema&) -> std::unique_ptr<CompAlgo> { return {}; },
               {}};
  EXPECT_THROW(r.add(bad), Error);
}

TEST(AlgoIdentity, GraphUnchangedAndSummaryListsLayers) {
  auto g = test::smallNet(3);
  at::Tensor x = test::randn({2, 1, 8, 8}, 4);
  at::Tensor before = Executor(*g).run({x})[0];
  auto algo = AlgoRegistry::global().create("identity",
                                            Json::parse(R"({"ignored_scopes": ["head.proj"]})"));
  EXPECT_EQ(algo->name(), "identity");
  EXPECT_FALSE(algo->needsTraining());
  EXPECT_TRUE(algo->callbacks().empty());
  Graph applied = algo->apply(std::move(*g));
  Graph out = algo->convert(std::move(applied));
  EXPECT_TRUE(at::equal(Executor(out).run({x})[0], before));

  SummaryTable t = algo->summary(out);
  ASSERT_EQ(t.rows.size(), 4u);
  // conv1: W 4x1x3x3 + b 4; conv2: 4x4x3x3 + 4; fc: 10x64 + 10; proj: 10x10.
  const int64_t params[] = {40, 148, 650, 100};
  const char* names[] = {"backbone.conv1", "backbone.conv2", "head.fc", "head.proj"};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(t.rows[i].layer, names[i]);
    EXPECT_EQ(t.rows[i].paramsBefore, params[i]);
    EXPECT_EQ(t.rows[i].paramsAfter, params[i]);
    EXPECT_EQ(t.rows[i].bytesBefore, 4 * params[i]);
    EXPECT_EQ(t.rows[i].bytesAfter, 4 * params[i]);
  }
  EXPECT_EQ(t.rows[0].policy, "default");
  EXPECT_EQ(t.rows[3].policy, "skip");
  EXPECT_EQ(t.rows[3].note, "ignored scope 'head.proj'");
  EXPECT_EQ(t.total().paramsBefore, 938);
}

TEST(AlgoRegistryDocs, MarkdownHasEveryAlgorithmAndField) {
  std::string md = registryMarkdown(AlgoRegistry::global());
  EXPECT_EQ(md.rfind(kRegistryDocBegin, 0), 0u);
  for (auto* i : AlgoRegistry::global().all()) {
    EXPECT_NE(md.find("### `" + i->name + "`"), std::string::npos) << i->name;
    for (auto& f : i->fields) EXPECT_NE(md.find("| `" + f.name + "` |"), std::string::npos);
  }
  EXPECT_NE(md.find("| `sparsity` | float in [0, 0.999] | `0.5` | yes |"), std::string::npos) << md;
}

TEST(AlgoRegistryDocs, FieldsText) {
  std::string t = algoFieldsText(AlgoRegistry::global(), "magnitude_prune");
  EXPECT_NE(t.find("sparsity         float in [0, 0.999]"), std::string::npos) << t;
  EXPECT_NE(t.find("scope            enum {layer, global}"), std::string::npos) << t;
}

}  // namespace
}  // namespace gs
