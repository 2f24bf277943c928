// Helpers shared by the quantized op kernels (quant.cpp, quant_conv.cpp, matmul.cpp).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

#include "ops/registry.h"

namespace gs {

/// Reshapes a per-axis parameter (1-D, size of x's `axis`) to broadcast against a rank-`rank`
/// tensor; a one-element parameter becomes 0-d (per-tensor).
at::Tensor alignToAxis(const at::Tensor& p, int64_t axis, int64_t rank);

/// saturate(round_half_even(x_over_scale) + zero_point) as `qt` (uint8 or int8). The zero point
/// may be undefined (0) and must broadcast against x_over_scale.
at::Tensor quantizeRounded(const at::Tensor& x_over_scale, const at::Tensor& zero_point,
                           at::ScalarType qt);

/// Float type in which an 8-bit product summed over `k` terms is exact: every |q - zp| <= 255, so
/// each partial sum is an integer below k * 255^2, exact in float32 while that is < 2^24
/// (k <= 258) and in double for any realistic k.
inline at::ScalarType exactAccumType(int64_t k) { return k <= 258 ? at::kFloat : at::kDouble; }

/// Registers QLinearConv (quant_conv.cpp).
void registerQLinearConv(OpRegistry& r);

}  // namespace gs
