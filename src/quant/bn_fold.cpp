// BatchNormalization folding for quantization: node factors, foldability, the pass as a count.
#include "quant/bn_fold.h"

#include <ATen/ATen.h>

#include "passes/passes.h"
#include "support/error.h"

namespace gs::quant {

BnAffine bnFactors(const Node& bn) {
  for (size_t i = 1; i <= 4; ++i)
    GS_CHECK(bn.input(i) && bn.input(i)->isParam(), bn.describe(),
             ": folding needs parameter scale / bias / mean / var");
  return bnAffine(bn.input(1)->data(), bn.input(2)->data(), bn.input(3)->data(),
                  bn.input(4)->data(), bn.attrFloat("epsilon", 1e-5f));
}

namespace {

/// The axis of the weight that indexes output channels, or -1 when the layer can't be folded.
int64_t outAxis(const Node& n) {
  if (n.opType() == "Conv") return 0;
  if (n.opType() == "ConvTranspose") return n.attrInt("group", 1) == 1 ? 1 : -1;
  if (n.opType() == "Gemm") return n.attrInt("transB", 0) ? 0 : 1;
  return -1;
}

}  // namespace

bool isFoldableBn(const Node& bn, bool need_param_weight) {
  if (bn.opType() != "BatchNormalization" || !bn.domain().empty()) return false;
  if (bn.attrInt("training_mode", 0) != 0) return false;
  for (size_t i = 1; i < bn.numOutputs(); ++i)
    if (bn.output(i)) return false;
  for (size_t i = 1; i <= 4; ++i)
    if (!bn.input(i) || !bn.input(i)->isParam()) return false;
  const Value* y = bn.input(0);
  const Node* p = y->producer();
  if (!p || !p->domain().empty() || outAxis(*p) < 0) return false;
  if (!p->input(1) || (need_param_weight && !p->input(1)->isParam())) return false;
  if (p->opType() == "Gemm" && p->attrFloat("beta", 1.0f) != 1.0f) return false;
  if (p->opType() == "Gemm" && p->input(2) && !p->input(2)->isParam()) return false;
  if (p->opType() != "Gemm" && p->input(2) && !p->input(2)->isParam()) return false;
  if (y->uses().size() != 1) return false;
  for (const Value* o : y->graph()->outputs())
    if (o == y) return false;
  return true;
}

int64_t foldBatchNorms(Graph& g) { return foldBatchNorm(g).changes; }

}  // namespace gs::quant
