// Helpers private to the shape/indexing op family (shape.cpp, shape_index.cpp, shape_gen.cpp).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ops/registry.h"
#include "support/error.h"

namespace gs {

// The family registers in three parts; registerShapeOps (shape.cpp) calls the other two.
/// Registers Gather*, Scatter*, NonZero, Compress, ReverseSequence, Unique (shape_index.cpp).
void registerShapeIndexOps(OpRegistry& r);
/// Registers ConstantOfShape, Range, OneHot, Trilu, EyeLike, Pad, Tile, Expand (shape_gen.cpp).
void registerShapeGenOps(OpRegistry& r);

namespace shape_detail {

/// Reads a 0-d/1-d integer tensor into a vector; int64 contiguous input is read without a copy
/// tensor (the common case for shape inputs, where per-call overhead dominates).
inline std::vector<int64_t> readInts(const at::Tensor& t) {
  if (t.scalar_type() == at::kLong && t.is_contiguous()) {
    const int64_t* p = t.data_ptr<int64_t>();
    return std::vector<int64_t>(p, p + t.numel());
  }
  at::Tensor c = t.to(at::kLong).contiguous();
  const int64_t* p = c.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}

/// If input `i` of `n` is a parameter (constant), its integer contents; otherwise nullopt.
inline std::optional<std::vector<int64_t>> constInts(const Node& n, size_t i) {
  const Value* v = n.input(i);
  if (!v || !v->isParam() || !v->data().defined()) return std::nullopt;
  return readInts(v->data());
}

/// A fresh 1-d int64 tensor holding `v`.
inline at::Tensor intsTensor(const std::vector<int64_t>& v) {
  at::Tensor t = at::empty({static_cast<int64_t>(v.size())}, at::kLong);
  if (!v.empty()) std::memcpy(t.data_ptr<int64_t>(), v.data(), v.size() * sizeof(int64_t));
  return t;
}

/// Wraps a kernel factory with a bind-time check that the node's first `k` inputs are present:
/// kernels index their required inputs directly, and graphs may reach the executor unverified.
inline KernelFactory requiring(size_t k, KernelFactory f) {
  return [k, f = std::move(f)](const Node& n) {
    for (size_t i = 0; i < k; ++i)
      GS_CHECK(n.hasInput(i), n.describe(), ": required input ", i, " is missing (", n.opType(),
               " takes at least ", k, " inputs)");
    return f(n);
  };
}

/// "[2,3,4]" for error messages.
inline std::string dimsString(at::IntArrayRef d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

/// Maps a possibly negative axis into [0, rank); `who` names the node in the error.
inline int64_t axisIn(const std::string& who, int64_t axis, int64_t rank) {
  GS_CHECK(axis >= -rank && axis < rank, who, ": axis ", axis, " out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

/// Int64 copy of `idx` with negative entries wrapped by `dim`; every entry must lie in
/// [-dim, dim). Returns `idx` itself when it is int64 and already non-negative.
inline at::Tensor wrapIndices(const std::string& who, const at::Tensor& idx, int64_t dim) {
  at::Tensor t = idx.scalar_type() == at::kLong ? idx : idx.to(at::kLong);
  at::Tensor c = t.contiguous();
  const int64_t* p = c.data_ptr<int64_t>();
  const int64_t n = c.numel();
  bool neg = false;
  for (int64_t i = 0; i < n; ++i) {
    GS_CHECK(p[i] >= -dim && p[i] < dim, who, ": index ", p[i], " out of range [", -dim, ", ", dim,
             ")");
    neg |= p[i] < 0;
  }
  if (!neg) return c;
  at::Tensor r = at::empty_like(c);
  int64_t* q = r.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) q[i] = p[i] < 0 ? p[i] + dim : p[i];
  return r;
}

/// Product of dims [lo, hi).
inline int64_t prodDims(at::IntArrayRef d, size_t lo, size_t hi) {
  int64_t p = 1;
  for (size_t i = lo; i < hi; ++i) p *= d[i];
  return p;
}

}  // namespace shape_detail
}  // namespace gs
