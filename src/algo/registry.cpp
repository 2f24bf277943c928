// The algorithm registry and the one central list of algorithm families.
#include "algo/registry.h"

#include <algorithm>

#include "quant/quant_algos.h"
#include "support/error.h"

namespace gs {

void registerAllAlgos(AlgoRegistry& r) {
  registerIdentityAlgo(r);
  registerPruneAlgos(r);
  registerLlmPtqAlgo(r);
  registerQuantAlgos(r);
}

const AlgoRegistry& AlgoRegistry::global() {
  static const AlgoRegistry reg = [] {
    AlgoRegistry r;
    registerAllAlgos(r);
    return r;
  }();
  return reg;
}

void AlgoRegistry::add(AlgoInfo info) {
  GS_ASSERT(!find(info.name), "algorithm registered twice: ", info.name);
  GS_ASSERT(static_cast<bool>(info.factory), "algorithm without factory: ", info.name);
  for (auto& f : info.fields)
    GS_ASSERT(!findField(baseConfigFields(), f.name), "algorithm ", info.name,
              " redefines base field ", f.name);
  infos_.push_back(std::move(info));
}

const AlgoInfo* AlgoRegistry::find(const std::string& name) const {
  for (auto& i : infos_)
    if (i.name == name) return &i;
  return nullptr;
}

const AlgoInfo& AlgoRegistry::get(const std::string& name) const {
  if (auto* i = find(name)) return *i;
  std::vector<std::string> names;
  for (auto* i : all()) names.push_back(i->name);
  std::string hint = didYouMean(name, names), known;
  for (auto& n : names) known += (known.empty() ? "" : ", ") + n;
  GS_FAIL("unknown algorithm '", name, "'", hint.empty() ? "" : " (did you mean '" + hint + "'?)",
          "; known: ", known);
}

std::vector<const AlgoInfo*> AlgoRegistry::all() const {
  std::vector<const AlgoInfo*> out;
  for (auto& i : infos_) out.push_back(&i);
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->name < b->name; });
  return out;
}

ConfigSchema AlgoRegistry::schemaOf(const std::string& name) const {
  ConfigSchema s = baseConfigFields();
  for (auto& f : get(name).fields) s.push_back(f);
  return s;
}

Config AlgoRegistry::validate(const std::string& name, const Json& user) const {
  const AlgoInfo& info = get(name);
  ConfigSchema schema = schemaOf(name);
  Config c = validateConfig(schema, user, name + " config", info.check);
  try {
    LayerPolicies check(c, schema);  // regexes and per-layer keys of layer_policies
  } catch (const Error& e) {
    throw Error(name + " config: " + e.what());
  }
  return c;
}

std::unique_ptr<CompAlgo> AlgoRegistry::create(const std::string& name, const Json& user) const {
  Config c = validate(name, user);
  auto algo = get(name).factory(c, schemaOf(name));
  GS_ASSERT(algo, "factory of ", name, " returned null");
  return algo;
}

}  // namespace gs
