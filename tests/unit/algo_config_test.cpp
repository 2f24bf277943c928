// Config schema validation: one case per error kind, defaults, printing, --set overrides.
#include "algo/config.h"

#include <gtest/gtest.h>

#include "algo/registry.h"
#include "algo_test_util.h"
#include "support/file_util.h"
#include "test_util.h"

namespace gs {
namespace {

using test::algoErrorOf;

ConfigSchema schema() {
  return {
      FieldSpec::boolean("symmetric", true, "symmetric range"),
      FieldSpec::integer("bits", 8, 2, 8, "weight bits"),
      FieldSpec::real("ratio", 0.5, 0.0, 1.0, "a fraction"),
      FieldSpec::string("tag", "", "free text"),
      FieldSpec::enumeration("granularity", "per_channel", {"per_tensor", "per_channel"}, "g"),
      FieldSpec::list("skip", FieldType::String, Json::array(), "names"),
      FieldSpec::object("act", {FieldSpec::integer("bits", 8, 2, 16, "activation bits")}, "acts"),
  };
}

TEST(AlgoConfig, DefaultsFilledInSchemaOrder) {
  Config c = validateConfig(schema(), Json::parse(R"({"bits": 4})"));
  EXPECT_EQ(c.getInt("bits"), 4);
  EXPECT_TRUE(c.getBool("symmetric"));
  EXPECT_DOUBLE_EQ(c.getFloat("ratio"), 0.5);
  EXPECT_EQ(c.getString("granularity"), "per_channel");
  EXPECT_EQ(c.get("act").at("bits").get<int64_t>(), 8);
  // Printed back in schema order with every default present.
  EXPECT_EQ(c.json().dump(),
            R"({"symmetric":true,"bits":4,"ratio":0.5,"tag":"","granularity":"per_channel",)"
            R"("skip":[],"act":{"bits":8}})");
  // The printed config validates to itself.
  EXPECT_EQ(validateConfig(schema(), Json::parse(c.dump())), c);
}

TEST(AlgoConfig, IntAcceptedForFloatAndStoredAsDouble) {
  Config c = validateConfig(schema(), Json::parse(R"({"ratio": 1})"));
  EXPECT_TRUE(c.get("ratio").is_number_float());
  EXPECT_DOUBLE_EQ(c.getFloat("ratio"), 1.0);
}

TEST(AlgoConfig, UnknownKeySuggestsClosest) {
  std::string m = algoErrorOf([] { validateConfig(schema(), Json::parse(R"({"bitz": 4})"), "q"); });
  EXPECT_EQ(m, "q: unknown key 'bitz' (did you mean 'bits'?)");
}

TEST(AlgoConfig, UnknownNestedKeyNamesPath) {
  std::string m = algoErrorOf(
      [] { validateConfig(schema(), Json::parse(R"({"act": {"bitss": 4}})"), "q"); });
  EXPECT_EQ(m, "q: unknown key 'act.bitss' (did you mean 'bits'?)");
}

TEST(AlgoConfig, UnknownKeyWithoutCloseMatchListsKnownKeys) {
  std::string m = algoErrorOf([] { validateConfig(schema(), Json::parse(R"({"zzzzzz": 1})"), "q"); });
  EXPECT_NE(m.find("unknown key 'zzzzzz' (known keys: symmetric, bits, ratio"), std::string::npos)
      << m;
}

TEST(AlgoConfig, WrongType) {
  std::string m = algoErrorOf([] { validateConfig(schema(), Json::parse(R"({"bits": "8"})"), "q"); });
  EXPECT_EQ(m, "q: key 'bits': wrong type: expected int, got string \"8\"");
  m = algoErrorOf([] { validateConfig(schema(), Json::parse(R"({"bits": 4.5})"), "q"); });
  EXPECT_EQ(m, "q: key 'bits': wrong type: expected int, got float 4.5");
  m = algoErrorOf([] { validateConfig(schema(), Json::parse(R"({"skip": ["a", 3]})"), "q"); });
  EXPECT_EQ(m, "q: key 'skip[1]': wrong type: expected string, got int 3");
  m = algoErrorOf([] { validateConfig(schema(), Json::parse(R"([1])"), "q"); });
  EXPECT_EQ(m, "q: config: wrong type: expected object, got list");
}

TEST(AlgoConfig, OutOfRange) {
  std::string m = algoErrorOf([] { validateConfig(schema(), Json::parse(R"({"bits": 9})"), "q"); });
  EXPECT_EQ(m, "q: key 'bits': value 9 out of range (must be in [2, 8])");
  m = algoErrorOf([] { validateConfig(schema(), Json::parse(R"({"ratio": -0.25})"), "q"); });
  EXPECT_EQ(m, "q: key 'ratio': value -0.25 out of range (must be in [0, 1])");
  m = algoErrorOf([] { validateConfig(schema(), Json::parse(R"({"act": {"bits": 1}})"), "q"); });
  EXPECT_EQ(m, "q: key 'act.bits': value 1 out of range (must be in [2, 16])");
}

TEST(AlgoConfig, BadEnumValue) {
  std::string m = algoErrorOf(
      [] { validateConfig(schema(), Json::parse(R"({"granularity": "per_chanel"})"), "q"); });
  EXPECT_EQ(m,
            "q: key 'granularity': bad value 'per_chanel' (expected one of per_tensor, "
            "per_channel; did you mean 'per_channel'?)");
}

// An enum with "true" / "false" among its choices takes JSON booleans (as --set key=false gives);
// other enums do not.
TEST(AlgoConfig, TriStateEnumTakesBooleans) {
  const ConfigSchema s{
      FieldSpec::enumeration("clip", "auto", {"auto", "true", "false"}, "c"),
      FieldSpec::enumeration("granularity", "per_channel", {"per_tensor", "per_channel"}, "g")};
  Json user = Json::object();
  applySetOverride(user, "clip=false");
  EXPECT_EQ(validateConfig(s, user).getString("clip"), "false");
  EXPECT_EQ(validateConfig(s, Json::parse(R"({"clip": true})")).getString("clip"), "true");
  EXPECT_EQ(validateConfig(s, Json::object()).getString("clip"), "auto");
  EXPECT_EQ(algoErrorOf([&] { validateConfig(s, Json::parse(R"({"granularity": true})"), "q"); }),
            "q: key 'granularity': wrong type: expected string (enum), got bool true");
}

TEST(AlgoConfig, IncompatibleCombinationFromCrossCheck) {
  ConfigCheck check = [](const Config& c) {
    GS_CHECK(!(c.getBool("symmetric") && c.getInt("bits") < 4),
             "key 'symmetric' = true needs 'bits' >= 4");
  };
  EXPECT_NO_THROW(validateConfig(schema(), Json::parse(R"({"bits": 2, "symmetric": false})"), "q",
                                 check));
  std::string m = algoErrorOf(
      [&] { validateConfig(schema(), Json::parse(R"({"bits": 2})"), "q", check); });
  EXPECT_EQ(m, "q: key 'symmetric' = true needs 'bits' >= 4");
}

TEST(AlgoConfig, RegisteredCrossCheckOfMagnitudePrune) {
  // scope=global with a per-layer sparsity is the registered incompatible combination.
  std::string m = algoErrorOf([] {
    AlgoRegistry::global().validate(
        "magnitude_prune",
        Json::parse(R"({"scope": "global", "layer_policies": {"fc.*": {"sparsity": 0.9}}})"));
  });
  EXPECT_EQ(m,
            "magnitude_prune config: key 'scope' = \"global\" is incompatible with a per-layer "
            "'sparsity' in layer_policies 'fc.*' (use scope \"layer\")");
}

TEST(AlgoConfig, SetOverrides) {
  Json j = Json::parse(R"({"bits": 8, "act": {"bits": 8}})");
  applySetOverride(j, "bits=4");
  applySetOverride(j, "act.bits=6");
  applySetOverride(j, "granularity=per_tensor");  // bare word -> string
  applySetOverride(j, "skip=[\"a\",\"b\"]");
  applySetOverride(j, "tag=\"8\"");  // quoted -> string
  applySetOverride(j, "ratio=0.25");
  Config c = validateConfig(schema(), j);
  EXPECT_EQ(c.getInt("bits"), 4);
  EXPECT_EQ(c.get("act").at("bits").get<int64_t>(), 6);
  EXPECT_EQ(c.getString("granularity"), "per_tensor");
  EXPECT_EQ(c.getStrings("skip"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.getString("tag"), "8");
  EXPECT_DOUBLE_EQ(c.getFloat("ratio"), 0.25);
  EXPECT_EQ(algoErrorOf([&] { applySetOverride(j, "bits"); }),
            "--set 'bits': expected key=value (e.g. --set sparsity=0.5)");
  EXPECT_EQ(algoErrorOf([&] { applySetOverride(j, "a..b=1"); }), "--set 'a..b=1': empty key component");
}

TEST(AlgoConfig, ConfigFileSyntaxErrorNamesFile) {
  std::string path = test::tempDir("algo_config") + "/bad.json";
  writeFileAtomic(path, "{\"bits\": 4,\n  \"ratio\": }\n");
  std::string m = algoErrorOf([&] { readConfigFile(path); });
  EXPECT_EQ(m.rfind(path + ": invalid JSON: parse error at line 2", 0), 0u) << m;
}

TEST(AlgoConfig, TypeTextForDocs) {
  auto s = schema();
  EXPECT_EQ(s[1].typeText(), "int in [2, 8]");
  EXPECT_EQ(s[4].typeText(), "enum {per_tensor, per_channel}");
  EXPECT_EQ(s[5].typeText(), "list of string");
  EXPECT_EQ(FieldSpec::integer("n", 1, 1, std::nullopt, "").typeText(), "int >= 1");
}

TEST(AlgoConfig, DidYouMean) {
  EXPECT_EQ(didYouMean("sparsty", {"sparsity", "scope"}), "sparsity");
  EXPECT_EQ(didYouMean("xyz", {"sparsity", "scope"}), "");
  EXPECT_EQ(didYouMean("magnitude", {"identity", "magnitude_prune"}), "magnitude_prune");
  EXPECT_EQ(didYouMean("SCOPE", {"sparsity", "scope"}), "scope");
}

}  // namespace
}  // namespace gs
