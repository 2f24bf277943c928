// Golden IR texts: every tests/golden/ir/*.gsir prints back byte-identically, and a builder-made
// CNN prints exactly as tests/golden/expected/builder_small_cnn.txt (GS_UPDATE_GOLDEN=1 rewrites).
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ir/builder.h"
#include "ir/graph_diff.h"
#include "ir/text.h"
#include "ir/verifier.h"
#include "support/error.h"

namespace gs {
namespace {

namespace fs = std::filesystem;

std::string readFile(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(GoldenIr, TextFilesPrintBackIdentically) {
  fs::path dir = fs::path(GS_TEST_DIR) / "golden" / "ir";
  size_t count = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".gsir") continue;
    ++count;
    std::string text = readFile(e.path());
    std::unique_ptr<Graph> g;
    try {
      g = parseGraph(text, e.path().filename().string());
    } catch (const Error& err) {
      ADD_FAILURE() << err.what();
      continue;
    }
    EXPECT_EQ(printGraph(*g), text) << e.path();
    EXPECT_TRUE(verifyGraph(*g, {.check_schemas = false}).empty()) << e.path();
    auto h = parseGraph(printGraph(*g));
    EXPECT_EQ(graphDiff(*g, *h), "") << e.path();
  }
  EXPECT_GE(count, 3u);
}

/// LeNet-flavoured CNN with a residual block, built with the GraphBuilder.
std::unique_ptr<Graph> buildSmallCnn() {
  auto g = std::make_unique<Graph>();
  g->name = "small_cnn";
  GraphBuilder b(*g);
  Value* x = b.input("image", DType::Float32, std::vector<Dim>{Dim("N"), 1, 28, 28});
  Value* h = b.convBnRelu(x, 1, 8, 3, 1, 1, true, true, 1, "stem");
  h = b.maxPool(h, 2, 2, 0, "pool1");
  {
    auto s1 = b.scope("layer1");
    auto s2 = b.scope("0");
    Value* r = b.convBnRelu(h, 8, 8, 3, 1, 1, true, true, 2, "conv1");
    r = b.convBnRelu(r, 8, 8, 3, 1, 1, true, false, 3, "conv2");
    h = b.relu(b.add(r, h), "relu");
  }
  h = b.convBnRelu(h, 8, 16, 3, 2, 1, false, true, 4, "down");
  h = b.flatten(b.globalAvgPool(h, "gap"), 1, "flatten");
  h = b.linear(h, 16, 10, 5, "fc");
  b.output(b.softmax(h, 1, "prob"));
  return g;
}

TEST(GoldenIr, BuilderSmallCnnMatchesExpectedText) {
  auto g = buildSmallCnn();
  // Full schema check: every builder node matches its registered ONNX op schema.
  auto errs = verifyGraph(*g);
  ASSERT_TRUE(errs.empty()) << errs[0];
  // Elide every random tensor; BN statistics (ones/zeros, 8 elements) stay inline.
  std::string got = printGraph(*g, {.tensor_data = false, .max_inline_elements = 8});
  fs::path expected = fs::path(GS_TEST_DIR) / "golden" / "expected" / "builder_small_cnn.txt";
  if (const char* u = std::getenv("GS_UPDATE_GOLDEN"); u && std::string(u) == "1") {
    std::ofstream(expected, std::ios::binary) << got;
    GTEST_SKIP() << "rewrote " << expected;
  }
  ASSERT_TRUE(fs::exists(expected)) << expected << " missing; run with GS_UPDATE_GOLDEN=1";
  EXPECT_EQ(got, readFile(expected));
  // With data the same graph round-trips exactly.
  auto h = parseGraph(printGraph(*g));
  EXPECT_EQ(graphDiff(*g, *h), "");
}

}  // namespace
}  // namespace gs
