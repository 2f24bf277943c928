// Executor: runs a Graph on at::Tensors in eval mode (inference) or train mode (autograd).
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ops/registry.h"

namespace gs {

/// Sets ATen's intra-op threads and OpenBLAS's pool (Debian's libopenblas0-pthread keeps its own
/// pool sized from the core count, so without this GEMMs ignore the requested thread count).
void setIntraOpThreads(int n);

/// Sets ATen's intra-op thread count from OMP_NUM_THREADS (or all cores) and, with glibc, tunes
/// malloc to reuse freed activation memory instead of returning it to the OS (see executor.cpp;
/// GS_MALLOC_TUNING=0 disables); idempotent.
void initRuntime();

struct ExecOptions {
  /// Train mode: kernels use batch statistics / dropout, gradients flow to trainable params.
  bool training = false;
  /// Check graph inputs against declared dtype and static dims before running.
  bool check_inputs = true;
  /// Eval mode: run the fusable node groups of runtime/fusion.h (Conv+BatchNormalization folding,
  /// Conv+Relu, erf-GELU) as single steps. Never applies in train mode or with an observer set.
  bool fuse = true;
};

/// Compiles a Graph into a flat plan of bound kernels and runs it.
/// The graph must outlive the executor and must not be mutated while an executor exists
/// (parameter data may be updated, e.g. by training). run() reuses per-executor scratch
/// buffers: use one executor per thread.
class Executor {
 public:
  /// Binds a kernel to every node; throws gs::Error naming the node for unknown ops or bad attrs.
  explicit Executor(const Graph& g, ExecOptions opts = {});
  ~Executor();

  /// Runs with inputs in graph-input order; returns outputs in graph-output order.
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs);
  /// Runs with inputs by name (every graph input must be given).
  std::map<std::string, at::Tensor> runNamed(const std::map<std::string, at::Tensor>& inputs);

  void setTraining(bool t) { opts_.training = t; }
  /// Number of steps the next run executes (a fused group counts as one step); depends on the
  /// mode (fusion is eval-only), ExecOptions::fuse and whether an observer is set.
  size_t numSteps() const { return activeSteps().size(); }
  bool training() const { return opts_.training; }
  const Graph& graph() const { return g_; }

  /// Per-step timing of the last run (when profiling is on): node -> seconds. A fused step is
  /// reported once, under its anchor node (the Conv of Conv+BatchNormalization+Relu, the Erf of a
  /// GELU), and includes the time of the whole group.
  void setProfiling(bool on) { profiling_ = on; }
  const std::vector<std::pair<const Node*, double>>& profile() const { return profile_; }

  /// Called after every node runs with its input and output tensors (undefined = omitted);
  /// used by tools that inspect actual shapes (e.g. `gstick info` counting MACs). Empty = off.
  using NodeObserver = std::function<void(const Node& node, const std::vector<at::Tensor>& in,
                                          const std::vector<at::Tensor>& out)>;
  void setObserver(NodeObserver f) { observer_ = std::move(f); }

 private:
  struct Step {
    const Node* node;
    Kernel kernel;
    std::vector<int> in_slots;   // -1 = omitted
    std::vector<int> out_slots;  // -1 = omitted
    std::vector<int> free_after; // slots whose last use is this step
    std::vector<uint8_t> move_in;  // per input: the slot dies here, so move instead of copy
  };
  void checkInput(const Value* v, const at::Tensor& t) const;
  /// Computes free_after / move_in for a plan (graph outputs and params are never freed).
  void finishPlan(std::vector<Step>& steps) const;
  const std::vector<Step>& activeSteps() const {
    bool fused = has_fused_ && opts_.fuse && !opts_.training && !observer_;
    return fused ? fused_steps_ : steps_;
  }

  const Graph& g_;
  ExecOptions opts_;
  std::vector<Step> steps_;        // one step per node
  std::vector<Step> fused_steps_;  // eval plan with fused groups (valid if has_fused_)
  bool has_fused_ = false;
  std::vector<at::Tensor> slots_, in_, out_;  // per-run scratch, kept to avoid reallocation
  std::vector<int> input_slots_, output_slots_;
  std::vector<std::pair<int, const Value*>> param_slots_;
  int num_slots_ = 0;
  bool profiling_ = false;
  std::vector<std::pair<const Node*, double>> profile_;
  NodeObserver observer_;
};

/// First line of an exception message, without ATen's backtrace noise.
std::string firstLine(const std::string& s);

}  // namespace gs
