// Graph-side view of a decoder LM for PTQ: linear layers with constant weights, decoder blocks
// found by name scope (model.layers.N.*), block extraction, scale folding and fake-quant insertion.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace gs::llm {

/// A quantizable linear layer: MatMul(x, Transpose(W)) with W [out, in] (HF / torch layout),
/// MatMul(x, W) with W [in, out], or Gemm(x, W, transB). The weight is a parameter used only here.
struct LinearRef {
  Node* node = nullptr;    ///< the MatMul / Gemm; its name names the layer
  Value* weight = nullptr; ///< the parameter
  bool out_in = true;      ///< stored [out, in] (true) or [in, out]
  const std::string& name() const { return node->name(); }
  /// Activation input x.
  Value* input() const { return node->input(0); }
  /// W as float [out, in] (a copy-free view when possible).
  at::Tensor weightOI() const;
  /// Stores w [out, in] back in the parameter's layout and dtype.
  void setWeightOI(const at::Tensor& w) const;
  int64_t inFeatures() const;
  int64_t outFeatures() const;
};

/// Every linear layer of `g` with a constant, unshared 2-D weight, in graph order.
std::vector<LinearRef> findLinears(const Graph& g);

/// A decoder block: the nodes whose names start with `prefix` + "." where prefix ends in
/// "layers.N" (Hugging Face / gstick zoo naming), in graph order.
struct DecoderBlock {
  int64_t index = 0;
  std::string prefix;             ///< "model.layers.3"
  std::vector<Node*> nodes;
  std::vector<LinearRef> linears;  ///< the block's linear layers, graph order
  /// The linear whose node name is prefix + "." + suffix ("self_attn.q_proj"), or nullptr.
  const LinearRef* find(const std::string& suffix) const;
};

/// The decoder blocks of `g`, ordered by N. Throws gs::Error if none is found.
std::vector<DecoderBlock> findDecoderBlocks(const Graph& g);

/// A standalone graph computing `nodes` (a subset of `g` in topological order): values they use
/// that are produced outside become graph inputs (same names), parameters are shared (same
/// tensors), values used outside `nodes` (or graph outputs of g) become outputs.
struct Subgraph {
  std::unique_ptr<Graph> graph;
  std::vector<std::string> inputs;   ///< names of the external values, in input order
  std::vector<std::string> outputs;  ///< names of the escaping values, in output order
};
Subgraph extractSubgraph(const Graph& g, const std::vector<Node*>& nodes);

/// The nodes of `g` needed to compute `values` from the graph inputs, in graph order, stopping at
/// values whose producers are in `stop` (those become inputs of the slice).
std::vector<Node*> backwardSlice(const Graph& g, const std::vector<Value*>& values,
                                 const std::vector<Node*>& stop);

/// The part of a decoder block that the value `x` (a linear group's shared input) feeds before
/// the residual stream: AutoAWQ's "module to inspect" (for q/k/v the attention up to o_proj, for
/// gate/up the MLP up to down_proj, for o_proj / down_proj the layer alone), found structurally.
/// A node joins if it consumes x or a region value and its other inputs do not depend on the
/// block's hidden state (parameters, constant nodes, rotary tables, masks); the residual Add
/// therefore ends it. Returned in graph order, with the constant nodes the region needs (weight
/// transposes); empty if x has no consumer in `block_nodes`.
std::vector<Node*> inspectRegion(const std::vector<Node*>& block_nodes, Value* x);

/// Where per-input-channel scales s of a linear group can be folded so that the function is
/// unchanged: the preceding op divides its output channels by s.
struct FoldTarget {
  enum Kind { None, NormWeight, LinearRows } kind = None;
  Value* norm_weight = nullptr;  ///< Mul(x, w[C]) of an RMSNorm, or LayerNormalization scale
  Value* norm_bias = nullptr;    ///< LayerNormalization bias (also divided), or nullptr
  LinearRef prev;                ///< a linear whose output rows feed the group (element-wise)
  std::string describe() const;
};
/// Finds the fold target of activation `x`: the weight of an RMSNorm's final Mul / a
/// LayerNormalization, or a linear reached through one Mul operand (SwiGLU up_proj), whose
/// result feeds nothing but `x`'s consumers.
FoldTarget findFoldTarget(const Graph& g, Value* x);
/// Divides the fold target's channels by s [C].
void foldInverseScales(const FoldTarget& t, const at::Tensor& s);

/// Inserts symmetric int8 fake-quant nodes (Div, Round, Clip, Mul, named `<name>.*`) on value
/// x and rewires every consumer of x to the result. scale: a constant tensor broadcast against x
/// (static), or undefined for a dynamic scale per row over the last axis (ReduceMax(Abs(x)) /
/// 127). Returns the fake-quantized value.
Value* insertFakeQuant(Graph& g, Value* x, const at::Tensor& scale, const std::string& name);
/// Inserts QuantizeLinear / DequantizeLinear (int8, per tensor, zero point 0) on x (static W8A8
/// activations in standard QDQ form); returns the dequantized value.
Value* insertQdq(Graph& g, Value* x, float scale, const std::string& name);

}  // namespace gs::llm
