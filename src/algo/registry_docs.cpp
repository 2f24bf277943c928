// Renders the registry as aligned text (CLI) and Markdown (docs), from the same schema tables.
#include "algo/registry_docs.h"

#include <algorithm>
#include <sstream>

#include "algo/layer_policy.h"

namespace gs {

namespace {

std::string defaultText(const Json& v) {
  if (v.is_string()) return v.get<std::string>().empty() ? "\"\"" : v.get<std::string>();
  return v.dump();
}

/// Markdown-safe cell: pipes escaped.
std::string cell(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '|' ? std::string("\\|") : std::string(1, c);
  return o;
}

}  // namespace

std::string registryListText(const AlgoRegistry& r) {
  size_t w = 4;
  for (auto* i : r.all()) w = std::max(w, i->name.size());
  std::ostringstream os;
  os << "algorithm" << std::string(w > 9 ? w - 9 : 0, ' ') << "  description\n";
  for (auto* i : r.all())
    os << i->name << std::string(std::max<size_t>(w, 9) - i->name.size(), ' ') << "  "
       << i->description << "\n";
  os << "(`gstick algos NAME` shows an algorithm's config fields)\n";
  return os.str();
}

std::string algoFieldsText(const AlgoRegistry& r, const std::string& name) {
  const AlgoInfo& info = r.get(name);
  std::ostringstream os;
  os << info.name << ": " << info.description << "\n\nconfig fields (JSON; --set key=value):\n";
  ConfigSchema fields = info.fields;
  for (auto& f : baseConfigFields()) fields.push_back(f);
  size_t wn = 5, wt = 4, wd = 7;
  for (auto& f : fields) {
    wn = std::max(wn, f.name.size());
    wt = std::max(wt, f.typeText().size());
    wd = std::max(wd, defaultText(f.defaultValue).size());
  }
  auto pad = [](const std::string& s, size_t w) { return s + std::string(w - s.size(), ' '); };
  os << "  " << pad("field", wn) << "  " << pad("type", wt) << "  " << pad("default", wd)
     << "  layer  description\n";
  for (auto& f : fields)
    os << "  " << pad(f.name, wn) << "  " << pad(f.typeText(), wt) << "  "
       << pad(defaultText(f.defaultValue), wd) << "  " << (f.perLayer ? "yes  " : "-    ") << "  "
       << f.description << "\n";
  os << "\nper-layer fields (layer=yes) may be overridden in layer_policies: "
        "{\"REGEX\": {\"field\": value} | \"skip\"}\n";
  return os.str();
}

std::string registryMarkdown(const AlgoRegistry& r) {
  std::ostringstream os;
  os << kRegistryDocBegin << "\n\n";
  os << "| algorithm | description |\n|---|---|\n";
  for (auto* i : r.all()) os << "| `" << i->name << "` | " << cell(i->description) << " |\n";
  auto table = [&](const ConfigSchema& fields) {
    os << "| field | type | default | per-layer | description |\n|---|---|---|---|---|\n";
    for (auto& f : fields)
      os << "| `" << f.name << "` | " << cell(f.typeText()) << " | `"
         << cell(defaultText(f.defaultValue)) << "` | " << (f.perLayer ? "yes" : "") << " | "
         << cell(f.description) << " |\n";
  };
  os << "\n### Fields shared by every algorithm\n\n";
  table(baseConfigFields());
  for (auto* i : r.all()) {
    os << "\n### `" << i->name << "`\n\n" << i->description << "\n\n";
    if (i->fields.empty())
      os << "No fields of its own.\n";
    else
      table(i->fields);
  }
  os << "\n" << kRegistryDocEnd << "\n";
  return os.str();
}

}  // namespace gs
