// Model zoo vs ONNX Runtime: every zoo model exported with gs::exportOnnxFile (full ONNX check)
// must run in ORT and match gstick's executor within 1e-4 relative difference.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "io/onnx.h"
#include "models/zoo.h"
#include "ort_runner.h"
#include "runtime/executor.h"
#include "test_util.h"

namespace gs {
namespace {

constexpr double kTol = 1e-4;

struct ZooOrtCase {
  const char* model;
  models::ModelOptions options;  // overrides of the zoo defaults
  int64_t batch;
  int64_t seq;  // token models only
  friend void PrintTo(const ZooOrtCase& c, std::ostream* os) { *os << c.model; }
};

class ZooOrtParity : public ::testing::TestWithParam<ZooOrtCase> {};

TEST_P(ZooOrtParity, ExportedModelMatchesOrt) {
  const ZooOrtCase& c = GetParam();
  std::string why = ort::ortMissingReason();
  ASSERT_TRUE(why.empty()) << why << " (run scripts/install-deps.sh)";
  auto g = models::buildModel(c.model, c.options, 17);
  std::string tag = ort::fileStem(c.model);
  std::string dir = test::tempDir("zoo_ort_" + tag);
  OnnxExportOptions eo;
  eo.full_check = true;
  exportOnnxFile(*g, dir + "/model.onnx", eo);

  auto gen = at::make_generator<at::CPUGeneratorImpl>(99);
  const Value* in = g->inputs().at(0);
  at::Tensor x;
  if (in->dtype() == DType::Int64) {
    int64_t vocab = static_cast<int64_t>(c.options.count("vocab") ? c.options.at("vocab") : 256);
    x = at::randint(vocab, {c.batch, c.seq}, gen, at::TensorOptions().dtype(at::kLong));
  } else {
    x = at::rand({c.batch, 1, 28, 28}, gen, at::TensorOptions().dtype(at::kFloat));
  }
  std::map<std::string, at::Tensor> inputs{{in->name(), x}};
  auto ours = Executor(*g).runNamed(inputs);
  auto theirs = ort::runOrt(dir + "/model.onnx", inputs, dir);
  ASSERT_EQ(theirs.outputs.count("logits"), 1u) << c.model;
  const at::Tensor &a = ours.at("logits"), &r = theirs.outputs.at("logits");
  ASSERT_EQ(a.sizes(), r.sizes()) << c.model;
  EXPECT_LE(test::maxRelDiff(a, r), kTol) << c.model;
  EXPECT_GT(r.abs().max().item<double>(), 1e-3) << c.model << ": degenerate output";
}

INSTANTIATE_TEST_SUITE_P(
    Zoo, ZooOrtParity,
    ::testing::Values(ZooOrtCase{"lenet5", {}, 3, 0}, ZooOrtCase{"resnet20", {}, 3, 0},
                      ZooOrtCase{"mobilenetv2", {}, 3, 0}, ZooOrtCase{"vit-tiny", {}, 3, 0},
                      ZooOrtCase{"llama-tiny", {}, 2, 37}),
    [](const auto& info) {
      std::string s = info.param.model;
      for (char& ch : s)
        if (ch == '-') ch = '_';
      return s;
    });

}  // namespace
}  // namespace gs
