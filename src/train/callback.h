// Trainer callbacks: the hooks through which compression algorithms (and logging, early stopping,
// checkpointing) plug into training.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>

#include "data/dataset.h"
#include "ir/graph.h"
#include "train/metrics.h"

namespace gs {

class Optimizer;
class LrSchedule;
class Trainer;

/// What a callback sees. Pointers are valid for the duration of the call.
struct TrainContext {
  Trainer* trainer = nullptr;
  Graph* graph = nullptr;
  Optimizer* optimizer = nullptr;
  LrSchedule* schedule = nullptr;  ///< nullptr when no schedule is configured
  int64_t epoch = 0;               ///< current epoch (0-based)
  int64_t numEpochs = 0;
  int64_t step = 0;                ///< global optimizer step (0-based; number of steps done so far)
  int64_t stepInEpoch = 0;         ///< batch index within the epoch
  int64_t stepsPerEpoch = 0;
  const Batch* batch = nullptr;    ///< the current batch (step hooks only)
  at::Tensor outputs;              ///< model output of the current step (onLoss, onStepEnd)
  double loss = 0;                 ///< loss of the current step (after onLoss), onStepEnd
  Metrics train;                   ///< running training metrics of the current epoch
  Metrics eval;                    ///< metrics of the last evaluation (onEpochEnd, onTrainEnd)
  bool hasEval = false;
  /// Set by a callback to stop after the current step (the epoch ends early, onEpochEnd and
  /// onTrainEnd still run).
  bool stopTraining = false;
};

/// Base class: every hook defaults to doing nothing. Hooks run in registration order.
class Callback {
 public:
  virtual ~Callback() = default;
  /// Before the first step (also when resuming). Parameter data may be changed here; structural
  /// graph changes belong before the Trainer is constructed (its optimizer holds the params).
  virtual void onTrainBegin(TrainContext&) {}
  virtual void onTrainEnd(TrainContext&) {}
  virtual void onEpochBegin(TrainContext&) {}
  /// After the epoch's evaluation (ctx.eval) when a validation set is given.
  virtual void onEpochEnd(TrainContext&) {}
  virtual void onStepBegin(TrainContext&) {}
  /// After the forward pass; may add regularisation terms to `loss` before backward.
  virtual void onLoss(TrainContext&, at::Tensor& loss) {}
  /// After backward and gradient clipping, before the optimizer step (e.g. gradient masks).
  virtual void onBackwardEnd(TrainContext&) {}
  /// After the optimizer and schedule steps (e.g. re-applying pruning masks).
  virtual void onStepEnd(TrainContext&) {}
};

using CallbackPtr = std::shared_ptr<Callback>;

}  // namespace gs
