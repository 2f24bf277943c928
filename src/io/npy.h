// NumPy .npy read/write for tensors (v1/v2 headers, little-endian, C order).
#pragma once
#include <ATen/core/Tensor.h>

#include <string>

namespace gs {

/// Reads a .npy file; throws gs::Error naming the file for bad magic / header / truncation.
at::Tensor readNpy(const std::string& path);
at::Tensor parseNpy(const std::string& bytes, const std::string& source);
/// Writes a tensor as .npy (atomically).
void writeNpy(const std::string& path, const at::Tensor& t);
std::string serializeNpy(const at::Tensor& t);

}  // namespace gs
