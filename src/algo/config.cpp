// Config schema validation: typed fields, defaults, key-path errors with "did you mean".
#include "algo/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>

#include "support/error.h"
#include "support/file_util.h"

namespace gs {

const char* fieldTypeName(FieldType t) {
  switch (t) {
    case FieldType::Bool: return "bool";
    case FieldType::Int: return "int";
    case FieldType::Float: return "float";
    case FieldType::String: return "string";
    case FieldType::Enum: return "enum";
    case FieldType::List: return "list";
    case FieldType::Object: return "object";
  }
  return "?";
}

FieldSpec FieldSpec::boolean(std::string name, bool def, std::string desc) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = FieldType::Bool;
  f.defaultValue = def;
  f.description = std::move(desc);
  return f;
}

FieldSpec FieldSpec::integer(std::string name, int64_t def, std::optional<double> lo,
                             std::optional<double> hi, std::string desc) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = FieldType::Int;
  f.defaultValue = def;
  f.min = lo;
  f.max = hi;
  f.description = std::move(desc);
  return f;
}

FieldSpec FieldSpec::real(std::string name, double def, std::optional<double> lo,
                          std::optional<double> hi, std::string desc) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = FieldType::Float;
  f.defaultValue = def;
  f.min = lo;
  f.max = hi;
  f.description = std::move(desc);
  return f;
}

FieldSpec FieldSpec::string(std::string name, std::string def, std::string desc) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = FieldType::String;
  f.defaultValue = std::move(def);
  f.description = std::move(desc);
  return f;
}

FieldSpec FieldSpec::enumeration(std::string name, std::string def,
                                 std::vector<std::string> choices, std::string desc) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = FieldType::Enum;
  f.defaultValue = std::move(def);
  f.choices = std::move(choices);
  f.description = std::move(desc);
  return f;
}

FieldSpec FieldSpec::list(std::string name, FieldType element, Json def, std::string desc) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = FieldType::List;
  f.elementType = element;
  f.defaultValue = def.is_null() ? Json::array() : std::move(def);
  f.description = std::move(desc);
  return f;
}

FieldSpec FieldSpec::object(std::string name, std::vector<FieldSpec> fields, std::string desc) {
  FieldSpec f;
  f.name = std::move(name);
  f.type = FieldType::Object;
  f.fields = std::move(fields);
  f.defaultValue = Json::object();
  f.description = std::move(desc);
  return f;
}

namespace {

std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

std::string rangeText(const std::optional<double>& lo, const std::optional<double>& hi) {
  if (lo && hi) return "in [" + num(*lo) + ", " + num(*hi) + "]";
  if (lo) return ">= " + num(*lo);
  if (hi) return "<= " + num(*hi);
  return "";
}

std::string joined(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

/// Short JSON rendering of a bad value for error messages.
std::string shortValue(const Json& v) {
  std::string s = v.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

const char* jsonKind(const Json& v) {
  if (v.is_boolean()) return "bool";
  if (v.is_number_integer()) return "int";
  if (v.is_number()) return "float";
  if (v.is_string()) return "string";
  if (v.is_array()) return "list";
  if (v.is_object()) return "object";
  return "null";
}

/// Validates a scalar of type `t` (with the field's range / choices).
Json checkScalar(FieldType t, const FieldSpec& f, const Json& v, const std::string& path,
                 const std::string& ctx) {
  auto wrong = [&](const char* expected) {
    GS_FAIL(ctx, ": key '", path, "': wrong type: expected ", expected, ", got ", jsonKind(v), " ",
            shortValue(v));
  };
  auto range = [&](double x) {
    GS_CHECK((!f.min || x >= *f.min) && (!f.max || x <= *f.max), ctx, ": key '", path,
             "': value ", shortValue(v), " out of range (must be ", rangeText(f.min, f.max), ")");
  };
  switch (t) {
    case FieldType::Bool:
      if (!v.is_boolean()) wrong("bool");
      return v;
    case FieldType::Int:
      if (!v.is_number_integer()) wrong("int");
      range(static_cast<double>(v.get<int64_t>()));
      return Json(v.get<int64_t>());
    case FieldType::Float:
      if (!v.is_number()) wrong("float");
      GS_CHECK(std::isfinite(v.get<double>()), ctx, ": key '", path, "': value must be finite");
      range(v.get<double>());
      return Json(v.get<double>());
    case FieldType::String:
      if (!v.is_string()) wrong("string");
      return v;
    case FieldType::Enum: {
      auto has = [&](const std::string& c) {
        return std::find(f.choices.begin(), f.choices.end(), c) != f.choices.end();
      };
      // An enum with "true" and "false" among its choices ("auto" | "true" | "false") takes
      // booleans.
      if (v.is_boolean() && has("true") && has("false")) return Json(v.get<bool>() ? "true" : "false");
      if (!v.is_string()) wrong("string (enum)");
      auto s = v.get<std::string>();
      if (!has(s)) {
        std::string hint = didYouMean(s, f.choices);
        GS_FAIL(ctx, ": key '", path, "': bad value '", s, "' (expected one of ", joined(f.choices),
                hint.empty() ? "" : "; did you mean '" + hint + "'?", ")");
      }
      return v;
    }
    default:
      GS_ASSERT(false, "checkScalar on a non-scalar type");
  }
  return v;
}

Json validateObject(const std::vector<FieldSpec>& fields, const Json& user, const std::string& prefix,
                    const std::string& ctx) {
  GS_CHECK(user.is_object(), ctx, ": ", prefix.empty() ? "config" : "key '" + prefix + "'",
           ": wrong type: expected object, got ", jsonKind(user));
  std::vector<std::string> names;
  for (auto& f : fields) names.push_back(f.name);
  for (auto it = user.begin(); it != user.end(); ++it) {
    if (findField(fields, it.key())) continue;
    std::string hint = didYouMean(it.key(), names);
    GS_FAIL(ctx, ": unknown key '", prefix.empty() ? "" : prefix + ".", it.key(), "'",
            hint.empty() ? "" : " (did you mean '" + hint + "'?)",
            hint.empty() ? " (known keys: " + joined(names) + ")" : "");
  }
  Json out = Json::object();
  for (auto& f : fields) {
    std::string path = prefix.empty() ? f.name : prefix + "." + f.name;
    if (user.contains(f.name))
      out[f.name] = validateField(f, user.at(f.name), path, ctx);
    else if (f.type == FieldType::Object && !f.fields.empty())
      out[f.name] = validateObject(f.fields, Json::object(), path, ctx);
    else
      out[f.name] = f.defaultValue;
  }
  return out;
}

}  // namespace

std::string FieldSpec::typeText() const {
  std::string r = rangeText(min, max);
  switch (type) {
    case FieldType::Int:
    case FieldType::Float:
      return std::string(fieldTypeName(type)) + (r.empty() ? "" : " " + r);
    case FieldType::Enum:
      return "enum {" + joined(choices) + "}";
    case FieldType::List: {
      std::string s = std::string("list of ") + fieldTypeName(elementType);
      if (elementType == FieldType::Enum) s = "list of {" + joined(choices) + "}";
      return s + (r.empty() ? "" : " " + r);
    }
    default:
      return fieldTypeName(type);
  }
}

const FieldSpec* findField(const ConfigSchema& schema, const std::string& name) {
  for (auto& f : schema)
    if (f.name == name) return &f;
  return nullptr;
}

Json validateField(const FieldSpec& f, const Json& v, const std::string& path,
                   const std::string& ctx) {
  if (v.is_null() && f.defaultValue.is_null()) return v;  // explicit "unset"
  switch (f.type) {
    case FieldType::List: {
      GS_CHECK(v.is_array(), ctx, ": key '", path, "': wrong type: expected list of ",
               fieldTypeName(f.elementType), ", got ", jsonKind(v), " ", shortValue(v));
      Json out = Json::array();
      for (size_t i = 0; i < v.size(); ++i)
        out.push_back(checkScalar(f.elementType, f, v[i], path + "[" + std::to_string(i) + "]", ctx));
      return out;
    }
    case FieldType::Object:
      if (f.fields.empty()) {
        GS_CHECK(v.is_object(), ctx, ": key '", path, "': wrong type: expected object, got ",
                 jsonKind(v), " ", shortValue(v));
        return v;
      }
      return validateObject(f.fields, v, path, ctx);
    default:
      return checkScalar(f.type, f, v, path, ctx);
  }
}

Config validateConfig(const ConfigSchema& schema, const Json& user, const std::string& context,
                      const ConfigCheck& check) {
  Config c(validateObject(schema, user.is_null() ? Json::object() : user, "", context));
  if (check) {
    try {
      check(c);
    } catch (const Error& e) {
      throw Error(context + ": " + e.what());
    }
  }
  return c;
}

Json readConfigFile(const std::string& path) {
  std::string text = readFile(path);
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // nlohmann messages look like "[json.exception.parse_error.101] parse error at line 3, ...".
    std::string m = e.what();
    auto p = m.find("] ");
    GS_FAIL(path, ": invalid JSON: ", p == std::string::npos ? m : m.substr(p + 2));
  }
}

void applySetOverride(Json& j, const std::string& assignment) {
  auto eq = assignment.find('=');
  GS_CHECK(eq != std::string::npos && eq > 0, "--set '", assignment,
           "': expected key=value (e.g. --set sparsity=0.5)");
  std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  Json value;
  try {
    value = Json::parse(text);
  } catch (const nlohmann::json::parse_error&) {
    value = text;  // bare words are strings: --set mode=per_channel
  }
  if (!j.is_object()) j = Json::object();
  Json* cur = &j;
  size_t start = 0;
  for (;;) {
    auto dot = key.find('.', start);
    std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    GS_CHECK(!part.empty(), "--set '", assignment, "': empty key component");
    if (dot == std::string::npos) {
      (*cur)[part] = value;
      return;
    }
    Json& next = (*cur)[part];
    if (!next.is_object()) next = Json::object();
    cur = &next;
    start = dot + 1;
  }
}

std::string didYouMean(const std::string& name, const std::vector<std::string>& candidates) {
  auto lower = [](std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
  };
  std::string a = lower(name);
  std::string best;
  size_t best_d = std::max<size_t>(2, a.size() / 3) + 1;
  for (auto& c : candidates) {
    std::string b = lower(c);
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      cur[0] = i;
      for (size_t j = 1; j <= b.size(); ++j)
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
      std::swap(prev, cur);
    }
    // A prefix of a longer name ("magnitude" -> "magnitude_prune") counts as close.
    if (a.size() >= 3 && b.compare(0, a.size(), a) == 0 && b.size() > a.size()) prev[b.size()] = 1;
    if (prev[b.size()] < best_d) {
      best_d = prev[b.size()];
      best = c;
    }
  }
  return best;
}

// ---- Config getters ----

const Json& Config::get(const std::string& key) const {
  GS_CHECK(j_.contains(key), "config has no key '", key, "'");
  return j_.at(key);
}

bool Config::getBool(const std::string& key) const {
  const Json& v = get(key);
  GS_CHECK(v.is_boolean(), "config key '", key, "' is not a bool");
  return v.get<bool>();
}

int64_t Config::getInt(const std::string& key) const {
  const Json& v = get(key);
  GS_CHECK(v.is_number_integer(), "config key '", key, "' is not an int");
  return v.get<int64_t>();
}

double Config::getFloat(const std::string& key) const {
  const Json& v = get(key);
  GS_CHECK(v.is_number(), "config key '", key, "' is not a number");
  return v.get<double>();
}

std::string Config::getString(const std::string& key) const {
  const Json& v = get(key);
  GS_CHECK(v.is_string(), "config key '", key, "' is not a string");
  return v.get<std::string>();
}

std::vector<std::string> Config::getStrings(const std::string& key) const {
  const Json& v = get(key);
  GS_CHECK(v.is_array(), "config key '", key, "' is not a list");
  std::vector<std::string> out;
  for (auto& e : v) {
    GS_CHECK(e.is_string(), "config key '", key, "' holds a non-string");
    out.push_back(e.get<std::string>());
  }
  return out;
}

}  // namespace gs
