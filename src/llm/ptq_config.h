// PTQ configuration for decoder LLMs, in the spirit of MindSpore Golden Stick's PTQConfig:
// weight / activation / KV-cache dtypes, granularities, outlier suppression, precision recovery,
// regex layer policies and an op-name blacklist. JSON in and out, validated with clear errors.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llm/awq.h"
#include "llm/gptq.h"
#include "llm/quantizer.h"

namespace gs::llm {

enum class OutlierSuppression { None, Smooth, Awq };
enum class PrecisionRecovery { None, Gptq };
/// Activation (and KV-cache) scale granularity: one static scale per tensor (activations) or per
/// channel (KV cache), computed from calibration; or one dynamic scale per token.
enum class ActGranularity { PerTensor, PerChannel, PerToken };

/// Overrides for the linear layers whose node name matches `pattern` (std::regex_search);
/// the first matching policy wins. `skip` leaves the layer in float.
struct LayerPolicy {
  std::string pattern;
  bool skip = false;
  std::optional<int> weight_bits;
  std::optional<int64_t> group_size;
};

/// The whole PTQ recipe. JSON keys are the field names; enums as strings ("int4", "awq", ...).
struct PtqConfig {
  int weight_bits = 4;                  ///< "weight_dtype": int8 / int4 / int3 (0 = none)
  int64_t group_size = 128;             ///< > 0 per group; 0 per channel; -1 per tensor
  bool weight_symmetric = false;
  int act_bits = 0;                     ///< "act_dtype": int8 or none (0)
  ActGranularity act_granularity = ActGranularity::PerToken;  ///< per_tensor | per_token
  int kv_bits = 0;                      ///< "kvcache_dtype": int8 or none (0)
  ActGranularity kv_granularity = ActGranularity::PerToken;   ///< per_channel | per_token
  OutlierSuppression outlier = OutlierSuppression::None;
  double smooth_alpha = 0.5;
  int64_t awq_grid = 20;
  bool awq_duo_scaling = true;
  /// AWQ clip search; unset ("auto"): on, unless GPTQ follows (a clipped weight's clipping error
  /// is outside what GPTQ compensates: docs/ptq.md, "AWQ combined with GPTQ")
  std::optional<bool> awq_clip;
  int64_t awq_clip_grid = 20;           ///< clip shrink ratios 1 - k / awq_clip_grid, down to 0.5
  int64_t awq_clip_refine = 5;          ///< then a awq_clip_refine times finer pass (1 = off)
  bool awq_clip_qk = true;              ///< clip q_proj / k_proj too (AutoAWQ skips them)
  /// calibration tokens the AWQ scale search scores on (AutoAWQ scores all of its 128 x 512)
  int64_t awq_max_tokens = 65536;
  PrecisionRecovery recovery = PrecisionRecovery::None;
  double damp_percent = 0.01;
  int64_t gptq_block_size = 128;
  bool act_order = false;
  bool static_groups = false;
  std::vector<LayerPolicy> policies;
  std::vector<std::string> blacklist;   ///< exact node names kept in float
  int64_t calib_batch = 4;              ///< calibration sequences per forward pass
  /// Per-layer output error mean_x ||W x - Q(W) x||^2 of the method and of plain RTN
  /// (LayerReport::err / err_rtn).
  bool measure_error = true;
  /// How the error is measured. 0: exactly over all calibration tokens, from each linear input's
  /// Hessian (computed even without GPTQ, and kept until the group's last linear is measured, so
  /// GPTQ cannot free it early). > 0: over at most this many calibration rows per linear input
  /// (a strided subsample of every forward chunk, all rows when there are fewer): no Hessian is
  /// needed for the report, which adds rows x in_features floats per input instead of
  /// in_features^2 (what `gstick compress` uses: `error_rows` 1024).
  int64_t error_rows = 0;

  /// Rejects invalid combinations with one clear message (e.g. AWQ with int8 activations).
  void validate() const;
  /// The weight spec of layer `name` after policies; nullopt = keep in float.
  std::optional<WeightQuantSpec> weightSpecFor(const std::string& name) const;
  GptqConfig gptqConfig(const WeightQuantSpec& s) const;
  AwqConfig awqConfig(const WeightQuantSpec& s) const;
  /// Whether AWQ clips: awq_clip, or when unset, unless precision_recovery is gptq.
  bool awqClips() const { return awq_clip.value_or(recovery != PrecisionRecovery::Gptq); }
  /// One-line description ("W4 g128 asym, AWQ, GPTQ, A8 per-token, KV8 per-token").
  std::string describe() const;
};

/// Parses and validates a JSON object; unknown keys, wrong types and out-of-range values are
/// gs::Error naming the key.
PtqConfig ptqConfigFromJson(const nlohmann::json& j);
/// The config as JSON (every key; round-trips through ptqConfigFromJson).
nlohmann::json ptqConfigToJson(const PtqConfig& c);

}  // namespace gs::llm
