// GPTQ-layout checkpoint export of LLM PTQ results (see gptq_export.h).
#include "llm/gptq_export.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <set>

#include "llm/decoder.h"
#include "llm/hf_llama.h"
#include "support/error.h"
#include "support/file_util.h"

namespace gs::llm {

namespace fs = std::filesystem;

gptq::GptqLinear toGptqLinear(const QuantizedWeight& w) {
  const int bits = w.spec.bits;
  GS_CHECK(bits == 2 || bits == 4 || bits == 8, "GPTQ checkpoints store 2, 4 or 8-bit weights, not ",
           bits, "-bit (use the ONNX output for int3)");
  const int64_t out = w.q.size(0), in = w.q.size(1), per = 32 / bits;
  GS_CHECK(out % per == 0 && in % per == 0, "GPTQ packing of ", bits, "-bit weights needs in (",
           in, ") and out (", out, ") features that are multiples of ", per);
  gptq::GptqLinear l;
  l.bits = bits;
  l.group_size = w.spec.group_size > 0 ? w.spec.group_size : -1;
  l.qweight = gptq::packQweight(w.q.to(at::kLong).t().contiguous(), bits);
  l.qzeros = gptq::packQzeros(at::round(w.zero).to(at::kLong).t().contiguous(), bits);
  l.scales = w.scale.to(at::kFloat).t().to(at::kHalf).contiguous();
  l.g_idx = w.g_idx.to(at::kInt).contiguous();
  return l;
}

void checkGptqExportable(const PtqConfig& r) {
  GS_CHECK(r.act_bits == 0 && r.kv_bits == 0,
           "GPTQ checkpoints are weight-only: act_dtype and kvcache_dtype must be none (use the "
           "ONNX output for W8A8 / KV-cache int8)");
  GS_CHECK(r.weight_bits == 2 || r.weight_bits == 4 || r.weight_bits == 8,
           "GPTQ checkpoints store 2, 4 or 8-bit weights, not weight_dtype int", r.weight_bits,
           " (use the ONNX output)");
  GS_CHECK(r.group_size >= 0, "GPTQ checkpoints need per-group or per-channel weights, not "
           "per_tensor");
}

std::vector<std::string> writeGptqCheckpoint(const std::string& dir, const Graph& g,
                                             const models::LlamaConfig& c,
                                             const std::map<std::string, QuantizedWeight>& weights,
                                             const PtqConfig& recipe) {
  checkGptqExportable(recipe);
  const WeightQuantSpec base{recipe.weight_bits, recipe.group_size, recipe.weight_symmetric};
  std::map<std::string, gptq::GptqLinear> layers;
  std::set<std::string> quantized_params;
  std::map<std::string, std::string> weight_of;  // linear node name -> its weight parameter
  for (const LinearRef& l : findLinears(g)) weight_of[l.name()] = l.weight->name();
  const std::vector<std::string> hf_names = hfLlamaTensorNames(c);
  const std::set<std::string> hf_set(hf_names.begin(), hf_names.end());
  for (const auto& [name, qw] : weights) {
    const WeightQuantSpec& s = qw.spec;
    GS_CHECK(s.bits == base.bits && s.group_size == base.group_size, "GPTQ checkpoints have one "
             "bit width and group size for every layer: '", name, "' is ", s.describe(),
             ", the recipe ", base.describe());
    // A linear still in float form names its weight; one already lowered by the driver
    // (PipelineOptions::pack_weights) has lost it: HF graphs name the node after the weight.
    auto it = weight_of.find(name);
    std::string prefix = it != weight_of.end() ? it->second : name + ".weight";
    GS_CHECK(prefix.size() > 7 && prefix.compare(prefix.size() - 7, 7, ".weight") == 0 &&
                 hf_set.count(prefix),
             "GPTQ export: linear '", name, "' has weight '", prefix,
             "', not a Hugging Face '<layer>.weight' name of this config");
    quantized_params.insert(prefix);
    prefix.resize(prefix.size() - 7);
    layers[prefix] = toGptqLinear(qw);
  }
  GS_CHECK(!layers.empty(), "GPTQ export: no quantized linear layer");
  std::map<std::string, at::Tensor> extra;
  for (const std::string& n : hf_names) {
    if (quantized_params.count(n)) continue;
    const Value* v = g.findValue(n);
    GS_CHECK(v && v->isParam(), "GPTQ export: the graph has no parameter '", n, "'");
    extra[n] = v->data().to(at::kFloat).contiguous();
  }
  fs::create_directories(dir);
  const std::string st = (fs::path(dir) / "model.safetensors").string();
  const std::string qc = (fs::path(dir) / "quantize_config.json").string();
  const std::string cj = (fs::path(dir) / "config.json").string();
  gptq::writeGptqSafetensors(st, layers, extra);
  gptq::QuantizeConfig q;
  q.bits = base.bits;
  q.group_size = base.group_size > 0 ? base.group_size : -1;
  q.sym = base.symmetric;
  q.desc_act = recipe.act_order;
  q.static_groups = recipe.static_groups;
  q.damp_percent = recipe.damp_percent;
  gptq::writeQuantizeConfig(qc, q);
  nlohmann::json hf = llamaConfigToHf(c, "float32");
  hf["quantization_config"] = nlohmann::json::parse(readFile(qc));
  writeFileAtomic(cj, hf.dump(2) + "\n");
  return {cj, qc, st};
}

}  // namespace gs::llm
