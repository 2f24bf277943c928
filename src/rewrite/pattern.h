// Declarative DAG patterns over the IR: op types, attributes, value uses, params, shapes, predicates.
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace gs {

/// Result of a successful match: every pattern node/value bound to a graph node/value.
struct Match {
  /// The graph node the pattern's root matched.
  Node* root = nullptr;
  /// Every matched node, in pattern-creation order (what a rewrite usually replaces).
  std::vector<Node*> nodes;
  /// Captured names -> bound nodes / values (values may be nullptr for omitted optional inputs).
  std::map<std::string, Node*> captured_nodes;
  std::map<std::string, Value*> captured_values;
  /// Captured node / value by name; throws gs::Error naming the capture when absent.
  Node* node(const std::string& name) const;
  Value* value(const std::string& name) const;
  /// True if `name` was captured (and, for values, not bound to an omitted input).
  bool has(const std::string& name) const;
};

class Pattern;

/// Handle to a value pattern (valid while its Pattern lives and is not moved).
class ValuePat {
 public:
  /// Exactly one use and not a graph output (safe to fold/fuse away).
  ValuePat& singleUse();
  ValuePat& dtype(DType t);
  /// Shape rank must be known and equal `r`.
  ValuePat& rank(int64_t r);
  /// Parameter with exactly one element (scalar-like constant).
  ValuePat& scalar();
  /// Arbitrary predicate (value is never nullptr here).
  ValuePat& where(std::function<bool(const Value&)> pred, std::string what = "predicate");
  /// Name under which the bound value appears in Match::captured_values.
  ValuePat& capture(const std::string& name);
  int id() const { return id_; }

 private:
  friend class Pattern;
  friend class NodePat;
  ValuePat(Pattern* p, int id) : p_(p), id_(id) {}
  Pattern* p_;
  int id_;
};

/// Handle to a node pattern.
class NodePat {
 public:
  /// Attribute must be present and equal `a` (an Int given for a Float attribute compares as float).
  NodePat& attrEq(const std::string& key, Attribute a);
  /// Attribute must equal `a`, or be absent when `absent_ok` (ONNX default value == a).
  NodePat& attrEqOrAbsent(const std::string& key, Attribute a);
  /// Predicate over the attribute (nullptr when absent).
  NodePat& attrWhere(const std::string& key, std::function<bool(const Attribute*)> pred);
  NodePat& where(std::function<bool(const Node&)> pred, std::string what = "predicate");
  NodePat& domain(const std::string& d);
  /// For two-input ops (Add, Mul, ...): the inputs may match in either order.
  NodePat& commutative();
  /// The node may have more inputs than the pattern lists (extra inputs are unconstrained).
  NodePat& allowExtraInputs();
  /// Every output of the node has at most one use and none is a graph output.
  NodePat& singleUse();
  NodePat& capture(const std::string& name);
  /// Output k of this node, as a value pattern (out(0) is also an implicit conversion).
  ValuePat out(int k = 0);
  operator ValuePat() { return out(0); }  // NOLINT implicit by design: op("Relu", {conv})
  int id() const { return id_; }

 private:
  friend class Pattern;
  NodePat(Pattern* p, int id) : p_(p), id_(id) {}
  Pattern* p_;
  int id_;
};

/// A connected DAG of node patterns reachable from one root through inputs. Matching starts at a
/// graph node for the root and walks producers; a pattern node/value used twice must bind the same
/// graph node/value (so `Add(x, f(x))` is a residual). Commutative nodes are tried in both input
/// orders with full backtracking.
///
///   Pattern p;
///   auto conv = p.op("Conv", {p.any("x"), p.param("w"), p.optional("b")}).capture("conv");
///   p.op("Relu", {conv.out().singleUse()}).capture("relu");   // root = last node created
class Pattern {
 public:
  Pattern() = default;
  // Handles point into the pattern: copying is fine, handles of the copy must not be mixed.
  Pattern(const Pattern&) = default;
  Pattern& operator=(const Pattern&) = default;

  /// Any present value.
  ValuePat any(const std::string& capture = "");
  /// A parameter (initializer).
  ValuePat param(const std::string& capture = "");
  /// A frozen (non-trainable) parameter.
  ValuePat constant(const std::string& capture = "");
  /// A graph input.
  ValuePat graphInput(const std::string& capture = "");
  /// Any value or an omitted optional input.
  ValuePat optional(const std::string& capture = "");
  /// An omitted optional input only.
  ValuePat omitted();
  /// A node whose op type is one of `ops` (default domain unless .domain()).
  NodePat op(std::set<std::string> ops, std::vector<ValuePat> inputs, const std::string& capture = "");
  /// Single op type (a `const char*` so that `op({"Relu", "Tanh"}, ...)` picks the set overload).
  NodePat op(const char* op_type, std::vector<ValuePat> inputs, const std::string& capture = "") {
    return op(std::set<std::string>{op_type}, std::move(inputs), capture);
  }
  /// Sets the root (default: the last node pattern created).
  void setRoot(NodePat n) { root_ = n.id(); }

  /// Matches with the root bound to `n`. On failure returns nullopt and, if `why` is given,
  /// describes the last constraint that failed ("node 'bn' (BatchNormalization): ...").
  std::optional<Match> matchAt(Node* n, std::string* why = nullptr) const;
  /// All matches, rooted at nodes in graph order (they may overlap).
  std::vector<Match> matchAll(const Graph& g) const;
  /// Op types the root can have (lets drivers skip nodes cheaply).
  const std::set<std::string>& rootOps() const;

  // ---- internal representation (read by the matcher) ----
  enum class ValueKind { Any, Param, Constant, GraphInput, Optional, Omitted, NodeOutput };
  struct ValueSpec {
    ValueKind kind = ValueKind::Any;
    int node = -1, index = 0;  // for NodeOutput
    std::string capture;
    std::vector<std::pair<std::string, std::function<bool(const Value&)>>> preds;
  };
  struct NodeSpec {
    std::set<std::string> ops;
    std::string domain;
    std::vector<int> inputs;
    bool commutative = false, extra_inputs = false;
    std::string capture;
    std::map<int, int> outs;  // output index -> value spec id (one spec per output)
    std::vector<std::pair<std::string, std::function<bool(const Node&)>>> preds;
  };
  const std::vector<ValueSpec>& valueSpecs() const { return values_; }
  const std::vector<NodeSpec>& nodeSpecs() const { return nodes_; }
  int root() const { return root_ >= 0 ? root_ : static_cast<int>(nodes_.size()) - 1; }

 private:
  friend class ValuePat;
  friend class NodePat;
  ValuePat addValue(ValueKind k, const std::string& capture);
  std::vector<ValueSpec> values_;
  std::vector<NodeSpec> nodes_;
  int root_ = -1;
};

/// Attribute predicate helpers.
/// True if `a` is an Int or Float equal to `x` (absent = false).
bool attrIsNumber(const Attribute* a, double x);

}  // namespace gs
