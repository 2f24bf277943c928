// Standard graph passes (constant folding, DCE, identity removal, shape inference, BN folding,
// Conv+activation fusion) and the pass manager / optimize() pipeline that chains them.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "rewrite/driver.h"
#include "rewrite/rewriter.h"

namespace gs {

/// What a pass did.
struct PassResult {
  std::string pass;
  /// Number of rewrites (folded nodes, erased nodes, updated value types, ...; see each pass).
  int64_t changes = 0;
  /// Reasons for skipped sites and other remarks (one line each).
  std::vector<std::string> notes;
};

struct ConstantFoldingOptions {
  /// Nodes producing more than this many elements (any output) are left alone.
  int64_t max_output_elements = int64_t{1} << 22;
  /// Fold nodes that read trainable parameters (e.g. Transpose(W)); the folded result is a new
  /// parameter, trainable if any input was. Off keeps the trainable structure for training.
  bool fold_trainable = true;
};
/// Evaluates every default-domain node whose inputs are all parameters (and that has at least one
/// input; random ops never fold) with the op's registered kernel (eval mode, no autograd) and
/// replaces its outputs by frozen/trainable parameters named like the outputs. Nodes producing a
/// graph output are kept. changes = nodes folded.
PassResult foldConstants(Graph& g, const ConstantFoldingOptions& opts = {},
                         RewriteListener* listener = nullptr);

/// Erases nodes none of whose outputs reaches a graph output, then unused parameters.
/// changes = nodes + parameters removed.
PassResult eliminateDeadCode(Graph& g, RewriteListener* listener = nullptr);

/// Removes Identity and Dropout (eval semantics: Dropout's output 0 is its input; only when its
/// mask output is unused). When the removed node's output is a graph output whose input is a graph
/// input, parameter or another graph output, the node is kept (ONNX outputs need their own name).
/// changes = nodes removed.
PassResult removeIdentities(Graph& g, RewriteListener* listener = nullptr);

struct ShapeInferenceOptions {
  /// Values substituted for the k-th distinct symbolic (or unknown) input dim in the two probe
  /// runs; dims that track the substitution get the symbol back, other varying dims become `?`.
  int64_t first_probe = 2, second_probe = 3;
};
/// Propagates dtypes and shapes to every node output by running the graph twice (Executor, eval
/// mode) on zero-filled inputs with symbolic dims substituted (see ShapeInferenceOptions). Dims
/// equal in both runs become static, dims equal to the substituted value of input symbol S in
/// both runs become S, the rest `?`. Graph input shapes need a known rank. Data-dependent
/// shapes come out as `?` where they vary. changes = values whose dtype or shape changed.
/// Does not apply (changes 0, with a note) when the graph cannot run on such inputs.
PassResult inferShapes(Graph& g, const ShapeInferenceOptions& opts = {},
                       RewriteListener* listener = nullptr);

/// Folds inference BatchNormalization into a preceding Conv / ConvTranspose / Gemm / MatMul whose
/// weight is a parameter, when the intermediate value has a single use:
///   BN(Conv(x, W, b)) = Conv(x, W * s, (b - mean) * s + beta),  s = scale / sqrt(var + eps)
/// (per output channel; ConvTranspose scales W's axis 1 per group, Gemm scales W's output rows
/// (transB=1) or columns, alpha = beta = 1 only; MatMul with a 2-D output becomes Gemm(x, W*s, b')).
/// Computed in double. changes = BatchNormalization nodes folded.
PassResult foldBatchNorm(Graph& g, RewriteListener* listener = nullptr);

/// Adds the BN-folding patterns (Conv/ConvTranspose, Gemm, MatMul producers) to `set`.
void populateBatchNormFoldingPatterns(PatternSet& set);

/// Deployment marker: Conv followed by Relu / LeakyRelu / Sigmoid / Tanh / HardSigmoid / Clip
/// (constant min/max) becomes one com.microsoft::FusedConv node (ONNX Runtime's contrib op, run by
/// gstick's executor too) with attributes activation / activation_params. changes = fusions.
PassResult fuseConvActivation(Graph& g, RewriteListener* listener = nullptr);
/// Adds the Conv+activation fusion pattern to `set`.
void populateConvActivationFusionPatterns(PatternSet& set);
/// Removes the marker: every com.microsoft::FusedConv becomes Conv + its activation (standard
/// ONNX). changes = nodes split.
PassResult unfuseConvActivation(Graph& g, RewriteListener* listener = nullptr);

// ---------------------------------------------------------------- pass manager

/// A registered pass.
struct PassInfo {
  std::string name;
  std::string description;
  std::function<PassResult(Graph&, RewriteListener*)> run;
};
/// The central, ordered list of passes (names used by `gstick optimize --passes`).
const std::vector<PassInfo>& passRegistry();
/// The entry called `name`; throws gs::Error listing the known passes.
const PassInfo& findPass(const std::string& name);

/// Verifier hook default: on in debug builds (no NDEBUG), off otherwise; tests turn it on.
bool verifyPassesByDefault();
void setVerifyPassesByDefault(bool on);

struct PassManagerOptions {
  /// Run the verifier (schemas included, unknown ops allowed) after every pass; a failure throws
  /// gs::Error naming the pass.
  bool verify = verifyPassesByDefault();
  RewriteListener* listener = nullptr;
};

/// Runs passes in order; results keep per-pass change counts and node counts.
class PassManager {
 public:
  explicit PassManager(PassManagerOptions opts = {}) : opts_(opts) {}
  void add(const std::string& pass_name) { passes_.push_back(&findPass(pass_name)); }
  void add(const PassInfo& p) { passes_.push_back(&p); }
  struct Step {
    PassResult result;
    size_t nodes_before = 0, nodes_after = 0;
  };
  std::vector<Step> run(Graph& g) const;

 private:
  PassManagerOptions opts_;
  std::vector<const PassInfo*> passes_;
};

/// Pass names of optimisation level 0-3: 0 none; 1 identity removal, constant folding, DCE;
/// 2 adds shape inference and BN folding (standard ONNX output, the `gstick optimize` default);
/// 3 adds the FusedConv deployment marker (needs ONNX Runtime's contrib ops).
std::vector<std::string> optimizationPipeline(int level);
/// Runs optimizationPipeline(level) through a PassManager.
std::vector<PassManager::Step> optimize(Graph& g, int level = 2, PassManagerOptions opts = {});

}  // namespace gs
