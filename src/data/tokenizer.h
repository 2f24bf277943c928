// Byte-level tokenizer: every byte of UTF-8 text is one token id in [0, 256).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace gs {

/// Byte-level tokenizer with a fixed vocabulary of 256 ids (id = unsigned byte value). UTF-8
/// multi-byte characters become several tokens; no normalisation happens here, so
/// decode(encode(s)) == s for every byte string.
class ByteTokenizer {
 public:
  /// Vocabulary size (256).
  static constexpr int64_t kVocabSize = 256;
  /// 1-D int64 tensor of the bytes of `text`, each in [0, 256).
  static at::Tensor encode(std::string_view text);
  /// Inverse of encode: `ids` must be 1-D (any integer dtype, contiguous or not) with every
  /// value in [0, 256); throws gs::Error naming the first offending position otherwise.
  static std::string decode(const at::Tensor& ids);
};

}  // namespace gs
