// NumPy .npy read/write for tensors (v1/v2 headers, little-endian, C order).
#pragma once
#include <ATen/core/Tensor.h>

#include <string>

namespace gs {

/// Reads a .npy file; throws gs::Error naming the file for bad magic / header / truncation.
/// Accepts format versions 1-3, any byte order, C or Fortran order; dtypes f2/f4/f8, i1-i8, u1,
/// b1, c8/c16. The result is a contiguous CPU tensor in C order.
at::Tensor readNpy(const std::string& path);
/// Same as readNpy from in-memory bytes; `source` names the origin in errors.
at::Tensor parseNpy(const std::string& bytes, const std::string& source);
/// Writes a tensor as .npy (atomically).
void writeNpy(const std::string& path, const at::Tensor& t);
/// .npy v1 bytes (v2 if the header needs it), data 64-byte aligned as numpy writes it; throws
/// gs::Error for dtypes numpy has no equivalent for (bf16).
std::string serializeNpy(const at::Tensor& t);

}  // namespace gs
