// Optimizers over a graph's trainable parameters: SGD and AdamW with torch.optim's exact update
// rules, per-name param groups, state save/load, and global-norm gradient clipping.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace gs {

/// Which update rule.
enum class OptimizerKind { SGD, AdamW };

/// Hyperparameters of one param group (fields of the other optimizer kind are ignored).
struct GroupOptions {
  double lr = 0.01;
  double weightDecay = 0.0;  ///< SGD: L2 added to the gradient; AdamW: decoupled p *= 1 - lr*wd
  // SGD
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
  // AdamW
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

/// Params whose name contains a match of `pattern` (ECMAScript std::regex_search) get the
/// default options with `overrides` applied. Keys: lr, weight_decay, momentum, dampening,
/// nesterov (0/1), beta1, beta2, eps; an unknown key is a gs::Error.
struct ParamGroupSpec {
  std::string pattern;
  std::map<std::string, double> overrides;
};

/// Optimizer configuration. torch defaults: SGD lr required, others 0; AdamW lr 1e-3,
/// betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2.
struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::SGD;
  GroupOptions defaults;
  /// Earlier specs win; unmatched params go to the default group (group 0).
  std::vector<ParamGroupSpec> groups;

  static OptimizerConfig sgd(double lr, double momentum = 0, double weightDecay = 0,
                             bool nesterov = false, double dampening = 0);
  static OptimizerConfig adamw(double lr = 1e-3, double weightDecay = 1e-2, double beta1 = 0.9,
                               double beta2 = 0.999, double eps = 1e-8);
  /// Adds a group without weight decay for biases and normalisation weights: names ending in
  /// "bias", or containing "bn."/"norm"/"ln" before "weight", i.e. the common "no decay on
  /// 1-D params" policy expressed by name.
  OptimizerConfig& noDecayOnBiasAndNorm();
};

/// A group of parameters sharing hyperparameters (the scheduler rewrites lr / momentum).
struct ParamGroup {
  std::vector<Value*> params;
  GroupOptions options;
  /// Configured learning rate before any schedule (the schedule's base lr).
  double baseLr = 0.0;
  /// Configured momentum (SGD) / beta1 (AdamW) before any schedule.
  double baseMomentum = 0.0;
};

/// Optimizer state in checkpoint form: tensors keyed "optimizer.<param>.<slot>" and string
/// metadata (group hyperparameters as they are now).
struct OptimizerState {
  std::map<std::string, at::Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

/// An optimizer over the trainable floating-point parameters of a graph. Construction marks them
/// requires_grad. Update rules are those of torch 1.13's single-tensor torch.optim.SGD / AdamW
/// (same ATen calls in the same order; tests check torch's results to 9 significant digits).
class Optimizer {
 public:
  /// Throws gs::Error for a bad regex, an unknown override key or a negative lr / eps.
  Optimizer(Graph& g, OptimizerConfig config);

  /// Drops all gradients (torch's zero_grad(set_to_none=True)).
  void zeroGrad();
  /// One update of every parameter that has a gradient.
  void step();

  OptimizerKind kind() const { return kind_; }
  std::vector<ParamGroup>& groups() { return groups_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  /// Every optimised parameter, in graph order.
  std::vector<Value*> params() const;
  /// Number of step() calls so far.
  int64_t steps() const { return steps_; }

  /// Momentum buffers / moments / step counts and group hyperparameters.
  OptimizerState state() const;
  /// Restores state() output; throws gs::Error for a missing or mis-shaped entry or a
  /// different optimizer kind / group count.
  void loadState(const OptimizerState& s);

 private:
  struct ParamState {
    at::Tensor momentum_buffer;  // SGD
    at::Tensor exp_avg, exp_avg_sq;  // AdamW
    double step = 0;                 // AdamW step count (torch keeps it as a float tensor)
  };
  OptimizerKind kind_;
  std::vector<ParamGroup> groups_;
  std::map<const Value*, ParamState> state_;
  int64_t steps_ = 0;
};

/// Scales the gradients of `params` so that their global L2 norm is at most maxNorm, exactly as
/// torch.nn.utils.clip_grad_norm_ (coef = maxNorm / (norm + 1e-6), clamped to 1, always applied).
/// Params without a gradient are skipped. Returns the norm before clipping.
double clipGradNorm(const std::vector<Value*>& params, double maxNorm);

}  // namespace gs
