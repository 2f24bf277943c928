// Learning-rate schedules (constant, step, cosine with warmup, one-cycle) as pure functions of
// the step number, applied to an Optimizer's param groups.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace gs {

class Optimizer;

/// Schedule configuration. Steps count optimizer steps (batches), from 0.
struct LrScheduleConfig {
  enum class Kind { Constant, Step, Cosine, OneCycle };
  Kind kind = Kind::Constant;
  /// Total optimizer steps of the run (Cosine, OneCycle; the trainer fills it in when 0).
  int64_t totalSteps = 0;
  // Step: lr = base * gamma^floor(step / stepSize)  (torch StepLR)
  int64_t stepSize = 1;
  double gamma = 0.1;
  // Cosine: linear warmup lr = base * (step + 1) / warmupSteps for step < warmupSteps, then
  // lr = minLr + (base - minLr) * (1 + cos(pi * t)) / 2, t = (step - warmup) / (total - warmup)
  // clamped to [0, 1] (torch CosineAnnealingLR's closed form with T_max = total - warmup).
  int64_t warmupSteps = 0;
  double minLr = 0.0;
  // OneCycle (torch OneCycleLR; the group's configured lr is max_lr):
  double pctStart = 0.3;
  double divFactor = 25.0;
  double finalDivFactor = 1e4;
  bool threePhase = false;
  bool cosAnneal = true;      ///< false = linear anneal
  bool cycleMomentum = true;  ///< cycle SGD momentum / AdamW beta1 inversely to the lr
  double baseMomentum = 0.85;
  double maxMomentum = 0.95;

  /// Parses "constant", "step", "cosine", "onecycle"; throws gs::Error otherwise.
  static Kind parseKind(const std::string& s);
};

/// Learning rate (and momentum, when the schedule cycles it) at one step.
struct ScheduleValue {
  double lr;
  std::optional<double> momentum;
};

/// A schedule: value(step, base) is a closed-form function; step() advances and writes the
/// values into the optimizer's groups (each group's baseLr is its own base).
class LrSchedule {
 public:
  /// Throws gs::Error for inconsistent settings (e.g. OneCycle/Cosine without totalSteps,
  /// pctStart outside [0, 1], stepSize < 1).
  explicit LrSchedule(LrScheduleConfig c);

  /// Value at `step` for a group with base lr `baseLr`. OneCycle throws gs::Error past totalSteps
  /// (as torch does).
  ScheduleValue value(int64_t step, double baseLr) const;
  /// Writes the values for the current step into `opt` (call once before training starts).
  void apply(Optimizer& opt) const;
  /// Advances one step and applies (call after every optimizer step).
  void step(Optimizer& opt);

  int64_t currentStep() const { return step_; }
  /// Restores the position (checkpoint resume) and applies it.
  void setStep(int64_t s, Optimizer& opt);
  const LrScheduleConfig& config() const { return c_; }

 private:
  LrScheduleConfig c_;
  int64_t step_ = 0;
};

}  // namespace gs
