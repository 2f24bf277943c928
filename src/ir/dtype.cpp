// DType names and ATen conversions.
#include "ir/dtype.h"

#include "support/error.h"

namespace gs {

namespace {
struct DTypeInfo {
  DType t;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kInfos[] = {
    {DType::Float32, "f32", 4},   {DType::UInt8, "u8", 1},       {DType::Int8, "i8", 1},
    {DType::UInt16, "u16", 2},    {DType::Int16, "i16", 2},      {DType::Int32, "i32", 4},
    {DType::Int64, "i64", 8},     {DType::String, "str", 0},     {DType::Bool, "bool", 1},
    {DType::Float16, "f16", 2},   {DType::Float64, "f64", 8},    {DType::UInt32, "u32", 4},
    {DType::UInt64, "u64", 8},    {DType::Complex64, "c64", 8},  {DType::Complex128, "c128", 16},
    {DType::BFloat16, "bf16", 2},
};
}  // namespace

std::string_view dtypeName(DType t) {
  for (const auto& i : kInfos)
    if (i.t == t) return i.name;
  return "undef";
}

bool parseDType(std::string_view name, DType* out) {
  for (const auto& i : kInfos)
    if (name == i.name) {
      *out = i.t;
      return true;
    }
  if (name == "undef") {
    *out = DType::Undefined;
    return true;
  }
  return false;
}

bool isKnownDTypeCode(int32_t code) { return code >= 1 && code <= 16; }

size_t dtypeSize(DType t) {
  for (const auto& i : kInfos)
    if (i.t == t) return i.size;
  return 0;
}

c10::ScalarType toScalarType(DType t) {
  switch (t) {
    case DType::Float32: return c10::kFloat;
    case DType::UInt8: return c10::kByte;
    case DType::Int8: return c10::kChar;
    case DType::Int16: return c10::kShort;
    case DType::Int32: return c10::kInt;
    case DType::Int64: return c10::kLong;
    case DType::Bool: return c10::kBool;
    case DType::Float16: return c10::kHalf;
    case DType::Float64: return c10::kDouble;
    case DType::BFloat16: return c10::kBFloat16;
    case DType::Complex64: return c10::kComplexFloat;
    case DType::Complex128: return c10::kComplexDouble;
    default: GS_FAIL("element type ", dtypeName(t), " is not supported by the gstick runtime");
  }
}

DType fromScalarType(c10::ScalarType t) {
  switch (t) {
    case c10::kFloat: return DType::Float32;
    case c10::kByte: return DType::UInt8;
    case c10::kChar: return DType::Int8;
    case c10::kShort: return DType::Int16;
    case c10::kInt: return DType::Int32;
    case c10::kLong: return DType::Int64;
    case c10::kBool: return DType::Bool;
    case c10::kHalf: return DType::Float16;
    case c10::kDouble: return DType::Float64;
    case c10::kBFloat16: return DType::BFloat16;
    case c10::kComplexFloat: return DType::Complex64;
    case c10::kComplexDouble: return DType::Complex128;
    default: GS_FAIL("ATen scalar type ", c10::toString(t), " has no ONNX equivalent");
  }
}

}  // namespace gs
