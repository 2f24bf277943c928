// ONNX round trip over every ONNX node-test model: import -> export (checked) -> import is
// structurally identical, the re-exported bytes are stable, and the imported graph verifies.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/onnx.h"
#include "ir/verifier.h"
#include "op_test_util.h"
#include "support/error.h"

namespace gs {
namespace {

namespace fs = std::filesystem;

TEST(OnnxRoundTrip, AllImportableNodeCaseModels) {
  GS_REQUIRE_ONNX_NODE_CASES();
  const fs::path root = test::onnxNodeDir();
  int imported = 0, round_tripped = 0;
  for (const auto& e : fs::directory_iterator(root)) {
    fs::path model = e.path() / "model.onnx";
    if (!fs::exists(model)) continue;
    std::unique_ptr<Graph> g;
    try {
      g = importOnnxFile(model.string());
    } catch (const Error&) {
      continue;  // unsupported models are the conformance runner's business
    }
    ++imported;
    SCOPED_TRACE(e.path().filename().string());
    // Imported (and upgraded) graphs are structurally valid, and nodes of registered ops carry
    // only attributes their opset-17 schema declares.
    VerifyOptions vo;
    vo.allow_unknown_ops = true;
    for (const auto& problem : verifyGraph(*g, vo)) ADD_FAILURE() << problem;
    try {
      OnnxExportOptions o;
      o.full_check = true;
      std::string bytes = exportOnnxBytes(*g, o);
      auto back = importOnnxBytes(bytes, "re-imported");
      test::expectSameGraph(*g, *back);
      EXPECT_EQ(exportOnnxBytes(*back, o), bytes);
      ++round_tripped;
    } catch (const Error& err) {
      ADD_FAILURE() << err.what();
    }
  }
  EXPECT_GT(imported, 800);
  EXPECT_EQ(round_tripped, imported);
}

}  // namespace
}  // namespace gs
