// Multiply-accumulate counting from the tensors a node actually saw at run time.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "ir/graph.h"

namespace gs::cli {

/// MACs performed by `node` given its run-time inputs and outputs; 0 for ops that are not
/// multiply-accumulate heavy (elementwise, shape ops). Counted: Conv, ConvTranspose, MatMul,
/// Gemm, Einsum, MatMulInteger, QLinearMatMul, QLinearConv, ConvInteger. Bias adds are not counted.
int64_t nodeMacs(const Node& node, const std::vector<at::Tensor>& in,
                 const std::vector<at::Tensor>& out);

}  // namespace gs::cli
