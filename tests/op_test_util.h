// Shared helpers for op and ONNX tests: one-node runs, ONNX node conformance cases through the
// real importer + executor, tensor builders and comparisons, error capture, ModelProto builders.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "support/error.h"
#include "test_util.h"

namespace gs::test {

using Attrs = std::map<std::string, Attribute>;

// ---- one-node runs (hand-written cases) ----

/// How runOp binds the node's inputs and names the node.
struct RunOptions {
  /// Train mode (batch statistics, dropout, autograd to trainable parameters).
  bool training = false;
  /// Indices of inputs bound as graph parameters instead of graph inputs (trainable iff the
  /// tensor requires grad), as when a model stores them as initializers; this exercises the
  /// kernels' precomputation from constant inputs.
  std::vector<size_t> params;
  /// Every input but the first becomes a parameter (same rule as `params`).
  bool operands_as_params = false;
  /// Node name; kernel errors read "node '<node_name>' (<op_type>): ...".
  std::string node_name = "n";
};

/// Builds a graph with a single `op_type` node (of `domain`) whose inputs are graph inputs (dtype
/// declared from the tensor, shape unknown) or parameters per `opts`, an undefined tensor being an
/// omitted optional input; runs it and returns its `num_outputs` outputs. Throws what the
/// executor throws (gs::Error for bad attributes / inputs).
std::vector<at::Tensor> runOp(const std::string& op_type, const std::vector<at::Tensor>& inputs,
                              const Attrs& attrs = {}, size_t num_outputs = 1,
                              const std::string& domain = "", const RunOptions& opts = {});

/// runOp's first output, for single-output ops.
at::Tensor run1(const std::string& op_type, const std::vector<at::Tensor>& inputs,
                const Attrs& attrs = {});

/// Runs once with graph inputs and once with inputs 1.. as frozen parameters, expects identical
/// results (the constant-input fast paths must agree) and returns the first output.
at::Tensor runBoth(const std::string& op_type, const std::vector<at::Tensor>& inputs,
                   const Attrs& attrs = {});

/// Train-mode autograd of `op_type`: the gradient of sum(w * op(inputs)) (w seeded normal) with
/// respect to input `slot`, bound as a trainable parameter, must match central finite
/// differences of eval-mode runs within 1e-5 (maxRelDiff). `inputs[slot]` is made float64 so
/// the differences are accurate.
void expectGradMatchesFiniteDiff(const std::string& op_type, const std::vector<at::Tensor>& inputs,
                                 size_t slot, const Attrs& attrs = {});

// ---- ONNX node conformance cases ----

/// Folder of ONNX's node conformance cases (Debian's libonnx-testdata).
const std::string& onnxNodeDir();
/// True when that folder exists.
bool haveOnnxNodeCases();

/// Fails the current test when the ONNX node test data is not installed (`make test` installs
/// it: a missing package must not turn conformance tests into silent passes).
#define GS_REQUIRE_ONNX_NODE_CASES()                                                 \
  ASSERT_TRUE(::gs::test::haveOnnxNodeCases())                                       \
      << "ONNX node test data not installed (libonnx-testdata; run scripts/install-deps.sh)"

/// How a conformance case is checked. Outputs always meet ONNX's own bounds (numpy allclose with
/// rtol 1e-3, atol 1e-7; integer and bool outputs exactly equal; dtype and shape equal). The
/// extra bounds only tighten the check: tests use them where the kernel is known to be closer to
/// the reference than ONNX requires (data movement is exact, for instance).
struct CaseOptions {
  /// Extra numpy-style bound |got - want| <= atol + rtol * |want| on float outputs; off if < 0.
  double rtol = -1, atol = -1;
  /// Extra bound max |got - want| / max(1, |want|) <= max_rel_diff on float outputs (0 = equal
  /// values); off if < 0.
  double max_rel_diff = -1;
  /// When > 0 and the importer refuses the model's (too old) default-domain opset, the model is
  /// imported as if it declared this opset instead. Only for cases whose node means the same at
  /// both versions (the caller asserts it), so that ONNX's old cases still check the kernel.
  int64_t as_opset = 0;
};
/// Float outputs must equal the expected values exactly.
inline constexpr CaseOptions kExact{.max_rel_diff = 0};

/// Compares one output with ONNX's expected tensor: ONNX's bounds plus `opts`'s; the failure
/// message gives the first differing element (or the dtype / shape mismatch) and the bound.
::testing::AssertionResult matchesExpected(const at::Tensor& got, const at::Tensor& want,
                                           const CaseOptions& opts = {});

/// Imports `<case>/model.onnx` with gs::importOnnxFile (so old opsets go through the importer's
/// upgrade), runs every test_data_set_* through a gs::Executor (eval mode) and compares each
/// output with the expected one. `name_or_dir` is a case name ("test_top_k", resolved under
/// onnxNodeDir()) or a case folder path. Failure messages name the case, data set and output.
/// `opts` gives extra bounds and the legacy-opset rule (CaseOptions).
/// When the environment variable GS_TEST_CASE_LOG names a file, "<Suite>.<Test> <case>" is
/// appended to it (lets a reviewer compare the set of cases the tests check across changes).
::testing::AssertionResult runConformanceCase(const std::string& name_or_dir,
                                              const CaseOptions& opts = {});

/// Names of the installed cases starting with `prefix`, sorted; "*_expanded" function
/// decompositions excluded (they test other ops).
std::vector<std::string> conformanceCases(const std::string& prefix);

/// Runs every case matching one of `prefixes` (each must match at least one case) and reports
/// all failing cases in one result.
::testing::AssertionResult runConformanceCases(const std::vector<std::string>& prefixes,
                                               const CaseOptions& opts = {});

/// The same for an explicit list of case names.
::testing::AssertionResult runConformanceCaseList(const std::vector<std::string>& names,
                                                  const CaseOptions& opts = {});

// ---- tensors ----

/// 1-d tensors of the named element type.
at::Tensor f32(const std::vector<float>& v);
at::Tensor f64(const std::vector<double>& v);
at::Tensor i64(const std::vector<int64_t>& v);
at::Tensor i32(const std::vector<int32_t>& v);
at::Tensor i8(const std::vector<int>& v);
at::Tensor u8(const std::vector<int>& v);
at::Tensor bools(const std::vector<int>& v);

/// Same dtype, same shape and equal values (NaN equal to NaN).
::testing::AssertionResult sameTensor(const at::Tensor& got, const at::Tensor& want);
/// Same dtype, same shape and maxRelDiff(got, want) < tol.
::testing::AssertionResult closeTensor(const at::Tensor& got, const at::Tensor& want,
                                       double tol = 1e-6);

/// EXPECT forms reporting the caller's line.
#define EXPECT_TENSOR_EQ(got, want) EXPECT_TRUE(::gs::test::sameTensor((got), (want)))
#define EXPECT_TENSOR_NEAR(got, want, tol) \
  EXPECT_TRUE(::gs::test::closeTensor((got), (want), (tol)))

// ---- errors ----

/// Message of the gs::Error thrown by `f`, or "" (with a test failure) if none is thrown.
template <typename F>
std::string errorOf(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a gs::Error";
  return "";
}

/// Expects `f` to throw a one-line gs::Error containing `needle`; returns the message.
template <typename F>
std::string expectError(F&& f, const std::string& needle) {
  try {
    f();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(needle), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << "multi-line error: " << m;
    return m;
  }
  ADD_FAILURE() << "expected a gs::Error containing: " << needle;
  return "";
}

// ---- tiny ModelProto builders (protobuf directly, no python) ----

/// Empty model (IR 8) importing the default domain at `opset`, graph named "g".
onnx::ModelProto makeModel(int64_t opset);
/// Appends a tensor ValueInfo. dims: >= 0 static, -1 unknown; `syms` gives dim_param for the
/// positions it names.
void addValue(google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>* list,
              const std::string& name, int elem, const std::vector<int64_t>& dims,
              const std::map<int, std::string>& syms = {});
/// Appends a node to the model's graph and returns it (for attributes).
onnx::NodeProto* addNode(onnx::ModelProto& m, const std::string& op,
                         const std::vector<std::string>& ins, const std::vector<std::string>& outs,
                         const std::string& name = "");
/// Attribute setters.
void attrInts(onnx::NodeProto* n, const std::string& k, const std::vector<int64_t>& v);
void attrInt(onnx::NodeProto* n, const std::string& k, int64_t v);
void attrFloat(onnx::NodeProto* n, const std::string& k, float v);
void attrString(onnx::NodeProto* n, const std::string& k, const std::string& v);
/// Adds `t` as an initializer called `name`.
void addInit(onnx::ModelProto& m, const at::Tensor& t, const std::string& name);

/// Structural identity: nodes (names, op types, domains, attrs, value names and types), params
/// (names, trainability, data), graph input types, output names and opsets.
void expectSameGraph(const Graph& a, const Graph& b);

}  // namespace gs::test
