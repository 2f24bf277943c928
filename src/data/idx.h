// IDX file reader (the MNIST / Fashion-MNIST container format), plain or gzip-compressed.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace gs {

/// IDX magic number: 0x00 0x00, a type code, the number of dimensions.
/// Type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.
constexpr uint32_t idxMagic(uint8_t typeCode, uint8_t ndims) {
  return (uint32_t(typeCode) << 8) | ndims;
}
constexpr uint32_t kIdxUint8Images = idxMagic(0x08, 3);  ///< 0x00000803
constexpr uint32_t kIdxUint8Labels = idxMagic(0x08, 1);  ///< 0x00000801

/// Largest element count readIdx accepts (checked before anything is allocated).
constexpr int64_t kIdxMaxElements = int64_t(1) << 31;

/// Reads an IDX file (gzip-compressed or not, detected from the content) into a CPU tensor of
/// the file's element type and dims (multi-byte types converted from big-endian).
/// If `expectedMagic` is non-zero the magic number must equal it.
/// Validates the magic (zero prefix, known type code, 1..16 dims), that no dim is zero and the
/// element count is at most kIdxMaxElements, and that the data length matches the header
/// exactly. Every failure is a one-line gs::Error naming the file, e.g.
/// "x-idx3-ubyte.gz: truncated: header says 60000x28x28 = 47040000 bytes of data, file has 1000".
at::Tensor readIdx(const std::string& path, uint32_t expectedMagic = 0);

/// Serialises a tensor (uint8/int8/int16/int32/float32/float64, 1..16 dims) as IDX bytes
/// (uncompressed; wrap with gzipCompress for .gz). Used for fixtures and exporting subsets.
std::string serializeIdx(const at::Tensor& t);

}  // namespace gs
