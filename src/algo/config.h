// Algorithm configs: a typed schema (FieldSpec) and JSON configs validated against it with errors
// that name the key path (unknown key + "did you mean", wrong type, out of range, bad enum value).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace gs {

/// JSON type used for configs (object keys keep insertion order so printed configs follow the
/// schema order).
using Json = nlohmann::ordered_json;

/// Kinds of config fields.
enum class FieldType { Bool, Int, Float, String, Enum, List, Object };

/// "bool", "int", "float", "string", "enum", "list", "object".
const char* fieldTypeName(FieldType t);

/// One typed config field. Int/Float fields may carry an inclusive range; Enum fields list their
/// choices; List fields give the element type (and its range / choices); Object fields may give a
/// sub-schema (empty = any object whose values are checked by the algorithm's cross check).
struct FieldSpec {
  std::string name;
  FieldType type = FieldType::String;
  Json defaultValue;                  ///< filled in when the key is absent (null = "unset")
  std::optional<double> min, max;     ///< inclusive bounds (Int, Float, List of Int/Float)
  std::vector<std::string> choices;   ///< Enum (and List of Enum) allowed values
  std::string description;
  FieldType elementType = FieldType::String;  ///< List element type (not List/Object)
  std::vector<FieldSpec> fields;      ///< Object sub-schema
  /// Per-layer field: may be overridden for single layers through `layer_policies`.
  bool perLayer = false;

  // Builders (the schema tables read like documentation).
  static FieldSpec boolean(std::string name, bool def, std::string desc);
  static FieldSpec integer(std::string name, int64_t def, std::optional<double> lo,
                           std::optional<double> hi, std::string desc);
  static FieldSpec real(std::string name, double def, std::optional<double> lo,
                        std::optional<double> hi, std::string desc);
  static FieldSpec string(std::string name, std::string def, std::string desc);
  static FieldSpec enumeration(std::string name, std::string def, std::vector<std::string> choices,
                               std::string desc);
  static FieldSpec list(std::string name, FieldType element, Json def, std::string desc);
  static FieldSpec object(std::string name, std::vector<FieldSpec> fields, std::string desc);
  /// Marks the field per-layer (chainable: `FieldSpec::real(...).layer()`).
  FieldSpec& layer() {
    perLayer = true;
    return *this;
  }
  /// Type text for docs: "float in [0, 1]", "enum {a, b}", "list of string".
  std::string typeText() const;
};

/// An ordered set of fields.
using ConfigSchema = std::vector<FieldSpec>;

/// Field by name in a schema, or nullptr.
const FieldSpec* findField(const ConfigSchema& schema, const std::string& name);

/// A validated config: every schema field present (defaults filled in), types exact (ints are
/// int64, floats double). Typed getters throw gs::Error naming the key for a missing key or a
/// kind mismatch (a bug in the algorithm, since configs are validated).
class Config {
 public:
  Config() : j_(Json::object()) {}
  explicit Config(Json j) : j_(std::move(j)) {}

  bool has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }
  bool getBool(const std::string& key) const;
  int64_t getInt(const std::string& key) const;
  double getFloat(const std::string& key) const;
  std::string getString(const std::string& key) const;
  std::vector<std::string> getStrings(const std::string& key) const;
  /// Raw value (throws if absent).
  const Json& get(const std::string& key) const;
  /// Sets a value (no validation; used to build per-layer settings).
  void set(const std::string& key, Json v) { j_[key] = std::move(v); }

  const Json& json() const { return j_; }
  /// Pretty-printed JSON (2-space indent).
  std::string dump(int indent = 2) const { return j_.dump(indent); }
  bool operator==(const Config& o) const { return j_ == o.j_; }

 private:
  Json j_;
};

/// Cross-field check run after per-field validation (incompatible combinations); throws gs::Error
/// whose message names the keys involved.
using ConfigCheck = std::function<void(const Config&)>;

/// Validates `user` (a JSON object) against `schema`: unknown keys (with a "did you mean"
/// suggestion), wrong types, out-of-range numbers and bad enum values throw gs::Error
/// "<context>: key 'a.b': ...". Missing keys get their defaults. Ints are accepted for float
/// fields. Then `check` (if any) runs on the result.
Config validateConfig(const ConfigSchema& schema, const Json& user,
                      const std::string& context = "config", const ConfigCheck& check = {});

/// Validates one value against one field (used for objects nested in lists, e.g. layer policies);
/// `path` names the key in errors. Returns the normalised value.
Json validateField(const FieldSpec& f, const Json& value, const std::string& path,
                   const std::string& context = "config");

/// Parses a config file (JSON); throws gs::Error naming the file on syntax errors.
Json readConfigFile(const std::string& path);

/// Applies a `--set key=value` override to `j`: `key` may be a dotted path ("a.b"); `value` is
/// parsed as JSON when it is valid JSON (numbers, true/false, lists, quoted strings), else taken
/// as a plain string. Throws gs::Error for a missing '=' or empty key.
void applySetOverride(Json& j, const std::string& assignment);

/// Closest name among `candidates` by edit distance (empty if none is close enough).
std::string didYouMean(const std::string& name, const std::vector<std::string>& candidates);

}  // namespace gs
