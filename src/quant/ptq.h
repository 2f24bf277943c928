// Static / dynamic post-training quantization: quantizer insertion, calibration with observers,
// weight qparams and bias correction.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "quant/observer.h"
#include "quant/quantizer.h"

namespace gs::quant {

/// Options of ptqQuantize.
struct PtqOptions {
  ObserverOptions observer;     ///< settings of the calibration observers
  bool fold_bn = true;          ///< fold Conv -> BatchNormalization before quantizing
  bool bias_correction = true;  ///< subtract E[(Wq - W) x] from Conv / Gemm biases
  /// Quantize layer outputs and residual Add inputs too (InsertOptions::quantize_outputs).
  bool quantize_outputs = true;
  bool verbose = false;
};

/// Calibration batch i (0 <= i < num_batches): the graph's inputs, in graph-input order.
using BatchFn = std::function<std::vector<at::Tensor>(int64_t i)>;

/// What calibration did.
struct PtqReport {
  int64_t batches = 0;
  double calibration_seconds = 0;  ///< running the graph and observers
  double total_seconds = 0;
  int64_t bn_folded = 0;
  int64_t quantizers = 0;
  int64_t bias_corrected = 0;
};

/// Quantizes `g` in place: folds BN (optional), inserts Static (or Dynamic activation)
/// quantizers for `layers`, runs `num_batches` calibration batches through the fp32 graph
/// (quantizers disabled) feeding each activation quantizer's observer (`act_observer` of its
/// first layer), sets activation and weight qparams (weights from `weight_observer` on the
/// weight tensor), then applies bias correction with the calibration means of each layer's
/// input. Dynamic activation quantizers need no calibration (num_batches may be 0 when no layer
/// has a Static activation quantizer and bias correction is off). Returns the quantizers.
std::vector<Quantizer> ptqQuantize(Graph& g, const std::vector<LayerQuantConfig>& layers,
                                   const PtqOptions& opts, const BatchFn& batch,
                                   int64_t num_batches, PtqReport* report = nullptr);

}  // namespace gs::quant
