// Perplexity evaluation of language-model graphs (sliding-window protocol) and a unigram baseline.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace gs {

class Executor;

/// One forward pass of the sliding-window protocol: the model sees tokens [begin, end) and the
/// targets at absolute positions [scoreBegin, end) are scored (each predicted from the logits at
/// the previous position, which lies inside the window).
struct PplWindow {
  int64_t begin = 0, end = 0, scoreBegin = 0;
};

/// Windows of HF's "perplexity of fixed-length models" protocol (as in the GPTQ/AWQ WikiText-2
/// evaluations when stride == context): window k starts at k * stride and ends at
/// min(begin + context, n); it scores the targets from max(previous window's end, begin + 1) to
/// its end (a target needs its predecessor inside the window; position 0 has no context).
/// Iteration stops at the window reaching n. With stride < context every position in [1, n) is
/// scored exactly once; with stride == context the first position of every later window has no
/// in-window context and is skipped, exactly as HF's shifted loss and GPTQ's evaluation do
/// (tokens scored = n - windows). Throws gs::Error unless 1 <= stride <= context and n >= 2.
std::vector<PplWindow> slidingWindows(int64_t n, int64_t context, int64_t stride);

/// Result of a perplexity evaluation.
struct PplResult {
  double perplexity = 0;   ///< exp(nll / tokens)
  double nll = 0;          ///< summed natural-log negative log-likelihood of the scored tokens
  int64_t tokens = 0;      ///< tokens scored
  int64_t windows = 0;     ///< forward passes
  double seconds = 0;      ///< wall time
};

/// Options of evaluatePerplexity.
struct PplOptions {
  int64_t context = 256;           ///< window length L
  int64_t stride = 256;            ///< stride S (<= L); S == L = non-overlapping windows
  int64_t maxTokens = 0;           ///< > 0: evaluate only the first maxTokens tokens of the stream
  std::ostream* progress = nullptr;  ///< progress lines ("ppl: step k/n ...") if set
  double progressInterval = 10.0;    ///< seconds between progress lines
};

/// Evaluates a language model on a token stream: `ex` runs a graph whose first input takes int64
/// ids [1, T] and whose first output is logits [1, T, V] (float; unnormalised). Scores every
/// window of slidingWindows(n, context, stride) with log_softmax in double precision. Throws
/// gs::Error for a non-1-D stream, a token outside [0, V), or logits of the wrong shape.
PplResult evaluatePerplexity(Executor& ex, const at::Tensor& tokens, const PplOptions& opts = {});

/// Unigram baseline: byte frequencies of `train` with add-one (Laplace) smoothing over a
/// `vocab`-sized vocabulary, p(b) = (count(b) + 1) / (|train| + vocab); returns the perplexity of
/// `eval` under it, exp(-mean log p(eval byte)). Both tensors are 1-D integer ids in [0, vocab).
PplResult unigramPerplexity(const at::Tensor& train, const at::Tensor& eval, int64_t vocab = 256);

}  // namespace gs
