// ONNX Runtime parity: gstick's Executor vs ORT on C++-built models exported to ONNX and on the
// torch-exported fixtures in tests/data/models; plus end-to-end tests of the `gstick` binary.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/wait.h>

#include "io/npy.h"
#include "io/onnx.h"
#include "model_zoo.h"
#include "ort_runner.h"
#include "runtime/executor.h"
#include "support/file_util.h"
#include "test_util.h"

namespace gs {
namespace {

namespace fs = std::filesystem;
constexpr double kTol = 1e-4;

/// Fails the current test (never skips) when ONNX Runtime is not installed.
#define REQUIRE_ORT()                                               \
  do {                                                              \
    std::string why_ = ort::ortMissingReason();                     \
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
void expectParity(const Graph& g, const std::string& onnx_path, int64_t batch, const std::string& tag) {
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

INSTANTIATE_TEST_SUITE_P(
    Built, ZooParity,
    ::testing::Values(ZooCase{"demo_cnn", [] { return zoo::demoCnn(); }, 3},
                      ZooCase{"lenet5", [] { return zoo::lenet5(); }, 2},
                      ZooCase{"resnet20", [] { return zoo::resnet20(); }, 2},
                      ZooCase{"transformer", [] { return zoo::transformerBlock(); }, 2}),
    [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------- torch-exported fixtures

std::vector<std::string> fixtureModels() {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(std::string(GS_TEST_DIR) + "/data/models"))
    if (e.path().extension() == ".onnx") v.push_back(e.path().stem().string());
  std::sort(v.begin(), v.end());
  return v;
}

std::string fixturePath(const std::string& stem) { return std::string(GS_TEST_DIR) + "/data/models/" + stem + ".onnx"; }

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
  for (const char* n : {"resnet_bn_op9", "resnet_bn_op13", "mobilenet_block_op11", "transformer_block_op14",
                        "transformer_block_op17", "unet_block_op11"})
    EXPECT_NE(std::find(v.begin(), v.end(), n), v.end()) << n;
}

// ---------------------------------------------------------------- the gstick binary

struct CmdResult {
  int code = -1;
  std::string out, err;
};

/// Runs `gstick <args>` capturing exit code, stdout and stderr.
CmdResult gstick(const std::string& args) {
  std::string dir = test::tempDir("cli");
  std::string cmd = std::string("'") + GS_CLI_PATH + "' " + args + " >" + dir + "/out 2>" + dir + "/err";
  int st = std::system(cmd.c_str());
  CmdResult r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = readFile(dir + "/out");
  r.err = readFile(dir + "/err");
  return r;
}

/// The documented error contract: exactly one stderr line "gstick: error: ...".
void expectOneErrorLine(const CmdResult& r, int code, const std::string& needle) {
  EXPECT_EQ(r.code, code) << r.err;
  EXPECT_EQ(r.err.rfind("gstick: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
}

TEST(Cli, RunWritesExecutorOutputs) {
  std::string model = fixturePath("resnet_bn_op13");
  std::string dir = test::tempDir("cli_run");
  at::Tensor x = test::randn({3, 1, 28, 28}, 5);
  writeNpy(dir + "/x.npy", x);
  auto r = gstick("run '" + model + "' --input input=" + dir + "/x.npy -o " + dir + "/out --repeat 3");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  auto g = importOnnxFile(model);
  auto expected = Executor(*g).run({x});
  at::Tensor got = readNpy(dir + "/out/output.npy");
  ASSERT_EQ(got.sizes(), expected[0].sizes());
  EXPECT_LE(test::maxRelDiff(got, expected[0]), 1e-6);
  EXPECT_NE(r.out.find("output"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("f32[3,10]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("latency: median"), std::string::npos) << r.out;
}

TEST(Cli, RunSeededInputsAreDeterministic) {
  std::string model = fixturePath("transformer_block_op17");
  std::string d1 = test::tempDir("cli_seed1"), d2 = test::tempDir("cli_seed2"), d3 = test::tempDir("cli_seed3");
  ASSERT_EQ(gstick("run '" + model + "' --seed 3 -o " + d1).code, 0);
  ASSERT_EQ(gstick("run '" + model + "' --seed 3 -o " + d2).code, 0);
  ASSERT_EQ(gstick("run '" + model + "' --seed 4 -o " + d3).code, 0);
  at::Tensor a = readNpy(d1 + "/output.npy"), b = readNpy(d2 + "/output.npy"), c = readNpy(d3 + "/output.npy");
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_FALSE(at::equal(a, c));
}

/// Parameter count straight from the ONNX protobuf: initializers + Constant-node tensors.
int64_t onnxParamCount(const std::string& path) {
  onnx::ModelProto m;
  std::string bytes = readFile(path);
  EXPECT_TRUE(m.ParseFromString(bytes));
  auto numel = [](const onnx::TensorProto& t) {
    int64_t n = 1;
    for (int64_t d : t.dims()) n *= d;
    return n;
  };
  int64_t n = 0;
  for (const auto& t : m.graph().initializer()) n += numel(t);
  for (const auto& node : m.graph().node())
    if (node.op_type() == "Constant")
      for (const auto& a : node.attribute())
        if (a.name() == "value") n += numel(a.t());
  return n;
}

TEST(Cli, InfoReportsParameterCountAndOps) {
  std::string model = fixturePath("resnet_bn_op13");
  auto r = gstick("info --json '" + model + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["parameters"]["count"].get<int64_t>(), onnxParamCount(model));
  EXPECT_EQ(j["inputs"][0]["name"], "input");
  EXPECT_EQ(j["inputs"][0]["shape"], nlohmann::json::parse(R"(["N",1,28,28])"));
  EXPECT_GE(j["ops"]["Conv"].get<int>(), 6);
  EXPECT_EQ(j["ops"]["Gemm"].get<int>(), 1);
  // Text mode prints the same count with separators.
  auto t = gstick("info '" + model + "'");
  ASSERT_EQ(t.code, 0) << t.err;
  std::string count = std::to_string(onnxParamCount(model));
  std::string commas = count.size() > 3 ? count.substr(0, count.size() - 3) + "," + count.substr(count.size() - 3) : count;
  EXPECT_NE(t.out.find("parameters: " + commas), std::string::npos) << t.out;
}

TEST(Cli, InfoMacsMatchClosedForm) {
  // demo CNN at batch 2: conv1 8x28x28 outputs x (1*3*3); conv2 16x14x14 x (8*3*3); fc 10 x 16.
  auto g = zoo::demoCnn();
  std::string path = test::tempDir("cli_macs") + "/cnn.onnx";
  exportOnnxFile(*g, path);
  auto r = gstick("info --json --batch 2 '" + path + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  int64_t conv = 2 * (8 * 28 * 28 * 9 + 16 * 14 * 14 * 72), gemm = 2 * 10 * 16;
  EXPECT_EQ(j["macs"]["by_op"]["Conv"].get<int64_t>(), conv);
  EXPECT_EQ(j["macs"]["by_op"]["Gemm"].get<int64_t>(), gemm);
  EXPECT_EQ(j["macs"]["total"].get<int64_t>(), conv + gemm);
  int64_t params = 0;
  for (const Value* p : g->params()) params += p->data().numel();
  EXPECT_EQ(j["parameters"]["count"].get<int64_t>(), params);
}

TEST(Cli, InfoMacsForTransformerMatmuls) {
  // transformer block (T=16, d=64, 4 heads) at batch 1: q,k,v,out projections 4*T*d*d,
  // scores + context 2*T*T*d, MLP 2*T*d*4d.
  auto g = zoo::transformerBlock();
  std::string path = test::tempDir("cli_macs_t") + "/t.onnx";
  exportOnnxFile(*g, path);
  auto r = gstick("info --json '" + path + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  int64_t T = 16, d = 64;
  EXPECT_EQ(j["macs"]["by_op"]["MatMul"].get<int64_t>(), 4 * T * d * d + 2 * T * T * d + 2 * T * d * 4 * d);
}

TEST(Cli, ErrorsAreOneLineWithExitCode) {
  std::string dir = test::tempDir("cli_err");
  expectOneErrorLine(gstick("run " + dir + "/nope.onnx"), 1, "nope.onnx");
  expectOneErrorLine(gstick("info " + dir + "/nope.onnx"), 1, "no such file");

  std::string bytes = readFile(fixturePath("resnet_bn_op13"));
  writeFileAtomic(dir + "/trunc.onnx", bytes.substr(0, bytes.size() / 2));
  expectOneErrorLine(gstick("run " + dir + "/trunc.onnx"), 1, "trunc.onnx");

  writeNpy(dir + "/bad.npy", test::randn({1, 3, 28, 28}, 1));
  expectOneErrorLine(gstick("run '" + fixturePath("resnet_bn_op13") + "' --input input=" + dir + "/bad.npy"), 1,
                     "input 'input'");
  writeNpy(dir + "/dbl.npy", test::randn({1, 1, 28, 28}, 1).to(at::kDouble));
  expectOneErrorLine(gstick("run '" + fixturePath("resnet_bn_op13") + "' --input input=" + dir + "/dbl.npy"), 1,
                     "f64");
  expectOneErrorLine(gstick("run '" + fixturePath("resnet_bn_op13") + "' --input nosuch=" + dir + "/bad.npy"), 1,
                     "'nosuch' is not an input");
  expectOneErrorLine(gstick("run '" + fixturePath("resnet_bn_op13") + "' -o /proc/gstick_out"), 1, "/proc/gstick_out");

  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{4});
  Value* y = g.addNode("FooBar", {x}, 1, "weird")->output(0);
  y->setDType(DType::Float32);
  y->setShape(std::vector<Dim>{4});
  g.addOutput(y);
  exportOnnxFile(g, dir + "/unknown_op.onnx", {.check = false});
  expectOneErrorLine(gstick("run " + dir + "/unknown_op.onnx"), 1, "FooBar");

  // Usage errors exit 2.
  expectOneErrorLine(gstick("run"), 2, "model");
  expectOneErrorLine(gstick("run '" + fixturePath("resnet_bn_op13") + "' --bogus"), 2, "--bogus");
  expectOneErrorLine(gstick("run '" + fixturePath("resnet_bn_op13") + "' --repeat 0"), 2, "repeat");
}

TEST(Cli, VersionAndHelp) {
  auto v = gstick("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find(std::string("gstick ") + GS_VERSION), std::string::npos) << v.out;
  auto h = gstick("run --help");
  EXPECT_EQ(h.code, 0);
  for (const char* opt : {"--input", "--output-dir", "--repeat", "--seed", "--batch", "--threads"})
    EXPECT_NE(h.out.find(opt), std::string::npos) << opt << " missing from:\n" << h.out;
  auto i = gstick("info --help");
  EXPECT_EQ(i.code, 0);
  EXPECT_NE(i.out.find("--json"), std::string::npos) << i.out;
}

}  // namespace
}  // namespace gs
