// The algorithm registry: one table {name, factory, description, config fields with defaults}
// that drives `gstick algos`, `gstick compress` and the generated docs.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "algo/comp_algo.h"
#include "algo/config.h"

namespace gs {

/// Builds an algorithm from its validated config and full schema.
using AlgoFactory =
    std::function<std::unique_ptr<CompAlgo>(const Config& cfg, const ConfigSchema& schema)>;

/// Factory for a class with a (const Config&, const ConfigSchema&) constructor.
template <typename T>
AlgoFactory algoFactory() {
  return [](const Config& c, const ConfigSchema& s) { return std::make_unique<T>(c, s); };
}

/// One registry entry.
struct AlgoInfo {
  std::string name;
  std::string description;   ///< one line
  ConfigSchema fields;       ///< the algorithm's own fields (base fields are added by the registry)
  AlgoFactory factory;
  ConfigCheck check;         ///< optional cross-field check (incompatible combinations)
};

/// Name -> AlgoInfo. Algorithms are added by registerAllAlgos (one explicit central list).
class AlgoRegistry {
 public:
  /// The process-wide registry, filled by registerAllAlgos on first use.
  static const AlgoRegistry& global();

  /// Adds an entry; registering a name twice, or a field that shadows a base field, is a bug.
  void add(AlgoInfo info);
  /// Entry by name, or nullptr.
  const AlgoInfo* find(const std::string& name) const;
  /// Entry by name; throws gs::Error "unknown algorithm 'x' (did you mean 'y'?; known: ...)".
  const AlgoInfo& get(const std::string& name) const;
  /// All entries sorted by name.
  std::vector<const AlgoInfo*> all() const;

  /// Base fields followed by the algorithm's own fields.
  ConfigSchema schemaOf(const std::string& name) const;
  /// Validates a user config (JSON object) for algorithm `name` (errors prefixed "<name> config").
  Config validate(const std::string& name, const Json& user) const;
  /// validate + factory.
  std::unique_ptr<CompAlgo> create(const std::string& name, const Json& user = Json::object()) const;

 private:
  std::vector<AlgoInfo> infos_;
};

/// The central list: every algorithm family registers here (see registry.cpp).
void registerAllAlgos(AlgoRegistry& r);

// Per-family registration functions, called from registerAllAlgos (add one line per family).
/// `identity` (algo/identity.cpp).
void registerIdentityAlgo(AlgoRegistry& r);

}  // namespace gs
