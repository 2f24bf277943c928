// Eval-time exact fake-quant layers: Conv / Gemm / MatMul between gs fake quantizers computed on
// the integer codes and requantized as the deployed int8 layer, so the fake-quant graph yields
// exactly what the int8 model computes.
#pragma once
#include <unordered_set>
#include <vector>

#include "ir/graph.h"
#include "runtime/fusion.h"

namespace gs {

/// Finds the layers of a fake-quant graph that can run exactly, skipping nodes in `claimed`:
///  - Conv (any rank / pads / strides / dilations / groups), Gemm (alpha = beta = 1, transA = 0)
///    and MatMul (2-D weight as input 1), optionally followed by a Relu that is the layer
///    output's only consumer;
///  - input 0 produced by a per-tensor gs::FakeQuant (static: observer none / minmax / ema) or
///    gs::LsqQuant whose scale / zero point / enable are parameters;
///  - input 1 produced, through a private edge, by a gs::FakeQuant / gs::LsqQuant of a float
///    parameter (per tensor, or per channel along the layer's output-channel axis), which joins
///    the group.
/// The step recovers the activation codes c_x = round(x / s_x) (= q - zp, exact because x is the
/// quantizer's output) and the weight codes c_w = q_w - zp_w, accumulates conv(c_x, c_w) exactly
/// (float32 while K * max|c_x| * max|c_w| <= 2^24; else split c_x = 16 h + l into two exact
/// float32 halves, or float64), and returns float32(acc * (s_x * s_w) + bias) computed in float64:
/// the real value of the quantized operands rounded once, instead of a float32 sum of dequantized
/// products whose roundoff can move the next quantizer's input across a rounding tie.
/// When the layer output then goes (through an optional Relu, or a Clip with parameter bounds)
/// into a per-tensor static gs::FakeQuant on a full 8-bit grid, that quantizer joins the group
/// and the step requantizes exactly as the deployed int8 layer does (int8_gemm.h requantOne:
/// m = float(x_scale * w_scale[c]) / y_scale, v = float(acc + bias_int32[c]) * m, clamp, round
/// half to even), returning the dequantized code. A residual Add of two 8-bit fake-quantized
/// tensors (optional Relu) into such a quantizer is computed as QLinearAdd (int8_kernels.cpp).
/// The fake-quant graph then computes the int8 execution's codes exactly.
/// A disabled quantizer (enable = 0) or a non-float32 input falls back to the original nodes.
/// Nothing is formed when GS_EXACT_FAKE_QUANT=0.
std::vector<FusedGroup> findExactFakeQuantFusions(const Graph& g,
                                                  const std::unordered_set<const Node*>& claimed);

}  // namespace gs
