// Op registry and the central list of op families.
#include "ops/registry.h"

#include "quant/fake_quant_ops.h"
#include "support/error.h"

namespace gs {

const AttrSpec* OpSchema::findAttr(const std::string& name) const {
  for (const auto& a : attrs)
    if (a.name == name) return &a;
  return nullptr;
}

void OpRegistry::add(OpSchema schema) {
  auto key = std::make_pair(schema.domain, schema.op_type);
  GS_ASSERT(!ops_.count(key), "op registered twice: ", schema.domain, "::", schema.op_type);
  ops_.emplace(std::move(key), std::move(schema));
}

const OpSchema* OpRegistry::find(const std::string& domain, const std::string& op_type) const {
  auto it = ops_.find({domain == "ai.onnx" ? "" : domain, op_type});
  return it == ops_.end() ? nullptr : &it->second;
}

std::vector<const OpSchema*> OpRegistry::all() const {
  std::vector<const OpSchema*> v;
  for (const auto& [k, s] : ops_) v.push_back(&s);
  return v;
}

void registerMatmulNBitsOps(OpRegistry& r);  // com.microsoft MatMulNBits (ops/matmul_nbits.cpp)
void registerSimQatOps(OpRegistry& r);       // gs::BnFoldCorrection (quant/simqat_ops.cpp)

void registerAllOps(OpRegistry& r) {
  registerElementwiseOps(r);
  registerActivationOps(r);
  registerConvOps(r);
  registerPoolOps(r);
  registerNormOps(r);
  registerShapeOps(r);
  registerReduceOps(r);
  registerMatmulOps(r);
  registerMiscOps(r);
  registerQuantOps(r);
  registerImageOps(r);
  registerFusedOps(r);
  registerMatmulNBitsOps(r);
  registerGsQuantOps(r);
  registerSimQatOps(r);
}

const OpRegistry& OpRegistry::global() {
  static const OpRegistry reg = [] {
    OpRegistry r;
    registerAllOps(r);
    return r;
  }();
  return reg;
}

}  // namespace gs
