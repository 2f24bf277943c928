// Perplexity evaluator: sliding-window bookkeeping and closed-form models (uniform, unigram,
// bigram) checked against independent loops; unigram baseline.
#include "data/perplexity.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "ir/graph.h"
#include "models/zoo.h"
#include "op_test_util.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace gs {
namespace {

using test::expectError;

// LM graph ids [1, T] -> Gather(table [V, V], ids) = logits [1, T, V]: the logits at a position
// depend only on the token there (a bigram model; constant rows = unigram; zeros = uniform).
std::unique_ptr<Graph> tableLm(const at::Tensor& table) {
  auto g = std::make_unique<Graph>();
  Value* ids = g->addInput("ids", DType::Int64, std::vector<Dim>{1, Dim("T")});
  Value* t = g->addParam("table", table, false);
  g->addOutput(g->addNode("Gather", {t, ids}, 1, "lookup")->output(0));
  return g;
}

at::Tensor randomTokens(int64_t n, int64_t vocab, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(vocab, {n}, gen, at::kLong);
}

// Positions scored by the protocol, computed here from its definition (not from slidingWindows):
// with stride < context every position from 1; with stride == context all but k * stride.
bool scored(int64_t p, int64_t context, int64_t stride) {
  if (p == 0) return false;
  return stride < context || p % stride != 0;
}

TEST(Perplexity, WindowsScoreEveryTokenExactlyOnce) {
  for (int64_t n : {2, 3, 7, 16, 17, 33}) {
    for (int64_t L : {1, 2, 3, 4, 8}) {
      for (int64_t S = 1; S <= L; ++S) {
        std::vector<int> hits(n, 0);
        auto ws = slidingWindows(n, L, S);
        for (size_t k = 0; k < ws.size(); ++k) {
          const PplWindow& w = ws[k];
          EXPECT_EQ(w.begin, static_cast<int64_t>(k) * S);
          EXPECT_EQ(w.end, std::min(w.begin + L, n));
          EXPECT_GE(w.scoreBegin, w.begin + 1);  // every target's predecessor is in the window
          for (int64_t p = w.scoreBegin; p < w.end; ++p) ++hits[p];
        }
        EXPECT_EQ(ws.back().end, n);
        // Windows: the first k with k * S + L >= n, plus one.
        int64_t expectWindows = n <= L ? 1 : (n - L + S - 1) / S + 1;
        EXPECT_EQ(static_cast<int64_t>(ws.size()), expectWindows) << n << " " << L << " " << S;
        for (int64_t p = 0; p < n; ++p)
          EXPECT_EQ(hits[p], scored(p, L, S) ? 1 : 0) << "n=" << n << " L=" << L << " S=" << S
                                                      << " p=" << p;
      }
    }
  }
}

TEST(Perplexity, UniformLogitsGiveVocabSize) {
  const int64_t V = 7;
  auto g = tableLm(at::zeros({V, V}));
  Executor ex(*g);
  at::Tensor toks = randomTokens(50, V, 1);
  for (auto [L, S] : std::vector<std::pair<int64_t, int64_t>>{{8, 8}, {8, 3}, {5, 1}, {64, 64}}) {
    PplResult r = evaluatePerplexity(ex, toks, {.context = L, .stride = S});
    EXPECT_NEAR(r.perplexity, 7.0, 1e-12) << L << " " << S;
    int64_t expect = 0;
    for (int64_t p = 0; p < 50; ++p) expect += scored(p, L, S);
    EXPECT_EQ(r.tokens, expect);
    EXPECT_NEAR(r.nll, expect * std::log(7.0), 1e-9);
  }
}

TEST(Perplexity, UnigramLogProbsGiveCrossEntropy) {
  const int64_t V = 11;
  at::Tensor q = at::softmax(test::randn({V}, 3).to(at::kDouble), 0);
  // Unnormalised logits (log q + 5): log_softmax must remove the constant.
  at::Tensor row = (at::log(q) + 5.0).to(at::kFloat);
  auto g = tableLm(row.unsqueeze(0).expand({V, V}).contiguous());
  Executor ex(*g);
  at::Tensor toks = randomTokens(123, V, 4);
  const int64_t* t = toks.data_ptr<int64_t>();
  const double* qp = q.data_ptr<double>();
  for (auto [L, S] : std::vector<std::pair<int64_t, int64_t>>{{16, 4}, {16, 16}, {200, 200}}) {
    double ce = 0;
    int64_t cnt = 0;
    for (int64_t p = 0; p < 123; ++p)
      if (scored(p, L, S)) ce -= std::log(qp[t[p]]), ++cnt;
    PplResult r = evaluatePerplexity(ex, toks, {.context = L, .stride = S});
    EXPECT_EQ(r.tokens, cnt);
    EXPECT_NEAR(r.perplexity, std::exp(ce / cnt), 1e-5 * std::exp(ce / cnt)) << L << " " << S;
  }
}

TEST(Perplexity, BigramModelUsesThePreviousToken) {
  // Checks the logits/target alignment: target p must be scored with the logits at p - 1.
  const int64_t V = 5, n = 97;
  at::Tensor table = test::randn({V, V}, 5) * 2;
  auto g = tableLm(table);
  Executor ex(*g);
  at::Tensor toks = randomTokens(n, V, 6);
  const int64_t* t = toks.data_ptr<int64_t>();
  at::Tensor tab = table.to(at::kDouble).contiguous();
  const double* w = tab.data_ptr<double>();
  for (auto [L, S] : std::vector<std::pair<int64_t, int64_t>>{{10, 3}, {10, 10}, {7, 6}}) {
    double nll = 0;
    int64_t cnt = 0;
    for (int64_t p = 1; p < n; ++p) {
      if (!scored(p, L, S)) continue;
      const double* row = w + t[p - 1] * V;
      double z = 0;
      for (int64_t v = 0; v < V; ++v) z += std::exp(row[v]);
      nll -= row[t[p]] - std::log(z);
      ++cnt;
    }
    std::ostringstream log;
    PplResult r = evaluatePerplexity(ex, toks, {.context = L, .stride = S, .progress = &log});
    EXPECT_EQ(r.tokens, cnt);
    EXPECT_NEAR(r.nll, nll, 1e-5 * nll);
    EXPECT_NEAR(r.perplexity, std::exp(nll / cnt), 1e-5 * std::exp(nll / cnt));
    EXPECT_EQ(r.windows, static_cast<int64_t>(slidingWindows(n, L, S).size()));
    EXPECT_NE(log.str().find("ppl: step"), std::string::npos) << log.str();
    EXPECT_GE(r.seconds, 0.0);
  }
}

TEST(Perplexity, LlamaSingleWindowMatchesDirectLogSoftmax) {
  // A real LM graph (small seeded Llama): one window of the whole stream must equal the mean
  // next-token NLL computed here directly from one forward pass.
  models::LlamaConfig cfg{.dim = 32, .layers = 1, .heads = 2, .kv_heads = 1, .ffn = 64, .max_seq = 64};
  auto g = models::buildLlama(cfg, 3);
  Executor ex(*g);
  const int64_t n = 40;
  at::Tensor toks = randomTokens(n, 256, 10);
  at::Tensor logits = ex.run({toks.unsqueeze(0)})[0][0].to(at::kDouble);
  at::Tensor lp = at::log_softmax(logits.slice(0, 0, n - 1), -1);
  double nll = -lp.gather(1, toks.slice(0, 1, n).unsqueeze(1)).sum().item<double>();
  PplResult r = evaluatePerplexity(ex, toks, {.context = 64, .stride = 64});
  EXPECT_EQ(r.tokens, n - 1);
  EXPECT_EQ(r.windows, 1);
  EXPECT_NEAR(r.perplexity, std::exp(nll / (n - 1)), 1e-9 * std::exp(nll / (n - 1)));
}

TEST(Perplexity, MaxTokensTruncatesTheStream) {
  auto g = tableLm(at::zeros({4, 4}));
  Executor ex(*g);
  PplResult r = evaluatePerplexity(ex, randomTokens(100, 4, 7),
                                   {.context = 8, .stride = 4, .maxTokens = 30});
  EXPECT_EQ(r.tokens, 29);
  EXPECT_NEAR(r.perplexity, 4.0, 1e-12);
}

TEST(Perplexity, Errors) {
  auto g = tableLm(at::zeros({4, 4}));
  Executor ex(*g);
  expectError([&] { evaluatePerplexity(ex, randomTokens(10, 4, 1), {.context = 4, .stride = 5}); },
              "stride (5) <= context (4)");
  expectError([&] { slidingWindows(1, 4, 4); }, "at least 2 tokens");
  at::Tensor bad = randomTokens(10, 4, 1);
  bad[3] = 9;
  // Gather itself rejects index 9 first (Gather range check) or the evaluator does: both gs::Error.
  EXPECT_THROW(evaluatePerplexity(ex, bad, {.context = 4, .stride = 2}), Error);
}

TEST(Perplexity, UnigramBaselineMatchesLaplaceFormula) {
  at::Tensor train = randomTokens(1000, 3, 8);  // only bytes 0..2 occur in train
  at::Tensor eval = at::cat({randomTokens(200, 3, 9), at::full({5}, 200, at::kLong)});
  std::vector<double> c(256, 0);
  for (int64_t i = 0; i < 1000; ++i) c[train[i].item<int64_t>()] += 1;
  double nll = 0;
  for (int64_t i = 0; i < eval.numel(); ++i)
    nll -= std::log((c[eval[i].item<int64_t>()] + 1) / (1000.0 + 256));
  PplResult r = unigramPerplexity(train, eval);
  EXPECT_EQ(r.tokens, 205);
  EXPECT_NEAR(r.perplexity, std::exp(nll / 205), 1e-9 * std::exp(nll / 205));
  expectError([&] { unigramPerplexity(train, at::full({2}, 300, at::kLong)); }, "outside [0, 256)");
}

}  // namespace
}  // namespace gs
