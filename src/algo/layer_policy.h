// Layer policies: which layers an algorithm touches and with what per-layer settings (regex
// overrides on node names, op-type blacklist, ignored scopes, conflict detection).
#pragma once
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "algo/config.h"
#include "ir/graph.h"

namespace gs {

/// The effective settings of one layer.
struct LayerPolicy {
  /// True: the algorithm leaves this layer alone.
  bool skip = false;
  /// Why it is skipped ("ignored scope 'head.'", "op 'Gemm' is blacklisted",
  /// "layer_policies 'fc3' says skip"); empty when not skipped.
  std::string reason;
  /// The algorithm's per-layer fields: config values, overridden by matching layer_policies.
  Config settings;
  /// The layer_policies regexes that matched this layer (in config order).
  std::vector<std::string> matched;
};

/// Resolves per-layer policies from a validated config (see comp_algo.h for the base fields).
///
/// Rules, in priority order:
///  1. `ignored_scopes`: a node whose name starts with one of the prefixes (or equals it) is
///     skipped. A prefix "a.b" matches "a.b" and "a.b.c" and "a.b/c", not "a.bc".
///  2. `blacklist`: a node whose op type is listed is skipped.
///  3. `layer_policies`: {"REGEX": {per-layer field: value, ...} | "skip", ...}; a regex must
///     match the WHOLE node name (std::regex ECMAScript). Custom values override the algorithm's
///     config values. Several regexes may match one layer when they agree: a key set to
///     different values by two regexes (or "skip" from one and settings from another) is an
///     error naming both regexes and the layer.
///  4. Otherwise the algorithm's config values apply.
class LayerPolicies {
 public:
  LayerPolicies() = default;
  /// `cfg` validated against `schema` (which includes the base fields). Throws gs::Error for an
  /// invalid regex or a layer_policies entry with a key that is not a per-layer field.
  LayerPolicies(const Config& cfg, const ConfigSchema& schema);

  /// Effective policy of `n` (rules above). Throws gs::Error on conflicting regexes.
  LayerPolicy policyFor(const Node& n) const;

  /// Every "layer" of `g` (nodes with at least one parameter input, see isLayer) whose op type is
  /// in `ops` (empty = all op types), in graph order, with its policy. Throws gs::Error on the
  /// first conflict, or if a layer_policies regex matches no node at all of `g` (a typo guard).
  std::vector<std::pair<const Node*, LayerPolicy>> resolve(const Graph& g,
                                                           const std::set<std::string>& ops) const;

  /// A node with at least one parameter (initializer) input: Conv, Gemm, MatMul with weights ...
  static bool isLayer(const Node& n);

 private:
  struct Rule {
    std::string pattern;
    std::regex re;
    bool skip = false;
    Json overrides;  // object of per-layer field values
  };
  Config base_;  // per-layer fields with the config's values
  std::vector<std::string> ignored_scopes_;
  std::set<std::string> blacklist_;
  std::vector<Rule> rules_;
};

/// Schema of the fields every algorithm shares (export_path, ignored_scopes, blacklist,
/// layer_policies); the registry prepends them to each algorithm's own schema.
ConfigSchema baseConfigFields();

}  // namespace gs
