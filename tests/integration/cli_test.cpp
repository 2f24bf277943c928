// End-to-end tests of the `gstick` binary: run/info results against the Executor and closed forms,
// the one-line error contract and exit codes, --help generated from the option tables.
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <sys/wait.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "io/npy.h"
#include "io/onnx.h"
#include "model_zoo.h"
#include "runtime/executor.h"
#include "support/file_util.h"
#include "cli_util.h"
#include "test_util.h"

namespace gs {
namespace {

std::string fixturePath(const std::string& stem) {
  return std::string(GS_TEST_DIR) + "/data/models/" + stem + ".onnx";
}

using test::CmdResult;
using test::expectOneErrorLine;
using test::gstick;

TEST(Cli, RunWritesExecutorOutputs) {
  std::string model = fixturePath("resnet_bn_op13");
  std::string dir = test::tempDir("cli_run");
  at::Tensor x = test::randn({3, 1, 28, 28}, 5);
  writeNpy(dir + "/x.npy", x);
  auto r =
      gstick("run '" + model + "' --input input=" + dir + "/x.npy -o " + dir + "/out --repeat 3");
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
  std::string d1 = test::tempDir("cli_seed1"), d2 = test::tempDir("cli_seed2"),
              d3 = test::tempDir("cli_seed3");
  ASSERT_EQ(gstick("run '" + model + "' --seed 3 -o " + d1).code, 0);
  ASSERT_EQ(gstick("run '" + model + "' --seed 3 -o " + d2).code, 0);
  ASSERT_EQ(gstick("run '" + model + "' --seed 4 -o " + d3).code, 0);
  at::Tensor a = readNpy(d1 + "/output.npy"), b = readNpy(d2 + "/output.npy"),
             c = readNpy(d3 + "/output.npy");
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
  std::string commas =
      count.size() > 3 ? count.substr(0, count.size() - 3) + "," + count.substr(count.size() - 3)
                       : count;
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
  EXPECT_EQ(j["macs"]["by_op"]["MatMul"].get<int64_t>(),
            4 * T * d * d + 2 * T * T * d + 2 * T * d * 4 * d);
}

TEST(Cli, ErrorsAreOneLineWithExitCode) {
  std::string dir = test::tempDir("cli_err");
  expectOneErrorLine(gstick("run " + dir + "/nope.onnx"), 1, "nope.onnx");
  expectOneErrorLine(gstick("info " + dir + "/nope.onnx"), 1, "no such file");

  std::string bytes = readFile(fixturePath("resnet_bn_op13"));
  writeFileAtomic(dir + "/trunc.onnx", bytes.substr(0, bytes.size() / 2));
  expectOneErrorLine(gstick("run " + dir + "/trunc.onnx"), 1, "trunc.onnx");

  writeNpy(dir + "/bad.npy", test::randn({1, 3, 28, 28}, 1));
  expectOneErrorLine(
      gstick("run '" + fixturePath("resnet_bn_op13") + "' --input input=" + dir + "/bad.npy"), 1,
      "input 'input'");
  writeNpy(dir + "/dbl.npy", test::randn({1, 1, 28, 28}, 1).to(at::kDouble));
  expectOneErrorLine(
      gstick("run '" + fixturePath("resnet_bn_op13") + "' --input input=" + dir + "/dbl.npy"), 1,
      "f64");
  expectOneErrorLine(
      gstick("run '" + fixturePath("resnet_bn_op13") + "' --input nosuch=" + dir + "/bad.npy"), 1,
      "'nosuch' is not an input");
  expectOneErrorLine(gstick("run '" + fixturePath("resnet_bn_op13") + "' -o /proc/gstick_out"), 1,
                     "/proc/gstick_out");

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
