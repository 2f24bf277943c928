// End-to-end tests of `gstick train` and `gstick eval`: a short LeNet-5 run writes a model whose
// `eval` accuracy equals the accuracy train reported on the same data; bad inputs fail in one line.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <regex>

#include "data/dataset.h"
#include "io/onnx.h"
#include "support/file_util.h"
#include "cli_util.h"
#include "test_util.h"

namespace gs {
namespace {

using test::CmdResult;
using test::expectOneErrorLine;
using test::gstick;

/// Parses "top1 NN.NN%" and "samples N" from a metrics line of train / eval output.
struct Parsed {
  double top1 = -1, top5 = -1, loss = -1;
  long samples = -1;
};
Parsed parseMetrics(const std::string& text) {
  static const std::regex re(
      R"(loss ([0-9.]+)  top1 ([0-9.]+)%  top5 ([0-9.]+)%  samples ([0-9]+))");
  Parsed p;
  std::smatch m;
  if (std::regex_search(text, m, re)) {
    p.loss = std::stod(m[1]);
    p.top1 = std::stod(m[2]);
    p.top5 = std::stod(m[3]);
    p.samples = std::stol(m[4]);
  }
  return p;
}

bool haveFashionMnist() { return std::filesystem::exists(FashionMnistDataset::defaultDir()); }

TEST(CliTrain, TrainThenEvalAgree) {
  ASSERT_TRUE(haveFashionMnist()) << "Fashion-MNIST not installed (run scripts/install-deps.sh)";
  std::string dir = test::tempDir("cli_train_run");
  std::string model = dir + "/lenet.onnx";
  auto t = gstick("train --model lenet5 --data fashion-mnist:train:2000 --val-data "
                  "fashion-mnist:test:500 --epochs 1 --batch 32 --threads 1 -o " + model);
  ASSERT_EQ(t.code, 0) << t.err;
  ASSERT_TRUE(std::filesystem::exists(model));
  Parsed pt = parseMetrics(t.out);
  ASSERT_GE(pt.top1, 0) << t.out;
  EXPECT_EQ(pt.samples, 500);
  // One epoch on 2000 images gets well past chance (10%) on Fashion-MNIST.
  EXPECT_GT(pt.top1, 50.0) << t.out;
  // The file is a valid ONNX model with the zoo interface.
  auto g = importOnnxFile(model);
  ASSERT_EQ(g->inputs().size(), 1u);
  EXPECT_EQ(g->inputs()[0]->name(), "input");
  EXPECT_EQ(g->outputs()[0]->name(), "logits");

  auto e = gstick("eval " + model + " --data fashion-mnist:test:500 --batch 100 --threads 1");
  ASSERT_EQ(e.code, 0) << e.err;
  Parsed pe = parseMetrics(e.out);
  ASSERT_GE(pe.top1, 0) << e.out;
  EXPECT_EQ(pe.samples, 500);
  EXPECT_DOUBLE_EQ(pe.top1, pt.top1) << t.out << "\n" << e.out;
  EXPECT_DOUBLE_EQ(pe.top5, pt.top5);
  EXPECT_NEAR(pe.loss, pt.loss, 2e-4);
  EXPECT_NE(e.out.find("latency: median"), std::string::npos) << e.out;
}

TEST(CliTrain, BadInputsFailInOneLine) {
  std::string dir = test::tempDir("cli_train_bad");
  expectOneErrorLine(gstick("train --model nosuchnet --data fashion-mnist:train:100 --epochs 1 -o " +
                            dir + "/m.onnx"),
                     1, "nosuchnet");
  expectOneErrorLine(gstick("train --model lenet5 --data bogus:spec --epochs 1 -o " + dir +
                            "/m.onnx"),
                     1, "bogus:spec");
  expectOneErrorLine(gstick("train --model lenet5 --data fashion-mnist:train:100 --epochs 1 -o " +
                            dir + "/no/such/dir/m.onnx"),
                     1, "cannot write");
  expectOneErrorLine(gstick("train --model llama-tiny --data fashion-mnist:train:100 --epochs 1 "
                            "-o " + dir + "/m.onnx"),
                     1, "is a language model: train it on text data");
  expectOneErrorLine(gstick("eval " + dir + "/missing.onnx --data fashion-mnist:test:10"), 1,
                     "missing.onnx");
  expectOneErrorLine(gstick("train --model lenet5 --epochs 1 -o " + dir + "/m.onnx"), 2,
                     "--data");
  EXPECT_FALSE(std::filesystem::exists(dir + "/m.onnx"));
}

}  // namespace
}  // namespace gs
