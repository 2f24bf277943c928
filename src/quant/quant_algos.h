// Registration of the quantization algorithms (ptq, simqat, lsq) in the CompAlgo registry.
#pragma once

namespace gs {

class AlgoRegistry;

/// Adds `ptq` (static / dynamic int8 post-training quantization), `simqat` (Golden Stick's
/// SimulatedQuantizationAwareTraining) and `lsq` (learned step size QAT) to `r`.
void registerQuantAlgos(AlgoRegistry& r);

}  // namespace gs
