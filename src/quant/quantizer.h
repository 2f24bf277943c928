// Placement of fake quantizers in a graph: which inputs of which layers get a gs::FakeQuant /
// gs::LsqQuant node, with shared activation quantizers and redundant-quantizer removal.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "quant/qparams.h"

namespace gs::quant {

/// The roles of a quantizable layer's inputs: Conv / ConvTranspose / Gemm (input 1 a parameter)
/// and MatMul (either input a parameter). The weight's per-channel axis is the output-channel
/// axis: Conv 0, ConvTranspose 1, Gemm 0 with transB else 1, MatMul -1 (weight [K, N]).
struct LayerIO {
  int weight_index = 1;
  int act_index = 0;
  int64_t weight_axis = 0;
  int64_t in_axis = 1;  ///< the weight's input-channel (reduction) axis: per-group layout
};
/// The roles of `n`, or nullopt when `n` is not a quantizable layer.
std::optional<LayerIO> quantizableLayer(const Node& n);

/// How a quantizer computes its parameters.
enum class FqKind {
  Static,   ///< gs::FakeQuant, scale / zero point fixed (PTQ, set after calibration)
  Train,    ///< gs::FakeQuant updating scale / zp in train mode (weights: minmax, acts: ema)
  Lsq,      ///< gs::LsqQuant with a learnable step (symmetric; zero point 0)
  Dynamic,  ///< gs::FakeQuant observer=dynamic_per_token (activations only)
};

/// Per-layer quantization settings (resolved from an algorithm config and its layer policies).
struct LayerQuantConfig {
  std::string node;  ///< layer node name
  bool quant_weight = true;
  bool quant_act = true;
  QuantSpec weight;  ///< axis is filled from LayerIO when per channel / per group
  QuantSpec act;
  FqKind weight_kind = FqKind::Static;
  FqKind act_kind = FqKind::Static;
  std::string weight_observer = "minmax";  ///< calibration observer kinds (observer.h)
  std::string act_observer = "minmax";
};

/// An inserted quantizer.
struct Quantizer {
  Node* node = nullptr;           ///< the gs::FakeQuant / gs::LsqQuant node
  std::string layer;              ///< first layer it serves
  bool is_weight = false;
  QuantSpec spec;
  FqKind kind = FqKind::Static;
  Value* scale = nullptr;         ///< scale (or LSQ step)
  Value* zero_point = nullptr;    ///< nullptr for LSQ
  std::vector<std::string> layers;  ///< every layer reading its output
};

/// Options of insertQuantizers.
struct InsertOptions {
  /// Scalar parameters given to every weight / activation quantizer as its `enable` input
  /// (nullptr = always on); quant-delay callbacks flip them.
  Value* weight_enable = nullptr;
  Value* act_enable = nullptr;
  double averaging_constant = 0.01;  ///< ema observers of Train activation quantizers
  /// Also quantize layer outputs and residual Adds, so that after convert whole blocks run in
  /// int8 (DQ -> Conv -> [Relu] -> Q; DQ, DQ -> Add -> Q), as ONNX Runtime's quantizer and PyTorch
  /// FX place them:
  ///  - the output of every quantized layer, taken after a BatchNormalization and a Relu / Clip
  ///    that are its only consumers, unless it is a graph output or already quantized (it then
  ///    feeds GlobalAveragePool / MaxPool / Add in int8 instead of falling back to float);
  ///  - both inputs of a two-input Add fed by a quantized layer: each reuses the quantizer of
  ///    that value if there is one (the block input of a residual block), else gets its own.
  /// New quantizers use the act spec / kind / observer of the layer feeding them (for an Add input
  /// without one: of the layer feeding the other input); `layer` names that layer. Static and
  /// Train kinds only (LSQ and dynamic per-token layers are skipped).
  bool quantize_outputs = false;
};

/// Inserts quantizers for `layers` (each must name a quantizable layer of `g`; throws otherwise):
/// the weight input gets its own quantizer; the activation input gets one quantizer per value,
/// shared by every layer reading that value (the first layer's act spec wins). A value already
/// produced by a quantizer is not quantized again. Initial parameters: Static / Train quantizers
/// start from the weight's min-max (weights) or scale 1 / zp of the spec (activations), Lsq from
/// lsqInitStep of the weight (activations: 1, to be initialised from data). See
/// InsertOptions::quantize_outputs for layer outputs and residual Adds.
std::vector<Quantizer> insertQuantizers(Graph& g, const std::vector<LayerQuantConfig>& layers,
                                        const InsertOptions& opts = {});

/// Removes a quantizer that directly follows another one with the same op, attributes and
/// parameter values (re-quantizing on the same grid is the identity). Returns the number removed.
int64_t removeRedundantQuantizers(Graph& g);

/// True for gs::FakeQuant / gs::LsqQuant nodes.
bool isQuantizer(const Node& n);

}  // namespace gs::quant
