// Sliding-window perplexity evaluator and unigram baseline (see perplexity.h).
#include "data/perplexity.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <cmath>
#include <ostream>

#include "runtime/executor.h"
#include "support/error.h"
#include "support/progress.h"

namespace gs {

std::vector<PplWindow> slidingWindows(int64_t n, int64_t context, int64_t stride) {
  GS_CHECK(context >= 1 && stride >= 1 && stride <= context, "perplexity: need 1 <= stride (",
           stride, ") <= context (", context, ")");
  GS_CHECK(n >= 2, "perplexity: need at least 2 tokens, got ", n);
  std::vector<PplWindow> w;
  int64_t prev_end = 0;
  for (int64_t begin = 0; begin < n; begin += stride) {
    int64_t end = std::min(begin + context, n);
    // Targets after the previous window's end whose predecessor is inside this window.
    w.push_back({begin, end, std::max<int64_t>(prev_end, begin + 1)});
    prev_end = end;
    if (end == n) break;
  }
  return w;
}

namespace {

void checkIds(const at::Tensor& t, int64_t vocab, const char* what) {
  GS_CHECK(t.defined() && t.dim() == 1, what, ": expected 1-D token ids");
  GS_CHECK(!t.is_floating_point() && !t.is_complex() && t.scalar_type() != at::kBool, what,
           ": expected integer token ids, got ", t.scalar_type());
  if (t.numel() == 0) return;
  int64_t lo = t.min().item<int64_t>(), hi = t.max().item<int64_t>();
  GS_CHECK(lo >= 0 && hi < vocab, what, ": token ", lo < 0 ? lo : hi, " outside [0, ", vocab,
           ")");
}

}  // namespace

PplResult evaluatePerplexity(Executor& ex, const at::Tensor& tokensIn, const PplOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  GS_CHECK(tokensIn.defined() && tokensIn.dim() == 1, "perplexity: expected a 1-D token stream");
  at::Tensor tokens = tokensIn.to(at::kLong).contiguous();
  if (o.maxTokens > 0 && tokens.numel() > o.maxTokens) tokens = tokens.slice(0, 0, o.maxTokens);
  const int64_t n = tokens.numel();
  std::vector<PplWindow> windows = slidingWindows(n, o.context, o.stride);

  std::unique_ptr<Progress> prog;
  if (o.progress) {
    ProgressOptions po;
    po.out = o.progress;
    po.tty = false;
    po.logInterval = o.progressInterval;
    po.unit = "tok";
    prog = std::make_unique<Progress>("ppl", static_cast<int64_t>(windows.size()), po);
  }
  PplResult r;
  int64_t vocab = -1;
  for (const PplWindow& w : windows) {
    at::Tensor ids = tokens.slice(0, w.begin, w.end).unsqueeze(0);
    std::vector<at::Tensor> outs = ex.run({ids});
    GS_CHECK(!outs.empty(), "perplexity: the graph has no outputs");
    const at::Tensor& logits = outs[0];
    const int64_t len = w.end - w.begin;
    GS_CHECK(logits.dim() == 3 && logits.size(0) == 1 && logits.size(1) == len,
             "perplexity: expected logits [1, ", len, ", V] for input ids [1, ", len, "], got ",
             logits.sizes());
    if (vocab < 0) {
      vocab = logits.size(2);
      checkIds(tokens, vocab, "perplexity");
    }
    // Target at absolute position p is predicted by the logits at window row p - 1 - begin.
    int64_t rowLo = w.scoreBegin - 1 - w.begin, rowHi = w.end - 1 - w.begin;
    at::Tensor lp = at::log_softmax(logits[0].slice(0, rowLo, rowHi).to(at::kDouble), -1);
    at::Tensor tgt = tokens.slice(0, w.scoreBegin, w.end);
    double nll = -lp.gather(1, tgt.unsqueeze(1)).sum().item<double>();
    r.nll += nll;
    r.tokens += w.end - w.scoreBegin;
    ++r.windows;
    if (prog) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "ppl %.4f", std::exp(r.nll / r.tokens));
      prog->update(r.windows, r.tokens, buf);
    }
  }
  r.perplexity = std::exp(r.nll / static_cast<double>(r.tokens));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (prog) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "ppl %.4f over %lld tokens", r.perplexity,
                  static_cast<long long>(r.tokens));
    prog->finish(buf);
  }
  return r;
}

PplResult unigramPerplexity(const at::Tensor& train, const at::Tensor& eval, int64_t vocab) {
  auto t0 = std::chrono::steady_clock::now();
  GS_CHECK(vocab >= 1, "unigram perplexity: vocab must be positive, got ", vocab);
  checkIds(train, vocab, "unigram perplexity (train)");
  checkIds(eval, vocab, "unigram perplexity (eval)");
  GS_CHECK(eval.numel() > 0, "unigram perplexity: empty evaluation stream");
  at::Tensor counts = at::bincount(train.to(at::kLong), {}, vocab).to(at::kDouble);
  at::Tensor logp = at::log((counts + 1.0) / (static_cast<double>(train.numel()) + vocab));
  PplResult r;
  r.nll = -logp.index_select(0, eval.to(at::kLong)).sum().item<double>();
  r.tokens = eval.numel();
  r.perplexity = std::exp(r.nll / static_cast<double>(r.tokens));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace gs
