// `magnitude_prune`: unstructured magnitude pruning with per-layer (or global) sparsity; masks are
// kept during fine-tuning by a callback and baked into the weights by convert().
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>

#include "algo/comp_algo.h"

namespace gs {

/// Zeroes the round(sparsity * n) smallest-|w| elements of every weight (parameter inputs of rank
/// >= 2) of Conv / ConvTranspose / Gemm / MatMul layers; ties are broken by element index, so the
/// pruned count is exact. scope "layer": each layer uses its own (policy) sparsity; scope
/// "global": one threshold over all active layers' weights.
class MagnitudePrune : public CompAlgo {
 public:
  MagnitudePrune(const Config& cfg, const ConfigSchema& schema);
  std::string name() const override { return "magnitude_prune"; }
  std::set<std::string> layerOps() const override {
    return {"Conv", "ConvTranspose", "Gemm", "MatMul"};
  }
  bool needsTraining() const override { return recommendedEpochs() > 0; }
  int64_t recommendedEpochs() const override { return config().getInt("finetune_epochs"); }

  /// Masks by weight value name (1 = kept, 0 = pruned), computed by apply().
  const std::map<std::string, at::Tensor>& masks() const { return masks_; }

 protected:
  Graph applyImpl(Graph g) override;
  std::vector<CallbackPtr> trainingCallbacks() override;
  Graph convertImpl(Graph g) override;
  std::string policyString(const LayerRecord& layer) const override;
  void describeLayer(const Graph& g, const Node* node, const LayerRecord& layer,
                     SummaryRow& row) const override;
  void describeSummary(SummaryTable& table) const override;

 private:
  std::map<std::string, at::Tensor> masks_;
};

/// The weights magnitude_prune considers in `n`: parameter inputs of rank >= 2.
std::vector<Value*> prunableWeights(const Node& n);

/// Mask keeping all but the round(sparsity * numel) smallest-|w| elements of `w` (ties: lower
/// index pruned first).
at::Tensor magnitudeMask(const at::Tensor& w, double sparsity);

}  // namespace gs
