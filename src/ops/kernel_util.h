// Helpers shared by kernel implementations: axis normalisation, reading small int tensors.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "ir/graph.h"
#include "ops/registry.h"
#include "support/error.h"

namespace gs {

/// Maps a possibly negative axis into [0, rank); throws naming the node if out of range.
inline int64_t normAxis(const Node& n, int64_t axis, int64_t rank) {
  GS_CHECK(axis >= -rank && axis < (rank == 0 ? 1 : rank), n.describe(), ": axis ", axis,
           " out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

/// Reads a 0-d/1-d integer tensor (int32/int64) into a vector.
inline std::vector<int64_t> toInts(const at::Tensor& t) {
  at::Tensor c = t.to(at::kLong).contiguous().reshape({-1});
  const int64_t* p = c.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}

/// Reads a 0-d/1-d floating tensor into a vector of doubles.
inline std::vector<double> toDoubles(const at::Tensor& t) {
  at::Tensor c = t.to(at::kDouble).contiguous().reshape({-1});
  const double* p = c.data_ptr<double>();
  return std::vector<double>(p, p + c.numel());
}

/// Kernel factory for a stateless unary function of the first input.
template <typename F>
KernelFactory unaryKernel(F f) {
  return [f](const Node&) -> Kernel {
    return [f](const KernelContext&, const std::vector<at::Tensor>& in,
               std::vector<at::Tensor>& out) { out[0] = f(in[0]); };
  };
}

/// Kernel factory for a stateless binary function (ONNX multidirectional broadcasting).
template <typename F>
KernelFactory binaryKernel(F f) {
  return [f](const Node&) -> Kernel {
    return [f](const KernelContext&, const std::vector<at::Tensor>& in,
               std::vector<at::Tensor>& out) { out[0] = f(in[0], in[1]); };
  };
}

}  // namespace gs
