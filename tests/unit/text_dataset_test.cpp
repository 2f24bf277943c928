// Text data specs (text[:FILE][:SPLIT][:N]) and TokenSequenceDataset: parsing, next-token windows
// checked element by element against the closed form, file corpora, and error messages.
#include "data/text_dataset.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/loader.h"
#include "op_test_util.h"
#include "test_util.h"

namespace gs {
namespace {

using test::expectError;

TEST(TextDataSpec, ParsesSplitsLimitsAndFiles) {
  DataSpec s = parseDataSpec("text");
  EXPECT_EQ(s.kind, DataSpec::Kind::Text);
  EXPECT_TRUE(s.dir.empty());
  EXPECT_FALSE(s.textSplit.has_value());
  EXPECT_EQ(s.limit, 0);

  s = parseDataSpec("text:val");
  EXPECT_TRUE(s.dir.empty());
  EXPECT_EQ(s.textSplit, TextSplit::Validation);
  s = parseDataSpec("text:test:5000");
  EXPECT_EQ(s.textSplit, TextSplit::Test);
  EXPECT_EQ(s.limit, 5000);
  s = parseDataSpec("text:123");
  EXPECT_TRUE(s.dir.empty());
  EXPECT_FALSE(s.textSplit.has_value());
  EXPECT_EQ(s.limit, 123);
  s = parseDataSpec("text:/some/where/notes.txt:validation:77");
  EXPECT_EQ(s.dir, "/some/where/notes.txt");
  EXPECT_EQ(s.textSplit, TextSplit::Validation);
  EXPECT_EQ(s.limit, 77);
  s = parseDataSpec("text:/some/where/notes.txt");
  EXPECT_EQ(s.dir, "/some/where/notes.txt");
  EXPECT_FALSE(s.textSplit.has_value());

  // An existing file is taken whole, even when its name looks like FILE:SPLIT.
  std::string dir = test::tempDir("text_spec");
  std::string odd = dir + "/a:train";
  std::ofstream(odd) << "x";
  s = parseDataSpec("text:" + odd);
  EXPECT_EQ(s.dir, odd);
  EXPECT_FALSE(s.textSplit.has_value());

  expectError([] { parseDataSpec("text:"); }, "missing FILE or split");
  expectError([] { parseDataSpec("text:val:0"); }, "must be positive");
  expectError([] { parseDataSpec("texts"); }, "text[:FILE]");
}

TEST(TokenSequenceDataset, WindowsAreShiftedSlices) {
  at::Tensor tok = at::arange(100, 200, at::kLong);  // token at position p is 100 + p
  TokenSequenceDataset d(tok, /*seqLen=*/8, /*stride=*/8, "t");
  EXPECT_EQ(d.size(), (100 - 1 - 8) / 8 + 1);  // 12: the last window ends at 12*8 = 96 < 100
  EXPECT_EQ(d.inputShape(), std::vector<int64_t>{8});
  Batch b = d.getBatch(at::tensor(std::vector<int64_t>{3, 0, 11}));
  ASSERT_EQ(b.inputs.sizes(), (std::vector<int64_t>{3, 8}));
  ASSERT_EQ(b.labels.sizes(), (std::vector<int64_t>{3, 8}));
  const int64_t rows[3] = {3, 0, 11};
  for (int r = 0; r < 3; ++r)
    for (int j = 0; j < 8; ++j) {
      EXPECT_EQ(b.inputs[r][j].item<int64_t>(), 100 + rows[r] * 8 + j);
      EXPECT_EQ(b.labels[r][j].item<int64_t>(), 100 + rows[r] * 8 + j + 1);
    }
  // Overlapping windows with stride < seqLen.
  TokenSequenceDataset o(tok, 10, 3, "o");
  EXPECT_EQ(o.size(), (100 - 1 - 10) / 3 + 1);
  EXPECT_EQ(o.getBatch(at::tensor(std::vector<int64_t>{2})).inputs[0][0].item<int64_t>(), 106);
  // Exactly seqLen + 1 tokens: one sample.
  EXPECT_EQ(TokenSequenceDataset(at::arange(9, at::kLong), 8).size(), 1);

  expectError([&] { d.getBatch(at::tensor(std::vector<int64_t>{12})); }, "out of range [0, 12)");
  expectError([] { TokenSequenceDataset(at::arange(8, at::kLong), 8, 8, "short"); },
              "short: 8 tokens, need at least");
  expectError([] { TokenSequenceDataset(at::zeros({2, 5}, at::kLong), 2); }, "1-D");
}

TEST(TokenSequenceDataset, LoaderBatchesWholeSamples) {
  // The DataLoader shuffles sample rows; every (input, label) pair stays a shifted window.
  TokenSequenceDataset d(at::arange(1000, at::kLong), 16);
  LoaderOptions lo;
  lo.batchSize = 7;
  lo.seed = 3;
  DataLoader loader(std::make_shared<TokenSequenceDataset>(d), lo);
  int64_t seen = 0;
  for (Batch& b : loader.epoch(0)) {
    EXPECT_TRUE(at::equal(b.labels, b.inputs + 1));
    EXPECT_TRUE(at::equal(b.inputs.select(1, 0), b.indices * 16));
    seen += b.size();
  }
  EXPECT_EQ(seen, d.size());
}

TEST(TextData, FileCorpusSplitsAndLimits) {
  std::string dir = test::tempDir("text_data");
  std::string file = dir + "/c.txt";
  std::string text;
  for (int i = 0; i < 50; ++i) text += "line " + std::to_string(i) + " of the corpus\n";
  std::ofstream(file) << text;
  TextCorpus c = loadTextFileCorpus(file);
  TextData v = openTextData(parseDataSpec("text:" + file + ":val"));
  EXPECT_EQ(v.split, TextSplit::Validation);
  EXPECT_EQ(v.tokens.numel(), c.splitSize(TextSplit::Validation));
  EXPECT_EQ(v.tokens[0].item<int64_t>(), static_cast<unsigned char>(c.bytes[c.trainEnd]));
  TextData def = openTextData(parseDataSpec("text:" + file), TextSplit::Test);
  EXPECT_EQ(def.split, TextSplit::Test);
  EXPECT_EQ(def.tokens.numel(), c.size() - c.validEnd);
  TextData lim = openTextData(parseDataSpec("text:" + file + ":train:10"));
  EXPECT_TRUE(at::equal(lim.tokens, textSplitTokens(c, TextSplit::Train).slice(0, 0, 10)));
  auto ds = openDataset(parseDataSpec("text:" + file + ":train"));
  EXPECT_EQ(ds->size(), (c.trainEnd - 1 - 128) / 128 + 1);  // default seqLen 128
  expectError([&] { openTextData(parseDataSpec("text:" + file + ":val:100000")); },
              "exceeds the");
  expectError([&] { openTextData(parseDataSpec("text:" + dir + "/nope.txt")); },
              "nope.txt not found");
}

}  // namespace
}  // namespace gs
