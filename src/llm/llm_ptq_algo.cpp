// `llm_ptq`: the CompAlgo entry for decoder-LLM post-training quantization (RTN / GPTQ / AWQ /
// SmoothQuant / KV-cache int8, block by block) with deployable lowering (MatMulNBits / QDQ), and
// its presets `rtn`, `gptq`, `awq`, `smoothquant` (the same entry with other defaults).
#include "llm/llm_ptq_algo.h"

#include <iostream>
#include <regex>
#include <utility>

#include "algo/registry.h"
#include "data/text_corpus.h"
#include "data/text_dataset.h"
#include "data/tokenizer.h"
#include "llm/decoder.h"
#include "llm/lower.h"
#include "models/zoo.h"
#include "support/error.h"
#include "support/progress.h"

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
  if (const std::string clip = c.getString("awq_clip"); clip != "auto") p.awq_clip = clip == "true";
  p.awq_clip_grid = c.getInt("awq_clip_grid");
  p.awq_clip_refine = c.getInt("awq_clip_refine");
  p.awq_clip_qk = c.getBool("awq_clip_qk");
  p.awq_max_tokens = c.getInt("awq_max_tokens");
  p.recovery = c.getString("precision_recovery") == "gptq" ? llm::PrecisionRecovery::Gptq
                                                           : llm::PrecisionRecovery::None;
  p.damp_percent = c.getFloat("damp_percent");
  p.gptq_block_size = c.getInt("gptq_block_size");
  p.act_order = c.getBool("act_order");
  p.static_groups = c.getBool("static_groups");
  p.calib_batch = c.getInt("calib_batch");
  p.measure_error = c.getBool("measure_error");
  p.error_rows = c.getInt("error_rows");
  return p;
}

std::string regexEscape(const std::string& s) {
  static const std::regex special(R"([.^$|()\[\]{}*+?\\])");
  return std::regex_replace(s, special, R"(\$&)");
}

/// Calibration token stream: the text dataset given to the algorithm (`compress --data
/// text[:FILE][:SPLIT][:N]`), else the train split of the `calib_data` corpus.
at::Tensor calibrationStream(const AlgoContext& ctx, const Config& c, const std::string& algo) {
  if (ctx.calibration && ctx.calibration->dataset) {
    const Dataset& d = *ctx.calibration->dataset;
    const auto* ts = dynamic_cast<const TokenSequenceDataset*>(&d);
    GS_CHECK(ts, algo, " calibrates on text: give --data text[:FILE][:SPLIT][:N], not ",
             d.describe());
    return ts->tokens();
  }
  const TextCorpus corpus = openTextCorpus(c.getString("calib_data"));
  return ByteTokenizer::encode(corpus.split(TextSplit::Train));
}

/// Calibration windows [samples, seq] for `calib_samples` x `calib_seq` tokens on a model that
/// accepts `max_seq` positions (0: unknown). A window longer than the model accepts (zoo / HF
/// Llama graphs: max_seq rotary positions) is split into windows of the model's length, so the
/// token budget stays calib_samples x calib_seq, as AutoAWQ splits its concatenated samples into
/// blocks of the model's length: the budget, not the window count, is what AWQ's search needs
/// (docs/ptq.md, "Session 10").
std::pair<int64_t, int64_t> calibrationShape(int64_t samples, int64_t seq, int64_t max_seq) {
  if (max_seq <= 0 || seq <= max_seq) return {samples, seq};
  return {(samples * seq + max_seq - 1) / max_seq, max_seq};
}

/// calib_samples x calib_seq tokens are held at once (ids, then each block boundary's
/// activations): a budget beyond 2^26 tokens is a mistake, not a calibration set.
void checkCalibrationBudget(const Config& c) {
  const int64_t tokens = c.getInt("calib_samples") * c.getInt("calib_seq");
  GS_CHECK(tokens <= (int64_t{1} << 26), "calib_samples x calib_seq = ", tokens,
           " calibration tokens; at most 67108864 (2^26) are supported");
}

}  // namespace

class LlmPtqAlgo : public CompAlgo {
 public:
  LlmPtqAlgo(std::string name, const Config& c, const ConfigSchema& s)
      : CompAlgo(c, s), name_(std::move(name)), recipe_(recipe(c)) {}
  std::string name() const override { return name_; }
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
    const auto [samples, seq] =
        calibrationShape(config().getInt("calib_samples"), config().getInt("calib_seq"),
                         models::llamaMaxSeq(g));
    at::Tensor calib =
        llm::calibrationWindows(calibrationStream(context(), config(), name()), samples, seq);
    llm::PipelineOptions o;
    o.cache_path = config().getString("cache_path");
    // Finished blocks are lowered right away (packed codes, no float copy of the model): the
    // applied graph runs; convert() / the GPTQ export take any codes from result_.weights (kept
    // unless llmPtqKeepCodes(false)).
    o.pack_weights = true;
    o.keep_codes = keep_codes_;
    std::optional<Progress> bar;
    if (context().verbose) {
      ProgressOptions po;
      po.unit = "tok";
      po.logInterval = 0;  // plain mode: one line per block
      bar.emplace(name_ + " " + p.describe(),
                  static_cast<int64_t>(llm::findDecoderBlocks(g).size()), po);
      o.on_block = [&](int64_t done, int64_t, int64_t tokens, const std::string& status) {
        bar->update(done, done * tokens, status);
      };
    }
    result_ = llm::quantizeDecoder(g, calib, p, o);
    if (bar) {
      std::ostringstream st;
      st << calib.size(0) << " x " << calib.size(1) << " calibration tokens | peak RSS "
         << result_.peak_rss_kb / 1024 << " MB";
      bar->finish(st.str());
    }
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
  friend const llm::PtqResult* llmPtqResult(const CompAlgo& a);
  friend const llm::PtqConfig* llmPtqRecipe(const CompAlgo& a);
  friend bool llmPtqKeepCodes(CompAlgo& a, bool keep);
  std::string name_;
  bool keep_codes_ = true;
  llm::PtqResult result_;
  llm::PtqConfig recipe_;  ///< from the config; after apply() with the per-layer policies
  llm::LoweringStats lowering_;
};

const llm::PtqResult* llmPtqResult(const CompAlgo& a) {
  const auto* l = dynamic_cast<const LlmPtqAlgo*>(&a);
  return l ? &l->result_ : nullptr;
}

const llm::PtqConfig* llmPtqRecipe(const CompAlgo& a) {
  const auto* l = dynamic_cast<const LlmPtqAlgo*>(&a);
  return l ? &l->recipe_ : nullptr;
}

bool llmPtqKeepCodes(CompAlgo& a, bool keep) {
  auto* l = dynamic_cast<LlmPtqAlgo*>(&a);
  if (l) l->keep_codes_ = keep;
  return l != nullptr;
}

namespace {

/// The `llm_ptq` fields, with `defaults` (field -> JSON value) replacing the built-in defaults.
ConfigSchema llmPtqFields(const Json& defaults) {
  using F = FieldSpec;
  const std::vector<std::string> wd{"int8", "int4", "int3", "none"};
  ConfigSchema fields{F::enumeration("weight_dtype", "int4", wd, "weight integer type").layer(),
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
          F::enumeration("awq_clip", "auto", {"auto", "true", "false"},
                         "AWQ per-group clipping search; auto: on, off when GPTQ follows"),
          F::integer("awq_clip_grid", 20, 1, 1000,
                     "AWQ clip ratios 1 - k/awq_clip_grid down to 0.5, each end of a group's range"),
          F::integer("awq_clip_refine", 5, 1, 100,
                     "AWQ clip: second pass this many times finer around each best pair (1 = off)"),
          F::boolean("awq_clip_qk", true, "AWQ clipping of q_proj / k_proj too (AutoAWQ skips them)"),
          F::integer("awq_max_tokens", 65536, 1, 1 << 26,
                     "calibration tokens the AWQ scale search scores on (whole windows for the "
                     "attention / MLP regions; AutoAWQ scores all of its 128 x 512)"),
          F::enumeration("precision_recovery", "none", {"none", "gptq"}, "GPTQ error compensation"),
          F::real("damp_percent", 0.01, 0, 0.999, "GPTQ dampening (fraction of mean diag H)"),
          F::integer("gptq_block_size", 128, 1, 1 << 16, "GPTQ lazy-batch columns"),
          F::boolean("act_order", false, "GPTQ desc_act column order"),
          F::boolean("static_groups", false, "GPTQ act-order with groups fixed up front"),
          F::string("calib_data", "text", "calibration text: 'text' (built-in corpus) or text:FILE"),
          F::integer("calib_samples", 32, 1, 1 << 20, "calibration windows"),
          F::integer("calib_seq", 256, 2, 1 << 20,
                     "tokens per calibration window; a window longer than the model's context "
                     "is split into windows of the context's length (same token budget)"),
          F::integer("calib_batch", 4, 1, 1 << 20, "windows per forward pass"),
          F::boolean("measure_error", true,
                     "per-layer output error of the method and of plain RTN (summary columns "
                     "out_mse / out_mse_rtn)"),
          F::integer("error_rows", 1024, 0, 1 << 24,
                     "calibration rows per linear input the error is measured on (strided "
                     "subsample; 0: all, exactly, from each input's Hessian, which GPTQ then "
                     "cannot free early: more memory)"),
          F::string("cache_path", "", "JSON cache of searched scales / GPTQ codes (reused)")};
  for (FieldSpec& f : fields)
    if (defaults.contains(f.name)) f.defaultValue = defaults.at(f.name);
  return fields;
}

}  // namespace

void registerLlmPtqAlgo(AlgoRegistry& r) {
  struct Entry {
    const char* name;
    const char* description;
    Json defaults;
  };
  const std::vector<Entry> entries{
      {"llm_ptq",
       "decoder-LLM PTQ block by block: RTN/GPTQ weights (int8/4/3, per channel/group), AWQ or "
       "SmoothQuant outlier suppression, W8A8, KV-cache int8; lowers to MatMulNBits / QDQ",
       Json::object()},
      {"rtn", "preset of llm_ptq: weight-only round-to-nearest, W4 g128 asymmetric",
       Json::object()},
      {"gptq", "preset of llm_ptq: weight-only GPTQ, W4 g128 asymmetric (precision_recovery gptq)",
       {{"precision_recovery", "gptq"}}},
      {"awq",
       "preset of llm_ptq: weight-only AWQ scales + clipping, W4 g128 asymmetric, AutoAWQ's "
       "calibration (128 x 512 tokens, all scored by the scale search)",
       {{"outlier_suppression", "awq"}, {"calib_samples", 128}, {"calib_seq", 512}}},
      {"smoothquant",
       "preset of llm_ptq: SmoothQuant W8A8 (int8 per-channel weights, dynamic per-token int8 "
       "activations, alpha 0.5)",
       {{"weight_dtype", "int8"}, {"group_size", 0}, {"act_dtype", "int8"},
        {"outlier_suppression", "smooth"}}},
  };
  for (const Entry& e : entries) {
    const std::string name = e.name;
    r.add({name, e.description, llmPtqFields(e.defaults),
           [name](const Config& c, const ConfigSchema& s) {
             return std::make_unique<LlmPtqAlgo>(name, c, s);
           },
           [](const Config& c) {
             recipe(c).validate();
             checkCalibrationBudget(c);
           }});
  }
}

}  // namespace gs
