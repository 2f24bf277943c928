// ONNX import/export: error kinds, params/constants/types, opset upgrade, checker, round trip.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <filesystem>
#include <fstream>

#include "io/onnx.h"
#include "io/tensor_proto.h"
#include "ir/graph.h"
#include "op_test_util.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "support/file_util.h"

namespace gs {
namespace {

namespace fs = std::filesystem;
using namespace gs::test;  // NOLINT: ModelProto builders

/// y = x + w with w = [0, 1, 2, 3], x: f32[N,4].
onnx::ModelProto addModel() {
  onnx::ModelProto m = makeModel(17);
  addValue(m.mutable_graph()->mutable_input(), "x", onnx::TensorProto::FLOAT, {-1, 4}, {{0, "N"}});
  addValue(m.mutable_graph()->mutable_output(), "y", onnx::TensorProto::FLOAT, {-1, 4},
           {{0, "N"}});
  addInit(m, at::arange(4, at::kFloat), "w");
  addNode(m, "Add", {"x", "w"}, {"y"}, "add");
  return m;
}

std::unique_ptr<Graph> importModel(const onnx::ModelProto& m, const OnnxImportOptions& o = {}) {
  return importOnnxBytes(m.SerializeAsString(), "test.onnx", o);
}

std::string writeTemp(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::string p = (fs::path(dir) / name).string();
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

// ---- file-level errors ----

TEST(OnnxImport, TruncatedFileIsParseError) {
  std::string dir = test::tempDir("onnx_trunc");
  std::string bytes = addModel().SerializeAsString();
  std::string p = writeTemp(dir, "t.onnx", bytes.substr(0, bytes.size() - 3));
  expectError([&] { importOnnxFile(p); }, p + ": not a valid ONNX model (protobuf parse failed)");
}

TEST(OnnxImport, GarbageBytesIsParseError) {
  std::string dir = test::tempDir("onnx_garbage");
  std::string p = writeTemp(dir, "g.onnx", std::string("\xff\xff\xff\xff garbage \x07", 14));
  expectError([&] { importOnnxFile(p); }, p + ": not a valid ONNX model (protobuf parse failed)");
  expectError([&] { importOnnxBytes("", "empty"); }, "empty: not a valid ONNX model");
}

TEST(OnnxImport, MissingFileAndDirectory) {
  std::string dir = test::tempDir("onnx_missing");
  std::string p = dir + "/nope.onnx";
  expectError([&] { importOnnxFile(p); }, p + ": cannot open: No such file or directory");
  expectError([&] { importOnnxFile(dir); }, dir + ": cannot open: is a directory");
}

TEST(OnnxImport, UnsupportedOpsetAndMissingDefaultDomain) {
  onnx::ModelProto m = addModel();
  m.mutable_opset_import(0)->set_version(8);  // Add-7 there, Add-14 in opset 17
  expectError([&] { importModel(m); },
              "test.onnx: unsupported opset 8 (gstick supports 9-17, and older opsets only when "
              "no op changed up to 17; node 'add' (Add) is version 7 there, 14 in opset 17)");
  m.mutable_opset_import(0)->set_version(0);
  expectError([&] { importModel(m); }, "test.onnx: unsupported opset 0 (gstick supports 9-17)");
  m.mutable_opset_import(0)->set_version(18);
  expectError([&] { importModel(m); }, "unsupported opset 18 (gstick supports 9-17)");
  m.mutable_opset_import(0)->set_domain("com.microsoft");
  expectError([&] { importModel(m); }, "imports no opset of the default ONNX domain");
}

TEST(OnnxImport, OldOpsetAcceptedWhenNoOpChanged) {
  // Acos-7 and Elu-6 are still the current versions at opset 17.
  onnx::ModelProto m = makeModel(7);
  addValue(m.mutable_graph()->mutable_input(), "x", onnx::TensorProto::FLOAT, {3});
  addValue(m.mutable_graph()->mutable_output(), "y", onnx::TensorProto::FLOAT, {3});
  addNode(m, "Acos", {"x"}, {"a"}, "acos");
  addNode(m, "Elu", {"a"}, {"y"}, "elu");
  auto g = importModel(m);
  EXPECT_EQ(g->opsets.at(""), 17);
  EXPECT_EQ(g->numNodes(), 2u);
  addNode(m, "Upsample", {"y"}, {"z"}, "up");  // Upsample-7 differs from Upsample-10
  expectError([&] { importModel(m); }, "node 'up' (Upsample) is version 7 there, 10 in opset 17");
}

TEST(OnnxImport, SubgraphAttributeNamesNode) {
  onnx::ModelProto m = addModel();
  auto* n = addNode(m, "If", {"y"}, {"z"}, "branch");
  auto* a = n->add_attribute();
  a->set_name("then_branch");
  a->set_type(onnx::AttributeProto::GRAPH);
  a->mutable_g()->set_name("then");
  expectError([&] { importModel(m); }, "node 'branch' (If): attribute 'then_branch' is a subgraph");
}

TEST(OnnxImport, TensorsAttributeKindIsError) {
  onnx::ModelProto m = addModel();
  auto* n = addNode(m, "Weird", {"y"}, {"z"}, "w1");
  auto* a = n->add_attribute();
  a->set_name("ts");
  a->set_type(onnx::AttributeProto::TYPE_PROTO);
  expectError([&] { importModel(m); }, "node 'w1' (Weird): attribute 'ts' has unsupported kind");
}

TEST(OnnxImport, StringTensorIsClearError) {
  onnx::ModelProto m = addModel();
  auto* t = m.mutable_graph()->add_initializer();
  t->set_name("s");
  t->set_data_type(onnx::TensorProto::STRING);
  t->add_dims(1);
  t->add_string_data("hello");
  expectError([&] { importModel(m); }, "tensor 's': string tensors are not supported");
}

TEST(OnnxImport, AbsurdDeclaredDimsRefusedBeforeAllocation) {
  onnx::ModelProto m = addModel();
  auto* t = m.mutable_graph()->add_initializer();
  t->set_name("big");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(int64_t{1} << 40);
  t->add_dims(int64_t{1} << 20);
  t->set_raw_data("abcd");
  expectError([&] { importModel(m); }, "tensor 'big': declared size");
  t->set_dims(1, int64_t{1} << 40);  // product overflows int64
  expectError([&] { importModel(m); }, "tensor 'big': element count overflows");
  t->set_dims(0, 2);
  t->set_dims(1, 3);
  expectError([&] { importModel(m); }, "raw_data has 4 bytes, declared shape and type need 24");
  t->clear_raw_data();
  t->add_float_data(1.f);
  expectError([&] { importModel(m); }, "float_data has 1 values, declared shape needs 6");
  t->set_dims(0, -2);
  expectError([&] { importModel(m); }, "negative dimension -2");
}

// ---- external data ----

struct ExternalFixture {
  std::string dir;
  onnx::ModelProto m;
  onnx::TensorProto* t;
  ExternalFixture() : dir(test::tempDir("onnx_ext")), m(addModel()) {
    m.mutable_graph()->clear_initializer();
    t = m.mutable_graph()->add_initializer();
    t->set_name("w");
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_dims(4);
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    std::vector<float> v{0, 0, 10, 20, 30, 40};  // 8 bytes of padding, then w at offset 8
    writeTemp(dir, "w.bin", std::string(reinterpret_cast<char*>(v.data()), v.size() * 4));
  }
  void set(const std::string& loc, const std::string& off, const std::string& len) {
    t->clear_external_data();
    auto kv = [&](const char* k, const std::string& v) {
      if (v.empty()) return;
      auto* e = t->add_external_data();
      e->set_key(k);
      e->set_value(v);
    };
    kv("location", loc);
    kv("offset", off);
    kv("length", len);
  }
  std::unique_ptr<Graph> load() {
    std::string p = writeTemp(dir, "m.onnx", m.SerializeAsString());
    return importOnnxFile(p);
  }
};

TEST(OnnxImport, ExternalDataLoadsFromModelFolder) {
  ExternalFixture f;
  f.set("w.bin", "8", "16");
  auto g = f.load();
  EXPECT_TRUE(at::equal(g->findValue("w")->data(), at::tensor({10.f, 20.f, 30.f, 40.f})));
  f.set("./sub/../w.bin", "8", "");  // length optional, path normalised inside the folder
  EXPECT_TRUE(at::equal(f.load()->findValue("w")->data(), at::tensor({10.f, 20.f, 30.f, 40.f})));
}

TEST(OnnxImport, ExternalDataEscapesAreRefused) {
  ExternalFixture f;
  f.set("../w.bin", "0", "16");
  expectError([&] { f.load(); }, "escapes the model folder (refused)");
  f.set("a/../../etc/passwd", "0", "16");
  expectError([&] { f.load(); }, "escapes the model folder (refused)");
  f.set("/etc/passwd", "0", "16");
  expectError([&] { f.load(); }, "is an absolute path (refused)");
  fs::create_symlink("/etc", fs::path(f.dir) / "link");
  f.set("link/hostname", "0", "16");
  expectError([&] { f.load(); }, "resolves outside the model folder (refused)");
}

TEST(OnnxImport, ExternalDataSizeMismatchesAreRefused) {
  ExternalFixture f;
  f.set("w.bin", "0", "12");
  expectError([&] { f.load(); }, "external data length 12 does not match");
  f.set("w.bin", "16", "16");
  expectError([&] { f.load(); }, "too short: needs 16 bytes at offset 16, file has 24");
  f.set("w.bin", "-1", "16");
  expectError([&] { f.load(); }, "offset must be a non-negative integer");
  f.set("missing.bin", "0", "16");
  expectError([&] { f.load(); }, "cannot open external data");
  f.set("w.bin", "0", "16");
  expectError([&] { importOnnxBytes(f.m.SerializeAsString(), "mem"); }, "no base folder");
}

// ---- graph structure ----

TEST(OnnxImport, AddModelRunsAndKeepsTypes) {
  auto g = importModel(addModel());
  ASSERT_EQ(g->inputs().size(), 1u);
  EXPECT_EQ(typeString(g->inputs()[0]->dtype(), g->inputs()[0]->shape()), "f32[N,4]");
  EXPECT_EQ(g->opsets.at(""), 17);
  Executor ex(*g);
  at::Tensor x = test::randn({3, 4}, 7);
  auto out = ex.run({x});
  EXPECT_TRUE(at::allclose(out[0], x + at::arange(4, at::kFloat)));
}

TEST(OnnxImport, ParamsConstantsInputsAndNames) {
  onnx::ModelProto m = makeModel(13);
  auto* gp = m.mutable_graph();
  addValue(gp->mutable_input(), "x", onnx::TensorProto::FLOAT, {2, -1}, {{1, "K"}});
  addValue(gp->mutable_input(), "w", onnx::TensorProto::FLOAT, {2});  // IR<4 style: also init
  addValue(gp->mutable_output(), "out", onnx::TensorProto::FLOAT, {2, -1});
  addInit(m, at::tensor({1.f, 2.f}), "w");
  addInit(m, at::tensor({int64_t{5}}), "idx");
  auto* c = addNode(m, "Constant", {}, {"cst"}, "const_node");
  auto* a = c->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  tensorToProto(at::tensor({3.f, 4.f}), "", a->mutable_t());
  addNode(m, "Mul", {"x", "w"}, {"a"}, "dup");
  addNode(m, "Mul", {"a", "cst"}, {"b"}, "dup");  // duplicate name -> derived
  addNode(m, "Mystery", {"b", "", "idx"}, {"out", ""}, "");  // unknown op imports fine
  addValue(gp->mutable_value_info(), "a", onnx::TensorProto::FLOAT, {2, -1});
  auto g = importModel(m);

  ASSERT_EQ(g->inputs().size(), 1u) << "initializer listed as input must be a param";
  EXPECT_EQ(typeString(g->inputs()[0]->dtype(), g->inputs()[0]->shape()), "f32[2,K]");
  Value* w = g->findValue("w");
  ASSERT_TRUE(w && w->isParam());
  EXPECT_TRUE(w->trainable());
  EXPECT_FALSE(g->findValue("idx")->trainable());
  Value* cst = g->findValue("cst");
  ASSERT_TRUE(cst && cst->isParam());
  EXPECT_FALSE(cst->trainable());
  EXPECT_TRUE(at::equal(cst->data(), at::tensor({3.f, 4.f})));
  EXPECT_EQ(typeString(g->findValue("a")->dtype(), g->findValue("a")->shape()), "f32[2,?]");

  std::vector<std::string> names;
  for (const auto& n : g->nodes()) names.push_back(n->name());
  EXPECT_EQ(names, (std::vector<std::string>{"dup", "Mul_0", "Mystery_0"}));
  Node* my = g->findNode("Mystery_0");
  ASSERT_EQ(my->numInputs(), 3u);
  EXPECT_EQ(my->input(1), nullptr);
  EXPECT_EQ(my->output(1), nullptr);
  EXPECT_EQ(g->outputs()[0]->name(), "out");
  // The executor, not the importer, reports unknown ops.
  expectError([&] { Executor ex(*g); }, "node 'Mystery_0' (Mystery): unsupported op 'Mystery'");
}

TEST(OnnxImport, OutOfOrderNodesAreSorted) {
  onnx::ModelProto m = addModel();
  addNode(m, "Mul", {"z", "z"}, {"q"}, "late");
  *m.mutable_graph()->mutable_output(0)->mutable_name() = "q";
  auto* gp = m.mutable_graph();
  addNode(m, "Sub", {"y", "x"}, {"z"}, "mid");
  // Order in file: add, late(uses z), mid(produces z).
  auto g = importModel(m);
  std::vector<std::string> names;
  for (const auto& n : g->nodes()) names.push_back(n->name());
  EXPECT_EQ(names, (std::vector<std::string>{"add", "mid", "late"}));
  (void)gp;
  addNode(m, "Add", {"q"}, {"x2"}, "cyc");
  m.mutable_graph()->mutable_node(0)->set_input(0, "x2");
  expectError([&] { importModel(m); }, "the graph has a cycle");
}

// ---- opset upgrade ----

TEST(OnnxUpgrade, SqueezeAxesAttributeBecomesInput) {
  onnx::ModelProto m = makeModel(11);
  addValue(m.mutable_graph()->mutable_input(), "x", onnx::TensorProto::FLOAT, {1, 3, 1});
  addValue(m.mutable_graph()->mutable_output(), "y", onnx::TensorProto::FLOAT, {3});
  attrInts(addNode(m, "Squeeze", {"x"}, {"s"}, "sq"), "axes", {0, -1});
  attrInts(addNode(m, "Unsqueeze", {"s"}, {"y"}, "usq"), "axes", {1});
  auto g = importModel(m);
  EXPECT_EQ(g->opsets.at(""), 17);
  Node* sq = g->findNode("sq");
  ASSERT_EQ(sq->numInputs(), 2u);
  EXPECT_FALSE(sq->hasAttr("axes"));
  ASSERT_TRUE(sq->input(1)->isParam());
  EXPECT_FALSE(sq->input(1)->trainable());
  EXPECT_TRUE(at::equal(sq->input(1)->data(), at::tensor({int64_t{0}, int64_t{-1}})));
  EXPECT_TRUE(at::equal(g->findNode("usq")->input(1)->data(), at::tensor({int64_t{1}})));
}

TEST(OnnxUpgrade, UpsampleBecomesResize) {
  onnx::ModelProto m = makeModel(9);
  addValue(m.mutable_graph()->mutable_input(), "x", onnx::TensorProto::FLOAT, {1, 1, 2, 2});
  addValue(m.mutable_graph()->mutable_output(), "y", onnx::TensorProto::FLOAT, {1, 1, 4, 4});
  addInit(m, at::tensor({1.f, 1.f, 2.f, 2.f}), "scales");
  attrString(addNode(m, "Upsample", {"x", "scales"}, {"y"}, "up"), "mode", "nearest");
  auto g = importModel(m);
  Node* r = g->findNode("up");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->opType(), "Resize");
  ASSERT_EQ(r->numInputs(), 3u);
  EXPECT_EQ(r->input(0)->name(), "x");
  EXPECT_EQ(r->input(1), nullptr);
  EXPECT_EQ(r->input(2)->name(), "scales");
  EXPECT_EQ(r->attrString("mode", ""), "nearest");
  EXPECT_EQ(r->attrString("coordinate_transformation_mode", ""), "asymmetric");
  EXPECT_EQ(r->attrString("nearest_mode", ""), "floor");
  EXPECT_EQ(r->output(0)->name(), "y");
  EXPECT_EQ(g->outputs()[0], r->output(0));
  EXPECT_EQ(typeString(r->output(0)->dtype(), r->output(0)->shape()), "f32[1,1,4,4]");
}

TEST(OnnxUpgrade, AttributeOperandsBecomeInputs) {
  onnx::ModelProto m = makeModel(9);
  addValue(m.mutable_graph()->mutable_input(), "x", onnx::TensorProto::FLOAT, {4, 6});
  auto* clip = addNode(m, "Clip", {"x"}, {"c"}, "clip");
  attrFloat(clip, "min", -1.f);
  attrFloat(clip, "max", 2.f);
  auto* slice = addNode(m, "Slice", {"c"}, {"s"}, "slice");
  attrInts(slice, "starts", {1});
  attrInts(slice, "ends", {3});
  attrInts(slice, "axes", {1});
  auto* pad = addNode(m, "Pad", {"s"}, {"p"}, "pad");
  attrInts(pad, "pads", {0, 1, 0, 1});
  attrFloat(pad, "value", 1.5f);
  auto* topk = addNode(m, "TopK", {"p"}, {"tv", "ti"}, "topk");
  attrInt(topk, "k", 2);
  auto* drop = addNode(m, "Dropout", {"tv"}, {"d"}, "drop");
  attrFloat(drop, "ratio", 0.25f);
  auto* rs = addNode(m, "ReduceSum", {"d"}, {"r"}, "rsum");
  attrInts(rs, "axes", {1});
  auto* sp = addNode(m, "Split", {"r"}, {"s0", "s1"}, "split");
  attrInts(sp, "split", {1, 3});
  addValue(m.mutable_graph()->mutable_output(), "s1", onnx::TensorProto::FLOAT, {3});
  auto g = importModel(m);
  auto val = [&](const char* node, size_t i) { return g->findNode(node)->input(i)->data(); };
  EXPECT_TRUE(at::equal(val("clip", 1), at::scalar_tensor(-1.f)));
  EXPECT_TRUE(at::equal(val("clip", 2), at::scalar_tensor(2.f)));
  EXPECT_FALSE(g->findNode("clip")->hasAttr("min"));
  EXPECT_TRUE(at::equal(val("slice", 1), at::tensor({int64_t{1}})));
  EXPECT_TRUE(at::equal(val("slice", 2), at::tensor({int64_t{3}})));
  EXPECT_TRUE(at::equal(val("slice", 3), at::tensor({int64_t{1}})));
  EXPECT_TRUE(at::equal(val("pad", 1), at::tensor(std::vector<int64_t>{0, 1, 0, 1})));
  EXPECT_TRUE(at::equal(val("pad", 2), at::scalar_tensor(1.5f)));
  EXPECT_TRUE(at::equal(val("topk", 1), at::tensor({int64_t{2}})));
  EXPECT_TRUE(at::equal(val("drop", 1), at::scalar_tensor(0.25f)));
  EXPECT_TRUE(at::equal(val("rsum", 1), at::tensor({int64_t{1}})));
  EXPECT_TRUE(at::equal(val("split", 1), at::tensor(std::vector<int64_t>{1, 3})));
  for (const auto& n : g->nodes())
    for (const char* k : {"starts", "ends", "pads", "value", "k", "ratio", "split"})
      EXPECT_FALSE(n->hasAttr(k)) << n->describe() << " still has " << k;
}

TEST(OnnxUpgrade, LegacySoftmaxCoercionAndResize10) {
  onnx::ModelProto m = makeModel(10);
  addValue(m.mutable_graph()->mutable_input(), "x", onnx::TensorProto::FLOAT, {2, 3, 4});
  addValue(m.mutable_graph()->mutable_output(), "y", onnx::TensorProto::FLOAT, {2, 3, 4});
  addValue(m.mutable_graph()->mutable_output(), "z", onnx::TensorProto::FLOAT, {2, 3, 4});
  addValue(m.mutable_graph()->mutable_output(), "r", onnx::TensorProto::FLOAT, {2, 3, 8});
  attrInt(addNode(m, "Softmax", {"x"}, {"y"}, "sm"), "axis", 1);
  attrInt(addNode(m, "LogSoftmax", {"x"}, {"z"}, "lsm"), "axis", 2);  // last axis: no coercion
  addInit(m, at::tensor({1.f, 1.f, 2.f}), "sc");
  attrString(addNode(m, "Resize", {"x", "sc"}, {"r"}, "rs"), "mode", "linear");
  auto g = importModel(m);
  Node* sm = g->findNode("sm");
  EXPECT_EQ(sm->opType(), "Reshape");
  Node* inner = sm->input(0)->producer();
  EXPECT_EQ(inner->opType(), "Softmax");
  EXPECT_EQ(inner->attrInt("axis", 0), 1);
  EXPECT_EQ(inner->input(0)->producer()->opType(), "Flatten");
  EXPECT_EQ(inner->input(0)->producer()->attrInt("axis", 0), 1);
  EXPECT_EQ(sm->input(1)->producer()->opType(), "Shape");
  EXPECT_EQ(sm->output(0)->name(), "y");
  EXPECT_EQ(g->findNode("lsm")->opType(), "LogSoftmax");
  EXPECT_EQ(g->findNode("lsm")->attrInt("axis", 0), -1);
  Node* rs = g->findNode("rs");
  EXPECT_EQ(rs->input(1), nullptr);
  EXPECT_EQ(rs->input(2)->name(), "sc");
  EXPECT_EQ(rs->attrString("coordinate_transformation_mode", ""), "asymmetric");
  EXPECT_FALSE(rs->hasAttr("nearest_mode"));
}

// ---- export ----

std::unique_ptr<Graph> apiGraph() {
  auto g = std::make_unique<Graph>();
  Value* x = g->addInput("x", DType::Float32, std::vector<Dim>{Dim("batch"), 4});
  Value* w = g->addParam("w", test::randn({4}, 3));
  Value* k = g->addParam("k", at::tensor({int64_t{0}}), false);
  Value* h = g->addParam("h", at::tensor({1.f, 2.f}).to(at::kHalf), false);
  Node* a = g->addNode("Add", {x, w}, 1, "block.add");
  a->output(0)->setDType(DType::Float32);
  a->output(0)->setShape(std::vector<Dim>{Dim("batch"), 4});
  Node* u = g->addNode("Unsqueeze", {a->output(0), k}, 1, "block.unsq");
  u->output(0)->setDType(DType::Float32);
  u->output(0)->setShape(std::vector<Dim>{1, Dim("batch"), 4});
  Node* c = g->addNode("Cast", {h}, 1, "cast", {{"to", int64_t{1}}});
  c->output(0)->setDType(DType::Float32);
  Node* q = g->addNode("Quirk", {c->output(0)}, 1, "gsop",
                       {{"f", 0.5f}, {"s", "txt"}, {"fs", std::vector<float>{1.f, 2.f}},
                        {"is", std::vector<int64_t>{3, 4}},
                        {"ss", std::vector<std::string>{"a", "b"}},
                        {"t", at::tensor({int32_t{7}, int32_t{8}})}},
                       nullptr, "gs");
  q->output(0)->setDType(DType::Float32);
  q->output(0)->setShape(std::vector<Dim>{2});
  g->opsets["gs"] = 1;
  g->addOutput(u->output(0));
  g->addOutput(q->output(0));
  return g;
}

TEST(OnnxExport, ApiGraphPassesCheckerAndRoundTrips) {
  auto g = apiGraph();
  OnnxExportOptions o;
  o.full_check = true;
  std::string bytes = exportOnnxBytes(*g, o);
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(bytes));
  EXPECT_EQ(m.graph().input(0).type().tensor_type().shape().dim(0).dim_param(), "batch");
  std::map<std::string, int64_t> ops;
  for (const auto& op : m.opset_import()) ops[op.domain()] = op.version();
  EXPECT_EQ(ops, (std::map<std::string, int64_t>{{"", 17}, {"gs", 1}}));
  auto back = importOnnxBytes(bytes, "mem");
  expectSameGraph(*g, *back);
}

TEST(OnnxExport, CheckerRejectsInvalidModel) {
  Graph g;
  Value* x = g.addInput("x", DType::Float32, std::vector<Dim>{2});
  Node* bad = g.addNode("Relu", {x, x, x}, 1, "bad");  // Relu takes one input
  bad->output(0)->setDType(DType::Float32);
  bad->output(0)->setShape(std::vector<Dim>{2});
  g.addOutput(bad->output(0));
  expectError([&] { exportOnnxBytes(g); }, "exported model fails the ONNX checker");
  Graph g2;
  Value* y = g2.addInput("y", DType::Float32, Shape());
  g2.addOutput(g2.addNode("Relu", {y}, 1, "r")->output(0));
  expectError([&] { exportOnnxBytes(g2); }, "graph input 'y' has unknown rank");
  OnnxExportOptions o;
  o.check = false;
  EXPECT_FALSE(exportOnnxBytes(g, o).empty());
}

TEST(OnnxExport, ImportExportImportIsIdentity) {
  // A legacy model exercises the upgrade rewrites, constants and derived names.
  onnx::ModelProto m = makeModel(11);
  addValue(m.mutable_graph()->mutable_input(), "x", onnx::TensorProto::FLOAT, {1, 3, -1},
           {{2, "T"}});
  addValue(m.mutable_graph()->mutable_output(), "y", onnx::TensorProto::FLOAT, {3, -1});
  auto* c = addNode(m, "Constant", {}, {"half"});
  attrFloat(c, "value_float", 0.5f);
  attrInts(addNode(m, "Squeeze", {"x"}, {"s"}), "axes", {0});
  addNode(m, "Mul", {"s", "half"}, {"h"});
  attrInt(addNode(m, "Softmax", {"h"}, {"y"}), "axis", 0);
  auto g1 = importModel(m);
  std::string dir = test::tempDir("onnx_rt");
  exportOnnxFile(*g1, dir + "/m.onnx");
  auto g2 = importOnnxFile(dir + "/m.onnx");
  expectSameGraph(*g1, *g2);
  EXPECT_FALSE(g2->findValue("half")->trainable());
  std::string b1 = exportOnnxBytes(*g1), b2 = exportOnnxBytes(*g2);
  EXPECT_EQ(b1, b2) << "export of the re-imported graph must be byte-identical";
}

TEST(OnnxExport, ExternalDataForBigTensors) {
  auto g = std::make_unique<Graph>();
  Value* x = g->addInput("x", DType::Float32, std::vector<Dim>{64});
  Value* big = g->addParam("big", test::randn({64}, 9));
  Value* small = g->addParam("small", at::tensor({1.f}));
  Node* a = g->addNode("Add", {x, big}, 1, "a");
  g->addOutput(g->addNode("Mul", {a->output(0), small}, 1, "m")->output(0));
  std::string dir = test::tempDir("onnx_extout");
  {  // The output's shape is unknown to gstick: ONNX shape inference fills it in on export.
    onnx::ModelProto m;
    ASSERT_TRUE(m.ParseFromString(exportOnnxBytes(*g)));
    ASSERT_EQ(m.graph().output(0).type().tensor_type().shape().dim_size(), 1);
    EXPECT_EQ(m.graph().output(0).type().tensor_type().shape().dim(0).dim_value(), 64);
  }
  g->outputs()[0]->setDType(DType::Float32);
  g->outputs()[0]->setShape(std::vector<Dim>{64});
  OnnxExportOptions o;
  o.external_data_threshold = 128;
  exportOnnxFile(*g, dir + "/model.onnx", o);
  ASSERT_TRUE(fs::exists(dir + "/model.onnx.data"));
  EXPECT_GE(fs::file_size(dir + "/model.onnx.data"), 256u);
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(readFile(dir + "/model.onnx")));
  EXPECT_EQ(m.graph().initializer(0).data_location(), onnx::TensorProto::EXTERNAL);
  EXPECT_EQ(m.graph().initializer(1).data_location(), onnx::TensorProto::DEFAULT);
  auto back = importOnnxFile(dir + "/model.onnx");
  expectSameGraph(*g, *back);
  expectError([&] { exportOnnxBytes(*g, o); }, "external data needs a file");
}

// ---- tensor_proto dtype round trips ----

TEST(TensorProto, AllNumericDTypesRoundTripRawAndTyped) {
  std::vector<at::Tensor> ts = {
      at::tensor({1.5f, -2.f, 3.25f}),
      at::tensor({1.5, -2.0, 1e300}),
      at::tensor({1.5f, -2.f, 65504.f}).to(at::kHalf),
      at::tensor({1.5f, -2.f, 3e38f}).to(at::kBFloat16),
      at::tensor({-128, 0, 127}).to(at::kChar),
      at::tensor({0, 200, 255}).to(at::kByte),
      at::tensor({-32768, 5, 32767}).to(at::kShort),
      at::tensor({-2147483647 - 1, 5, 2147483647}).to(at::kInt),
      at::tensor({std::numeric_limits<int64_t>::min(), int64_t{5},
                  std::numeric_limits<int64_t>::max()}),
      at::tensor({1, 0, 1}).to(at::kBool),
      at::complex(at::tensor({1.f, 2.f}), at::tensor({-1.f, 0.5f})),
      at::complex(at::tensor({1.0, 2.0}), at::tensor({-1.0, 0.5})),
      at::zeros({2, 0, 3}),
      at::scalar_tensor(4.0f),
  };
  TensorLoadContext ctx;
  ctx.source = "rt";
  for (const at::Tensor& t : ts) {
    onnx::TensorProto p;
    tensorToProto(t, "t", &p);
    at::Tensor back = tensorFromProto(p, ctx);
    EXPECT_EQ(back.scalar_type(), t.scalar_type());
    EXPECT_TRUE(at::equal(back, t)) << t.scalar_type();
    // Same values through the typed fields, as exporters like onnx.helper write them.
    onnx::TensorProto q;
    q.set_name("q");
    q.set_data_type(p.data_type());
    for (int64_t d : t.sizes()) q.add_dims(d);
    at::Tensor c = t.contiguous();
    switch (t.scalar_type()) {
      case at::kFloat: for (int64_t i = 0; i < c.numel(); ++i) q.add_float_data(c.data_ptr<float>()[i]); break;
      case at::kComplexFloat: {
        at::Tensor r = at::view_as_real(c).contiguous();
        for (int64_t i = 0; i < r.numel(); ++i) q.add_float_data(r.data_ptr<float>()[i]);
        break;
      }
      case at::kDouble: for (int64_t i = 0; i < c.numel(); ++i) q.add_double_data(c.data_ptr<double>()[i]); break;
      case at::kComplexDouble: {
        at::Tensor r = at::view_as_real(c).contiguous();
        for (int64_t i = 0; i < r.numel(); ++i) q.add_double_data(r.data_ptr<double>()[i]);
        break;
      }
      case at::kLong: for (int64_t i = 0; i < c.numel(); ++i) q.add_int64_data(c.data_ptr<int64_t>()[i]); break;
      case at::kHalf:
      case at::kBFloat16: {
        const uint16_t* bits = static_cast<const uint16_t*>(c.data_ptr());
        for (int64_t i = 0; i < c.numel(); ++i) q.add_int32_data(bits[i]);
        break;
      }
      default: {
        at::Tensor i32 = c.to(at::kInt);
        for (int64_t i = 0; i < c.numel(); ++i) q.add_int32_data(i32.data_ptr<int32_t>()[i]);
      }
    }
    at::Tensor typed = tensorFromProto(q, ctx);
    EXPECT_TRUE(at::equal(typed, t)) << "typed fields, " << t.scalar_type();
  }
}

TEST(TensorProto, UnsignedWideTypesAreClearErrors) {
  onnx::TensorProto p;
  p.set_name("u");
  p.set_data_type(onnx::TensorProto::UINT64);
  p.add_dims(1);
  p.add_uint64_data(3);
  expectError([&] { tensorFromProto(p, {}); }, "tensor 'u': element type u64 is not supported");
  p.set_data_type(99);
  expectError([&] { tensorFromProto(p, {}); }, "unknown ONNX data type code 99");
}

TEST(TensorProto, FileRoundTrip) {
  std::string dir = test::tempDir("tp_file");
  at::Tensor t = test::randn({2, 3}, 5);
  writeTensorProtoFile(dir + "/t.pb", t, "input");
  std::string name;
  at::Tensor back = readTensorProtoFile(dir + "/t.pb", &name);
  EXPECT_EQ(name, "input");
  EXPECT_TRUE(at::equal(back, t));
}

}  // namespace
}  // namespace gs
