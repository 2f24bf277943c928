// Test helpers for op kernels: run one node on given tensors, or run one of ONNX's own node
// conformance cases (model.onnx + test_data_set_0) through the executor and compare outputs.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace gs::test {

/// Folder of ONNX's node conformance cases (Debian's libonnx-testdata).
inline const char* kOnnxNodeDir = "/usr/share/libonnx-testdata/data/node";

/// Builds a graph with one `op` node whose inputs are graph inputs fed with `inputs` (an
/// undefined tensor = omitted optional input), runs it and returns its `num_outputs` outputs.
inline std::vector<at::Tensor> runNode(const std::string& op, const std::vector<at::Tensor>& inputs,
                                       std::map<std::string, Attribute> attrs = {},
                                       size_t num_outputs = 1, bool training = false) {
  Graph g;
  std::vector<Value*> ins;
  std::vector<at::Tensor> feed;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {
      ins.push_back(nullptr);
      continue;
    }
    ins.push_back(g.addInput("in" + std::to_string(i), fromScalarType(inputs[i].scalar_type()),
                             shapeOf(inputs[i])));
    feed.push_back(inputs[i]);
  }
  Node* n = g.addNode(op, ins, num_outputs, "n", std::move(attrs));
  for (size_t k = 0; k < num_outputs; ++k) g.addOutput(n->output(k));
  Executor ex(g, {.training = training});
  return ex.run(feed);
}

/// Same as runNode for a single output.
inline at::Tensor run1(const std::string& op, const std::vector<at::Tensor>& inputs,
                       std::map<std::string, Attribute> attrs = {}) {
  return runNode(op, inputs, std::move(attrs), 1).at(0);
}

/// Decodes an ONNX TensorProto (raw_data or typed fields) into an at::Tensor.
inline at::Tensor tensorFromProto(const onnx::TensorProto& p) {
  std::vector<int64_t> dims(p.dims().begin(), p.dims().end());
  at::Tensor t = at::empty(dims, at::TensorOptions().dtype(toScalarType(static_cast<DType>(p.data_type()))));
  size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
  if (p.has_raw_data()) {
    GS_CHECK(p.raw_data().size() == bytes, "tensor '", p.name(), "': raw_data size mismatch");
    if (bytes) std::memcpy(t.data_ptr(), p.raw_data().data(), bytes);
    return t;
  }
  auto fill = [&](const auto& field, auto tag) {
    using T = decltype(tag);
    GS_CHECK(static_cast<int64_t>(field.size()) == t.numel(), "tensor '", p.name(), "': element count");
    std::vector<T> v(field.begin(), field.end());
    if (bytes) std::memcpy(t.data_ptr(), v.data(), bytes);
  };
  switch (t.scalar_type()) {
    case at::kFloat: fill(p.float_data(), float{}); break;
    case at::kDouble: fill(p.double_data(), double{}); break;
    case at::kLong: fill(p.int64_data(), int64_t{}); break;
    case at::kInt: fill(p.int32_data(), int32_t{}); break;
    case at::kShort: fill(p.int32_data(), int16_t{}); break;
    case at::kHalf: fill(p.int32_data(), uint16_t{}); break;
    case at::kChar: fill(p.int32_data(), int8_t{}); break;
    case at::kByte: fill(p.int32_data(), uint8_t{}); break;
    case at::kBool: fill(p.int32_data(), uint8_t{}); break;
    default: GS_FAIL("tensor '", p.name(), "': unsupported dtype in test loader");
  }
  return t;
}

inline at::Tensor loadTensorPb(const std::string& path) {
  onnx::TensorProto p;
  std::ifstream f(path, std::ios::binary);
  GS_CHECK(f && p.ParseFromIstream(&f), path, ": cannot parse TensorProto");
  return tensorFromProto(p);
}

inline Attribute attrFromProto(const onnx::AttributeProto& a) {
  switch (a.type()) {
    case onnx::AttributeProto::INT: return Attribute(static_cast<int64_t>(a.i()));
    case onnx::AttributeProto::FLOAT: return Attribute(a.f());
    case onnx::AttributeProto::STRING: return Attribute(a.s());
    case onnx::AttributeProto::TENSOR: return Attribute(tensorFromProto(a.t()));
    case onnx::AttributeProto::INTS: return Attribute(std::vector<int64_t>(a.ints().begin(), a.ints().end()));
    case onnx::AttributeProto::FLOATS: return Attribute(std::vector<float>(a.floats().begin(), a.floats().end()));
    case onnx::AttributeProto::STRINGS:
      return Attribute(std::vector<std::string>(a.strings().begin(), a.strings().end()));
    default: GS_FAIL("attribute '", a.name(), "': unsupported kind in test loader");
  }
}

/// Compares an output with ONNX's expected tensor: same dtype and shape; floats within
/// |got - want| <= atol + rtol * |want| (NaN equals NaN), other types exactly. "" if equal.
inline std::string compareExpected(const at::Tensor& got, const at::Tensor& want, double rtol = 1e-4,
                                   double atol = 1e-5) {
  std::ostringstream os;
  if (got.scalar_type() != want.scalar_type()) {
    os << "dtype " << got.scalar_type() << " != expected " << want.scalar_type();
    return os.str();
  }
  if (got.sizes() != want.sizes()) {
    os << "shape " << got.sizes() << " != expected " << want.sizes();
    return os.str();
  }
  if (got.numel() == 0) return "";
  if (at::isFloatingType(want.scalar_type())) {
    at::Tensor g = got.to(at::kDouble), w = want.to(at::kDouble);
    at::Tensor bad = ((g - w).abs() > atol + rtol * w.abs()) & ~(g.isnan() & w.isnan());
    bad = bad | (g.isnan() != w.isnan());
    if (bad.any().item<bool>()) {
      os << "max |diff| " << (g - w).abs().nan_to_num(1e30).max().item<double>() << "\n got "
         << got.reshape({-1}).slice(0, 0, 12) << "\n want " << want.reshape({-1}).slice(0, 0, 12);
      return os.str();
    }
    return "";
  }
  if (!at::equal(got, want)) {
    os << "values differ\n got " << got.reshape({-1}).slice(0, 0, 16) << "\n want "
       << want.reshape({-1}).slice(0, 0, 16);
    return os.str();
  }
  return "";
}

/// Runs ONNX node conformance case `name` (e.g. "test_top_k") through a one-node gstick graph
/// and compares every output with the expected one. Returns "" on success, else the reason.
inline std::string runOnnxNodeCase(const std::string& name, double rtol = 1e-4, double atol = 1e-5) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(kOnnxNodeDir) / name;
  onnx::ModelProto m;
  {
    std::ifstream f(dir / "model.onnx", std::ios::binary);
    if (!f || !m.ParseFromIstream(&f)) return "cannot read " + (dir / "model.onnx").string();
  }
  const onnx::GraphProto& gp = m.graph();
  if (gp.node_size() != 1) return "not a single-node model";
  const onnx::NodeProto& np = gp.node(0);
  try {
    Graph g;
    std::vector<at::Tensor> feed;
    for (int i = 0; i < gp.input_size(); ++i) {
      at::Tensor t = loadTensorPb((dir / "test_data_set_0" / ("input_" + std::to_string(i) + ".pb")).string());
      g.addInput(gp.input(i).name(), fromScalarType(t.scalar_type()), shapeOf(t));
      feed.push_back(t);
    }
    std::vector<Value*> ins;
    for (const auto& in : np.input()) ins.push_back(in.empty() ? nullptr : g.findValue(in));
    std::map<std::string, Attribute> attrs;
    for (const auto& a : np.attribute()) attrs[a.name()] = attrFromProto(a);
    std::vector<std::string> outs(np.output().begin(), np.output().end());
    g.addNodeNamedOutputs(np.op_type(), ins, outs, "n", attrs, nullptr, np.domain());
    for (int i = 0; i < gp.output_size(); ++i) g.addOutput(g.findValue(gp.output(i).name()));
    Executor ex(g);
    std::vector<at::Tensor> got = ex.run(feed);
    for (size_t i = 0; i < got.size(); ++i) {
      at::Tensor want =
          loadTensorPb((dir / "test_data_set_0" / ("output_" + std::to_string(i) + ".pb")).string());
      std::string d = compareExpected(got[i], want, rtol, atol);
      if (!d.empty()) return "output " + std::to_string(i) + ": " + d;
    }
  } catch (const std::exception& e) {
    return std::string("error: ") + e.what();
  }
  return "";
}

/// Names of the installed conformance cases starting with `prefix` (sorted; "_expanded" function
/// decompositions excluded since they are multi-node graphs).
inline std::vector<std::string> onnxCases(const std::string& prefix) {
  std::vector<std::string> v;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(kOnnxNodeDir, ec)) {
    std::string n = e.path().filename().string();
    bool expanded = n.size() >= 9 && n.compare(n.size() - 9, 9, "_expanded") == 0;
    if (n.rfind(prefix, 0) == 0 && !expanded) v.push_back(n);
  }
  std::sort(v.begin(), v.end());
  return v;
}

/// Runs every conformance case whose name starts with one of the prefixes (each prefix must match
/// at least one case); skips the test when the test data is not installed.
#define GS_EXPECT_ONNX_CASES(...)                                                        \
  do {                                                                                   \
    if (!std::filesystem::exists(::gs::test::kOnnxNodeDir))                              \
      GTEST_SKIP() << "ONNX node test data not installed";                               \
    for (const char* prefix : {__VA_ARGS__}) {                                           \
      auto cases = ::gs::test::onnxCases(prefix);                                        \
      EXPECT_FALSE(cases.empty()) << "no conformance case matches " << prefix;           \
      for (const auto& c : cases) EXPECT_EQ(::gs::test::runOnnxNodeCase(c), "") << c;    \
    }                                                                                    \
  } while (0)

}  // namespace gs::test
