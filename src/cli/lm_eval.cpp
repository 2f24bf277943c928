// Language-model evaluation report for the CLI (see lm_eval.h).
#include "cli/lm_eval.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <iostream>

#include "data/perplexity.h"
#include "data/text_dataset.h"
#include "models/zoo.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace gs::cli {

bool isLanguageModel(const Graph& g) {
  if (g.inputs().empty()) return false;
  DType t = g.inputs()[0]->dtype();
  return t == DType::Int64 || t == DType::Int32;
}

double printLmEval(const Graph& g, const DataSpec& spec, const LmEvalOptions& o) {
  GS_CHECK(spec.kind == DataSpec::Kind::Text,
           "language models are evaluated on text data (--data text[:FILE][:SPLIT][:N])");
  TextData d = openTextData(spec, TextSplit::Validation);
  int64_t maxSeq = models::llamaMaxSeq(g);
  PplOptions po;
  po.context = o.context > 0 ? o.context : (maxSeq > 0 ? maxSeq : 256);
  GS_CHECK(maxSeq == 0 || po.context <= maxSeq, "context ", po.context,
           " exceeds the model's maximum sequence length ", maxSeq);
  po.stride = o.stride > 0 ? o.stride : po.context;
  GS_CHECK(po.stride <= po.context, "stride ", po.stride, " exceeds context ", po.context);
  po.maxTokens = o.maxTokens;
  if (o.progress) po.progress = &std::cerr;
  Executor ex(g);  // eval mode
  PplResult r = evaluatePerplexity(ex, d.tokens, po);
  at::Tensor scored = d.tokens;
  if (po.maxTokens > 0 && scored.numel() > po.maxTokens) scored = scored.slice(0, 0, po.maxTokens);
  PplResult u = unigramPerplexity(textSplitTokens(*d.corpus, TextSplit::Train), scored);
  std::printf("data: %s\n", d.describe().c_str());
  std::printf("perplexity %.4f  nll/token %.4f  tokens %lld  windows %lld  context %lld  stride "
              "%lld  (%.1f s)\n",
              r.perplexity, r.nll / static_cast<double>(r.tokens),
              static_cast<long long>(r.tokens), static_cast<long long>(r.windows),
              static_cast<long long>(po.context), static_cast<long long>(po.stride), r.seconds);
  std::printf("unigram baseline perplexity %.4f (train-split byte frequencies, add-one smoothing)\n",
              u.perplexity);
  std::fflush(stdout);
  return r.perplexity;
}

}  // namespace gs::cli
