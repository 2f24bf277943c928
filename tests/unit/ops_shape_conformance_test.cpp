// Shape/indexing kernels against ONNX's own node conformance cases (expected outputs from
// /usr/share/libonnx-testdata). A minimal protobuf reader stands in for the ONNX importer so the
// kernels are checked independently of it: one single-node model per case, inputs as graph inputs.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "ir/graph.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace gs {
namespace {

namespace fs = std::filesystem;
const char* kNodeDir = "/usr/share/libonnx-testdata/data/node";

const std::set<std::string> kOps = {
    "Shape",   "Size",           "Reshape",         "Flatten",   "Transpose",  "Squeeze",
    "Unsqueeze", "Concat",       "Split",           "Slice",     "Gather",     "GatherElements",
    "GatherND", "ScatterElements", "Scatter",       "ScatterND", "Expand",     "Tile",
    "Pad",     "ConstantOfShape", "Range",          "NonZero",   "OneHot",     "Trilu",
    "Compress", "ReverseSequence", "EyeLike",       "Unique"};

template <typename P>
bool parseFile(const fs::path& p, P* msg) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return msg->ParseFromString(ss.str());
}

/// TensorProto -> at::Tensor for the numeric types the shape cases use.
at::Tensor toTensor(const onnx::TensorProto& t) {
  std::vector<int64_t> dims(t.dims().begin(), t.dims().end());
  at::ScalarType st = toScalarType(static_cast<DType>(t.data_type()));
  at::Tensor r = at::empty(dims, st);
  const size_t bytes = r.numel() * r.element_size();
  if (t.has_raw_data()) {
    EXPECT_EQ(t.raw_data().size(), bytes);
    std::memcpy(r.data_ptr(), t.raw_data().data(), std::min(bytes, t.raw_data().size()));
    return r;
  }
  switch (st) {
    case at::kFloat:
      std::copy(t.float_data().begin(), t.float_data().end(), r.data_ptr<float>());
      break;
    case at::kDouble:
      std::copy(t.double_data().begin(), t.double_data().end(), r.data_ptr<double>());
      break;
    case at::kLong:
      std::copy(t.int64_data().begin(), t.int64_data().end(), r.data_ptr<int64_t>());
      break;
    case at::kInt:
      std::copy(t.int32_data().begin(), t.int32_data().end(), r.data_ptr<int32_t>());
      break;
    case at::kBool: {
      bool* p = r.data_ptr<bool>();
      for (int i = 0; i < t.int32_data_size(); ++i) p[i] = t.int32_data(i) != 0;
      break;
    }
    default: ADD_FAILURE() << "unhandled dtype " << t.data_type();
  }
  return r;
}

Attribute toAttr(const onnx::AttributeProto& a) {
  switch (a.type()) {
    case onnx::AttributeProto::INT: return Attribute(static_cast<int64_t>(a.i()));
    case onnx::AttributeProto::FLOAT: return Attribute(a.f());
    case onnx::AttributeProto::STRING: return Attribute(a.s());
    case onnx::AttributeProto::TENSOR: return Attribute(toTensor(a.t()));
    case onnx::AttributeProto::INTS:
      return Attribute(std::vector<int64_t>(a.ints().begin(), a.ints().end()));
    default: ADD_FAILURE() << "unhandled attribute " << a.name(); return Attribute();
  }
}

// Directory-name prefixes of the family's cases: only these models are parsed, because the
// case list is built every time the test binary starts (once per ctest test).
const char* kPrefixes[] = {
    "test_compress",  "test_concat",    "test_constant_pad", "test_constantofshape",
    "test_edge_pad",  "test_expand",    "test_eyelike",      "test_flatten",
    "test_gather",    "test_nonzero",   "test_onehot",       "test_range",
    "test_reflect_pad", "test_reshape", "test_reversesequence", "test_scatter",
    "test_shape",     "test_size",      "test_slice",        "test_split",
    "test_squeeze",   "test_tile",      "test_transpose",    "test_tril",
    "test_triu",      "test_unique",    "test_unsqueeze"};

/// Case directories whose model is a single node of one of the shape-family ops.
std::vector<std::string> shapeCases() {
  std::vector<std::string> out;
  if (!fs::exists(kNodeDir)) return out;
  for (const auto& e : fs::directory_iterator(kNodeDir)) {
    const std::string name = e.path().filename().string();
    if (name.find("_expanded") != std::string::npos) continue;
    if (std::none_of(std::begin(kPrefixes), std::end(kPrefixes),
                     [&](const char* p) { return name.rfind(p, 0) == 0; }))
      continue;
    onnx::ModelProto m;
    if (!parseFile(e.path() / "model.onnx", &m) || m.graph().node_size() != 1) continue;
    if (kOps.count(m.graph().node(0).op_type()) && m.graph().node(0).domain().empty())
      out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// Runs one case directory, comparing every output of every data set.
void runCase(const std::string& name) {
  const fs::path dir = fs::path(kNodeDir) / name;
  onnx::ModelProto m;
  ASSERT_TRUE(parseFile(dir / "model.onnx", &m));
  const onnx::NodeProto& np = m.graph().node(0);
  Graph g;
  std::map<std::string, Value*> vals;
  for (const auto& vi : m.graph().input()) vals[vi.name()] = g.addInput(vi.name(), DType::Undefined, Shape());
  std::vector<Value*> ins;
  for (const auto& in : np.input()) ins.push_back(in.empty() ? nullptr : vals.at(in));
  std::map<std::string, Attribute> attrs;
  for (const auto& a : np.attribute()) attrs[a.name()] = toAttr(a);
  // Pre-13 Unsqueeze/Squeeze carry axes as an attribute; the importer moves it to an input.
  if ((np.op_type() == "Unsqueeze" || np.op_type() == "Squeeze") && attrs.count("axes")) {
    ins.push_back(g.addParam("axes_const", at::tensor(attrs["axes"].ints(), at::kLong), false));
    attrs.erase("axes");
  }
  Node* n = g.addNode(np.op_type(), ins, np.output_size(), "n", attrs);
  for (size_t i = 0; i < n->numOutputs(); ++i) g.addOutput(n->output(i));
  Executor ex(g);

  int datasets = 0;
  for (const auto& ds : fs::directory_iterator(dir)) {
    if (!ds.is_directory()) continue;
    std::vector<at::Tensor> inputs, expected;
    for (int i = 0; i < m.graph().input_size(); ++i) {
      onnx::TensorProto t;
      ASSERT_TRUE(parseFile(ds.path() / ("input_" + std::to_string(i) + ".pb"), &t));
      inputs.push_back(toTensor(t));
    }
    for (size_t i = 0; i < n->numOutputs(); ++i) {
      onnx::TensorProto t;
      ASSERT_TRUE(parseFile(ds.path() / ("output_" + std::to_string(i) + ".pb"), &t));
      expected.push_back(toTensor(t));
    }
    auto got = ex.run(inputs);
    ++datasets;
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      SCOPED_TRACE("output " + std::to_string(i));
      EXPECT_EQ(got[i].scalar_type(), expected[i].scalar_type());
      ASSERT_EQ(got[i].sizes(), expected[i].sizes());
      if (at::isFloatingType(expected[i].scalar_type()))
        EXPECT_TRUE(at::allclose(got[i], expected[i], 1e-5, 1e-6)) << got[i] << expected[i];
      else
        EXPECT_TRUE(at::equal(got[i], expected[i])) << got[i] << expected[i];
    }
  }
  EXPECT_GE(datasets, 1);
}

// One ctest entry for the whole family: each test process pays LibTorch's start-up, so ~140
// separate entries would cost minutes on small machines. SCOPED_TRACE names failing cases.
TEST(ShapeConformance, AllFamilyCasesMatchOnnxExpectedOutputs) {
  const auto cases = shapeCases();
  EXPECT_GE(cases.size(), 140u);  // guards against silently finding nothing
  for (const std::string& c : cases) {
    SCOPED_TRACE(c);
    try {
      runCase(c);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "threw: " << e.what();
    }
  }
}

}  // namespace
}  // namespace gs
