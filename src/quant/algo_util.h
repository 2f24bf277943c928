// Helpers shared by the quantization CompAlgo classes: specs from config values, policy strings,
// weight storage of a layer, the quantization-delay callback.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"
#include "quant/qparams.h"
#include "train/callback.h"

namespace gs::quant {

/// Spec of `bits` with the given flags; granularity "per_tensor" | "per_channel" | "per_group".
QuantSpec makeSpec(int64_t bits, bool is_signed, bool symmetric, bool narrow,
                   const std::string& granularity = "per_tensor", int64_t group_size = 0);

/// "W8-per_channel-A8-per_tensor" (A part omitted when activations are not quantized;
/// `act_suffix` e.g. "dyn" gives "A8dyn-per_token").
std::string policyText(const QuantSpec* w, const QuantSpec* a, const std::string& act_suffix = "");

/// Storage (elements, bytes) of the weight a layer reads through a quantizer or a
/// DequantizeLinear, or directly: quantized weights count bits / 8 bytes per element plus their
/// scales / zero points; other parameter inputs (bias) count as stored.
std::pair<int64_t, int64_t> quantizedLayerStorage(const Node& layer);

/// Flips scalar `enable` parameters (found by name in the trained graph) to 1 once the global
/// step reaches each one's delay, and sets them to 0 before that (quantization delay).
class QuantDelayCallback : public Callback {
 public:
  /// (parameter name, delay in steps) pairs.
  explicit QuantDelayCallback(std::vector<std::pair<std::string, int64_t>> delays)
      : delays_(std::move(delays)) {}
  void onTrainBegin(TrainContext& ctx) override { update(ctx); }
  void onStepBegin(TrainContext& ctx) override { update(ctx); }
  void onTrainEnd(TrainContext& ctx) override;

 private:
  void update(TrainContext& ctx);
  std::vector<std::pair<std::string, int64_t>> delays_;
};

}  // namespace gs::quant
