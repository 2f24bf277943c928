// ONNX Runtime parity: gstick's Executor vs ORT on C++-built models exported to ONNX and on the
// torch-exported fixtures in tests/data/models.
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/npy.h"
#include "io/onnx.h"
#include "ir/builder.h"
#include "model_zoo.h"
#include "ort_runner.h"
#include "runtime/executor.h"
#include "test_util.h"

namespace gs {
namespace {

namespace fs = std::filesystem;
constexpr double kTol = 1e-4;

/// Fails the current test (never skips) when ONNX Runtime is not installed.
#define REQUIRE_ORT()                                                      \
  do {                                                                     \
    std::string why_ = ort::ortMissingReason();                            \
    ASSERT_TRUE(why_.empty()) << why_ << " (run scripts/install-deps.sh)"; \
  } while (0)

/// Seeded inputs for every graph input: floats N(0,1), ints in [0,10), symbolic dims = `batch`.
std::map<std::string, at::Tensor> seededInputs(const Graph& g, int64_t batch, uint64_t seed) {
  std::map<std::string, at::Tensor> m;
  uint64_t k = 0;
  for (const Value* v : g.inputs()) {
    std::vector<int64_t> shape;
    for (const Dim& d : *v->shape()) shape.push_back(d.isStatic() ? d.value : batch);
    at::Tensor t = test::randn(shape, seed + k++);
    if (v->dtype() == DType::Int64) t = t.abs().mul(3).to(at::kLong);
    m[v->name()] = t.to(toScalarType(v->dtype()));
  }
  return m;
}

/// Runs `g` in gstick and `onnx_path` in ORT on the same inputs; expects every output within kTol.
void expectParity(const Graph& g, const std::string& onnx_path, int64_t batch,
                  const std::string& tag) {
  auto inputs = seededInputs(g, batch, 42);
  Executor ex(g);
  auto ours = ex.runNamed(inputs);
  auto theirs = ort::runOrt(onnx_path, inputs, test::tempDir("ort_" + tag));
  ASSERT_EQ(ours.size(), theirs.outputs.size()) << tag;
  for (const auto& [name, t] : ours) {
    ASSERT_TRUE(theirs.outputs.count(name)) << tag << ": ORT did not produce output " << name;
    const at::Tensor& r = theirs.outputs.at(name);
    ASSERT_EQ(t.sizes(), r.sizes()) << tag << " output " << name;
    ASSERT_EQ(t.scalar_type(), r.scalar_type()) << tag << " output " << name;
    double d = test::maxRelDiff(t, r);
    EXPECT_LE(d, kTol) << tag << " output " << name;
    EXPECT_GT(r.abs().max().item<double>(), 0.0) << tag << ": degenerate all-zero output";
  }
}

// ---------------------------------------------------------------- models written with GraphBuilder

/// CNN from GraphBuilder's layer helpers: conv-bn-relu blocks in scopes, pooling, linear.
std::unique_ptr<Graph> builderCnn() {
  auto g = std::make_unique<Graph>();
  GraphBuilder b(*g);
  Value* x = b.input("x", DType::Float32, std::vector<Dim>{Dim("N"), 3, 16, 16});
  {
    auto s = b.scope("block1");
    x = b.convBnRelu(x, 3, 8, 3, 1, 1, /*bn=*/true, /*relu=*/true, 11, "conv");
    x = b.maxPool(x, 2, 2, 0, "pool");
  }
  {
    auto s = b.scope("block2");
    x = b.convBnRelu(x, 8, 16, 3, 2, 1, /*bn=*/true, /*relu=*/true, 12, "conv");
  }
  x = b.flatten(b.globalAvgPool(x));
  b.output(b.linear(x, 16, 5, 13, "fc"));
  return g;
}

/// Two-head self-attention with LayerNormalization, MatMul, Softmax, Reshape and Transpose.
std::unique_ptr<Graph> builderAttention() {
  const int64_t t = 8, d = 16, h = 2, dh = d / h;
  auto g = std::make_unique<Graph>();
  GraphBuilder b(*g);
  Value* x = b.input("x", DType::Float32, std::vector<Dim>{Dim("N"), t, d});
  Value* ln = b.op1("LayerNormalization",
                    {x, b.param("ln.weight", test::randn({d}, 21) * 0.1 + 1),
                     b.param("ln.bias", test::randn({d}, 22) * 0.1)},
                    {{"axis", int64_t{-1}}, {"epsilon", 1e-5f}}, "ln");
  auto proj = [&](const std::string& n, uint64_t seed) {
    return b.matmul(ln, b.param(n + ".weight", test::randn({d, d}, seed) * 0.25), n);
  };
  auto heads = [&](Value* v, const std::string& n, std::vector<int64_t> perm) {
    return b.transpose(b.reshape(v, {0, t, h, dh}, n + ".split"), perm, n + ".heads");
  };
  Value* q = heads(proj("q", 23), "q", {0, 2, 1, 3});
  Value* k = heads(proj("k", 24), "k", {0, 2, 3, 1});
  Value* v = heads(proj("v", 25), "v", {0, 2, 1, 3});
  Value* scale = b.constant("scale", at::full({}, 1.0 / std::sqrt(double(dh)), at::kFloat));
  Value* att = b.softmax(b.mul(b.matmul(q, k, "scores"), scale, "scaled"), -1, "softmax");
  Value* y = b.transpose(b.matmul(att, v, "context"), {0, 2, 1, 3}, "merge");
  y = b.reshape(y, {0, t, d}, "merge.reshape");
  b.output(
      b.add(x, b.matmul(y, b.param("o.weight", test::randn({d, d}, 26) * 0.25), "o"), "residual"));
  return g;
}

TEST(BuilderParity, CnnMatchesOrt) {
  REQUIRE_ORT();
  auto g = builderCnn();
  std::string path = test::tempDir("builder_cnn") + "/model.onnx";
  exportOnnxFile(*g, path);
  expectParity(*g, path, 3, "builder_cnn");
}

TEST(BuilderParity, AttentionMatchesOrt) {
  REQUIRE_ORT();
  auto g = builderAttention();
  std::string path = test::tempDir("builder_attention") + "/model.onnx";
  exportOnnxFile(*g, path);
  expectParity(*g, path, 2, "builder_attention");
}

// ---------------------------------------------------------------- C++-built models via exporter

struct ZooCase {
  const char* name;
  std::unique_ptr<Graph> (*make)();
  int64_t batch;
  friend void PrintTo(const ZooCase& c, std::ostream* os) { *os << c.name; }
};

class ZooParity : public ::testing::TestWithParam<ZooCase> {};

TEST_P(ZooParity, ExecutorMatchesOrt) {
  REQUIRE_ORT();
  const ZooCase& c = GetParam();
  auto g = c.make();
  std::string path = test::tempDir(std::string("zoo_") + c.name) + "/model.onnx";
  exportOnnxFile(*g, path);
  expectParity(*g, path, c.batch, c.name);
  // The re-imported export must run identically to the original graph.
  auto back = importOnnxFile(path);
  auto inputs = seededInputs(*g, c.batch, 7);
  auto a = Executor(*g).runNamed(inputs);
  auto b = Executor(*back).runNamed(inputs);
  for (const auto& [name, t] : a) EXPECT_LE(test::maxRelDiff(b.at(name), t), 1e-6) << name;
}

INSTANTIATE_TEST_SUITE_P(Built, ZooParity,
                         ::testing::Values(ZooCase{"demo_cnn", [] { return zoo::demoCnn(); }, 3},
                                           ZooCase{"lenet5", [] { return zoo::lenet5(); }, 2},
                                           ZooCase{"resnet20", [] { return zoo::resnet20(); }, 2},
                                           ZooCase{"transformer",
                                                   [] { return zoo::transformerBlock(); }, 2}),
                         [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------- torch-exported fixtures

std::vector<std::string> fixtureModels() {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(std::string(GS_TEST_DIR) + "/data/models"))
    if (e.path().extension() == ".onnx") v.push_back(e.path().stem().string());
  std::sort(v.begin(), v.end());
  return v;
}

std::string fixturePath(const std::string& stem) {
  return std::string(GS_TEST_DIR) + "/data/models/" + stem + ".onnx";
}

class FixtureParity : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureParity, ExecutorMatchesOrt) {
  REQUIRE_ORT();
  std::string path = fixturePath(GetParam());
  auto g = importOnnxFile(path);
  expectParity(*g, path, 2, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureParity, ::testing::ValuesIn(fixtureModels()),
                         [](const auto& info) { return info.param; });

TEST(FixtureSet, AllExpectedFixturesPresent) {
  // gen_models.py writes these; a missing one means the fixture set was not regenerated/committed.
  auto v = fixtureModels();
  for (const char* n : {"resnet_bn_op9", "resnet_bn_op13", "mobilenet_block_op9",
                        "mobilenet_block_op11", "transformer_block_op12", "transformer_block_op14",
                        "transformer_block_op17", "unet_block_op9", "unet_block_op11"})
    EXPECT_NE(std::find(v.begin(), v.end(), n), v.end()) << n;
}

// ---------------------------------------------------------------- the ORT runner itself

TEST(OrtRunner, NpyRoundTripsEveryDtype) {
  // Identity per dtype: ort_run.js must read gstick's .npy and write back bit-identical tensors.
  REQUIRE_ORT();
  Graph g;
  std::map<std::string, at::Tensor> inputs;
  const std::pair<DType, at::ScalarType> types[] = {
      {DType::Float32, at::kFloat}, {DType::Float64, at::kDouble}, {DType::Int64, at::kLong},
      {DType::Int32, at::kInt},     {DType::Int8, at::kChar},      {DType::UInt8, at::kByte},
      {DType::Bool, at::kBool}};
  for (const auto& [dt, st] : types) {
    std::string name = "in_" + std::string(dtypeName(dt));
    at::Tensor t = (test::randn({2, 3}, 9) * 50).to(st);
    inputs[name] = t;
    Value* x = g.addInput(name, dt, std::vector<Dim>{2, 3});
    Value* y = g.addNode("Identity", {x}, 1, "id_" + std::string(dtypeName(dt)))->output(0);
    y->setDType(dt);
    y->setShape(std::vector<Dim>{2, 3});
    g.addOutput(y);
  }
  std::string dir = test::tempDir("ort_dtypes");
  exportOnnxFile(g, dir + "/id.onnx");
  auto r = ort::runOrt(dir + "/id.onnx", inputs, dir);
  ASSERT_EQ(r.outputs.size(), inputs.size());
  for (const Value* out : g.outputs()) {
    const at::Tensor& in = inputs.at(out->producer()->input(0)->name());
    const at::Tensor& got = r.outputs.at(out->name());
    EXPECT_EQ(got.scalar_type(), in.scalar_type()) << out->name();
    EXPECT_TRUE(at::equal(got, in)) << out->name();
  }
}

TEST(OrtRunner, MissingInstallIsAnErrorNamingInstallScript) {
  // A missing ORT must fail tests loudly, never skip: the reason names scripts/install-deps.sh.
  const char* old = std::getenv("GS_ORT_DIR");
  std::string saved = old ? old : "";
  std::string empty = test::tempDir("no_ort");
  std::filesystem::copy_file(ort::ortDir() + "/ort_run.js", empty + "/ort_run.js");
  setenv("GS_ORT_DIR", empty.c_str(), 1);
  std::string why = ort::ortMissingReason();
  std::string thrown;
  try {
    ort::runOrt(empty + "/m.onnx", {}, empty);
  } catch (const Error& e) {
    thrown = e.what();
  }
  if (old)
    setenv("GS_ORT_DIR", saved.c_str(), 1);
  else
    unsetenv("GS_ORT_DIR");
  EXPECT_NE(why.find("scripts/install-deps.sh"), std::string::npos) << why;
  EXPECT_EQ(thrown, why);
}

}  // namespace
}  // namespace gs
