// Shared set-up of the LLM PTQ integration tests: the seeded tiny Llama configuration, text
// windows from the built-in corpus, and logits of a graph.
#pragma once
#include <ATen/ATen.h>

#include "data/text_corpus.h"
#include "data/tokenizer.h"
#include "models/zoo.h"
#include "runtime/executor.h"

namespace gs::llm::llm_test {

/// A 2-layer, dim-64 Llama with grouped-query attention (4 query / 2 KV heads), byte vocabulary.
inline models::LlamaConfig tinyConfig() {
  return {.vocab = 256, .dim = 64, .layers = 2, .heads = 4, .kv_heads = 2, .ffn = 128, .max_seq = 64};
}

/// `n` token windows of length `seq` from the first 200,000 bytes of `split` of the built-in
/// text corpus (calibration from train, evaluation from validation).
inline at::Tensor textWindows(TextSplit split, int64_t n, int64_t seq) {
  static TextCorpus corpus = loadBuiltinTextCorpus();
  return calibrationWindows(ByteTokenizer::encode(corpus.split(split).substr(0, 200000)), n, seq);
}

/// Output 0 of `g` on token ids `ids` (eval mode).
inline at::Tensor logits(const Graph& g, const at::Tensor& ids) {
  Executor ex(g);
  return ex.run({ids})[0];
}

}  // namespace gs::llm::llm_test
