// magnitude_prune: masks from |w| order, a callback that keeps pruned weights at zero during
// fine-tuning, and a summary with the measured sparsity of every layer.
#include "algo/magnitude_prune.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "algo/registry.h"
#include "support/error.h"

namespace gs {

namespace {

/// Count of the smallest elements to prune: round(s * n), clamped to [0, n].
int64_t prunedCount(int64_t n, double s) {
  return std::min<int64_t>(n, std::max<int64_t>(0, std::llround(s * static_cast<double>(n))));
}

/// Mask (float, shape of the flattened concatenation) zeroing the k smallest |values|.
at::Tensor maskOfSmallest(const at::Tensor& flat_abs, int64_t k) {
  at::Tensor mask = at::ones_like(flat_abs);
  if (k == 0) return mask;
  // Stable ascending sort: equal magnitudes are pruned in index order, so exactly k go.
  auto order = std::get<1>(at::sort(flat_abs, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  mask.index_fill_(0, order.slice(0, 0, k), 0.0);
  return mask;
}

/// Keeps pruned weights at zero while training: masks gradients before the optimizer step (so
/// momentum / Adam moments of pruned weights stay zero) and re-applies the masks after it
/// (weight decay and numerical drift cannot revive them).
class MaskCallback : public Callback {
 public:
  explicit MaskCallback(const std::map<std::string, at::Tensor>& masks) : masks_(masks) {}
  void onTrainBegin(TrainContext& ctx) override { applyMasks(ctx, false); }
  void onBackwardEnd(TrainContext& ctx) override { applyMasks(ctx, true); }
  void onStepEnd(TrainContext& ctx) override { applyMasks(ctx, false); }

 private:
  void applyMasks(TrainContext& ctx, bool grads) {
    at::NoGradGuard no_grad;
    for (auto& [name, mask] : masks_) {
      Value* v = ctx.graph->findValue(name);
      GS_CHECK(v && v->isParam(), "magnitude_prune: weight '", name,
               "' disappeared from the graph being trained");
      const at::Tensor& w = v->data();
      at::Tensor m = mask.to(w.dtype());
      if (!grads) {
        w.mul_(m);
      } else if (w.grad().defined()) {
        w.mutable_grad().mul_(m);
      }
    }
  }
  const std::map<std::string, at::Tensor>& masks_;
};

}  // namespace

std::vector<Value*> prunableWeights(const Node& n) {
  std::vector<Value*> out;
  for (auto* v : n.inputs())
    if (v && v->isParam() && v->data().dim() >= 2 && v->data().is_floating_point() &&
        std::find(out.begin(), out.end(), v) == out.end())
      out.push_back(v);
  return out;
}

at::Tensor magnitudeMask(const at::Tensor& w, double sparsity) {
  at::NoGradGuard no_grad;
  at::Tensor flat = w.detach().abs().reshape({-1}).to(at::kFloat);
  return maskOfSmallest(flat, prunedCount(flat.numel(), sparsity)).reshape(w.sizes());
}

MagnitudePrune::MagnitudePrune(const Config& cfg, const ConfigSchema& schema)
    : CompAlgo(cfg, schema) {}

Graph MagnitudePrune::applyImpl(Graph g) {
  masks_.clear();
  at::NoGradGuard no_grad;
  // Weights of active layers, each once (a weight shared by two layers takes the first policy).
  std::vector<std::pair<Value*, double>> weights;
  for (auto* l : activeLayers()) {
    Node* n = g.findNode(l->name);
    GS_ASSERT(n, "layer vanished: ", l->name);
    for (Value* w : prunableWeights(*n)) {
      bool seen = false;
      for (auto& [v, s] : weights) seen |= v == w;
      if (!seen) weights.emplace_back(w, l->policy.settings.getFloat("sparsity"));
    }
  }
  if (config().getString("scope") == "global") {
    std::vector<at::Tensor> flats;
    int64_t total = 0;
    for (auto& [w, s] : weights) {
      flats.push_back(w->data().detach().abs().reshape({-1}).to(at::kFloat));
      total += w->data().numel();
    }
    if (total > 0) {
      at::Tensor all = at::cat(flats);
      at::Tensor mask = maskOfSmallest(all, prunedCount(total, config().getFloat("sparsity")));
      int64_t off = 0;
      for (auto& [w, s] : weights) {
        int64_t n = w->data().numel();
        masks_[w->name()] = mask.slice(0, off, off + n).reshape(w->data().sizes()).clone();
        off += n;
      }
    }
  } else {
    for (auto& [w, s] : weights) masks_[w->name()] = magnitudeMask(w->data(), s);
  }
  for (auto& [w, s] : weights) w->data().mul_(masks_.at(w->name()).to(w->data().dtype()));
  return g;
}

std::vector<CallbackPtr> MagnitudePrune::trainingCallbacks() {
  return {std::make_shared<MaskCallback>(masks_)};
}

Graph MagnitudePrune::convertImpl(Graph g) {
  at::NoGradGuard no_grad;
  for (auto& [name, mask] : masks_) {
    Value* v = g.findValue(name);
    GS_CHECK(v && v->isParam(), "magnitude_prune: weight '", name, "' not found in the graph");
    // A fresh tensor: the converted graph must not alias (or carry autograd state of) training.
    v->setData(v->data().detach().mul(mask.to(v->data().dtype())));
  }
  return g;
}

std::string MagnitudePrune::policyString(const LayerRecord& layer) const {
  char buf[48];
  if (config().getString("scope") == "global")
    std::snprintf(buf, sizeof buf, "global-sparsity=%.2f", config().getFloat("sparsity"));
  else
    std::snprintf(buf, sizeof buf, "sparsity=%.2f", layer.policy.settings.getFloat("sparsity"));
  return buf;
}

void MagnitudePrune::describeLayer(const Graph& g, const Node* node, const LayerRecord& layer,
                                   SummaryRow& row) const {
  CompAlgo::describeLayer(g, node, layer, row);
  if (!node) return;
  int64_t zeros = 0, numel = 0;
  for (Value* w : prunableWeights(*node)) {
    zeros += (w->data() == 0).sum().item<int64_t>();
    numel += w->data().numel();
  }
  // params after = non-zero parameters (biases included); storage stays dense.
  row.paramsAfter -= zeros;
  row.metrics["sparsity"] = numel ? static_cast<double>(zeros) / numel : 0.0;
  row.note = "dense storage";
}

void MagnitudePrune::describeSummary(SummaryTable& t) const {
  int64_t zeros = 0, numel = 0;
  for (auto& [name, m] : masks_) {
    zeros += (m == 0).sum().item<int64_t>();
    numel += m.numel();
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4f (%lld of %lld weights)", numel ? double(zeros) / numel : 0.0,
                static_cast<long long>(zeros), static_cast<long long>(numel));
  t.notes.emplace_back("weight sparsity", buf);
}

void registerPruneAlgos(AlgoRegistry& r) {
  r.add({"magnitude_prune",
         "unstructured magnitude pruning: zero the smallest |w| of Conv/Gemm/MatMul weights; "
         "masks kept during fine-tuning",
         {FieldSpec::real("sparsity", 0.5, 0.0, 0.999,
                          "fraction of each weight tensor set to zero (exact: round(s * numel))")
              .layer(),
          FieldSpec::enumeration("scope", "layer", {"layer", "global"},
                                 "layer: every layer pruned to its own sparsity; global: one "
                                 "magnitude threshold across all layers"),
          FieldSpec::integer("finetune_epochs", 0, 0, 1000,
                             "recommended fine-tuning epochs with the masks kept (gstick compress "
                             "uses it unless --epochs is given)")},
         algoFactory<MagnitudePrune>(),
         [](const Config& c) {
           if (c.getString("scope") != "global") return;
           const Json& lp = c.get("layer_policies");
           for (auto it = lp.begin(); it != lp.end(); ++it)
             GS_CHECK(!(it.value().is_object() && it.value().contains("sparsity")),
                      "key 'scope' = \"global\" is incompatible with a per-layer 'sparsity' in "
                      "layer_policies '",
                      it.key(), "' (use scope \"layer\")");
         }});
}

}  // namespace gs
