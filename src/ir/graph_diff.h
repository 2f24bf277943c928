// Structural comparison of two graphs (used by round-trip tests, the fuzzer and rewrite tests).
#pragma once
#include <ATen/core/Tensor.h>

#include <string>

#include "ir/graph.h"

namespace gs {

/// Empty if `a` and `b` are structurally equal, else a one-line description of the first
/// difference. Compares graph name, opsets, inputs, params (dtype, shape, trainable flag and
/// data, bit-exact up to NaN payloads), nodes in order (name, domain, op type, inputs and
/// outputs by name, output dtypes/shapes, attributes) and the output list.
std::string graphDiff(const Graph& a, const Graph& b);

/// True if both tensors have the same dtype, sizes and values; NaN equals NaN, -0 != +0.
bool tensorsIdentical(const at::Tensor& a, const at::Tensor& b);

}  // namespace gs
