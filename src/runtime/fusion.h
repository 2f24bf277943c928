// Inference-time fusion: finds node groups the executor runs as one step in eval mode.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "ir/graph.h"
#include "ops/registry.h"

namespace gs {

/// Identity of a tensor's contents for invalidating caches derived from parameters in fused
/// kernels: the TensorImpl and its version counter (bumped by in-place updates; inference tensors
/// have none, so only identity is tracked).
struct TensorStamp {
  const void* impl = nullptr;
  int64_t version = -1;
  static TensorStamp of(const at::Tensor& t) {
    if (!t.defined()) return {};
    return {t.unsafeGetTensorImpl(), t.is_inference() ? -1 : static_cast<int64_t>(t._version())};
  }
  bool operator==(const TensorStamp& o) const { return impl == o.impl && version == o.version; }
};

/// A group of nodes that the executor replaces, in eval mode only, by one step running `kernel`.
/// Contract: every value produced inside the group other than `outputs` has exactly one use, by a
/// node of the group, and is not a graph output, so skipping those values is unobservable;
/// `nodes.back()` produces `outputs` and comes after every other group node in graph order, so the
/// step may run at its position. The graph itself is never modified.
struct FusedGroup {
  /// Pattern name, e.g. "Conv+BatchNormalization+Relu" or "Gelu".
  std::string kind;
  /// Covered nodes; the last one produces the group's outputs.
  std::vector<const Node*> nodes;
  /// Node the step is attributed to in profiles and error messages (the Conv, or the Erf).
  const Node* anchor = nullptr;
  /// Values the kernel reads, in kernel input order (nullptr = omitted optional input).
  std::vector<const Value*> inputs;
  /// Values the kernel produces, in kernel output order.
  std::vector<const Value*> outputs;
  /// Eval-mode kernel (do not call in train mode: it uses no autograd-friendly folding).
  Kernel kernel;
};

/// Finds the fusable groups of `g` (disjoint; in graph order of their last node):
///  - QDQ int8 islands (runtime/int8_fusion.h: DQ -> Conv/Gemm/MatMul/Add/MaxPool -> Q run as real
///    int8 kernels), matched first.
///  - Conv / Gemm / MatMul between gs fake quantizers, computed exactly on the integer codes
///    (runtime/fq_exact_fusion.h), matched next.
///  - Conv -> BatchNormalization (inference form: training_mode=0, one output, all four BN inputs
///    parameters, conv weight a parameter): BN is folded into a private copy of the conv weight and
///    bias, W' = W * s, b' = (b - mean) * s + beta with s = scale / sqrt(var + eps), computed in
///    double; recomputed whenever one of the parameters is replaced or modified in place (tensor
///    identity and version counter), so training between eval runs is picked up.
///  - Conv (or the Conv+BN above) -> Relu: relu applied in place on the fresh conv output.
///  - The exported erf-GELU, x * 0.5 * (1 + erf(x / sqrt(2))) as Div(x, sqrt2) or Mul(x, 1/sqrt2),
///    Erf, Add(., 1), and Mul(x, .) then Mul(., 0.5), or Mul(Mul(x, 0.5), .) (operands of Add/Mul in
///    either order; constants are one-element float parameters, read once here): run as at::gelu.
/// Intermediates that are graph outputs or have other uses stop the match.
/// Kernels are built with the op registry's factories, so attribute errors surface as usual.
std::vector<FusedGroup> findFusions(const Graph& g);

}  // namespace gs
