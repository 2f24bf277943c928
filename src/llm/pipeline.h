// Sequential block-by-block PTQ driver for decoder LMs: calibration tokens go through the
// embedding, then block i is calibrated, transformed (SmoothQuant / AWQ scales folded), quantized
// (RTN / GPTQ) and re-run to produce the inputs of block i+1.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "llm/ptq_config.h"
#include "llm/quantizer.h"

namespace gs::llm {

/// What happened to one linear layer.
struct LayerReport {
  std::string name;
  std::string scheme;   ///< "W4 g128 asym" or "float"
  std::string method;   ///< "RTN", "GPTQ", "AWQ+RTN", "SQ+RTN", ...
  std::string fold;     ///< where outlier scales were folded ("norm '...'", "linear '...'", "")
  /// Mean squared output error per token, mean_x ||W x - Q(W) x||^2 over calibration inputs of
  /// this layer (exactly from its Hessian, or on sampled calibration rows with
  /// PtqConfig::error_rows), for plain RTN and for the method used; -1 when not measured.
  double err_rtn = -1, err = -1;
  double seconds = 0;
};

/// Result of quantizeDecoder.
struct PtqResult {
  std::vector<LayerReport> layers;
  /// Quantized weights by linear node name (codes + scales, for export).
  std::map<std::string, QuantizedWeight> weights;
  /// Static activation scales by linear node name (W8A8 per-tensor) and KV scales by value name.
  std::map<std::string, float> act_scales;
  double seconds = 0;
  int64_t peak_rss_kb = 0;  ///< VmHWM of the process after quantization
  int64_t blocks = 0;
};

/// Options for the driver beyond the recipe.
struct PipelineOptions {
  std::ostream* progress = nullptr;  ///< per-block progress lines if set
  /// Called after every block with (blocks done, total blocks, calibration tokens per block,
  /// status "model.layers.3 (7 linears) | err ... | RSS 261 MB") — e.g. to drive a Progress bar.
  std::function<void(int64_t done, int64_t total, int64_t tokens, const std::string& status)>
      on_block;
  /// JSON file caching searched hyper-parameters (AWQ / SmoothQuant scales, activation and KV
  /// scales) and, in "<cache>.gptq.safetensors", GPTQ codes. Reused when the recipe matches.
  std::string cache_path;
  /// Export flows that only need the codes (PtqResult::weights): once block i has produced block
  /// i+1's inputs, its quantized linear weights in the graph are replaced by zero-stride
  /// placeholders of the same shape (no memory), so the process holds one block's float weights
  /// at a time instead of accumulating a dequantized float model. The graph can then no longer
  /// be run.
  bool release_weights = false;
  /// Keeps the graph runnable without a float copy of the quantized model: once block i has
  /// produced block i+1's inputs (computed with its dequantized float weights, so the codes of
  /// later blocks are those of the float flow), its quantized linears are lowered in place
  /// (lowerQuantizedLinears: MatMulNBits with packed 2/4/8-bit codes, uint8 codes + standard-op
  /// dequantization, or int8 DequantizeLinear for W8A8) and the float weights are dropped. The
  /// result computes the quantized function up to float rounding; convert() has nothing left to
  /// lower for these layers. What `gstick compress` (the llm_ptq CompAlgo) uses.
  bool pack_weights = false;
  /// With pack_weights: whether PtqResult::weights keeps the integer codes of the packed layers.
  /// They duplicate the packed graph weights (uint8 codes, 1 byte per weight, next to the 0.5 byte
  /// of int4 MatMulNBits) and accumulate over the blocks; an ONNX export of the packed graph does
  /// not need them (a GPTQ-layout checkpoint does). The reports are kept either way.
  bool keep_codes = true;
  /// Called when the driver enters a phase: (block, phase) with block -1 and phase "prefix" for
  /// the embedding / rotary / mask subgraph, then per block "calibrate" (float forward +
  /// statistics), "scales" (AWQ / SmoothQuant), "quantize" (RTN / GPTQ), "propagate" (quantized
  /// forward to the next block's inputs), "release" (dropping / packing the float weights), and
  /// (nblocks, "end") at the end. For time and memory breakdowns (e.g. peak RSS per phase).
  std::function<void(int64_t block, const std::string& phase)> on_phase;
};

/// Quantizes decoder graph `g` in place following `cfg`. `calib` holds int64 token ids
/// [samples, T]. Blocks are found by name scope (findDecoderBlocks); nodes outside blocks
/// (embedding, final norm, lm_head) stay float. Weight-only results are stored as fake-quantized
/// float weights in the graph (the function the quantized model computes) plus the codes in
/// PtqResult::weights; activation and KV-cache quantization insert fake-quant / QDQ nodes in the
/// block scopes. Only one block's calibration activations are alive at a time. With
/// PipelineOptions::release_weights / pack_weights the process holds one block's float weights
/// at a time: mmapped checkpoint weights (loadHfLlama) are read when their block is processed
/// and their pages leave RSS when replaced (SafetensorsFile drops released views), and freed heap
/// memory is returned to the OS after every block (malloc_trim).
PtqResult quantizeDecoder(Graph& g, const at::Tensor& calib, const PtqConfig& cfg,
                          const PipelineOptions& opts = {});

/// Converts the float16 / bfloat16 parameters the nodes read (loadHfLlama with keep_dtype binds
/// them as views of the checkpoint) to float32 in place, and returns what they held before, so a
/// caller can bind the compact tensors back. quantizeDecoder calls it per block, and on the whole
/// graph at its end; call it on g.nodes() before running a graph loaded that way otherwise.
std::vector<std::pair<Value*, at::Tensor>> floatParams(const std::vector<Node*>& nodes);

/// Peak resident set size of this process (VmHWM, kB), or -1 where /proc is unavailable.
int64_t peakRssKb();
/// Current resident set size (VmRSS, kB), or -1.
int64_t currentRssKb();

/// Calibration set from a token stream: `samples` windows of `seq` tokens at evenly spaced
/// offsets, as int64 [samples, seq]. Throws gs::Error if the stream is shorter than seq.
at::Tensor calibrationWindows(const at::Tensor& tokens, int64_t samples, int64_t seq);

}  // namespace gs::llm
