// Lowering of PTQ results to deployable ONNX: weight-only layers -> MatMulNBits (com.microsoft)
// where ONNX Runtime's format allows, else a standard-op dequantization (Cast/Gather/Sub/Mul) of
// uint8 codes; W8A8 weights -> int8 DequantizeLinear (per output channel).
#pragma once
#include <map>
#include <string>

#include "ir/graph.h"
#include "llm/quantizer.h"

namespace gs::llm {

/// How a layer was lowered.
struct LoweringStats {
  int64_t nbits = 0;        ///< MatMulNBits nodes
  int64_t dequant = 0;      ///< uint8 codes + standard-op dequantization
  int64_t qdq_int8 = 0;     ///< int8 DequantizeLinear weights (W8A8)
  int64_t bytes_before = 0, bytes_after = 0;  ///< weight bytes of the lowered layers
};

/// Replaces the float weights of the linear layers named in `weights` by their quantized form.
/// `w8a8`: weights are int8 symmetric per channel and become int8 + DequantizeLinear(axis) feeding
/// the MatMul (activations already carry QDQ / fake-quant nodes from the PTQ driver). Otherwise a
/// MatMul(x, Transpose(W)) layer with 2, 4 or 8 bits, groups of a power of two >= 16 (or per
/// channel) and contiguous groups (no act-order regrouping) becomes MatMulNBits; any other layer
/// keeps uint8 codes [out, in] dequantized with standard ops as
/// (Cast(q) - Gather(zero, g_idx, axis=1)) * Gather(scale, g_idx, axis=1). The lowered graph
/// computes the same function as the fake-quantized graph (up to float rounding).
LoweringStats lowerQuantizedLinears(Graph& g, const std::map<std::string, QuantizedWeight>& weights,
                                    bool w8a8);

}  // namespace gs::llm
