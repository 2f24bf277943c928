// DataLoader: epoch order, batched augmentation, and the prefetching worker thread.
#include "data/loader.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <random>
#include <thread>

#include "support/error.h"

namespace gs {
namespace {

// SplitMix64 finaliser: decorrelates nearby (seed, epoch) pairs before seeding mt19937_64.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// One independent stream per (seed, epoch, purpose), so changing augmentation options never
// changes the sample order.
std::mt19937_64 makeRng(uint64_t seed, int64_t epoch, uint64_t stream) {
  return std::mt19937_64(mix(mix(mix(seed) ^ uint64_t(epoch)) ^ stream));
}

// Uniform integer in [0, n) by rejection; unlike std::uniform_int_distribution its output is
// specified here, so orders are identical across standard libraries.
uint64_t uniformBelow(std::mt19937_64& rng, uint64_t n) {
  uint64_t limit = ~uint64_t(0) - (~uint64_t(0) % n);
  uint64_t x;
  do x = rng();
  while (x >= limit);
  return x % n;
}

// Makes ATen ops on the calling (loader) thread single-threaded. Batches are small, so intra-op
// threads gain little there and would compete with the training step for the same cores (on a
// loaded machine, 2-thread OpenMP regions made batch gathers ~50x slower). ATen's OpenMP backend
// takes its thread count from the calling thread's OpenMP ICV, which omp_set_num_threads sets
// for this thread only; at::set_num_threads would change it process-wide. Looked up at run
// time because gstick does not link OpenMP itself (libtorch brings libgomp); a no-op without it.
void singleThreadedAten() {
  at::internal::lazy_init_num_threads();  // ATen's lazy init would otherwise reset the count
  using SetNumThreads = void (*)(int);
  static const auto setNumThreads =
      reinterpret_cast<SetNumThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (setNumThreads) setNumThreads(1);
}

}  // namespace

at::Tensor cropAndFlip(const at::Tensor& x, int64_t pad, const at::Tensor& dy, const at::Tensor& dx,
                       const at::Tensor& flip) {
  GS_CHECK(x.dim() >= 3, "cropAndFlip: expected images [B, ..., H, W], got ", x.dim(), " dims");
  GS_CHECK(pad >= 0, "cropAndFlip: negative padding ", pad);
  int64_t B = x.size(0), H = x.size(-2), W = x.size(-1);
  GS_CHECK(dy.numel() == B && dx.numel() == B && flip.numel() == B,
           "cropAndFlip: need one offset pair and flip flag per sample");
  int64_t Hp = H + 2 * pad, Wp = W + 2 * pad;
  at::Tensor x4 = x.reshape({B, -1, H, W});
  int64_t C = x4.size(1);
  at::Tensor xp = pad > 0 ? at::constant_pad_nd(x4, {pad, pad, pad, pad}, 0) : x4.contiguous();

  auto opts = at::TensorOptions().dtype(at::kLong);
  at::Tensor rows = at::arange(H, opts).unsqueeze(0) + dy.to(at::kLong).view({B, 1});  // [B, H]
  at::Tensor j = at::arange(W, opts).unsqueeze(0);                                     // [1, W]
  at::Tensor cols = at::where(flip.to(at::kBool).view({B, 1}), (W - 1) - j, j) +
                    dx.to(at::kLong).view({B, 1});  // [B, W]
  // Flat source index into each padded H_p x W_p plane, shared by all channels.
  at::Tensor src = (rows.unsqueeze(2) * Wp + cols.unsqueeze(1)).view({B, 1, H * W});
  at::Tensor out = xp.view({B, C, Hp * Wp}).gather(2, src.expand({B, C, H * W}));
  return out.view(x.sizes());
}

// ---------------------------------------------------------------------------------------------
// Epoch: bounded producer/consumer queue between the worker thread and next().

struct Epoch::State {
  std::shared_ptr<const Dataset> dataset;
  LoaderOptions opt;
  at::Tensor order;
  int64_t epoch = 0;
  int64_t numBatches = 0;

  std::mutex m;
  // Two condition variables: the consumer waits on `dataReady`, the worker on `spaceReady`.
  // The worker is woken only when the queue has drained to `lowWater`, then refills it to
  // `prefetch` in one go: on a loaded machine every wake-up can preempt the consumer (measured
  // ~1 ms per futex wake on the shared 2-core box), so fewer, batched wake-ups matter.
  std::condition_variable dataReady, spaceReady;
  int64_t lowWater = 0;
  std::deque<Batch> queue;
  std::exception_ptr error;
  bool finished = false;  // worker produced everything (or failed)
  bool stop = false;      // consumer gone: worker must exit
  std::thread worker;

  ~State() {
    {
      std::lock_guard<std::mutex> lock(m);
      stop = true;
    }
    spaceReady.notify_all();
    if (worker.joinable()) worker.join();
  }

  void run() {
    try {
      singleThreadedAten();
      std::mt19937_64 rng = makeRng(opt.seed, epoch, /*stream=*/1);
      const int64_t n = order.size(0);
      for (int64_t b = 0; b < numBatches; ++b) {
        {
          std::unique_lock<std::mutex> lock(m);
          if (int64_t(queue.size()) >= opt.prefetch)
            spaceReady.wait(lock, [&] { return stop || int64_t(queue.size()) <= lowWater; });
          if (stop) return;
        }
        int64_t start = b * opt.batchSize, len = std::min(opt.batchSize, n - start);
        Batch batch = dataset->getBatch(order.narrow(0, start, len));
        if (opt.cropPadding > 0 || opt.hflip) augment(batch, rng);
        {
          std::lock_guard<std::mutex> lock(m);
          queue.push_back(std::move(batch));
        }
        dataReady.notify_one();  // no system call unless the consumer is waiting
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(m);
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(m);
      finished = true;
    }
    dataReady.notify_all();
  }

  // Draws per-sample crop offsets and flips (a few numbers per sample), then one batched gather.
  void augment(Batch& batch, std::mt19937_64& rng) const {
    int64_t B = batch.size(), p = opt.cropPadding;
    at::Tensor dy = at::full({B}, p, at::kLong), dx = at::full({B}, p, at::kLong);
    at::Tensor flip = at::zeros({B}, at::kBool);
    int64_t* pdy = dy.data_ptr<int64_t>();
    int64_t* pdx = dx.data_ptr<int64_t>();
    bool* pf = flip.data_ptr<bool>();
    for (int64_t i = 0; i < B; ++i) {
      if (p > 0) {
        pdy[i] = int64_t(uniformBelow(rng, 2 * p + 1));
        pdx[i] = int64_t(uniformBelow(rng, 2 * p + 1));
      }
      if (opt.hflip) pf[i] = (rng() >> 63) != 0;
    }
    batch.inputs = cropAndFlip(batch.inputs, p, dy, dx, flip);
  }
};

Epoch::Epoch(std::unique_ptr<State> s) : state_(std::move(s)) {}
Epoch::Epoch(Epoch&&) noexcept = default;
Epoch& Epoch::operator=(Epoch&&) noexcept = default;
Epoch::~Epoch() = default;  // State's destructor stops and joins the worker

int64_t Epoch::numBatches() const { return state_ ? state_->numBatches : 0; }

std::optional<Batch> Epoch::next() {
  if (!state_) return std::nullopt;
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.m);
  s.dataReady.wait(lock, [&] { return !s.queue.empty() || s.finished; });
  if (!s.queue.empty()) {
    Batch b = std::move(s.queue.front());
    s.queue.pop_front();
    bool wake = int64_t(s.queue.size()) == s.lowWater;
    lock.unlock();
    if (wake) s.spaceReady.notify_one();
    return b;
  }
  if (s.error) std::rethrow_exception(s.error);
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// DataLoader

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), options_(options) {
  GS_CHECK(dataset_, "DataLoader: no dataset");
  GS_CHECK(options_.batchSize >= 1, "DataLoader: batch size must be >= 1, got ",
           options_.batchSize);
  GS_CHECK(options_.prefetch >= 1 && options_.prefetch <= 16,
           "DataLoader: prefetch must be in 1..16, got ", options_.prefetch);
  GS_CHECK(options_.cropPadding >= 0, "DataLoader: negative crop padding ", options_.cropPadding);
  if (options_.cropPadding > 0 || options_.hflip) {
    std::vector<int64_t> shape = dataset_->inputShape();
    GS_CHECK(shape.size() >= 2, "DataLoader: random crop/flip need image inputs [C, H, W], ",
             dataset_->describe(), " has ", shape.size(), "-d inputs");
    int64_t H = shape[shape.size() - 2], W = shape.back();
    GS_CHECK(options_.cropPadding < H && options_.cropPadding < W, "DataLoader: crop padding ",
             options_.cropPadding, " must be smaller than the image (", H, "x", W, ")");
  }
}

int64_t DataLoader::numBatches() const {
  int64_t n = dataset_->size(), b = options_.batchSize;
  return options_.dropLast ? n / b : (n + b - 1) / b;
}

at::Tensor DataLoader::order(int64_t e) const {
  int64_t n = dataset_->size();
  at::Tensor perm = at::arange(n, at::TensorOptions().dtype(at::kLong));
  if (!options_.shuffle) return perm;
  // Fisher-Yates with our own bounded draw: a fixed function of (seed, epoch).
  std::mt19937_64 rng = makeRng(options_.seed, e, /*stream=*/0);
  int64_t* p = perm.data_ptr<int64_t>();
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[uniformBelow(rng, uint64_t(i) + 1)]);
  return perm;
}

Epoch DataLoader::epoch(int64_t e) const {
  auto s = std::make_unique<Epoch::State>();
  s->dataset = dataset_;
  s->opt = options_;
  s->order = order(e);
  s->epoch = e;
  s->numBatches = numBatches();
  s->lowWater = options_.prefetch / 4;
  Epoch::State* raw = s.get();
  s->worker = std::thread([raw] { raw->run(); });
  return Epoch(std::move(s));
}

}  // namespace gs
