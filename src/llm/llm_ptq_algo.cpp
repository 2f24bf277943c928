// `llm_ptq`: the CompAlgo entry for decoder-LLM post-training quantization (RTN / GPTQ / AWQ /
// SmoothQuant / KV-cache int8, block by block) with deployable lowering (MatMulNBits / QDQ).
#include <iostream>
#include <regex>

#include "algo/registry.h"
#include "data/text_corpus.h"
#include "data/tokenizer.h"
#include "llm/decoder.h"
#include "llm/lower.h"
#include "llm/pipeline.h"
#include "llm/ptq_config.h"
#include "support/error.h"

namespace gs {

namespace {

int dtypeBits(const std::string& s) { return s == "none" ? 0 : std::stoi(s.substr(3)); }

llm::ActGranularity gran(const std::string& s) {
  return s == "per_tensor"    ? llm::ActGranularity::PerTensor
         : s == "per_channel" ? llm::ActGranularity::PerChannel
                              : llm::ActGranularity::PerToken;
}

/// The recipe from a validated config (layer policies are added in apply from the resolved
/// layers).
llm::PtqConfig recipe(const Config& c) {
  llm::PtqConfig p;
  p.weight_bits = dtypeBits(c.getString("weight_dtype"));
  p.group_size = c.getInt("group_size");
  p.weight_symmetric = c.getBool("weight_symmetric");
  p.act_bits = dtypeBits(c.getString("act_dtype"));
  p.act_granularity = gran(c.getString("act_granularity"));
  p.kv_bits = dtypeBits(c.getString("kvcache_dtype"));
  p.kv_granularity = gran(c.getString("kvcache_granularity"));
  const std::string o = c.getString("outlier_suppression");
  p.outlier = o == "smooth" ? llm::OutlierSuppression::Smooth
              : o == "awq"  ? llm::OutlierSuppression::Awq
                            : llm::OutlierSuppression::None;
  p.smooth_alpha = c.getFloat("smooth_alpha");
  p.awq_grid = c.getInt("awq_grid");
  p.awq_duo_scaling = c.getBool("awq_duo_scaling");
  p.awq_clip = c.getBool("awq_clip");
  p.recovery = c.getString("precision_recovery") == "gptq" ? llm::PrecisionRecovery::Gptq
                                                           : llm::PrecisionRecovery::None;
  p.damp_percent = c.getFloat("damp_percent");
  p.gptq_block_size = c.getInt("gptq_block_size");
  p.act_order = c.getBool("act_order");
  p.static_groups = c.getBool("static_groups");
  p.calib_batch = c.getInt("calib_batch");
  return p;
}

std::string regexEscape(const std::string& s) {
  static const std::regex special(R"([.^$|()\[\]{}*+?\\])");
  return std::regex_replace(s, special, R"(\$&)");
}

class LlmPtqAlgo : public CompAlgo {
 public:
  using CompAlgo::CompAlgo;
  std::string name() const override { return "llm_ptq"; }
  /// HF-style linears are MatMul(x, Transpose(W)): the layer node holding the weight is the
  /// Transpose ("<layer>.weight_t"); Gemm / MatMul with a direct weight are layers themselves.
  std::set<std::string> layerOps() const override { return {"MatMul", "Gemm", "Transpose"}; }

  const llm::PtqResult& result() const { return result_; }

 protected:
  Graph applyImpl(Graph g) override {
    llm::PtqConfig p = recipe(config());
    // Layer records -> per-linear policies (exact-name patterns) and blacklist.
    for (const llm::LinearRef& l : llm::findLinears(g)) {
      const LayerRecord* rec = nullptr;
      Node* tr = l.node->input(1) ? l.node->input(1)->producer() : nullptr;
      for (const LayerRecord& r : layers())
        if (r.name == l.name() || (tr && r.name == tr->name())) rec = &r;
      if (!rec || rec->policy.skip) {
        p.blacklist.push_back(l.name());
        continue;
      }
      const Config& s = rec->policy.settings;
      llm::LayerPolicy lp;
      lp.pattern = "^" + regexEscape(l.name()) + "$";
      lp.weight_bits = dtypeBits(s.getString("weight_dtype"));
      lp.group_size = s.getInt("group_size");
      if (*lp.weight_bits == 0) {
        lp.skip = true;
        lp.weight_bits.reset();
      }
      p.policies.push_back(lp);
    }
    p.validate();
    const TextCorpus corpus = openTextCorpus(config().getString("calib_data"));
    at::Tensor calib = llm::calibrationWindows(
        ByteTokenizer::encode(corpus.split(TextSplit::Train)), config().getInt("calib_samples"),
        config().getInt("calib_seq"));
    llm::PipelineOptions o;
    o.progress = context().verbose ? &std::cerr : nullptr;
    o.cache_path = config().getString("cache_path");
    result_ = llm::quantizeDecoder(g, calib, p, o);
    recipe_ = p;
    return g;
  }

  Graph convertImpl(Graph g) override {
    lowering_ = llm::lowerQuantizedLinears(g, result_.weights, recipe_.act_bits == 8);
    return g;
  }

  std::string policyString(const LayerRecord& layer) const override {
    if (layer.policy.skip) return "skip";
    const Config& s = layer.policy.settings;
    llm::WeightQuantSpec w{dtypeBits(s.getString("weight_dtype")), s.getInt("group_size"),
                           config().getBool("weight_symmetric")};
    return w.bits ? w.describe() : "float";
  }

  void describeLayer(const Graph& g, const Node* node, const LayerRecord& layer,
                     SummaryRow& row) const override {
    CompAlgo::describeLayer(g, node, layer, row);
    std::string lin = layer.name;
    if (lin.size() > 9 && lin.compare(lin.size() - 9, 9, ".weight_t") == 0)
      lin = lin.substr(0, lin.size() - 9);
    for (const llm::LayerReport& r : result_.layers) {
      if (r.name != lin) continue;
      row.note = r.method + (r.fold.empty() ? "" : ", scales folded into " + r.fold);
      if (r.err >= 0) row.metrics["out_mse"] = r.err;
      if (r.err_rtn >= 0) row.metrics["out_mse_rtn"] = r.err_rtn;
    }
  }

  void describeSummary(SummaryTable& t) const override {
    (void)t;
  }

 private:
  llm::PtqResult result_;
  llm::PtqConfig recipe_;
  llm::LoweringStats lowering_;
};

}  // namespace

void registerLlmPtqAlgo(AlgoRegistry& r) {
  using F = FieldSpec;
  const std::vector<std::string> wd{"int8", "int4", "int3", "none"};
  r.add({"llm_ptq",
         "decoder-LLM PTQ block by block: RTN/GPTQ weights (int8/4/3, per channel/group), AWQ or "
         "SmoothQuant outlier suppression, W8A8, KV-cache int8; lowers to MatMulNBits / QDQ",
         {F::enumeration("weight_dtype", "int4", wd, "weight integer type").layer(),
          F::integer("group_size", 128, -1, 1 << 16,
                     "> 0: groups of input columns; 0: per output channel; -1: per tensor")
              .layer(),
          F::boolean("weight_symmetric", false, "symmetric weights (zero point 2^(bits-1))"),
          F::enumeration("act_dtype", "none", {"int8", "none"}, "activation type (W8A8 with int8)"),
          F::enumeration("act_granularity", "per_token", {"per_tensor", "per_token"},
                         "static per-tensor or dynamic per-token activation scales"),
          F::enumeration("kvcache_dtype", "none", {"int8", "none"}, "KV-cache fake-quant type"),
          F::enumeration("kvcache_granularity", "per_token", {"per_channel", "per_token"},
                         "static per-channel or dynamic per-token KV scales"),
          F::enumeration("outlier_suppression", "none", {"none", "smooth", "awq"},
                         "SmoothQuant (needs act int8) or AWQ (weight-only) scales"),
          F::real("smooth_alpha", 0.5, 0, 1, "SmoothQuant migration strength"),
          F::integer("awq_grid", 20, 1, 1000, "AWQ alpha grid points"),
          F::boolean("awq_duo_scaling", true, "AWQ scales from activations and weights"),
          F::boolean("awq_clip", true, "AWQ per-group clipping search"),
          F::enumeration("precision_recovery", "none", {"none", "gptq"}, "GPTQ error compensation"),
          F::real("damp_percent", 0.01, 0, 0.999, "GPTQ dampening (fraction of mean diag H)"),
          F::integer("gptq_block_size", 128, 1, 1 << 16, "GPTQ lazy-batch columns"),
          F::boolean("act_order", false, "GPTQ desc_act column order"),
          F::boolean("static_groups", false, "GPTQ act-order with groups fixed up front"),
          F::string("calib_data", "text", "calibration text: 'text' (built-in corpus) or text:FILE"),
          F::integer("calib_samples", 32, 1, 1 << 20, "calibration windows"),
          F::integer("calib_seq", 256, 2, 1 << 20, "tokens per calibration window"),
          F::integer("calib_batch", 4, 1, 1 << 20, "windows per forward pass"),
          F::string("cache_path", "", "JSON cache of searched scales / GPTQ codes (reused)")},
         algoFactory<LlmPtqAlgo>(),
         [](const Config& c) { recipe(c).validate(); }});
}

}  // namespace gs
