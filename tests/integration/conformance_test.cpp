// Conformance runner: classification on synthetic case folders, allclose rules, real ONNX cases.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <onnx/onnx_pb.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "conformance.h"
#include "io/tensor_proto.h"
#include "support/file_util.h"
#include "test_util.h"

namespace gs::conformance {
namespace {

namespace fs = std::filesystem;

/// model.onnx computing y = <op>(x, w) with w = [1, 2, 3] (op may be unknown to gstick).
std::string modelBytes(const std::string& op) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name(op);
  for (const char* io : {"x", "y"}) {
    auto* vi = std::string(io) == "x" ? g->add_input() : g->add_output();
    vi->set_name(io);
    vi->mutable_type()->mutable_tensor_type()->set_elem_type(1);
    vi->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(3);
  }
  tensorToProto(at::tensor({1.f, 2.f, 3.f}), "w", g->add_initializer());
  auto* n = g->add_node();
  n->set_op_type(op);
  n->add_input("x");
  n->add_input("w");
  n->add_output("y");
  return m.SerializeAsString();
}

/// Writes a case folder with one data set.
std::string makeCase(const std::string& root, const std::string& name, const std::string& model,
                     const at::Tensor& x, const at::Tensor& y) {
  fs::path d = fs::path(root) / name;
  fs::create_directories(d / "test_data_set_0");
  writeFileAtomic((d / "model.onnx").string(), model);
  writeTensorProtoFile((d / "test_data_set_0" / "input_0.pb").string(), x, "x");
  writeTensorProtoFile((d / "test_data_set_0" / "output_0.pb").string(), y, "y");
  return d.string();
}

TEST(Conformance, ClassifiesSyntheticCases) {
  std::string root = test::tempDir("conf");
  at::Tensor x = test::randn({3}, 11), w = at::tensor({1.f, 2.f, 3.f});
  std::string pass = makeCase(root, "test_pass", modelBytes("Add"), x, x + w);
  std::string wrong = makeCase(root, "test_wrong", modelBytes("Add"), x, x + w + 0.01);
  std::string shape = makeCase(root, "test_shape", modelBytes("Sub"), x, (x - w).reshape({1, 3}));
  std::string unsup = makeCase(root, "test_unsup", modelBytes("Frobnicate"), x, x);
  std::string corrupt = makeCase(root, "test_corrupt", "\x08\xff garbage", x, x);
  std::string badin = makeCase(root, "test_badinput", modelBytes("Add"), x.to(at::kDouble), x);

  CaseResult r = runCaseIsolated(pass, 30);
  EXPECT_EQ(r.status, Status::Passed) << r.message;
  r = runCase(wrong);
  EXPECT_EQ(r.status, Status::Failed);
  EXPECT_NE(r.message.find("3/3 elements differ"), std::string::npos) << r.message;
  r = runCaseIsolated(shape, 30);
  EXPECT_EQ(r.status, Status::Failed);
  EXPECT_NE(r.message.find("shape [3], expected [1, 3]"), std::string::npos) << r.message;
  r = runCaseIsolated(unsup, 30);
  EXPECT_EQ(r.status, Status::Unsupported);
  EXPECT_NE(r.message.find("unsupported op 'Frobnicate'"), std::string::npos) << r.message;
  r = runCase(corrupt);
  EXPECT_EQ(r.status, Status::Unsupported);
  EXPECT_NE(r.message.find("not a valid ONNX model"), std::string::npos) << r.message;
  r = runCase(badin);
  EXPECT_EQ(r.status, Status::Failed);
  EXPECT_NE(r.message.find("input 'x'"), std::string::npos) << r.message;

  EXPECT_EQ(caseOpType(pass), "Add");
  EXPECT_EQ(listCases(root).size(), 6u);
  std::vector<CaseResult> all;
  for (const auto& c : listCases(root)) {
    all.push_back(runCaseIsolated(c, 30));
    all.back().op_type = caseOpType(c);
  }
  auto j = nlohmann::json::parse(summaryJson(all));
  EXPECT_EQ(j["total"], 6);
  EXPECT_EQ(j["passed"], 1);
  EXPECT_EQ(j["failed"], 3);
  EXPECT_EQ(j["unsupported"], 2);
  EXPECT_EQ(j["ops"]["Add"]["passed"], 1);
  EXPECT_EQ(j["ops"]["Add"]["failed"], 2);
  EXPECT_NE(summaryTable(all).find("1/6 cases passed, 3 failed, 2 unsupported"), std::string::npos);
}

TEST(Conformance, HungCaseIsKilledAndTheBatchContinues) {
  std::string root = test::tempDir("conf_hang");
  at::Tensor x = test::randn({3}, 12), w = at::tensor({1.f, 2.f, 3.f});
  std::string a = makeCase(root, "test_a", modelBytes("Add"), x, x + w);
  std::string hang = makeCase(root, "test_hang", modelBytes("Add"), x, x + w);
  std::string c = makeCase(root, "test_c", modelBytes("Sub"), x, x - w);
  // A FIFO without a writer: reading model.onnx blocks forever.
  fs::remove(fs::path(hang) / "model.onnx");
  ASSERT_EQ(::mkfifo((fs::path(hang) / "model.onnx").c_str(), 0600), 0);
  std::vector<std::string> seen;
  auto rs = runCasesIsolated({a, hang, c}, 1, [&](const CaseResult& r) { seen.push_back(r.name); });
  ASSERT_EQ(rs.size(), 3u);
  EXPECT_EQ(rs[0].status, Status::Passed) << rs[0].message;
  EXPECT_EQ(rs[1].status, Status::Failed);
  EXPECT_EQ(rs[1].message, "timeout after 1 s");
  EXPECT_EQ(rs[2].status, Status::Passed) << rs[2].message;
  EXPECT_EQ(seen, (std::vector<std::string>{"test_a", "test_hang", "test_c"}));
  EXPECT_EQ(caseOpType(hang), "(unreadable)");  // the parent never opens the FIFO
}

TEST(Conformance, AllCloseFollowsNumpyDefaultsOfOnnxBackendTests) {
  std::string why;
  at::Tensor e = at::tensor({1000.f, 0.f, NAN, INFINITY});
  EXPECT_TRUE(allClose(at::tensor({1000.9f, 5e-8f, NAN, INFINITY}), e, 1e-3, 1e-7, &why)) << why;
  EXPECT_FALSE(allClose(at::tensor({1001.2f, 0.f, NAN, INFINITY}), e, 1e-3, 1e-7, &why));
  EXPECT_NE(why.find("first at flat index 0"), std::string::npos) << why;
  EXPECT_FALSE(allClose(at::tensor({1000.f, 0.f, 0.f, INFINITY}), e, 1e-3, 1e-7, &why));
  EXPECT_FALSE(allClose(at::tensor({1000.f, 0.f, NAN, -INFINITY}), e, 1e-3, 1e-7, &why));
  EXPECT_TRUE(allClose(at::tensor({3, 4}), at::tensor({3, 4}), 1e-3, 1e-7, &why));
  EXPECT_FALSE(allClose(at::tensor({3, 5}), at::tensor({3, 4}), 1e-3, 1e-7, &why));
  EXPECT_NE(why.find("got 5, expected 4"), std::string::npos) << why;
  EXPECT_FALSE(allClose(at::tensor({1.f}), at::tensor({1.0}), 1e-3, 1e-7, &why));
  EXPECT_NE(why.find("dtype Float, expected Double"), std::string::npos) << why;
  EXPECT_TRUE(allClose(at::zeros({0, 3}), at::zeros({0, 3}), 1e-3, 1e-7, &why));
}

TEST(Conformance, RealOnnxAddCasePasses) {
  const std::string dir = "/usr/share/libonnx-testdata/data/node/test_add";
  ASSERT_TRUE(fs::exists(dir)) << "libonnx-testdata not installed (run scripts/install-deps.sh)";
  CaseResult r = runCaseIsolated(dir, 60);
  EXPECT_EQ(r.status, Status::Passed) << r.message;
  EXPECT_EQ(caseOpType(dir), "Add");
}

}  // namespace
}  // namespace gs::conformance
