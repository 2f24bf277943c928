// Attribute helpers.
#include "ir/attribute.h"

#include <ATen/ATen.h>

#include "support/error.h"

namespace gs {

const char* attrKindName(AttrKind k) {
  switch (k) {
    case AttrKind::Int: return "int";
    case AttrKind::Float: return "float";
    case AttrKind::String: return "string";
    case AttrKind::Tensor: return "tensor";
    case AttrKind::Ints: return "ints";
    case AttrKind::Floats: return "floats";
    case AttrKind::Strings: return "strings";
  }
  return "?";
}

template <typename T>
const T& Attribute::get() const {
  const T* p = std::get_if<T>(&v_);
  GS_CHECK(p, "attribute holds ", attrKindName(kind()), ", a different kind was requested");
  return *p;
}

template const int64_t& Attribute::get<int64_t>() const;
template const float& Attribute::get<float>() const;
template const std::string& Attribute::get<std::string>() const;
template const at::Tensor& Attribute::get<at::Tensor>() const;
template const std::vector<int64_t>& Attribute::get<std::vector<int64_t>>() const;
template const std::vector<float>& Attribute::get<std::vector<float>>() const;
template const std::vector<std::string>& Attribute::get<std::vector<std::string>>() const;

bool Attribute::operator==(const Attribute& o) const {
  if (kind() != o.kind()) return false;
  if (kind() != AttrKind::Tensor) {
    if (kind() == AttrKind::Float) {
      float a = f(), b = o.f();
      return a == b || (a != a && b != b);
    }
    if (kind() == AttrKind::Floats) {
      if (floats().size() != o.floats().size()) return false;
      for (size_t i = 0; i < floats().size(); ++i) {
        float a = floats()[i], b = o.floats()[i];
        if (!(a == b || (a != a && b != b))) return false;
      }
      return true;
    }
    switch (kind()) {
      case AttrKind::Int: return i() == o.i();
      case AttrKind::String: return s() == o.s();
      case AttrKind::Ints: return ints() == o.ints();
      case AttrKind::Strings: return strings() == o.strings();
      default: return false;
    }
  }
  const at::Tensor &a = t(), &b = o.t();
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  if (a.is_floating_point()) return at::equal(a.nan_to_num(0, 0, 0), b.nan_to_num(0, 0, 0)) &&
                                    at::equal(a.isnan(), b.isnan());
  return at::equal(a, b);
}

}  // namespace gs
