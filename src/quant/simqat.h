// SimQAT's BatchNorm handling (Golden Stick SimulatedQuantizationAwareTraining): one-conv BN
// folding for training, and BN folding of trained fake-quant graphs for deployment.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "quant/quantizer.h"

namespace gs::quant {

/// The BatchNormalization node folded into `conv` by foldBatchNorms (inference form, sole use of
/// the conv output), or nullptr.
Node* foldableBnAfter(const Node& conv);

/// A Conv rewritten for one-conv BN-fold training (Golden Stick's Conv2dBnFoldQuantOneConv).
struct OneConvFold {
  std::string conv;       ///< the Conv node
  std::string bn;         ///< its BatchNormalization node (kept: batch statistics in training)
  Value* weight = nullptr;        ///< the original weight parameter W
  Value* folded_weight = nullptr; ///< W * sf, sf = gamma / sqrt(running_var + eps) (computed)
  Value* bias = nullptr;          ///< original conv bias (nullptr if none)
};

/// Rewrites each Conv of `convs` that has a foldable BN:
///   Conv(x, W, b) -> BN  =>  Conv(x, W * sf) -> Div(sf) [-> Add(b)] -> BN,
/// sf = gamma / sqrt(var + eps) computed by graph ops from the BN parameters, so the weight
/// quantizer (inserted afterwards on input 1) sees the folded weight while BN keeps using batch
/// statistics in train mode; in eval mode the result equals Conv(x, W*sf) + (b - mean)*sf + beta.
/// Returns one record per rewritten conv.
std::vector<OneConvFold> insertOneConvFold(Graph& g, const std::vector<std::string>& convs);

/// Lowers one-conv folds for deployment: the folded weight becomes a parameter computed from the
/// current statistics, the conv bias absorbs (b - mean) * sf + beta, the Div / Add / BN nodes go.
void finishOneConvFold(Graph& g, const std::vector<OneConvFold>& folds);

/// Folds a BatchNormalization that follows a Conv whose weight is fake-quantized (no-fold
/// training): W' = W * s and the weight quantizer's scale becomes scale * |s| (exact for
/// symmetric per-channel grids: the integer codes only change sign where s < 0); other grids get
/// min-max qparams of W'. Returns the number of BN nodes folded.
int64_t foldBatchNormsThroughQuantizers(Graph& g);

/// Erases nodes whose outputs are all unused and not graph outputs (repeatedly).
int64_t eraseDeadNodes(Graph& g);

}  // namespace gs::quant
