// PtqConfig validation and JSON (de)serialisation.
#include "llm/ptq_config.h"

#include <nlohmann/json.hpp>

#include <regex>
#include <sstream>

#include "support/error.h"

namespace gs::llm {

namespace {

std::string dtypeName(int bits) { return bits == 0 ? "none" : "int" + std::to_string(bits); }

int parseDtype(const nlohmann::json& v, const char* key, std::vector<int> allowed) {
  GS_CHECK(v.is_string(), "PTQ config: '", key, "' must be a string (int8, int4, int3 or none)");
  const std::string s = v.get<std::string>();
  for (int b : allowed)
    if (s == dtypeName(b)) return b;
  std::string list;
  for (int b : allowed) list += (list.empty() ? "" : ", ") + dtypeName(b);
  GS_FAIL("PTQ config: '", key, "' = '", s, "' is not one of ", list);
}

std::string granName(ActGranularity g) {
  switch (g) {
    case ActGranularity::PerTensor: return "per_tensor";
    case ActGranularity::PerChannel: return "per_channel";
    default: return "per_token";
  }
}

ActGranularity parseGran(const nlohmann::json& v, const char* key) {
  GS_CHECK(v.is_string(), "PTQ config: '", key, "' must be a string");
  const std::string s = v.get<std::string>();
  if (s == "per_tensor") return ActGranularity::PerTensor;
  if (s == "per_channel") return ActGranularity::PerChannel;
  if (s == "per_token") return ActGranularity::PerToken;
  GS_FAIL("PTQ config: '", key, "' = '", s, "' is not per_tensor, per_channel or per_token");
}

template <typename T>
T get(const nlohmann::json& v, const char* key) {
  try {
    return v.get<T>();
  } catch (const nlohmann::json::exception&) {
    GS_FAIL("PTQ config: '", key, "' has the wrong type (", v.dump(), ")");
  }
}

}  // namespace

void PtqConfig::validate() const {
  GS_CHECK(weight_bits == 0 || weight_bits == 8 || weight_bits == 4 || weight_bits == 3,
           "PTQ config: weight_dtype must be int8, int4, int3 or none");
  GS_CHECK(act_bits == 0 || act_bits == 8, "PTQ config: act_dtype must be int8 or none");
  GS_CHECK(kv_bits == 0 || kv_bits == 8, "PTQ config: kvcache_dtype must be int8 or none");
  GS_CHECK(group_size >= -1, "PTQ config: group_size must be > 0 (per group), 0 (per channel) or "
           "-1 (per tensor)");
  GS_CHECK(act_granularity != ActGranularity::PerChannel,
           "PTQ config: act_granularity per_channel cannot be folded into a GEMM; use per_tensor "
           "or per_token");
  GS_CHECK(kv_granularity != ActGranularity::PerTensor || kv_bits == 0,
           "PTQ config: kvcache_granularity must be per_channel or per_token");
  GS_CHECK(act_bits == 0 || weight_bits == 8,
           "PTQ config: act_dtype int8 needs weight_dtype int8 (W8A8); W", weight_bits,
           "A8 is not supported");
  GS_CHECK(act_bits == 0 || group_size <= 0,
           "PTQ config: W8A8 needs per_channel or per_tensor weights (group_size 0 or -1), not "
           "groups of ", group_size);
  GS_CHECK(outlier != OutlierSuppression::Smooth || act_bits == 8,
           "PTQ config: outlier_suppression 'smooth' (SmoothQuant) migrates activation outliers "
           "and needs act_dtype int8");
  GS_CHECK(outlier != OutlierSuppression::Awq || (act_bits == 0 && weight_bits != 0),
           "PTQ config: outlier_suppression 'awq' is weight-only; it needs act_dtype none and a "
           "weight dtype");
  GS_CHECK(outlier != OutlierSuppression::Awq || group_size >= 0,
           "PTQ config: AWQ needs per-channel or per-group weights, not per_tensor");
  GS_CHECK(recovery != PrecisionRecovery::Gptq || (weight_bits != 0 && group_size >= 0),
           "PTQ config: precision_recovery 'gptq' needs a weight dtype with per-channel or "
           "per-group granularity");
  GS_CHECK(weight_bits != 0 || act_bits != 0 || kv_bits != 0,
           "PTQ config: nothing to quantize (weight, activation and kv-cache dtypes are all none)");
  GS_CHECK(smooth_alpha >= 0 && smooth_alpha <= 1, "PTQ config: smooth_alpha must be in [0, 1]");
  GS_CHECK(awq_grid > 0 && awq_clip_grid > 0 && awq_clip_refine > 0 && awq_max_tokens > 0 &&
               gptq_block_size > 0 && calib_batch > 0,
           "PTQ config: awq_grid, awq_clip_grid, awq_clip_refine, awq_max_tokens, gptq_block_size "
           "and calib_batch must be positive");
  GS_CHECK(error_rows >= 0, "PTQ config: error_rows must be >= 0 (0 = exact, from the Hessian)");
  GS_CHECK(damp_percent >= 0 && damp_percent < 1, "PTQ config: damp_percent must be in [0, 1)");
  GS_CHECK(!static_groups || act_order, "PTQ config: static_groups only applies with act_order");
  if (weight_bits) WeightQuantSpec{weight_bits, group_size, weight_symmetric}.validate();
  for (const LayerPolicy& p : policies) {
    try {
      std::regex re(p.pattern);
    } catch (const std::regex_error& e) {
      GS_FAIL("PTQ config: layer policy pattern '", p.pattern, "' is not a valid regex: ",
              e.what());
    }
    GS_CHECK(!p.weight_bits || *p.weight_bits == 8 || *p.weight_bits == 4 || *p.weight_bits == 3,
             "PTQ config: layer policy '", p.pattern, "': weight_dtype must be int8, int4 or int3");
    GS_CHECK(!p.weight_bits || act_bits == 0 || *p.weight_bits == 8, "PTQ config: layer policy '",
             p.pattern, "': W8A8 layers cannot use another weight width");
  }
}

std::optional<WeightQuantSpec> PtqConfig::weightSpecFor(const std::string& name) const {
  for (const std::string& b : blacklist)
    if (b == name) return std::nullopt;
  WeightQuantSpec s{weight_bits, group_size, weight_symmetric};
  for (const LayerPolicy& p : policies) {
    if (!std::regex_search(name, std::regex(p.pattern))) continue;
    if (p.skip) return std::nullopt;
    if (p.weight_bits) s.bits = *p.weight_bits;
    if (p.group_size) s.group_size = *p.group_size;
    break;
  }
  if (s.bits == 0) return std::nullopt;
  return s;
}

GptqConfig PtqConfig::gptqConfig(const WeightQuantSpec& s) const {
  return {s, damp_percent, gptq_block_size, act_order, static_groups};
}

AwqConfig PtqConfig::awqConfig(const WeightQuantSpec& s) const {
  AwqConfig a;
  a.spec = s;
  a.grid = awq_grid;
  a.duo_scaling = awq_duo_scaling;
  a.clip_grid = awq_clip_grid;
  a.clip_refine = awq_clip_refine;
  a.max_tokens = awq_max_tokens;
  return a;
}

std::string PtqConfig::describe() const {
  std::ostringstream os;
  if (weight_bits) os << WeightQuantSpec{weight_bits, group_size, weight_symmetric}.describe();
  else os << "weights float";
  if (outlier == OutlierSuppression::Awq) os << ", AWQ";
  if (outlier == OutlierSuppression::Smooth) os << ", SmoothQuant(a=" << smooth_alpha << ")";
  if (recovery == PrecisionRecovery::Gptq) os << ", GPTQ" << (act_order ? " act-order" : "");
  if (act_bits) os << ", A8 " << granName(act_granularity);
  if (kv_bits) os << ", KV8 " << granName(kv_granularity);
  return os.str();
}

PtqConfig ptqConfigFromJson(const nlohmann::json& j) {
  GS_CHECK(j.is_object(), "PTQ config must be a JSON object");
  PtqConfig c;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const nlohmann::json& v = it.value();
    const char* key = k.c_str();
    if (k == "weight_dtype") c.weight_bits = parseDtype(v, key, {8, 4, 3, 0});
    else if (k == "act_dtype") c.act_bits = parseDtype(v, key, {8, 0});
    else if (k == "kvcache_dtype") c.kv_bits = parseDtype(v, key, {8, 0});
    else if (k == "group_size") c.group_size = get<int64_t>(v, key);
    else if (k == "weight_granularity") {
      const std::string s = get<std::string>(v, key);
      if (s == "per_channel") c.group_size = 0;
      else if (s == "per_tensor") c.group_size = -1;
      else GS_CHECK(s == "per_group", "PTQ config: 'weight_granularity' = '", s,
                    "' is not per_tensor, per_channel or per_group");
    } else if (k == "weight_symmetric") c.weight_symmetric = get<bool>(v, key);
    else if (k == "act_granularity") c.act_granularity = parseGran(v, key);
    else if (k == "kvcache_granularity") c.kv_granularity = parseGran(v, key);
    else if (k == "outlier_suppression") {
      const std::string s = get<std::string>(v, key);
      if (s == "none") c.outlier = OutlierSuppression::None;
      else if (s == "smooth") c.outlier = OutlierSuppression::Smooth;
      else if (s == "awq") c.outlier = OutlierSuppression::Awq;
      else GS_FAIL("PTQ config: 'outlier_suppression' = '", s, "' is not none, smooth or awq");
    } else if (k == "precision_recovery") {
      const std::string s = get<std::string>(v, key);
      if (s == "none") c.recovery = PrecisionRecovery::None;
      else if (s == "gptq") c.recovery = PrecisionRecovery::Gptq;
      else GS_FAIL("PTQ config: 'precision_recovery' = '", s, "' is not none or gptq");
    } else if (k == "smooth_alpha") c.smooth_alpha = get<double>(v, key);
    else if (k == "awq_grid") c.awq_grid = get<int64_t>(v, key);
    else if (k == "awq_duo_scaling") c.awq_duo_scaling = get<bool>(v, key);
    else if (k == "awq_clip") {
      if (v.is_string() && v.get<std::string>() == "auto") c.awq_clip.reset();
      else if (v.is_boolean()) c.awq_clip = v.get<bool>();
      else if (v.is_string() && (v.get<std::string>() == "true" || v.get<std::string>() == "false"))
        c.awq_clip = v.get<std::string>() == "true";
      else GS_FAIL("PTQ config: 'awq_clip' = ", v.dump(), " is not true, false or \"auto\"");
    }
    else if (k == "awq_clip_grid") c.awq_clip_grid = get<int64_t>(v, key);
    else if (k == "awq_clip_refine") c.awq_clip_refine = get<int64_t>(v, key);
    else if (k == "awq_clip_qk") c.awq_clip_qk = get<bool>(v, key);
    else if (k == "awq_max_tokens") c.awq_max_tokens = get<int64_t>(v, key);
    else if (k == "damp_percent") c.damp_percent = get<double>(v, key);
    else if (k == "gptq_block_size") c.gptq_block_size = get<int64_t>(v, key);
    else if (k == "act_order") c.act_order = get<bool>(v, key);
    else if (k == "static_groups") c.static_groups = get<bool>(v, key);
    else if (k == "calib_batch") c.calib_batch = get<int64_t>(v, key);
    else if (k == "measure_error") c.measure_error = get<bool>(v, key);
    else if (k == "error_rows") c.error_rows = get<int64_t>(v, key);
    else if (k == "blacklist") c.blacklist = get<std::vector<std::string>>(v, key);
    else if (k == "layer_policies") {
      GS_CHECK(v.is_array(), "PTQ config: 'layer_policies' must be an array of objects");
      for (const nlohmann::json& p : v) {
        GS_CHECK(p.is_object() && p.contains("pattern"),
                 "PTQ config: every layer policy needs a 'pattern'");
        LayerPolicy lp;
        for (auto pi = p.begin(); pi != p.end(); ++pi) {
          if (pi.key() == "pattern") lp.pattern = get<std::string>(pi.value(), "pattern");
          else if (pi.key() == "skip") lp.skip = get<bool>(pi.value(), "skip");
          else if (pi.key() == "weight_dtype")
            lp.weight_bits = parseDtype(pi.value(), "weight_dtype", {8, 4, 3});
          else if (pi.key() == "group_size")
            lp.group_size = get<int64_t>(pi.value(), "group_size");
          else GS_FAIL("PTQ config: unknown layer policy key '", pi.key(),
                       "' (pattern, skip, weight_dtype, group_size)");
        }
        c.policies.push_back(lp);
      }
    } else {
      GS_FAIL("PTQ config: unknown key '", k, "'");
    }
  }
  c.validate();
  return c;
}

nlohmann::json ptqConfigToJson(const PtqConfig& c) {
  auto outlier = c.outlier == OutlierSuppression::Smooth ? "smooth"
                 : c.outlier == OutlierSuppression::Awq  ? "awq"
                                                         : "none";
  nlohmann::json pol = nlohmann::json::array();
  for (const LayerPolicy& p : c.policies) {
    nlohmann::json o{{"pattern", p.pattern}, {"skip", p.skip}};
    if (p.weight_bits) o["weight_dtype"] = dtypeName(*p.weight_bits);
    if (p.group_size) o["group_size"] = *p.group_size;
    pol.push_back(o);
  }
  return {{"weight_dtype", dtypeName(c.weight_bits)},
          {"group_size", c.group_size},
          {"weight_symmetric", c.weight_symmetric},
          {"act_dtype", dtypeName(c.act_bits)},
          {"act_granularity", granName(c.act_granularity)},
          {"kvcache_dtype", dtypeName(c.kv_bits)},
          {"kvcache_granularity", granName(c.kv_granularity)},
          {"outlier_suppression", outlier},
          {"smooth_alpha", c.smooth_alpha},
          {"awq_grid", c.awq_grid},
          {"awq_duo_scaling", c.awq_duo_scaling},
          {"awq_clip", c.awq_clip ? nlohmann::json(*c.awq_clip) : nlohmann::json("auto")},
          {"awq_clip_grid", c.awq_clip_grid},
          {"awq_clip_refine", c.awq_clip_refine},
          {"awq_clip_qk", c.awq_clip_qk},
          {"awq_max_tokens", c.awq_max_tokens},
          {"precision_recovery", c.recovery == PrecisionRecovery::Gptq ? "gptq" : "none"},
          {"damp_percent", c.damp_percent},
          {"gptq_block_size", c.gptq_block_size},
          {"act_order", c.act_order},
          {"static_groups", c.static_groups},
          {"calib_batch", c.calib_batch},
          {"measure_error", c.measure_error},
          {"error_rows", c.error_rows},
          {"blacklist", c.blacklist},
          {"layer_policies", pol}};
}

}  // namespace gs::llm
