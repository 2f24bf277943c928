// Test helper: runs one single-node ONNX conformance case (model.onnx + test_data_set_0) through
// gstick's executor, with a minimal loader of its own (independent of gstick's ONNX importer).
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/executor.h"

namespace gs::test {

/// Root of ONNX's node test cases (Debian package libonnx-testdata).
inline std::string onnxNodeDir() { return "/usr/share/libonnx-testdata/data/node"; }

/// Decodes a TensorProto (raw_data or typed fields) into an ATen tensor.
inline at::Tensor tensorFromProto(const onnx::TensorProto& p) {
  std::vector<int64_t> dims(p.dims().begin(), p.dims().end());
  at::ScalarType st = toScalarType(static_cast<DType>(p.data_type()));
  at::Tensor t = at::empty(dims, at::TensorOptions().dtype(st));
  size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
  if (!p.raw_data().empty()) {
    EXPECT_EQ(p.raw_data().size(), bytes);
    std::memcpy(t.data_ptr(), p.raw_data().data(), std::min(bytes, p.raw_data().size()));
  } else if (p.float_data_size() > 0) {
    std::memcpy(t.data_ptr(), p.float_data().data(), bytes);
  } else if (p.double_data_size() > 0) {
    std::memcpy(t.data_ptr(), p.double_data().data(), bytes);
  } else if (p.int64_data_size() > 0) {
    std::memcpy(t.data_ptr(), p.int64_data().data(), bytes);
  } else if (p.int32_data_size() > 0) {
    at::Tensor v = at::empty({p.int32_data_size()}, at::kInt);
    std::memcpy(v.data_ptr(), p.int32_data().data(), v.numel() * 4);
    t = v.to(st).reshape(dims);
  }
  return t;
}

inline at::Tensor readTensorPb(const std::string& path) {
  onnx::TensorProto p;
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f && p.ParseFromIstream(&f)) << path;
  return tensorFromProto(p);
}

/// Attribute conversion for the kinds node tests use.
inline Attribute attrFromProto(const onnx::AttributeProto& a) {
  switch (a.type()) {
    case onnx::AttributeProto::INT:
      return Attribute(static_cast<int64_t>(a.i()));
    case onnx::AttributeProto::FLOAT:
      return Attribute(a.f());
    case onnx::AttributeProto::STRING:
      return Attribute(a.s());
    case onnx::AttributeProto::TENSOR:
      return Attribute(tensorFromProto(a.t()));
    case onnx::AttributeProto::INTS:
      return Attribute(std::vector<int64_t>(a.ints().begin(), a.ints().end()));
    case onnx::AttributeProto::FLOATS:
      return Attribute(std::vector<float>(a.floats().begin(), a.floats().end()));
    default:
      ADD_FAILURE() << "unsupported attribute kind for " << a.name();
      return Attribute();
  }
}

/// Runs one `op_type` node on `inputs` (undefined tensor = omitted optional input). Inputs whose
/// index is in `params` become graph parameters (trainable = requires_grad of the tensor), the
/// rest graph inputs. Returns the node's `num_outputs` outputs.
inline std::vector<at::Tensor> runOp(const std::string& op_type,
                                     const std::vector<at::Tensor>& inputs,
                                     std::map<std::string, Attribute> attrs, size_t num_outputs = 1,
                                     bool training = false,
                                     const std::vector<size_t>& params = {}) {
  Graph g;
  std::vector<Value*> ins;
  std::vector<at::Tensor> feeds;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const at::Tensor& t = inputs[i];
    if (!t.defined()) {
      ins.push_back(nullptr);
    } else if (std::find(params.begin(), params.end(), i) != params.end()) {
      ins.push_back(g.addParam("p" + std::to_string(i), t, t.requires_grad()));
    } else {
      ins.push_back(g.addInput("x" + std::to_string(i), fromScalarType(t.scalar_type()), Shape()));
      feeds.push_back(t);
    }
  }
  Node* n = g.addNode(op_type, ins, num_outputs, "op", std::move(attrs));
  for (size_t k = 0; k < num_outputs; ++k) g.addOutput(n->output(k));
  Executor ex(g, {.training = training});
  return ex.run(feeds);
}

/// Result of one conformance case: gstick's outputs and ONNX's expected outputs.
struct NodeCaseResult {
  bool available = false;
  std::vector<at::Tensor> got, expected;
};

/// Builds a gs::Graph from the single node of `<case>/model.onnx`, feeds test_data_set_0's
/// inputs (inputs listed in `as_params` become parameters instead of graph inputs) and runs it.
inline NodeCaseResult runOnnxNodeCase(const std::string& name, bool training = false,
                                      const std::vector<std::string>& as_params = {}) {
  NodeCaseResult r;
  std::string dir = onnxNodeDir() + "/" + name;
  if (!std::filesystem::exists(dir + "/model.onnx")) return r;
  r.available = true;
  onnx::ModelProto m;
  std::ifstream f(dir + "/model.onnx", std::ios::binary);
  EXPECT_TRUE(f && m.ParseFromIstream(&f)) << name;
  const onnx::GraphProto& gp = m.graph();
  EXPECT_EQ(gp.node_size(), 1) << name;
  Graph g;
  std::vector<at::Tensor> feeds;
  for (int i = 0; i < gp.input_size(); ++i) {
    const auto& vi = gp.input(i);
    at::Tensor t = readTensorPb(dir + "/test_data_set_0/input_" + std::to_string(i) + ".pb");
    if (std::find(as_params.begin(), as_params.end(), vi.name()) != as_params.end()) {
      g.addParam(vi.name(), t, false);
    } else {
      g.addInput(vi.name(), static_cast<DType>(vi.type().tensor_type().elem_type()), Shape());
      feeds.push_back(t);
    }
  }
  const onnx::NodeProto& np = gp.node(0);
  std::vector<Value*> ins;
  for (const auto& s : np.input()) ins.push_back(s.empty() ? nullptr : g.findValue(s));
  std::map<std::string, Attribute> attrs;
  for (const auto& a : np.attribute()) attrs[a.name()] = attrFromProto(a);
  std::vector<std::string> outs(np.output().begin(), np.output().end());
  g.addNodeNamedOutputs(np.op_type(), ins, outs, "n0", attrs);
  for (int i = 0; i < gp.output_size(); ++i) {
    g.addOutput(g.findValue(gp.output(i).name()));
    r.expected.push_back(
        readTensorPb(dir + "/test_data_set_0/output_" + std::to_string(i) + ".pb"));
  }
  Executor ex(g, {.training = training});
  r.got = ex.run(feeds);
  return r;
}

/// Runs a case and checks every output against ONNX's expected values: same shape and dtype,
/// max |got - expected| / max(1, |expected|) <= tol.
inline void expectOnnxNodeCase(const std::string& name, double tol = 1e-5) {
  SCOPED_TRACE(name);
  NodeCaseResult r = runOnnxNodeCase(name);
  if (!r.available) {
    GTEST_SKIP() << "ONNX test data not installed: " << name;
  }
  ASSERT_EQ(r.got.size(), r.expected.size());
  for (size_t i = 0; i < r.got.size(); ++i) {
    SCOPED_TRACE("output " + std::to_string(i));
    ASSERT_EQ(r.got[i].sizes(), r.expected[i].sizes());
    EXPECT_EQ(r.got[i].scalar_type(), r.expected[i].scalar_type());
    at::Tensor a = r.got[i].to(at::kDouble), b = r.expected[i].to(at::kDouble);
    double err = ((a - b).abs() / b.abs().clamp_min(1.0)).max().item<double>();
    EXPECT_LE(err, tol) << "got " << r.got[i] << "\nexpected " << r.expected[i];
  }
}

}  // namespace gs::test
