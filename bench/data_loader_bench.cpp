// Data loader throughput on Fashion-MNIST train: dataset gathers, augmentation, full epochs.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "data/dataset.h"
#include "data/loader.h"

using Clock = std::chrono::steady_clock;

static double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int main(int argc, char** argv) {
  int epochs = argc > 1 ? std::atoi(argv[1]) : 3;
  auto t0 = Clock::now();
  auto ds = std::make_shared<gs::FashionMnistDataset>(gs::FashionMnistDataset::Split::Train);
  std::printf("load fashion-mnist train (gunzip + validate): %.3f s\n", since(t0));
  std::printf("ATen intra-op threads: %d\n", at::get_num_threads());

  const int64_t B = 128;
  at::Tensor perm = at::randperm(ds->size());
  t0 = Clock::now();
  for (int64_t s = 0; s + B <= ds->size(); s += B) ds->getBatch(perm.narrow(0, s, B));
  double getSecs = since(t0);
  std::printf("getBatch only (main thread):       %9.0f images/s\n", ds->size() / getSecs);

  at::Tensor x = ds->getBatch(perm.narrow(0, 0, B)).inputs;
  at::Tensor dy = at::randint(0, 5, {B}, at::kLong), dx = at::randint(0, 5, {B}, at::kLong);
  at::Tensor flip = at::randint(0, 2, {B}, at::kLong).to(at::kBool);
  t0 = Clock::now();
  int reps = 400;
  for (int i = 0; i < reps; ++i) gs::cropAndFlip(x, 2, dy, dx, flip);
  std::printf("cropAndFlip only (main thread):    %9.0f images/s (%.1f us/batch)\n",
              reps * B / since(t0), since(t0) / reps * 1e6);

  // Optional simulated training step (argv[2] given) to see whether the loader stalls compute:
  // compare against the same steps on one fixed batch with no loader.
  at::Tensor w = at::randn({784, 1024});
  if (argc > 2) {
    t0 = Clock::now();
    for (int64_t s = 0; s < ds->size(); s += B) at::tanh(at::mm(x.view({B, -1}), w));
    std::printf("simulated compute alone:                %9.0f images/s (%.3f s)\n",
                ds->size() / since(t0), since(t0));
  }
  for (bool augment : {false, true}) {
    gs::DataLoader loader(
        ds, {.batchSize = B, .seed = 1, .cropPadding = augment ? 2 : 0, .hflip = augment});
    for (int e = 0; e < epochs; ++e) {
      t0 = Clock::now();
      int64_t n = 0;
      double waited = 0;  // time the consumer spent blocked in next(): data stalling compute
      gs::Epoch ep = loader.epoch(e);
      for (;;) {
        auto tw = Clock::now();
        std::optional<gs::Batch> b = ep.next();
        waited += since(tw);
        if (!b) break;
        n += b->size();
        if (argc > 2) at::tanh(at::mm(b->inputs.view({b->size(), -1}), w));  // simulated step
      }
      std::printf(
          "loader epoch %d, batch 128%-18s %9.0f images/s (%.3f s, consumer waited %.3f s)\n", e,
          augment ? ", crop 2 + flip:" : ":", n / since(t0), since(t0), waited);
    }
  }
}
