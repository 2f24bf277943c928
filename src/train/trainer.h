// Trainer: epochs over a DataLoader with the executor in train mode, cross-entropy loss, optimizer
// and schedule steps, evaluation, callbacks, progress and exact-resume safetensors checkpoints.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "ir/graph.h"
#include "support/progress.h"
#include "train/callback.h"
#include "train/lr_schedule.h"
#include "train/metrics.h"
#include "train/optimizer.h"

namespace gs {

class Executor;

/// Trainer configuration.
struct TrainerOptions {
  int64_t epochs = 1;
  /// > 0: stop once this many optimizer steps have been taken in total (across epochs and
  /// resumes), possibly in the middle of an epoch, which then counts as finished. Schedules with
  /// totalSteps = 0 span min(epochs * batches per epoch, maxSteps) steps.
  int64_t maxSteps = 0;
  /// Training loader (batch size, shuffle, augmentation, prefetch); its seed is replaced by `seed`.
  LoaderOptions loader;
  int64_t evalBatchSize = 256;
  OptimizerConfig optimizer = OptimizerConfig::sgd(0.01);
  /// Per-step schedule; totalSteps = 0 is filled in as epochs * batches per epoch.
  std::optional<LrScheduleConfig> schedule;
  double clipGradNorm = 0;    ///< > 0: clip gradients to this global L2 norm every step
  double labelSmoothing = 0;  ///< cross-entropy label smoothing (training loss only)
  /// Seeds the data order / augmentation and ATen's default generator (dropout). Same seed,
  /// same data and one thread -> bit-identical parameters.
  uint64_t seed = 0;
  /// Graph output holding the logits ([N, C] or [B, T, V]); empty = the first output.
  std::string outputName;
  bool progress = true;
  ProgressOptions progressOptions;
  /// Non-empty: a checkpoint is written (atomically) here after every epoch.
  std::string checkpointPath;
};

/// Summary of a fit() call.
struct TrainResult {
  int64_t epochsRun = 0;
  int64_t steps = 0;         ///< optimizer steps in this call
  Metrics train;             ///< running metrics of the last epoch
  std::optional<Metrics> eval;  ///< last evaluation, when a validation set was given
  double trainSeconds = 0;   ///< wall time in training steps (evaluation excluded)
  int64_t samples = 0;       ///< samples trained on in this call
  double samplesPerSecond() const { return trainSeconds > 0 ? samples / trainSeconds : 0; }
};

/// Trains a graph in place: its trainable params are updated, BatchNorm running statistics
/// (frozen params) are updated by the kernels in train mode. The graph must outlive the trainer
/// and must not be changed structurally while it exists.
class Trainer {
 public:
  /// Builds the optimizer over the graph's trainable params (throws gs::Error for bad options or
  /// an unknown outputName).
  Trainer(Graph& g, TrainerOptions options);
  ~Trainer();

  /// Hooks run in registration order.
  void addCallback(CallbackPtr cb) { callbacks_.push_back(std::move(cb)); }

  /// Runs epochs [epoch(), options.epochs) on `train` (evaluating on `val` after each epoch when
  /// given). The first call without a loaded checkpoint seeds ATen's default generator.
  TrainResult fit(std::shared_ptr<const Dataset> train, std::shared_ptr<const Dataset> val = nullptr);
  /// Evaluation pass (eval-mode executor, no gradients): mean cross-entropy (no smoothing),
  /// top-1 / top-5 accuracy; token-level for sequence outputs.
  Metrics evaluate(const Dataset& data);

  /// Writes params (incl. frozen ones such as BN running stats), optimizer state, the RNG state
  /// and epoch / step / schedule position to a safetensors file, atomically.
  void saveCheckpoint(const std::string& path) const;
  /// Restores a saveCheckpoint() file: a later fit() continues exactly where it stopped. Throws
  /// gs::Error naming the file for a missing / mis-shaped parameter or incompatible optimizer.
  void loadCheckpoint(const std::string& path);

  Graph& graph() { return g_; }
  Optimizer& optimizer() { return *opt_; }
  /// The schedule of the current / last fit() (nullptr before fit or without a schedule).
  LrSchedule* schedule() { return schedule_.get(); }
  const TrainerOptions& options() const { return o_; }
  /// Next epoch to run (0-based).
  int64_t epoch() const { return epoch_; }
  /// Optimizer steps done so far (across resumes).
  int64_t globalStep() const { return step_; }

 private:
  at::Tensor forward(Executor& ex, const at::Tensor& inputs);
  void trainEpoch(DataLoader& loader, TrainContext& ctx, TrainResult& res);

  Graph& g_;
  TrainerOptions o_;
  std::unique_ptr<Optimizer> opt_;
  std::unique_ptr<LrSchedule> schedule_;
  std::unique_ptr<Executor> train_ex_, eval_ex_;
  std::vector<CallbackPtr> callbacks_;
  size_t output_index_ = 0;
  int64_t epoch_ = 0, step_ = 0;
  bool seeded_ = false;  // RNG seeded or restored from a checkpoint
};

/// Writes every parameter of `g` (name -> data) to a safetensors file with `metadata`.
void saveParams(const Graph& g, const std::string& path,
                const std::map<std::string, std::string>& metadata = {});
/// Copies tensors from a safetensors file into the params of `g` with the same names. Every param
/// must be present with the same shape (dtype is converted); with `strict`, tensors in the file
/// that are not params are an error too (keys starting "optimizer." / "trainer." are exempt).
void loadParams(Graph& g, const std::string& path, bool strict = true);

}  // namespace gs
