// safetensors files: atomic writer and a memory-mapped, validating reader (checkpoints, weights).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace gs {

/// Tensors by name plus the free-form string metadata of a safetensors file.
struct TensorFile {
  std::map<std::string, at::Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

/// Writes `tensors` and `metadata` (stored under "__metadata__") to `path` atomically (temp file +
/// rename) in the safetensors format: u64 little-endian header length, JSON header padded with
/// spaces to a multiple of 8 bytes, then the raw little-endian tensor bytes, contiguous. Tensors
/// are laid out by element size (largest first), then name, so every tensor starts at an offset
/// that is a multiple of its element size (zero-copy mmap reads). Supported dtypes: F64 F32 F16
/// BF16 I64 I32 I16 I8 U8 BOOL. Throws gs::Error naming the file for an unsupported dtype, a name
/// "__metadata__", an undefined tensor or an I/O failure.
void writeSafetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
/// Serialises to bytes (what writeSafetensors writes).
std::string serializeSafetensors(const std::map<std::string, at::Tensor>& tensors,
                                 const std::map<std::string, std::string>& metadata = {});

/// A safetensors file opened read-only through mmap. The header is validated on open: header
/// length within the file and <= 100 MB, valid JSON object, every entry with a known dtype,
/// non-negative shape and data_offsets [begin, end] such that numel * element size == end - begin,
/// entries contiguous without gaps or overlaps and covering the data section exactly (the rules
/// of the reference implementation). Errors are one-line gs::Error messages naming the file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  /// Tensor names in file order (by data offset).
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// The tensor `name` as a view on the mapping (copy-on-write: writes stay private to the
  /// process; the mapping lives as long as any returned tensor). Copied when its offset is not a
  /// multiple of its element size. When the last view of a tensor's bytes is released, the pages
  /// wholly inside them are dropped from the process (madvise MADV_DONTNEED), so a weight that
  /// was read and then replaced stops counting in RSS. Throws gs::Error naming the file for an
  /// unknown name.
  at::Tensor tensor(const std::string& name) const;
  /// All tensors and the metadata.
  TensorFile readAll() const;

 private:
  struct Entry {
    c10::ScalarType dtype;
    std::vector<int64_t> shape;
    uint64_t begin, end;  // relative to the data section
  };
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> map_;
  uint64_t data_start_ = 0;
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

/// Opens `path` and reads every tensor (views on the mapping) and the metadata.
TensorFile readSafetensors(const std::string& path);

/// If `t`'s storage lies inside a live SafetensorsFile mapping, asks the kernel to reclaim its
/// resident pages (madvise MADV_PAGEOUT on the pages wholly inside it): clean file pages leave RSS
/// and are read from the file again on the next access; pages the process modified are kept (no
/// data is lost). For mapped weights that stay referenced but are not needed for a while (an
/// embedding table once the calibration inputs are embedded). Returns whether `t` was mapped.
bool dropMappedPages(const at::Tensor& t);
/// The same for the bytes [data, data + bytes) (e.g. a chunk of a mapped tensor that was just
/// written out); returns whether the range lies inside a live mapping.
bool dropMappedPages(const void* data, size_t bytes);

/// Safetensors dtype name ("F32") of an ATen type; throws gs::Error for unsupported types.
std::string safetensorsDtypeName(c10::ScalarType t);

}  // namespace gs
