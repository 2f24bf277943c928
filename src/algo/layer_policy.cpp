// Layer policy resolution: ignored scopes, op blacklist, regex overrides with conflict detection.
#include "algo/layer_policy.h"

#include "support/error.h"

namespace gs {

ConfigSchema baseConfigFields() {
  return {
      FieldSpec::string("export_path", "",
                        "when set, the converted model is exported to this ONNX file at training "
                        "end (like Golden Stick's save_mindir)"),
      FieldSpec::list("ignored_scopes", FieldType::String, Json::array(),
                      "node-name prefixes left untouched (\"layer3\" skips layer3 and layer3.*)"),
      FieldSpec::list("blacklist", FieldType::String, Json::array(),
                      "op types left untouched (e.g. [\"Gemm\"])"),
      FieldSpec::object("layer_policies", {},
                        "{\"REGEX\": {per-layer field: value} | \"skip\"}; the regex must match the "
                        "whole node name; custom values override the algorithm's"),
  };
}

LayerPolicies::LayerPolicies(const Config& cfg, const ConfigSchema& schema) {
  std::vector<std::string> per_layer;
  for (auto& f : schema)
    if (f.perLayer) {
      per_layer.push_back(f.name);
      base_.set(f.name, cfg.has(f.name) ? cfg.get(f.name) : f.defaultValue);
    }
  if (cfg.json().contains("ignored_scopes")) ignored_scopes_ = cfg.getStrings("ignored_scopes");
  if (cfg.json().contains("blacklist"))
    for (auto& s : cfg.getStrings("blacklist")) blacklist_.insert(s);
  if (!cfg.json().contains("layer_policies")) return;
  const Json& lp = cfg.get("layer_policies");
  for (auto it = lp.begin(); it != lp.end(); ++it) {
    Rule r;
    r.pattern = it.key();
    std::string where = "layer_policies '" + r.pattern + "'";
    try {
      r.re = std::regex(r.pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      GS_FAIL(where, ": invalid regex (", e.what(), ")");
    }
    const Json& v = it.value();
    if (v.is_string() && v.get<std::string>() == "skip") {
      r.skip = true;
    } else {
      GS_CHECK(v.is_object(), where, ": expected \"skip\" or an object of per-layer fields, got ",
               v.dump());
      r.overrides = Json::object();
      for (auto kv = v.begin(); kv != v.end(); ++kv) {
        if (kv.key() == "skip") {
          GS_CHECK(kv.value().is_boolean(), where, ": key 'skip' must be a bool");
          r.skip = kv.value().get<bool>();
          continue;
        }
        const FieldSpec* f = findField(schema, kv.key());
        if (!f || !f->perLayer) {
          std::string hint = didYouMean(kv.key(), per_layer);
          GS_FAIL(where, ": '", kv.key(), "' is not a per-layer field",
                  hint.empty() ? "" : " (did you mean '" + hint + "'?)",
                  per_layer.empty() ? " (this algorithm has none; use \"skip\")"
                                    : " (per-layer fields: " + [&] {
                                        std::string s;
                                        for (auto& p : per_layer) s += (s.empty() ? "" : ", ") + p;
                                        return s;
                                      }() + ")");
        }
        r.overrides[kv.key()] =
            validateField(*f, kv.value(), "layer_policies." + r.pattern + "." + kv.key());
      }
      GS_CHECK(!(r.skip && !r.overrides.empty()), where, ": 'skip' together with settings");
    }
    rules_.push_back(std::move(r));
  }
}

bool LayerPolicies::isLayer(const Node& n) {
  for (auto* v : n.inputs())
    if (v && v->isParam()) return true;
  return false;
}

LayerPolicy LayerPolicies::policyFor(const Node& n) const {
  LayerPolicy p;
  p.settings = base_;
  const std::string& name = n.name();
  for (auto& s : ignored_scopes_) {
    bool in_scope = name.compare(0, s.size(), s) == 0 &&
                    (name.size() == s.size() || name[s.size()] == '.' || name[s.size()] == '/');
    if (!s.empty() && in_scope) {
      p.skip = true;
      p.reason = "ignored scope '" + s + "'";
      return p;
    }
  }
  if (blacklist_.count(n.opType())) {
    p.skip = true;
    p.reason = "op '" + n.opType() + "' is blacklisted";
    return p;
  }
  // Which rule set each key (or skip), to name both regexes on a conflict.
  std::map<std::string, const Rule*> setter;
  const Rule* skipper = nullptr;
  const Rule* configurer = nullptr;
  for (auto& r : rules_) {
    if (!std::regex_match(name, r.re)) continue;
    p.matched.push_back(r.pattern);
    auto conflict = [&](const Rule& other, const std::string& what) {
      GS_FAIL("layer_policies conflict on layer '", name, "': '", other.pattern, "' and '",
              r.pattern, "' both match it with different ", what);
    };
    if (r.skip) {
      if (configurer) conflict(*configurer, "settings (one says skip)");
      skipper = &r;
      continue;
    }
    if (skipper) conflict(*skipper, "settings (one says skip)");
    configurer = &r;
    for (auto kv = r.overrides.begin(); kv != r.overrides.end(); ++kv) {
      auto it = setter.find(kv.key());
      if (it != setter.end() && it->second->overrides.at(kv.key()) != kv.value())
        conflict(*it->second, "values for '" + kv.key() + "' (" +
                                  it->second->overrides.at(kv.key()).dump() + " vs " +
                                  kv.value().dump() + ")");
      setter[kv.key()] = &r;
      p.settings.set(kv.key(), kv.value());
    }
  }
  if (skipper) {
    p.skip = true;
    p.reason = "layer_policies '" + skipper->pattern + "' says skip";
  }
  return p;
}

std::vector<std::pair<const Node*, LayerPolicy>> LayerPolicies::resolve(
    const Graph& g, const std::set<std::string>& ops) const {
  std::vector<std::pair<const Node*, LayerPolicy>> out;
  std::vector<bool> used(rules_.size(), false);
  for (auto& up : g.nodes()) {
    const Node& n = *up;
    for (size_t i = 0; i < rules_.size(); ++i)
      if (!used[i] && std::regex_match(n.name(), rules_[i].re)) used[i] = true;
    if (!isLayer(n) || (!ops.empty() && !ops.count(n.opType()))) continue;
    out.emplace_back(&n, policyFor(n));
  }
  for (size_t i = 0; i < rules_.size(); ++i)
    GS_CHECK(used[i], "layer_policies '", rules_[i].pattern,
             "' matches no node of the graph (regexes must match the whole node name)");
  return out;
}

}  // namespace gs
