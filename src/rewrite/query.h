// Graph queries: nodes by op type / name regex / scope, producers and consumers, weight layers.
#pragma once
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace gs {

/// Nodes whose op type is in `ops` (default domain or any domain when `domain` is "*"), in
/// graph order.
std::vector<Node*> nodesByOpType(const Graph& g, const std::set<std::string>& ops,
                                 const std::string& domain = "*");
/// Nodes whose whole name matches the ECMAScript regex `pattern` (std::regex_match semantics:
/// "layer1\\..*" selects the layer1 scope). Throws gs::Error on an invalid regex.
std::vector<Node*> nodesByNameRegex(const Graph& g, const std::string& pattern);
/// Nodes in scope `prefix`: named exactly `prefix` or starting with `prefix` + "." (so scope
/// "layer1" does not contain "layer10.conv").
std::vector<Node*> nodesInScope(const Graph& g, const std::string& prefix);
/// True if `name` is `prefix` or inside scope `prefix`.
bool inScope(const std::string& name, const std::string& prefix);

/// Distinct producers of n's inputs (graph inputs and params have none), in input order.
std::vector<Node*> producers(const Node& n);
/// Distinct users of n's outputs, in graph order.
std::vector<Node*> consumers(const Node& n);

/// The earliest node in graph order reading `v` (the insertion point for a node that must run
/// before every user of `v`), or nullptr when nothing reads it.
Node* firstUser(const Graph& g, const Value* v);

/// A node carrying weights: the weight parameter and where it enters.
struct Layer {
  Node* node = nullptr;
  /// The weight parameter (for MatMul(x, Transpose(W)) this is W).
  Value* weight = nullptr;
  /// Input slot of `node` that carries the weight (directly or through the Transpose).
  int weight_input = 1;
  /// True when the weight reaches the node through a Transpose of the parameter.
  bool transposed = false;
  /// Bias parameter (Conv/ConvTranspose input 2, Gemm input 2) or nullptr.
  Value* bias = nullptr;
};

/// The weight layers of `g` in graph order: Conv / ConvTranspose / Gemm whose input 1 is a
/// parameter; MatMul whose input 1 (or else input 0) is a parameter of rank >= 2, or a Transpose
/// of one (Llama's MatMul(x, Transpose(W))); Gather whose data input 0 is a rank-2 float parameter
/// (embeddings, weight_input 0).
std::vector<Layer> layers(const Graph& g);

}  // namespace gs
