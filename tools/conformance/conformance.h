// ONNX node-test conformance: run one case dir (model.onnx + test_data_set_*), classify, report.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

namespace gs::conformance {

/// Outcome of one case. Unsupported = the model cannot be imported or uses an op gstick lacks;
/// Failed = wrong numbers, a runtime error, or a crash of the isolated child.
enum class Status { Passed, Failed, Unsupported };

/// "passed" / "failed" / "unsupported".
const char* statusName(Status s);

struct CaseResult {
  std::string name;     // case folder name ("test_add_bcast")
  std::string op_type;  // op under test, for the per-op table
  Status status = Status::Failed;
  std::string message;  // one line: why it failed / is unsupported
  double seconds = 0;
};

/// numpy.testing.assert_allclose semantics as used by ONNX's backend tests:
/// |actual - expected| <= atol + rtol * |expected| elementwise, NaN == NaN, equal infinities
/// pass; integer and bool tensors must be exactly equal; dtype and shape must match.
/// On mismatch returns false and writes a one-line reason to `why`.
bool allClose(const at::Tensor& actual, const at::Tensor& expected, double rtol, double atol,
              std::string* why);

/// The op type a case tests: the single non-Constant op type of its model, the op of the
/// non-expanded sibling for `*_expanded` cases, else the last node's op type. Protobuf only
/// (no ATen work), so it is safe to call in the parent of forked children.
std::string caseOpType(const std::string& case_dir);

/// Runs a case in this process. Never throws: every error becomes a Failed/Unsupported result.
CaseResult runCase(const std::string& case_dir);

/// Runs cases in forked children, in order: one child runs cases until it finishes them all or
/// dies; a case that crashes / aborts becomes a Failed result naming the signal (a case running
/// longer than `timeout_s` seconds is killed and reported as a timeout), and a fresh child
/// continues with the next case. The parent performs no ATen work (no thread pool is ever
/// forked). `on_result`, if set, is called in the parent as each result arrives.
std::vector<CaseResult> runCasesIsolated(const std::vector<std::string>& case_dirs, int timeout_s,
                                         const std::function<void(const CaseResult&)>& on_result = {});
/// One case in its own child.
CaseResult runCaseIsolated(const std::string& case_dir, int timeout_s);

/// Case folders (those containing model.onnx) under `root`, sorted by name.
std::vector<std::string> listCases(const std::string& root);

/// Per-op table (op, passed, failed, unsupported) plus totals, as printable text.
std::string summaryTable(const std::vector<CaseResult>& results);

/// Machine-readable summary: totals, per-op counts and every case with status and message.
std::string summaryJson(const std::vector<CaseResult>& results);

}  // namespace gs::conformance
