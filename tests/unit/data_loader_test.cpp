// DataLoader: determinism, coverage, batching, augmentation, shutdown, worker errors, throughput.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "data/dataset.h"
#include "data/loader.h"
#include "support/error.h"
#include "test_util.h"

namespace gs {
namespace {

// Input i is a 1x4x5 image filled with 1000*i + pixel position; label i % 7.
std::shared_ptr<TensorDataset> indexedImages(int64_t n) {
  at::Tensor x =
      (at::arange(n).view({n, 1, 1, 1}) * 1000 + at::arange(20).view({1, 1, 4, 5})).to(at::kFloat);
  return std::make_shared<TensorDataset>(x, at::arange(n) % 7);
}

std::vector<Batch> collect(Epoch ep) {
  std::vector<Batch> out;
  for (Batch& b : ep) out.push_back(b);
  return out;
}

TEST(DataLoader, DeterministicPerSeedAndEpoch) {
  auto ds = indexedImages(1000);
  LoaderOptions o{.batchSize = 64, .seed = 42, .cropPadding = 1, .hflip = true};
  DataLoader a(ds, o), b(ds, o);
  auto e3a = collect(a.epoch(3)), e3b = collect(b.epoch(3));
  ASSERT_EQ(e3a.size(), 16u);
  ASSERT_EQ(e3b.size(), 16u);
  for (size_t i = 0; i < e3a.size(); ++i) {
    EXPECT_TRUE(e3a[i].indices.equal(e3b[i].indices));
    EXPECT_TRUE(e3a[i].inputs.equal(e3b[i].inputs));  // augmentation is seeded too
    EXPECT_TRUE(e3a[i].labels.equal(e3b[i].labels));
  }
  EXPECT_TRUE(a.order(3).equal(b.order(3)));
  EXPECT_FALSE(a.order(3).equal(a.order(4)));
  LoaderOptions o2 = o;
  o2.seed = 43;
  EXPECT_FALSE(DataLoader(ds, o2).order(3).equal(a.order(3)));
  // Augmentation options do not change the order.
  LoaderOptions o3 = o;
  o3.cropPadding = 0;
  o3.hflip = false;
  EXPECT_TRUE(DataLoader(ds, o3).order(3).equal(a.order(3)));
  // The order is a fixed function of (seed, epoch), pinned so that a change of generator or
  // algorithm (which would silently change every training run's data order) is noticed.
  at::Tensor pinned = DataLoader(indexedImages(10), {.seed = 7}).order(2);
  EXPECT_TRUE(pinned.equal(at::tensor(std::vector<int64_t>{7, 5, 4, 3, 8, 2, 6, 9, 1, 0})))
      << pinned;
}

TEST(DataLoader, EverySampleOncePerEpochAndBatchesMatchDataset) {
  auto ds = indexedImages(1000);
  DataLoader loader(ds, {.batchSize = 128, .seed = 1});
  EXPECT_EQ(loader.numBatches(), 8);
  for (int64_t e : {0, 1}) {
    auto batches = collect(loader.epoch(e));
    ASSERT_EQ(batches.size(), 8u);
    std::vector<at::Tensor> idx;
    for (size_t i = 0; i < batches.size(); ++i) {
      EXPECT_EQ(batches[i].size(), i < 7 ? 128 : 1000 - 7 * 128);
      Batch ref = ds->getBatch(batches[i].indices);
      EXPECT_TRUE(batches[i].inputs.equal(ref.inputs));
      EXPECT_TRUE(batches[i].labels.equal(batches[i].indices % 7));
      idx.push_back(batches[i].indices);
    }
    at::Tensor all = at::cat(idx);
    EXPECT_FALSE(all.equal(at::arange(1000)));  // shuffled
    EXPECT_TRUE(std::get<0>(all.sort()).equal(at::arange(1000)));
  }
  // Different epochs, different orders.
  EXPECT_FALSE(collect(loader.epoch(0))[0].indices.equal(collect(loader.epoch(1))[0].indices));
}

TEST(DataLoader, DropLastAndNoShuffle) {
  auto ds = indexedImages(10);
  DataLoader keep(ds, {.batchSize = 4, .shuffle = false});
  auto b = collect(keep.epoch(0));
  ASSERT_EQ(b.size(), 3u);
  EXPECT_TRUE(b[0].indices.equal(at::arange(4)));
  EXPECT_TRUE(b[2].indices.equal(at::arange(8, 10)));
  DataLoader drop(ds, {.batchSize = 4, .dropLast = true, .seed = 3});
  EXPECT_EQ(drop.numBatches(), 2);
  auto d = collect(drop.epoch(5));
  ASSERT_EQ(d.size(), 2u);
  at::Tensor seen = at::cat({d[0].indices, d[1].indices});
  EXPECT_TRUE(seen.equal(drop.order(5).narrow(0, 0, 8)));
  DataLoader big(ds, {.batchSize = 32, .dropLast = true});
  EXPECT_EQ(collect(big.epoch(0)).size(), 0u);
  // next()-style iteration.
  Epoch ep = keep.epoch(0);
  int n = 0;
  while (auto batch = ep.next()) n += batch->size();
  EXPECT_EQ(n, 10);
  EXPECT_FALSE(ep.next().has_value());
}

// Reference for one sample: shift by (sy, sx) with zero fill, written with slicing.
at::Tensor shifted(const at::Tensor& img, int64_t sy, int64_t sx) {
  int64_t H = img.size(-2), W = img.size(-1);
  at::Tensor out = at::zeros_like(img);
  // out[i, j] = img[i + sy, j + sx]
  int64_t i0 = std::max<int64_t>(0, -sy), i1 = std::min(H, H - sy);
  int64_t j0 = std::max<int64_t>(0, -sx), j1 = std::min(W, W - sx);
  if (i1 > i0 && j1 > j0)
    out.narrow(-2, i0, i1 - i0)
        .narrow(-1, j0, j1 - j0)
        .copy_(img.narrow(-2, i0 + sy, i1 - i0).narrow(-1, j0 + sx, j1 - j0));
  return out;
}

TEST(DataAugment, CropAndFlipExplicitOffsets) {
  at::Tensor x = test::randn({4, 2, 5, 6}, 11);
  at::Tensor dy = at::tensor(std::vector<int64_t>{0, 2, 4, 2});
  at::Tensor dx = at::tensor(std::vector<int64_t>{4, 2, 1, 0});
  at::Tensor flip = at::tensor(std::vector<uint8_t>{0, 0, 1, 1}).to(at::kBool);
  at::Tensor out = cropAndFlip(x, 2, dy, dx, flip);
  ASSERT_EQ(out.sizes(), x.sizes());
  // Offset (dy, dx) with padding p shows the window starting at (dy - p, dx - p).
  EXPECT_TRUE(out[0].equal(shifted(x[0], -2, 2)));
  EXPECT_TRUE(out[1].equal(x[1]));  // centre window: unchanged
  EXPECT_TRUE(out[2].equal(shifted(x[2], 2, -1).flip(-1)));
  EXPECT_TRUE(out[3].equal(shifted(x[3], 0, -2).flip(-1)));
  // Content really moved: zeros came in from the padding.
  EXPECT_EQ(out[0].narrow(-2, 0, 2).abs().sum().item<float>(), 0.0f);
  // Flip alone (no padding) reverses the width; 3-d [B, H, W] inputs work too.
  at::Tensor y = test::randn({3, 4, 7}, 12);
  at::Tensor z = at::zeros({3}, at::kLong);
  at::Tensor f = at::tensor(std::vector<uint8_t>{1, 0, 1}).to(at::kBool);
  at::Tensor yo = cropAndFlip(y, 0, z, z, f);
  EXPECT_TRUE(yo[0].equal(y[0].flip(-1)));
  EXPECT_TRUE(yo[1].equal(y[1]));
  EXPECT_TRUE(yo[2].equal(y[2].flip(-1)));
  // Integer dtypes are fine (pad with 0).
  at::Tensor u = at::arange(2 * 3 * 3, at::kByte).view({2, 1, 3, 3});
  at::Tensor uo = cropAndFlip(u, 1, at::tensor(std::vector<int64_t>{2, 0}),
                              at::tensor(std::vector<int64_t>{2, 1}), at::zeros({2}, at::kBool));
  EXPECT_TRUE(uo[0].equal(shifted(u[0], 1, 1)));
  EXPECT_TRUE(uo[1].equal(shifted(u[1], -1, 0)));
}

// Finds the (shift, flip) that explains an augmented sample; false if none does.
bool explain(const at::Tensor& out, const at::Tensor& in, int64_t p, int64_t& sy, int64_t& sx,
             bool& flipped) {
  for (int f = 0; f < 2; ++f)
    for (sy = -p; sy <= p; ++sy)
      for (sx = -p; sx <= p; ++sx) {
        at::Tensor c = shifted(in, sy, sx);
        if (out.equal(f ? c.flip(-1) : c)) {
          flipped = f;
          return true;
        }
      }
  return false;
}

TEST(DataAugment, LoaderAppliesSeededCropsAndFlips) {
  // Values 1..20 plus 1000*i: every shift/flip gives a distinct image, zeros only from padding.
  auto ds = indexedImages(256);
  DataLoader loader(ds, {.batchSize = 100, .seed = 5, .cropPadding = 1, .hflip = true});
  int flips = 0, total = 0, shifts = 0;
  std::set<std::pair<int64_t, int64_t>> seenShifts;
  for (Batch& b : loader.epoch(0)) {
    Batch ref = ds->getBatch(b.indices);
    for (int64_t k = 0; k < b.size(); ++k) {
      int64_t sy, sx;
      bool fl;
      ASSERT_TRUE(explain(b.inputs[k], ref.inputs[k], 1, sy, sx, fl)) << "sample " << k;
      flips += fl;
      shifts += (sy != 0 || sx != 0);
      seenShifts.insert({sy, sx});
      ++total;
    }
  }
  EXPECT_EQ(total, 256);
  EXPECT_GT(flips, 256 * 0.35);  // p = 0.5: 256 draws land in [90, 166] with prob > 0.999
  EXPECT_LT(flips, 256 * 0.65);
  EXPECT_EQ(seenShifts.size(), 9u);  // all 3x3 offsets occur
  EXPECT_GT(shifts, 256 / 2);
}

TEST(DataAugment, BadOptionsAreErrors) {
  auto ds = indexedImages(10);
  EXPECT_THROW(DataLoader(ds, {.batchSize = 0}), Error);
  EXPECT_THROW(DataLoader(ds, {.prefetch = 0}), Error);
  EXPECT_THROW(DataLoader(ds, {.cropPadding = 4}), Error);  // image is 4x5
  auto flat = std::make_shared<TensorDataset>(at::zeros({10, 8}));
  try {
    DataLoader(flat, {.hflip = true});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("random crop/flip need image inputs"), std::string::npos);
  }
}

// Dataset that counts getBatch calls, optionally sleeps, and fails on call number `failAt`.
class ProbeDataset : public Dataset {
 public:
  ProbeDataset(int64_t n, int failAt, int sleepMs)
      : inner_(indexedImages(n)), failAt_(failAt), sleepMs_(sleepMs) {}
  int64_t size() const override { return inner_->size(); }
  std::vector<int64_t> inputShape() const override { return inner_->inputShape(); }
  bool hasLabels() const override { return true; }
  std::string describe() const override { return "probe"; }
  Batch getBatch(const at::Tensor& idx) const override {
    int call = ++calls;
    if (sleepMs_) std::this_thread::sleep_for(std::chrono::milliseconds(sleepMs_));
    GS_CHECK(call != failAt_, "probe: sample file broken at batch ", call);
    return inner_->getBatch(idx);
  }
  mutable std::atomic<int> calls{0};

 private:
  std::shared_ptr<TensorDataset> inner_;
  int failAt_, sleepMs_;
};

TEST(DataLoaderThreads, WorkerRunsAheadButBounded) {
  auto ds = std::make_shared<ProbeDataset>(1000, -1, 0);
  DataLoader loader(ds, {.batchSize = 10, .prefetch = 2});
  Epoch ep = loader.epoch(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // Ran ahead without being asked, but at most prefetch queued + one in hand.
  EXPECT_GE(ds->calls.load(), 2);
  EXPECT_LE(ds->calls.load(), 3);
  ASSERT_TRUE(ep.next().has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LE(ds->calls.load(), 4);
}

TEST(DataLoaderThreads, EarlyDestructionStopsWorker) {
  auto ds = std::make_shared<ProbeDataset>(10000, -1, 2);
  auto t0 = std::chrono::steady_clock::now();
  {
    DataLoader loader(ds, {.batchSize = 10, .prefetch = 4});
    auto ep = loader.epoch(0);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(ep.next().has_value());
    // Epoch outlives the loader that made it.
  }
  {
    DataLoader loader(ds, {.batchSize = 10});
    for (Batch& b : loader.epoch(1)) {
      EXPECT_EQ(b.size(), 10);
      break;  // leave the range-for mid-epoch
    }
    Epoch a = loader.epoch(2);
    a = loader.epoch(3);  // move-assign over a running epoch
    EXPECT_TRUE(a.next().has_value());
    Epoch untouched = loader.epoch(4);  // never consumed
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int calls = ds->calls.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(ds->calls.load(), calls);  // nothing still running
  EXPECT_LT(calls, 40);                // of 1000 batches per epoch
  EXPECT_LT(secs, 5.0);
}

TEST(DataLoaderThreads, WorkerErrorIsRethrownInConsumer) {
  auto ds = std::make_shared<ProbeDataset>(100, 4, 0);
  DataLoader loader(ds, {.batchSize = 10});
  int got = 0;
  try {
    for (Batch& b : loader.epoch(0)) got += b.size() > 0;
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "probe: sample file broken at batch 4");
  }
  EXPECT_EQ(got, 3);  // batches produced before the failure are delivered first
  // next()-style: the error is sticky; later calls fail the same way.
  auto ds2 = std::make_shared<ProbeDataset>(100, 1, 0);
  auto ep = DataLoader(ds2, {.batchSize = 10}).epoch(0);
  EXPECT_THROW(ep.next(), Error);
  EXPECT_THROW(ep.next(), Error);
}

// Full pass over the Fashion-MNIST training set as training would use it; reports throughput.
TEST(DataLoaderThreads, FashionMnistFullEpochThroughput) {
  auto t0 = std::chrono::steady_clock::now();
  auto ds = std::make_shared<FashionMnistDataset>(FashionMnistDataset::Split::Train);
  double loadSecs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (bool augment : {false, true}) {
    DataLoader loader(
        ds, {.batchSize = 128, .seed = 1, .cropPadding = augment ? 2 : 0, .hflip = augment});
    auto t1 = std::chrono::steady_clock::now();
    int64_t n = 0, batches = 0;
    at::Tensor counts = at::zeros({60000}, at::kLong);
    double labelSum = 0;
    for (Batch& b : loader.epoch(0)) {
      ASSERT_EQ(b.inputs.sizes().slice(1), at::IntArrayRef({1, 28, 28}));
      counts.index_add_(0, b.indices, at::ones_like(b.indices));
      labelSum += b.labels.sum().item<double>();
      n += b.size();
      ++batches;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    EXPECT_EQ(n, 60000);
    EXPECT_EQ(batches, 469);
    EXPECT_TRUE(counts.eq(1).all().item<bool>());
    EXPECT_DOUBLE_EQ(labelSum, ds->labels().sum().item<double>());
    std::printf(
        "[loader] fashion-mnist train: load %.2fs; epoch batch 128%s: %.3fs = %.0f images/s\n",
        loadSecs, augment ? " + crop(2) + flip" : "", secs, n / secs);
  }
}

}  // namespace
}  // namespace gs
