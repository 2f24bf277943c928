// CompAlgo: the one interface every compression algorithm implements (apply / callbacks /
// convert / summary), with its validated config, layer policies and calibration / training data.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "algo/config.h"
#include "algo/layer_policy.h"
#include "algo/summary.h"
#include "data/dataset.h"
#include "ir/graph.h"
#include "train/callback.h"

namespace gs {

/// Calibration data for post-training algorithms: the first numBatches * batchSize samples of
/// `dataset`, in order (deterministic; no shuffling, labels unused).
struct CalibrationData {
  std::shared_ptr<const Dataset> dataset;
  int64_t numBatches = 8;
  int64_t batchSize = 32;

  /// Number of batches actually available: min(numBatches, ceil(dataset size / batchSize)).
  int64_t size() const;
  /// Batch i (0 <= i < size()): samples [i * batchSize, min((i + 1) * batchSize, N)).
  /// Throws gs::Error if there is no dataset or i is out of range.
  Batch batch(int64_t i) const;
};

/// What an algorithm may use besides its config; set with CompAlgo::setContext before apply().
struct AlgoContext {
  /// For PTQ algorithms (needsCalibration()); apply() throws when they need it and it is absent.
  std::optional<CalibrationData> calibration;
  /// Training / validation sets when the caller will fine-tune with callbacks() (informational:
  /// algorithms may size schedules from it).
  std::shared_ptr<const Dataset> trainData, valData;
  /// Seed for any randomness inside apply() (e.g. random init, sample selection).
  uint64_t seed = 0;
  /// Show progress / log per-layer lines.
  bool verbose = false;
};

/// Base class of all compression algorithms. Typical use (what `gstick compress` does):
/// ```
///   auto algo = AlgoRegistry::global().create("magnitude_prune", user_json);
///   algo->setContext(ctx);                  // calibration data for PTQ
///   Graph g2 = algo->apply(std::move(g));   // insert compression structure
///   if (algo->needsTraining()) { Trainer t(g2, opts); for (auto& cb : algo->callbacks())
///     t.addCallback(cb); t.fit(train, val); }
///   Graph out = algo->convert(std::move(g2)); // deployable graph: standard ONNX ops only
///   SummaryTable s = algo->summary(out);
/// ```
/// apply(), convert() and summary() are non-virtual: they resolve layer policies and record the
/// per-layer "before" statistics, then call the protected virtual *Impl hooks.
class CompAlgo {
 public:
  /// `cfg` validated against `schema` (base fields + the algorithm's own; see AlgoRegistry).
  /// Throws gs::Error for invalid layer_policies regexes.
  CompAlgo(Config cfg, ConfigSchema schema);
  virtual ~CompAlgo();
  CompAlgo(const CompAlgo&) = delete;
  CompAlgo& operator=(const CompAlgo&) = delete;

  /// Registry name, e.g. "magnitude_prune".
  virtual std::string name() const = 0;
  /// Op types this algorithm compresses (e.g. {"Conv", "Gemm", "MatMul"}); only nodes of these
  /// types that have a parameter input are "layers". Empty = every node with a parameter input.
  virtual std::set<std::string> layerOps() const { return {}; }
  /// True for PTQ algorithms: apply() needs context().calibration.
  virtual bool needsCalibration() const { return false; }
  /// True when the algorithm is meant to be trained (QAT, pruning with fine-tuning): run a
  /// Trainer with callbacks() between apply() and convert().
  virtual bool needsTraining() const { return false; }
  /// Epochs the algorithm recommends when it is trained (0 = none).
  virtual int64_t recommendedEpochs() const { return 0; }

  const Config& config() const { return cfg_; }
  const ConfigSchema& schema() const { return schema_; }
  const LayerPolicies& policies() const { return policies_; }
  void setContext(AlgoContext ctx) { ctx_ = std::move(ctx); }
  const AlgoContext& context() const { return ctx_; }

  /// Inserts the compression structure (fake-quant nodes, masks, ...) or, for PTQ, computes and
  /// applies the compressed weights. Resolves the layer policies on `g` first (errors on
  /// conflicts), records each layer's parameter count / bytes, then calls applyImpl().
  Graph apply(Graph g);
  /// Trainer hooks: the algorithm's trainingCallbacks(), then (when the config's export_path is
  /// set) a callback that converts a copy of the trained graph and exports it to ONNX at
  /// training end, as Golden Stick's save_mindir does.
  std::vector<CallbackPtr> callbacks();
  /// The deployable graph (standard ONNX ops only): calls convertImpl().
  Graph convert(Graph g);
  /// Per-layer table for `g` (the applied or converted graph): one row per layer resolved at
  /// apply() (skipped layers included, policy "skip"), filled by describeLayer().
  SummaryTable summary(const Graph& g) const;

  /// A layer as resolved by apply(): name, op, policy and its parameter stats before apply().
  struct LayerRecord {
    std::string name, op;
    LayerPolicy policy;
    int64_t paramsBefore = 0, bytesBefore = 0;
  };
  /// Layers resolved by the last apply() (empty before), in graph order.
  const std::vector<LayerRecord>& layers() const { return layers_; }
  /// Layers that are not skipped.
  std::vector<const LayerRecord*> activeLayers() const;

 protected:
  /// The algorithm's graph change; layers() is already resolved.
  virtual Graph applyImpl(Graph g) = 0;
  /// Hooks for training (masks, schedules, observers). Default: none.
  virtual std::vector<CallbackPtr> trainingCallbacks() { return {}; }
  /// Lowering to standard ops. Default: unchanged.
  virtual Graph convertImpl(Graph g) { return g; }
  /// Policy text of an active layer (e.g. "W8-per_channel-A8-per_tensor", "sparsity=0.50").
  /// Default: "key=value,..." of the per-layer settings (or "default" when there are none).
  virtual std::string policyString(const LayerRecord& layer) const;
  /// Fills row.paramsAfter / bytesAfter / metrics / note for a layer. `node` is the node of
  /// that name in `g` (nullptr if the algorithm renamed or removed it). Default: params and
  /// bytes of the node's parameter inputs in `g`.
  virtual void describeLayer(const Graph& g, const Node* node, const LayerRecord& layer,
                             SummaryRow& row) const;
  /// Adds table-wide notes (calibration used, totals). Default: none.
  virtual void describeSummary(SummaryTable& table) const {}

 private:
  Config cfg_;
  ConfigSchema schema_;
  LayerPolicies policies_;
  AlgoContext ctx_;
  std::vector<LayerRecord> layers_;
};

/// Parameter elements and bytes of the parameter inputs of `n` (each parameter counted once).
std::pair<int64_t, int64_t> layerParamStats(const Node& n);

/// Callback that, at training end, converts a copy of the trained graph with `algo` and exports
/// it to `path` (ONNX, atomic write). `algo` must outlive the trainer.
CallbackPtr makeExportCallback(CompAlgo& algo, std::string path);

}  // namespace gs
