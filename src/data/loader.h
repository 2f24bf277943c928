// DataLoader: seeded shuffling, batching and augmentation on a background thread with prefetch.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <vector>

#include "data/dataset.h"

namespace gs {

/// DataLoader configuration.
struct LoaderOptions {
  int64_t batchSize = 128;  ///< samples per batch (>= 1)
  bool shuffle = true;      ///< permute samples each epoch (else dataset order)
  bool dropLast = false;    ///< drop the final partial batch
  uint64_t seed = 0;        ///< shuffle/augmentation seed; the epoch number is mixed in
  int64_t cropPadding = 0;  ///< > 0: random crop with this much zero padding on each side
  bool hflip = false;       ///< random horizontal flip with probability 0.5
  int prefetch = 4;         ///< batches the worker may run ahead of the consumer (1..16)
};

/// Augments a batch of images x [B, ..., H, W] (any dtype): sample b is zero-padded by `pad` on
/// all sides, cropped back to H x W at offset (dy[b], dx[b]) in [0, 2*pad], then mirrored along
/// W if flip[b] is true. dy, dx: int64 [B]; flip: bool [B]. One gather over the whole batch.
/// So out[b, ..., i, j] = x[b, ..., i + dy[b] - pad, j' + dx[b] - pad] (0 outside the image),
/// with j' = W-1-j when flipped, else j.
at::Tensor cropAndFlip(const at::Tensor& x, int64_t pad, const at::Tensor& dy, const at::Tensor& dx,
                       const at::Tensor& flip);

/// One pass over the dataset, produced by a background worker thread that keeps up to
/// `prefetch` batches ready (it refills the queue once the consumer has drained it to
/// prefetch/4, so it is woken once per few batches rather than once per batch).
/// Obtained from DataLoader::epoch(). Destroying it mid-epoch stops and joins the worker.
/// An exception thrown while producing a batch (e.g. a gs::Error from the dataset) is
/// re-thrown by next() in the consumer, after the batches produced before it.
class Epoch {
 public:
  Epoch(Epoch&&) noexcept;
  Epoch& operator=(Epoch&&) noexcept;
  ~Epoch();

  /// The next batch, or nullopt when the epoch is exhausted. Blocks while the worker catches up.
  std::optional<Batch> next();
  /// Number of batches this epoch yields.
  int64_t numBatches() const;

  /// Input iterator for range-for: `for (Batch& b : loader.epoch(e))`.
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    Batch& operator*() { return *current_; }
    Batch* operator->() { return &*current_; }
    Iterator& operator++() {
      current_ = epoch_->next();
      return *this;
    }
    bool operator==(std::default_sentinel_t) const { return !current_.has_value(); }

   private:
    friend class Epoch;
    explicit Iterator(Epoch* e) : epoch_(e), current_(e->next()) {}
    Epoch* epoch_;
    std::optional<Batch> current_;
  };
  /// Starts consuming (fetches the first batch).
  Iterator begin() { return Iterator(this); }
  std::default_sentinel_t end() { return {}; }

 private:
  friend class DataLoader;
  struct State;
  explicit Epoch(std::unique_ptr<State> s);
  std::unique_ptr<State> state_;
};

/// Batches a dataset. Each epoch's order (and augmentation) is a deterministic function of
/// (seed, epoch): identical across runs and machines (it uses std::mt19937_64 and integer
/// arithmetic only), different from one epoch to the next. Every sample appears exactly once
/// per epoch (minus the tail when dropLast).
class DataLoader {
 public:
  /// Throws gs::Error for a bad option (batchSize < 1, prefetch out of 1..16, augmentation on
  /// inputs that are not images [C, H, W] / [H, W], or cropPadding >= the image size).
  DataLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options);

  /// Starts epoch `e` on a worker thread. Epochs are independent objects; several may coexist.
  Epoch epoch(int64_t e) const;
  /// Batches per epoch.
  int64_t numBatches() const;
  /// The permutation (or identity) used for epoch `e`, int64 [size()].
  at::Tensor order(int64_t e) const;

  const Dataset& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return options_; }

 private:
  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions options_;
};

}  // namespace gs
