// Node attributes: a tagged value (int, float, string, tensor and lists of them).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace gs {

/// Kind of an attribute value; names match ONNX AttributeProto types.
enum class AttrKind { Int, Float, String, Tensor, Ints, Floats, Strings };

/// Text name of an attribute kind ("int", "floats", ...).
const char* attrKindName(AttrKind k);

/// One attribute value. Tensors are held by reference (at::Tensor semantics).
class Attribute {
 public:
  using Storage = std::variant<int64_t, float, std::string, at::Tensor, std::vector<int64_t>,
                               std::vector<float>, std::vector<std::string>>;
  Attribute() : v_(int64_t{0}) {}
  Attribute(int64_t v) : v_(v) {}                      // NOLINT implicit by design
  Attribute(int v) : v_(int64_t{v}) {}                 // NOLINT
  Attribute(float v) : v_(v) {}                        // NOLINT
  Attribute(double v) : v_(static_cast<float>(v)) {}   // NOLINT
  Attribute(std::string v) : v_(std::move(v)) {}       // NOLINT
  Attribute(const char* v) : v_(std::string(v)) {}     // NOLINT
  Attribute(at::Tensor v) : v_(std::move(v)) {}        // NOLINT
  Attribute(std::vector<int64_t> v) : v_(std::move(v)) {}      // NOLINT
  Attribute(std::vector<float> v) : v_(std::move(v)) {}        // NOLINT
  Attribute(std::vector<std::string> v) : v_(std::move(v)) {}  // NOLINT

  AttrKind kind() const { return static_cast<AttrKind>(v_.index()); }
  bool is(AttrKind k) const { return kind() == k; }

  int64_t i() const { return get<int64_t>(); }
  float f() const { return get<float>(); }
  const std::string& s() const { return get<std::string>(); }
  const at::Tensor& t() const { return get<at::Tensor>(); }
  const std::vector<int64_t>& ints() const { return get<std::vector<int64_t>>(); }
  const std::vector<float>& floats() const { return get<std::vector<float>>(); }
  const std::vector<std::string>& strings() const { return get<std::vector<std::string>>(); }

  const Storage& storage() const { return v_; }

  /// Structural equality (tensors compared by dtype, shape and values).
  bool operator==(const Attribute& o) const;

 private:
  template <typename T>
  const T& get() const;
  Storage v_;
};

}  // namespace gs
