// Language-model evaluation shared by `gstick train` and `gstick eval`: sliding-window perplexity
// on a text split plus the unigram baseline on the same split, printed as fixed report lines.
#pragma once
#include <cstdint>
#include <string>

#include "data/dataset.h"
#include "ir/graph.h"

namespace gs::cli {

/// Whether `g` looks like a language model: its first input is an integer tensor (token ids).
bool isLanguageModel(const Graph& g);

/// Sliding-window perplexity options of the CLI (0 = default).
struct LmEvalOptions {
  int64_t context = 0;    ///< window length; 0 = models::llamaMaxSeq(g), or 256 when unknown
  int64_t stride = 0;     ///< 0 = context (non-overlapping windows, the GPTQ/AWQ protocol)
  int64_t maxTokens = 0;  ///< > 0: only the first maxTokens tokens of the split
  bool progress = false;  ///< progress lines on stderr
};

/// Evaluates `g` on the text split `spec` names (validation when the spec has no split) with
/// gs::evaluatePerplexity, then the unigram baseline (train split byte frequencies of the same
/// corpus, add-one smoothing) on the same tokens, and prints
///   data: <corpus>:<split> (<n> tokens, corpus fnv1a <hash>)
///   perplexity P  nll/token X  tokens K  windows W  context C  stride S  (T s)
///   unigram baseline perplexity U (train-split byte frequencies, add-one smoothing)
/// Returns the model's perplexity.
double printLmEval(const Graph& g, const DataSpec& spec, const LmEvalOptions& o);

}  // namespace gs::cli
