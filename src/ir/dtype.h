// Element types of IR values (codes equal ONNX TensorProto.DataType) and their ATen mapping.
#pragma once
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace gs {

/// Element type of a tensor value. Numeric codes are ONNX's TensorProto.DataType codes.
enum class DType : int32_t {
  Undefined = 0,
  Float32 = 1,
  UInt8 = 2,
  Int8 = 3,
  UInt16 = 4,
  Int16 = 5,
  Int32 = 6,
  Int64 = 7,
  String = 8,
  Bool = 9,
  Float16 = 10,
  Float64 = 11,
  UInt32 = 12,
  UInt64 = 13,
  Complex64 = 14,
  Complex128 = 15,
  BFloat16 = 16,
};

/// Short text name used by the IR printer ("f32", "i64", "bool", ...).
std::string_view dtypeName(DType t);
/// Inverse of dtypeName; returns false if `name` is not a dtype.
bool parseDType(std::string_view name, DType* out);
/// True if `code` is a valid ONNX data type code gstick knows.
bool isKnownDTypeCode(int32_t code);
/// ATen scalar type for `t`; throws gs::Error for types ATen cannot hold (uint16/32/64, string).
c10::ScalarType toScalarType(DType t);
/// DType for an ATen scalar type; throws for types with no ONNX equivalent.
DType fromScalarType(c10::ScalarType t);
/// Size of one element in bytes (0 for strings / undefined).
size_t dtypeSize(DType t);

}  // namespace gs
