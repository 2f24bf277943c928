// Eval-time int8 fusion of ONNX QDQ graphs: QuantizeLinear/DequantizeLinear islands run as real
// int8 kernels (runtime/int8_kernels.h) without modifying the graph.
#pragma once
#include <vector>

#include "ir/graph.h"
#include "runtime/fusion.h"

namespace gs {

/// Finds the int8-executable groups of a QDQ graph (all scales / zero points / weights must be
/// parameters; activations per-tensor uint8 or int8; weights int8 with zero point 0, per tensor
/// or per output channel):
///  - DQ(x_q) -> Conv (2-D, symmetric pads, bias float or DQ(int32)) [-> Relu | Clip] -> Q
///  - DQ(x_q) -> Gemm (alpha = beta = 1, transA = 0) / MatMul (2-D weight) [+ Add(bias)]
///    [-> Relu | Clip] -> Q, with DQ(W_q) of a constant int8 weight
///  - DQ(a_q), DQ(b_q) -> Add [-> Relu] -> Q      (QLinearAdd, bit-identical to the float ops)
///  - DQ(x_q) -> MaxPool (2-D, no indices output) -> Q
///  - an explicit QLinearConv with constant int8 weights (zero point 0), per-tensor x / y
/// Each group reads the 8-bit tensors directly, so consecutive layers pass int8 activations
/// (the Q of one layer feeds the next layer's DQ, which is skipped). A DequantizeLinear whose
/// every consumer belongs to an int8 group is listed (first) in one of those groups and never
/// runs; DQs with other consumers keep running for them. Conv/Gemm/MatMul requantize as
/// round_half_even(acc_int32 * (x_scale * w_scale / y_scale) + bias / y_scale) in float: equal
/// to the float DQ -> op -> Q reference except where the reference's float rounding lands on the
/// other side of a rounding boundary (then 1 step apart). Nothing is formed when ATen has no
/// int8 engine, or when GS_INT8_FUSION=0.
std::vector<FusedGroup> findInt8Fusions(const Graph& g);

}  // namespace gs
