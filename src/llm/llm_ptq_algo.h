// Access to what the `llm_ptq` CompAlgo entry (and its presets rtn / gptq / awq / smoothquant)
// computed, for exporters that need the integer codes (e.g. GPTQ-layout safetensors).
#pragma once
#include "algo/comp_algo.h"
#include "llm/pipeline.h"
#include "llm/ptq_config.h"

namespace gs {

/// The PTQ result (per-layer reports and quantized weights) of an `llm_ptq`-family algorithm
/// after apply(); nullptr if `a` is not one. Empty before apply().
const llm::PtqResult* llmPtqResult(const CompAlgo& a);
/// The recipe of an `llm_ptq`-family algorithm: from its config, and after apply() with the
/// per-layer policies it resolved; nullptr if `a` is not one.
const llm::PtqConfig* llmPtqRecipe(const CompAlgo& a);
/// Whether apply() keeps the integer codes in llmPtqResult(a)->weights (default true; needed for
/// a GPTQ-layout checkpoint). apply() already lowers every quantized layer (packed codes in the
/// graph), so an ONNX export does not need them: without them the process holds one byte per
/// quantized weight less, accumulated over the blocks. Returns false if `a` is not an
/// `llm_ptq`-family algorithm.
bool llmPtqKeepCodes(CompAlgo& a, bool keep);

}  // namespace gs
