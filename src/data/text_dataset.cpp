// Token-sequence dataset and text data specs resolved to tokens (see text_dataset.h).
#include "data/text_dataset.h"

#include <ATen/ATen.h>

#include <map>
#include <mutex>

#include "data/tokenizer.h"
#include "support/error.h"

namespace gs {

TokenSequenceDataset::TokenSequenceDataset(at::Tensor tokens, int64_t seqLen, int64_t stride,
                                           std::string name)
    : seq_len_(seqLen), stride_(stride > 0 ? stride : seqLen), name_(std::move(name)) {
  GS_CHECK(tokens.defined() && tokens.dim() == 1, name_, ": expected a 1-D token stream");
  GS_CHECK(!tokens.is_floating_point() && !tokens.is_complex() &&
               tokens.scalar_type() != at::kBool,
           name_, ": expected integer token ids, got ", tokens.scalar_type());
  GS_CHECK(seq_len_ >= 1, name_, ": sequence length must be >= 1, got ", seq_len_);
  tokens_ = tokens.to(at::kLong).contiguous();
  const int64_t n = tokens_.numel();
  GS_CHECK(n >= seq_len_ + 1, name_, ": ", n, " tokens, need at least sequence length + 1 = ",
           seq_len_ + 1);
  size_ = (n - 1 - seq_len_) / stride_ + 1;
}

Batch TokenSequenceDataset::getBatch(const at::Tensor& indices) const {
  GS_CHECK(indices.defined() && indices.dim() == 1 && !indices.is_floating_point(), name_,
           ": batch indices must be a 1-D integer tensor");
  at::Tensor idx = indices.to(at::kLong).contiguous();
  if (idx.numel() > 0) {
    int64_t lo = idx.min().item<int64_t>(), hi = idx.max().item<int64_t>();
    GS_CHECK(lo >= 0 && hi < size_, name_, ": index ", lo < 0 ? lo : hi, " out of range [0, ",
             size_, ")");
  }
  // Row b holds tokens[idx[b] * stride + j] for j in [0, seqLen]: one gather for the batch.
  at::Tensor pos = (idx * stride_).unsqueeze(1) + at::arange(seq_len_ + 1, at::kLong).unsqueeze(0);
  at::Tensor win = tokens_.index_select(0, pos.reshape({-1})).view({idx.numel(), seq_len_ + 1});
  Batch b;
  b.inputs = win.slice(1, 0, seq_len_).contiguous();
  b.labels = win.slice(1, 1, seq_len_ + 1).contiguous();
  b.indices = idx;
  return b;
}

std::string TokenSequenceDataset::describe() const {
  return name_ + ", " + std::to_string(size_) + " sequences of " + std::to_string(seq_len_) +
         " tokens";
}

std::string TextData::describe() const {
  return corpus->name + ":" + textSplitName(split) + " (" + std::to_string(tokens.numel()) +
         " tokens, corpus fnv1a " + corpus->fingerprint() + ")";
}

at::Tensor textSplitTokens(const TextCorpus& corpus, TextSplit split) {
  const std::string_view all(corpus.bytes);
  switch (split) {
    case TextSplit::Train: return ByteTokenizer::encode(all.substr(0, corpus.trainEnd));
    case TextSplit::Validation:
      return ByteTokenizer::encode(all.substr(corpus.trainEnd, corpus.validEnd - corpus.trainEnd));
    case TextSplit::Test: return ByteTokenizer::encode(all.substr(corpus.validEnd));
  }
  return {};
}

TextData openTextData(const DataSpec& spec, TextSplit defaultSplit) {
  GS_CHECK(spec.kind == DataSpec::Kind::Text, "openTextData: not a text data spec");
  // The built-in corpus takes ~1 s to read and normalise; train and validation specs share it.
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const TextCorpus>> cache;
  std::shared_ptr<const TextCorpus> corpus;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(spec.dir);
    if (it != cache.end()) {
      corpus = it->second;
    } else {
      corpus = std::make_shared<const TextCorpus>(spec.dir.empty() ? loadBuiltinTextCorpus()
                                                                   : loadTextFileCorpus(spec.dir));
      cache[spec.dir] = corpus;
    }
  }
  TextData d;
  d.corpus = corpus;
  d.split = spec.textSplit.value_or(defaultSplit);
  d.tokens = textSplitTokens(*corpus, d.split);
  if (spec.limit > 0) {
    GS_CHECK(spec.limit <= d.tokens.numel(), corpus->name, ":", textSplitName(d.split),
             ": limit ", spec.limit, " exceeds the ", d.tokens.numel(), " tokens of the split");
    d.tokens = d.tokens.slice(0, 0, spec.limit).contiguous();
  }
  return d;
}

}  // namespace gs
