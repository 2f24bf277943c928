// Op schemas (arity, attributes) and kernel factories; one central registry.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ir/attribute.h"
#include "ir/graph.h"

namespace gs {

/// Per-run state visible to kernels.
struct KernelContext {
  /// Train mode: BatchNorm uses batch statistics, Dropout drops, autograd records.
  bool training = false;
};

/// A kernel bound to one node: reads `in` (undefined tensor = omitted optional input) and
/// fills `out` (pre-sized to the node's output count; outputs the node omits may stay undefined).
using Kernel = std::function<void(const KernelContext& ctx, const std::vector<at::Tensor>& in,
                                  std::vector<at::Tensor>& out)>;

/// Builds a kernel for `node` once, before execution: parses and validates attributes (throwing
/// gs::Error naming the node), and may precompute from constant inputs (parameters).
using KernelFactory = std::function<Kernel(const Node& node)>;

/// Declared attribute of an op.
struct AttrSpec {
  std::string name;
  AttrKind kind;
  bool required = false;
};

/// Everything the verifier and executor need to know about one op type.
struct OpSchema {
  std::string domain;  // "" = ONNX default domain
  std::string op_type;
  int min_inputs = 0;
  int max_inputs = 0;  // -1 = variadic
  int min_outputs = 1;
  int max_outputs = 1;  // -1 = variadic
  std::vector<AttrSpec> attrs;
  KernelFactory kernel;
  /// Attributes not in `attrs` are accepted (for ops whose attribute set grew across opsets).
  bool allow_unknown_attrs = false;

  const AttrSpec* findAttr(const std::string& name) const;
};

/// Op registry keyed by (domain, op_type).
class OpRegistry {
 public:
  /// Registers a schema; throws if (domain, op_type) already exists.
  void add(OpSchema schema);
  /// Schema or nullptr.
  const OpSchema* find(const std::string& domain, const std::string& op_type) const;
  /// All schemas, sorted by domain then op type.
  std::vector<const OpSchema*> all() const;

  /// The process-wide registry with every built-in op family registered (see registerAllOps).
  static const OpRegistry& global();

 private:
  std::map<std::pair<std::string, std::string>, OpSchema> ops_;
};

/// Schema builder for concise registration:
///   r.add(op("Relu").inputs(1).kernel(...));
class OpDef {
 public:
  explicit OpDef(std::string op_type, std::string domain = "") {
    s_.op_type = std::move(op_type);
    s_.domain = std::move(domain);
  }
  OpDef& inputs(int n) { s_.min_inputs = s_.max_inputs = n; return *this; }
  OpDef& inputs(int lo, int hi) { s_.min_inputs = lo; s_.max_inputs = hi; return *this; }
  OpDef& outputs(int n) { s_.min_outputs = s_.max_outputs = n; return *this; }
  OpDef& outputs(int lo, int hi) { s_.min_outputs = lo; s_.max_outputs = hi; return *this; }
  OpDef& attr(std::string name, AttrKind k, bool required = false) {
    s_.attrs.push_back({std::move(name), k, required});
    return *this;
  }
  OpDef& allowUnknownAttrs() { s_.allow_unknown_attrs = true; return *this; }
  OpDef& kernel(KernelFactory f) { s_.kernel = std::move(f); return *this; }
  /// Converts to the schema (moves out: use once, as a temporary in OpRegistry::add).
  operator OpSchema() { return std::move(s_); }  // NOLINT
  OpSchema build() { return std::move(s_); }

 private:
  OpSchema s_;
};

// One registration function per op family (ops/<family>.cpp); registerAllOps calls them all.
void registerElementwiseOps(OpRegistry& r);
void registerActivationOps(OpRegistry& r);
void registerConvOps(OpRegistry& r);
void registerPoolOps(OpRegistry& r);
void registerNormOps(OpRegistry& r);
void registerShapeOps(OpRegistry& r);
void registerReduceOps(OpRegistry& r);
void registerMatmulOps(OpRegistry& r);
void registerMiscOps(OpRegistry& r);
void registerQuantOps(OpRegistry& r);
void registerImageOps(OpRegistry& r);
/// ONNX Runtime contrib ops gstick emits for deployment (com.microsoft::FusedConv).
void registerFusedOps(OpRegistry& r);
/// The central, explicit list of op families.
void registerAllOps(OpRegistry& r);

}  // namespace gs
