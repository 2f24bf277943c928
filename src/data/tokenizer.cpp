// Byte-level tokenizer implementation (see tokenizer.h).
#include "data/tokenizer.h"

#include <ATen/ATen.h>

#include "support/error.h"

namespace gs {

at::Tensor ByteTokenizer::encode(std::string_view text) {
  at::Tensor ids = at::empty({static_cast<int64_t>(text.size())}, at::kLong);
  int64_t* p = ids.data_ptr<int64_t>();
  for (size_t i = 0; i < text.size(); ++i) p[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(const at::Tensor& ids) {
  GS_CHECK(ids.dim() == 1, "ByteTokenizer::decode: expected 1-D token ids, got ", ids.dim(), "-D");
  GS_CHECK(!ids.is_floating_point() && !ids.is_complex(),
           "ByteTokenizer::decode: expected integer token ids, got ", ids.scalar_type());
  at::Tensor l = ids.to(at::kLong).contiguous();
  const int64_t* p = l.data_ptr<int64_t>();
  std::string s(static_cast<size_t>(l.numel()), '\0');
  for (int64_t i = 0; i < l.numel(); ++i) {
    GS_CHECK(p[i] >= 0 && p[i] < kVocabSize,
             "ByteTokenizer::decode: token ", p[i], " at position ", i,
             " is outside the byte vocabulary [0, 256)");
    s[static_cast<size_t>(i)] = static_cast<char>(static_cast<unsigned char>(p[i]));
  }
  return s;
}

}  // namespace gs
