// Language-model training data: a token stream cut into fixed-length next-token samples, and the
// text data specs (text[:FILE][:SPLIT][:N]) shared by `gstick train` and `gstick eval`.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "data/dataset.h"
#include "data/text_corpus.h"

namespace gs {

/// Next-token samples over a 1-D int64 token stream: sample i covers positions
/// [i * stride, i * stride + seqLen + 1); its input is the first seqLen ids (int64 [seqLen]) and its
/// label the last seqLen ids (int64 [seqLen], the input shifted left by one). A batch is inputs
/// [B, seqLen] / labels [B, seqLen], which the Trainer flattens to token-level cross-entropy.
/// size() = (n - 1 - seqLen) / stride + 1 windows; a tail shorter than seqLen + 1 is dropped.
class TokenSequenceDataset : public Dataset {
 public:
  /// Throws gs::Error unless tokens is 1-D integer, seqLen >= 1, stride >= 1 and the stream holds
  /// at least seqLen + 1 tokens (the message names `name`).
  TokenSequenceDataset(at::Tensor tokens, int64_t seqLen, int64_t stride = 0,
                       std::string name = "tokens");

  int64_t size() const override { return size_; }
  std::vector<int64_t> inputShape() const override { return {seq_len_}; }
  bool hasLabels() const override { return true; }
  Batch getBatch(const at::Tensor& indices) const override;
  std::string describe() const override;

  int64_t seqLen() const { return seq_len_; }
  int64_t stride() const { return stride_; }
  /// The whole stream, int64 [n].
  const at::Tensor& tokens() const { return tokens_; }

 private:
  at::Tensor tokens_;
  int64_t seq_len_, stride_, size_;
  std::string name_;
};

/// A text data spec resolved to token ids: the corpus, the chosen split and its byte tokens.
struct TextData {
  std::shared_ptr<const TextCorpus> corpus;
  TextSplit split = TextSplit::Train;
  at::Tensor tokens;  ///< int64 [n]: the split's bytes (first `limit` of them when limited)
  /// "text:validation (python3.11-doc ..., 589312 tokens)".
  std::string describe() const;
};

/// Opens the text named by a DataSpec of kind Text: the corpus is loaded once per process and
/// cached (built-in corpus or FILE), the split is spec.textSplit or `defaultSplit`, and
/// spec.limit > 0 keeps the first `limit` tokens of the split (an error if the split is shorter).
TextData openTextData(const DataSpec& spec, TextSplit defaultSplit = TextSplit::Train);

/// Byte tokens of one split of `corpus` (int64 [splitSize]).
at::Tensor textSplitTokens(const TextCorpus& corpus, TextSplit split);

}  // namespace gs
