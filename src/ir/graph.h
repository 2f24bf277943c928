// The graph IR: Graph owns Nodes (kept in topological order) and Values (SSA edges).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/attribute.h"
#include "ir/dtype.h"

namespace gs {

class Graph;
class Node;

/// One dimension: a static size (>= 0), a named symbol ("N", "batch") or unknown (value -1, no name).
struct Dim {
  int64_t value = -1;
  std::string symbol;
  Dim() = default;
  Dim(int64_t v) : value(v) {}  // NOLINT
  Dim(std::string s) : symbol(std::move(s)) {}  // NOLINT
  Dim(const char* s) : symbol(s) {}  // NOLINT
  bool isStatic() const { return value >= 0; }
  bool operator==(const Dim& o) const { return value == o.value && symbol == o.symbol; }
};

/// Shape with possibly unknown rank (std::nullopt).
using Shape = std::optional<std::vector<Dim>>;

/// A use of a value: input slot `index` of node `user`.
struct Use {
  Node* user;
  int index;
  bool operator==(const Use& o) const { return user == o.user && index == o.index; }
};

/// An SSA value: produced by one node, or a graph input, or a parameter (initializer).
class Value {
 public:
  const std::string& name() const { return name_; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  void setDType(DType t) { dtype_ = t; }
  void setShape(Shape s) { shape_ = std::move(s); }
  /// Producing node, or nullptr for graph inputs and parameters.
  Node* producer() const { return producer_; }
  int producerIndex() const { return producer_index_; }
  const std::vector<Use>& uses() const { return uses_; }
  Graph* graph() const { return graph_; }

  /// True if this value is a parameter (initializer) with data in the tensor store.
  bool isParam() const { return is_param_; }
  bool isGraphInput() const { return is_input_; }
  /// Parameter data (undefined tensor if not a parameter).
  const at::Tensor& data() const { return data_; }
  /// Replaces the parameter data; dtype/shape of the value are updated to match.
  void setData(at::Tensor t);
  /// Trainable parameters receive gradients in train mode; frozen ones do not.
  bool trainable() const { return trainable_; }
  void setTrainable(bool t) { trainable_ = t; }

 private:
  friend class Graph;
  friend class Node;
  Value() = default;
  std::string name_;
  DType dtype_ = DType::Undefined;
  Shape shape_;
  Node* producer_ = nullptr;
  int producer_index_ = -1;
  std::vector<Use> uses_;
  Graph* graph_ = nullptr;
  bool is_param_ = false;
  bool is_input_ = false;
  bool trainable_ = true;
  at::Tensor data_;
};

/// An operation. Inputs may contain nullptr for omitted optional inputs; so may outputs.
class Node {
 public:
  const std::string& opType() const { return op_type_; }
  /// Operator domain: "" for ONNX, "gs" for gstick compression ops, "com.microsoft", ...
  const std::string& domain() const { return domain_; }
  /// Stable hierarchical name, unique in the graph ("layer1.0.conv1").
  const std::string& name() const { return name_; }
  Graph* graph() const { return graph_; }

  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  Value* input(size_t i) const { return i < inputs_.size() ? inputs_[i] : nullptr; }
  Value* output(size_t i) const { return i < outputs_.size() ? outputs_[i] : nullptr; }
  size_t numInputs() const { return inputs_.size(); }
  size_t numOutputs() const { return outputs_.size(); }
  /// True if input i exists and is not omitted.
  bool hasInput(size_t i) const { return input(i) != nullptr; }

  /// Rewires input slot i to `v` (may be nullptr), keeping use lists consistent.
  void setInput(size_t i, Value* v);
  /// Appends an input.
  void addInput(Value* v);
  /// Removes input slots >= n.
  void truncateInputs(size_t n);

  const std::map<std::string, Attribute>& attrs() const { return attrs_; }
  bool hasAttr(const std::string& k) const { return attrs_.count(k) != 0; }
  const Attribute* findAttr(const std::string& k) const;
  void setAttr(const std::string& k, Attribute a) { attrs_[k] = std::move(a); }
  void removeAttr(const std::string& k) { attrs_.erase(k); }

  // Typed attribute accessors: throw gs::Error naming the node on a kind mismatch.
  int64_t attrInt(const std::string& k, int64_t def) const;
  float attrFloat(const std::string& k, float def) const;
  std::string attrString(const std::string& k, const std::string& def) const;
  std::vector<int64_t> attrInts(const std::string& k, std::vector<int64_t> def = {}) const;
  std::vector<float> attrFloats(const std::string& k, std::vector<float> def = {}) const;
  /// Required attribute; throws naming node and attribute when missing.
  const Attribute& attr(const std::string& k) const;

  /// "node 'conv1' (Conv)" — used as error prefix everywhere.
  std::string describe() const;

 private:
  friend class Graph;
  Node() = default;
  std::string op_type_, domain_, name_;
  std::vector<Value*> inputs_;
  std::vector<Value*> outputs_;
  std::map<std::string, Attribute> attrs_;
  Graph* graph_ = nullptr;
};

using NodeList = std::list<std::unique_ptr<Node>>;

/// A dataflow graph. Nodes are kept in topological order (producers before users).
/// All mutation goes through Graph's methods (the rewrite layer wraps them with listeners).
class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  /// Moves keep node/value back-pointers valid.
  Graph(Graph&& o) noexcept;
  Graph& operator=(Graph&& o) noexcept;

  std::string name = "main";
  /// Opset imports: domain -> version ("" -> 17 by default).
  std::map<std::string, int64_t> opsets{{"", 17}};

  // ---- values ----
  /// Adds a graph input. Throws if the name is taken.
  Value* addInput(const std::string& name, DType t, Shape shape);
  /// Adds a parameter (initializer) holding `data`.
  Value* addParam(const std::string& name, at::Tensor data, bool trainable = true);
  /// Marks `v` as a graph output (appended to the output list).
  void addOutput(Value* v);
  void setOutput(size_t i, Value* v);
  void removeOutput(size_t i);
  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  /// Parameters in declaration order.
  const std::vector<Value*>& params() const { return params_; }
  /// Value by name, or nullptr.
  Value* findValue(const std::string& name) const;
  /// A fresh value name derived from `base` that is not yet used.
  std::string uniqueValueName(const std::string& base) const;
  /// A fresh node name derived from `base` that is not yet used.
  std::string uniqueNodeName(const std::string& base) const;
  /// Renames a value (must be unused name).
  void renameValue(Value* v, const std::string& name);
  /// Removes a graph input (must have no uses).
  void removeInput(Value* v);
  /// Removes a parameter (must have no uses and not be an output).
  void removeParam(Value* v);

  // ---- nodes ----
  /// Creates a node with fresh outputs named `<name>` / `<name>:k`. Inserted before `before`
  /// (nullptr = at the end). `name` empty = derived from op type. Nullptr inputs = omitted.
  Node* addNode(const std::string& op_type, const std::vector<Value*>& inputs, size_t num_outputs,
                const std::string& name = "", std::map<std::string, Attribute> attrs = {},
                Node* before = nullptr, const std::string& domain = "");
  /// Same, with explicit output value names (empty string = omitted optional output).
  Node* addNodeNamedOutputs(const std::string& op_type, const std::vector<Value*>& inputs,
                            const std::vector<std::string>& output_names, const std::string& name,
                            std::map<std::string, Attribute> attrs = {}, Node* before = nullptr,
                            const std::string& domain = "");
  /// Erases a node; its outputs must have no uses and not be graph outputs.
  void eraseNode(Node* n);
  /// Moves node `n` to just before `before` (nullptr = end). Caller keeps order valid.
  void moveNodeBefore(Node* n, Node* before);
  /// Renames a node (must be unused).
  void renameNode(Node* n, const std::string& name);
  Node* findNode(const std::string& name) const;
  /// Replaces every use of `from` (node inputs and graph outputs) by `to`.
  void replaceAllUsesWith(Value* from, Value* to);

  const NodeList& nodes() const { return nodes_; }
  size_t numNodes() const { return nodes_.size(); }

  /// Deep copy of structure; parameter tensors are shared unless `copy_data`.
  std::unique_ptr<Graph> clone(bool copy_data = false) const;

  /// Values that are neither used nor outputs are dropped; returns the count removed.
  size_t removeDeadValues();

 private:
  Value* newValue(const std::string& name);
  NodeList nodes_;
  std::unordered_map<Node*, NodeList::iterator> node_pos_;
  std::unordered_map<std::string, std::unique_ptr<Value>> values_;
  std::unordered_map<std::string, Node*> nodes_by_name_;
  std::vector<Value*> inputs_, outputs_, params_;
};

/// Number of elements of a static shape, or -1 if any dim is not static / rank unknown.
int64_t staticNumel(const Shape& s);
/// Shape of a concrete tensor.
std::vector<Dim> shapeOf(const at::Tensor& t);
/// "f32[N,3,224,224]"
std::string typeString(DType t, const Shape& s);

}  // namespace gs
