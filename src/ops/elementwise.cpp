// Elementwise arithmetic, comparison and logical ops (ONNX broadcasting semantics).
#include <ATen/ATen.h>

#include "ops/kernel_util.h"
#include "ops/registry.h"

namespace gs {

void registerElementwiseOps(OpRegistry& r) {
  r.add(OpDef("Add").inputs(2).kernel(binaryKernel([](const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); })));
  r.add(OpDef("Sub").inputs(2).kernel(binaryKernel([](const at::Tensor& a, const at::Tensor& b) { return at::sub(a, b); })));
  r.add(OpDef("Mul").inputs(2).kernel(binaryKernel([](const at::Tensor& a, const at::Tensor& b) { return at::mul(a, b); })));
}

}  // namespace gs
