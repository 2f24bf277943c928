// ONNX TensorProto <-> at::Tensor conversion with size checks and safe external-data loading.
#pragma once
#include <ATen/core/Tensor.h>
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>

#include "ir/dtype.h"

namespace gs {

/// Where and how a TensorProto may load its data.
struct TensorLoadContext {
  /// Names the origin (model path) in error messages.
  std::string source;
  /// Folder that external-data locations resolve against; empty = external data is refused.
  std::string base_dir;
  /// Any single tensor larger than this is refused before allocation.
  int64_t max_tensor_bytes = int64_t{16} << 30;
};

/// Converts a TensorProto to a contiguous CPU tensor owning its data. Accepts raw_data, the typed
/// fields (float_data, int32_data for 8/16-bit ints, bool and f16/bf16 bits, int64_data,
/// double_data) and external data. Throws gs::Error "<source>: tensor '<name>': ..." for string
/// or unsigned 16/32/64-bit tensors, negative dims, element counts that do not match the data,
/// sizes above ctx.max_tensor_bytes, and external locations that are absolute or escape base_dir.
at::Tensor tensorFromProto(const onnx::TensorProto& p, const TensorLoadContext& ctx);

/// Fills `p` (name, data_type, dims, raw_data little-endian) from `t`.
void tensorToProto(const at::Tensor& t, const std::string& name, onnx::TensorProto* p);
/// Clears `p` and fills only name, data_type and dims from `t` (no data): what tensorToProto
/// writes before raw_data, for writers that stream the bytes themselves (the ONNX exporter).
void tensorProtoHeader(const at::Tensor& t, const std::string& name, onnx::TensorProto* p);
/// `t` in the memory layout raw_data holds (CPU, contiguous, conjugation / negation resolved):
/// `t` itself, without a copy, for a plain contiguous CPU tensor.
at::Tensor rawDataTensor(const at::Tensor& t);

/// Reads a serialized TensorProto file (as in ONNX's test_data_set_*/input_k.pb).
/// `name_out`, when non-null, receives the tensor's name (may be empty).
at::Tensor readTensorProtoFile(const std::string& path, std::string* name_out = nullptr);
/// Writes `t` as a serialized TensorProto file (atomically).
void writeTensorProtoFile(const std::string& path, const at::Tensor& t, const std::string& name);

/// Model metadata key listing (newline-separated) float parameters that are frozen, so that a
/// gstick export -> import round trip keeps Constant-derived floats frozen.
inline constexpr const char* kFrozenParamsKey = "gstick.frozen_params";

/// DType for an ONNX data type code; throws for unknown codes (`what` names the context).
DType dtypeFromOnnx(int32_t code, const std::string& what);

}  // namespace gs
