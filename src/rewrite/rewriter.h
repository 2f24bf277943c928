// Rewriter: the only way rewrite patterns and passes change a Graph; notifies listeners.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace gs {

/// Observer of every IR change made through a Rewriter. Default implementations do nothing.
class RewriteListener {
 public:
  virtual ~RewriteListener() = default;
  /// A node was created (already linked into the graph).
  virtual void nodeInserted(Node& n) { (void)n; }
  /// A node is about to be erased (still fully linked; the pointer dies after the call).
  virtual void nodeErased(const Node& n) { (void)n; }
  /// A node's attributes, inputs, name or position changed.
  virtual void nodeModified(Node& n) { (void)n; }
  /// Every use of `from` (node inputs and graph outputs) now reads `to`.
  virtual void valueReplaced(Value& from, Value& to) { (void)from; (void)to; }
  /// A parameter was added, had its data replaced, was renamed or is about to be removed
  /// (`removed` = true; the pointer dies after the call).
  virtual void paramChanged(Value& p, bool removed) { (void)p; (void)removed; }
};

/// Wraps a Graph's mutation methods, keeping topological order and counting changes.
/// Listeners are not owned and must outlive the Rewriter (or be removed first).
class Rewriter {
 public:
  explicit Rewriter(Graph& g) : g_(g) {}
  Graph& graph() { return g_; }

  void addListener(RewriteListener* l) { listeners_.push_back(l); }
  void removeListener(RewriteListener* l);

  /// Number of mutations performed so far (every notified event counts once).
  int64_t changes() const { return changes_; }

  // ---- creation ----
  /// Creates a node just before `anchor` (nullptr = at the end). The caller guarantees that the
  /// inputs are defined before `anchor`. `name` empty = derived from op type; made unique.
  Node* insertBefore(Node* anchor, const std::string& op_type, const std::vector<Value*>& inputs,
                     size_t num_outputs = 1, const std::string& name = "",
                     std::map<std::string, Attribute> attrs = {}, const std::string& domain = "");
  /// Creates a node just after `anchor` (its outputs may then read anchor's outputs).
  Node* insertAfter(Node* anchor, const std::string& op_type, const std::vector<Value*>& inputs,
                    size_t num_outputs = 1, const std::string& name = "",
                    std::map<std::string, Attribute> attrs = {}, const std::string& domain = "");
  /// Adds a parameter named `name` (made unique).
  Value* addParam(const std::string& name, at::Tensor data, bool trainable);
  /// Replaces a parameter's data (dtype/shape follow the tensor).
  void setParamData(Value* p, at::Tensor data);

  // ---- rewiring ----
  /// Every use of `from` (node inputs, graph outputs) reads `to` instead.
  void replaceAllUsesWith(Value* from, Value* to);
  /// Rewires input slot `i` of `n` (nullptr = omitted); slots past the end are appended
  /// (intermediate ones omitted).
  void setInput(Node* n, size_t i, Value* v);
  /// Replaces the subgraph `nodes` (any order) by values already computed elsewhere (typically by
  /// nodes just inserted before the subgraph's last node): each (old, new) pair in `outputs` gets
  /// replaceAllUsesWith, then the subgraph's nodes are erased together with producers and
  /// parameters that became dead. Old values that were graph outputs lend their name to the new
  /// value when it is a node output without another graph-output name, so model output names
  /// stay stable. Throws (before changing anything) if a subgraph value not listed in `outputs`
  /// is used outside the subgraph or is a graph output.
  void replaceSubgraph(const std::vector<Node*>& nodes,
                       const std::vector<std::pair<Value*, Value*>>& outputs);
  /// replaceSubgraph({n}, n's outputs paired with `new_outputs`); nullptr entries = output unused.
  void replaceNode(Node* n, const std::vector<Value*>& new_outputs);

  // ---- erasure ----
  /// Erases `n` (outputs must be unused and not graph outputs), then its producers and
  /// parameters that became dead (dead-code cleanup). Returns the number of nodes erased.
  int64_t eraseNode(Node* n);
  /// Erases `n` only if none of its outputs is used or a graph output (then cleans up as above).
  int64_t eraseIfDead(Node* n);
  /// If `v` is unused and not a graph output: removes it (parameter) or erases its producer when
  /// dead, recursively (dead-code cleanup after rewiring). Returns the number of nodes erased.
  int64_t eraseIfUnused(Value* v) { return cleanupFrom({v}); }
  /// Removes a parameter without uses (and not a graph output).
  void removeParam(Value* p);

  // ---- modification ----
  void setAttr(Node* n, const std::string& key, Attribute a);
  void removeAttr(Node* n, const std::string& key);
  /// Renames a node; its output values named after it (`old`, `old:k`) follow when free.
  void rename(Node* n, const std::string& name);
  void renameValue(Value* v, const std::string& name);
  /// Sets the dtype and shape of a node output (listeners see the producer as modified).
  void setType(Value* v, DType t, Shape s);
  /// Moves `n` from scope `from_prefix` to `to_prefix`: a name "<from>.<rest>" (or exactly
  /// `from`) becomes "<to>.<rest>" (or `to`); output values named after the node follow.
  /// Throws if `n` is not in scope `from_prefix`.
  void moveToScope(Node* n, const std::string& from_prefix, const std::string& to_prefix);
  /// Moves `n` to just before `before` (nullptr = end); the caller keeps order topological.
  void moveBefore(Node* n, Node* before);

 private:
  int64_t cleanupFrom(const std::vector<Value*>& inputs);
  void notifyInserted(Node* n);
  void notifyModified(Node* n);

  Graph& g_;
  std::vector<RewriteListener*> listeners_;
  int64_t changes_ = 0;
};

/// True if `v` is one of g's outputs.
bool isGraphOutput(const Graph& g, const Value* v);
/// True if no output of `n` is used or a graph output.
bool isDead(const Node& n);

}  // namespace gs
