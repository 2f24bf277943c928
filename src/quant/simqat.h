// SimQAT's BatchNorm handling (Golden Stick SimulatedQuantizationAwareTraining): one-conv and
// two-conv BN folding for training, and BN folding of trained fake-quant graphs for deployment.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ops/registry.h"
#include "quant/quantizer.h"

namespace gs {
/// Registers gs::BnFoldCorrection (simqat_ops.cpp; called from registerAllOps).
void registerSimQatOps(OpRegistry& r);
}  // namespace gs

namespace gs::quant {

/// The BatchNormalization node folded into `conv` by foldBatchNorms (inference form, sole use of
/// the conv output), or nullptr.
Node* foldableBnAfter(const Node& conv);

/// SimQAT's BN-fold training variants.
enum class BnFoldKind {
  OneConv,  ///< Golden Stick Conv2dBnFoldQuantOneConv: fq(W*sf) conv, rescale, real BN
  TwoConv,  ///< Golden Stick Conv2dBnFoldQuant: first conv for batch statistics + correction
};

/// A Conv rewritten for BN-fold training.
struct ConvBnFold {
  std::string conv;       ///< the Conv node
  std::string cell;       ///< node producing the cell output: the kept BN (one-conv) or the
                          ///< gs::BnFoldCorrection (two-conv); both read gamma, beta, mean, var
                          ///< on inputs 1..4 and have an `epsilon` attribute
  Value* weight = nullptr;        ///< the original weight parameter W
  Value* folded_weight = nullptr; ///< W * sf, sf = gamma / sqrt(running_var + eps) (computed)
  Value* bias = nullptr;          ///< original conv bias (nullptr if none)
};

/// Rewrites each Conv of `convs` that has a foldable BN. Both variants fake-quantize the weight
/// folded with the running statistics, sf = gamma / sqrt(running_var + eps) computed by graph
/// ops from the BN parameters (the weight quantizer, inserted before this rewrite on input 1,
/// sees W * sf), and drop the conv bias from the conv:
///  - OneConv:  Conv(x, W, b) -> BN  =>  Conv(x, fq(W * sf)) -> Div(sf) [-> Add(b)] -> BN; BN
///    keeps using batch statistics in train mode; in eval mode the result equals
///    Conv(x, W*sf) + (b - mean)*sf + beta.
///  - TwoConv:  Conv(x, W, b) -> BN  =>  BnFoldCorrection(Conv(x, fq(W * sf)), gamma, beta,
///    mean, var, x, W, b, frozen): batch statistics from a first Conv(x, W) in train mode while
///    `frozen` (a scalar parameter, may be nullptr = never) is 0, running ones otherwise (see
///    gs::BnFoldCorrection in simqat_ops.cpp). The BN node is removed.
/// Returns one record per rewritten conv.
std::vector<ConvBnFold> insertBnFold(Graph& g, const std::vector<std::string>& convs,
                                     BnFoldKind kind, Value* frozen = nullptr);

/// Lowers BN-fold cells for deployment: the folded weight becomes a parameter computed from the
/// current running statistics, the conv bias absorbs (b - mean) * sf + beta, and the
/// Div / Add / BN (or BnFoldCorrection) nodes go.
void finishBnFold(Graph& g, const std::vector<ConvBnFold>& folds);

/// Folds a BatchNormalization that follows a Conv whose weight is fake-quantized (no-fold
/// training): W' = W * s and the weight quantizer's scale becomes scale * |s| (exact for
/// symmetric per-channel grids: the integer codes only change sign where s < 0); other grids get
/// min-max qparams of W'. Returns the number of BN nodes folded.
int64_t foldBatchNormsThroughQuantizers(Graph& g);

/// Erases nodes whose outputs are all unused and not graph outputs (repeatedly).
int64_t eraseDeadNodes(Graph& g);

}  // namespace gs::quant
