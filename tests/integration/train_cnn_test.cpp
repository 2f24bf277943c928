// Trains a small CNN (conv-relu-pool-fc) on 2000 Fashion-MNIST images for 2 epochs and checks
// the test accuracy on the first 1000 test images; reports training throughput.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "data/dataset.h"
#include "ir/builder.h"
#include "train/trainer.h"

namespace gs {
namespace {

TEST(TrainCnn, FashionMnistSubsetReaches70Percent) {
  ASSERT_TRUE(std::filesystem::exists(FashionMnistDataset::defaultDir()))
      << "Fashion-MNIST not installed (dataset-fashion-mnist; run scripts/install-deps.sh)";
  auto train = std::make_shared<FashionMnistDataset>(FashionMnistDataset::Split::Train, 2000);
  auto test = std::make_shared<FashionMnistDataset>(FashionMnistDataset::Split::Test, 1000);
  Graph g;
  GraphBuilder b(g);
  Value* x = b.input("x", DType::Float32, std::vector<Dim>{Dim("N"), 1, 28, 28});
  Value* y = b.convBnRelu(x, 1, 16, 5, 1, 2, /*bn=*/false, /*relu=*/true, 1, "conv1");
  y = b.maxPool(y, 2, 2, 0, "pool1");                         // 16 x 14 x 14
  y = b.flatten(y);
  b.output(b.linear(y, 16 * 14 * 14, 10, 2, "fc"));

  TrainerOptions o;
  o.epochs = 2;
  o.loader.batchSize = 32;
  o.optimizer = OptimizerConfig::sgd(0.05, 0.9, 5e-4);
  LrScheduleConfig sc;
  sc.kind = LrScheduleConfig::Kind::OneCycle;
  o.schedule = sc;
  o.seed = 1;
  Trainer t(g, o);
  auto t0 = std::chrono::steady_clock::now();
  TrainResult r = t.fit(train, test);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(r.eval.has_value());
  std::printf("train-cnn: %lld samples in %.2f s train time (%.1f img/s), total %.2f s, "
              "test top1 %.2f%% on %lld images\n",
              static_cast<long long>(r.samples), r.trainSeconds, r.samplesPerSecond(), secs,
              100 * r.eval->top1, static_cast<long long>(r.eval->count));
  EXPECT_EQ(r.eval->count, 1000);
  EXPECT_GE(r.eval->top1, 0.70);
  EXPECT_LT(r.eval->loss, 1.0);
}

}  // namespace
}  // namespace gs
