// The trained reference models committed under models/: each must reach its documented
// Fashion-MNIST test accuracy in gstick, and ONNX Runtime must give the same accuracy (to 0.01%,
// i.e. at most one of the 10,000 predictions may differ) on the exported file.
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "data/dataset.h"
#include "io/npy.h"
#include "io/onnx.h"
#include "ort_runner.h"
#include "runtime/executor.h"
#include "test_util.h"

namespace gs {
namespace {

struct RefModel {
  const char* file;    // under models/
  double min_top1;     // the accuracy floor (percent)
  friend void PrintTo(const RefModel& m, std::ostream* os) { *os << m.file; }
};

class ReferenceModel : public ::testing::TestWithParam<RefModel> {};

TEST_P(ReferenceModel, AccuracyInGstickAndOrt) {
  const RefModel& m = GetParam();
  std::string why = ort::ortMissingReason();
  ASSERT_TRUE(why.empty()) << why << " (run scripts/install-deps.sh)";
  std::string path = std::string(GS_TEST_DIR) + "/../models/" + m.file;
  auto g = importOnnxFile(path);
  ASSERT_EQ(g->inputs().size(), 1u);
  ASSERT_EQ(g->outputs().size(), 1u);

  auto ds = openDataset("fashion-mnist:test");
  const int64_t n = ds->size();
  auto all = ds->getBatch(at::arange(n, at::kLong));
  Executor ex(*g);
  const int64_t batch = 500;
  std::vector<at::Tensor> logits;
  for (int64_t s = 0; s < n; s += batch) {
    auto x = all.inputs.slice(0, s, std::min(n, s + batch));
    logits.push_back(ex.run({x}).at(0));
  }
  auto pred = at::cat(logits).argmax(1);
  int64_t ours = pred.eq(all.labels).sum().item<int64_t>();
  EXPECT_GE(100.0 * ours / n, m.min_top1) << m.file << ": " << ours << "/" << n;

  std::string dir = test::tempDir("refmodel");
  writeNpy(dir + "/inputs.npy", all.inputs.contiguous());
  writeNpy(dir + "/labels.npy", all.labels.contiguous());
  auto theirs = ort::evalOrt(path, dir + "/inputs.npy", dir + "/labels.npy", dir + "/logits.npy");
  EXPECT_EQ(theirs.samples, n);
  EXPECT_LE(std::abs(theirs.correct - ours), 1)
      << m.file << ": gstick " << ours << " vs ONNX Runtime " << theirs.correct << " of " << n;
  auto ort_logits = readNpy(dir + "/logits.npy");
  EXPECT_LE(ort_logits.argmax(1).ne(pred).sum().item<int64_t>(), 1);
}

INSTANTIATE_TEST_SUITE_P(Models, ReferenceModel,
                         ::testing::Values(RefModel{"lenet5-fmnist.onnx", 90.0},
                                           RefModel{"resnet20-fmnist.onnx", 93.0},
                                           RefModel{"mobilenetv2-fmnist.onnx", 92.0}));

}  // namespace
}  // namespace gs
