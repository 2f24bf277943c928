// Model zoo registry: name -> description, default options and builder.
#include "models/zoo.h"

#include <cmath>
#include <sstream>

#include "support/error.h"

namespace gs::models {

namespace {

/// Typed view over a full option map; every read key must exist (defaults were overlaid).
struct Opts {
  const std::string& model;
  const ModelOptions& m;
  double num(const std::string& k) const { return m.at(k); }
  int64_t integer(const std::string& k) const {
    double v = m.at(k);
    GS_CHECK(std::floor(v) == v, "model '", model, "': option '", k,
             "' must be an integer, got ", v);
    return static_cast<int64_t>(v);
  }
  ImageNorm norm() const {
    return {static_cast<float>(num("norm_mean")), static_cast<float>(num("norm_std"))};
  }
};

ModelOptions withNorm(ModelOptions o) {
  ImageNorm n;
  o["norm_mean"] = n.mean;
  o["norm_std"] = n.std;
  return o;
}

std::vector<ModelInfo> makeZoo() {
  std::vector<ModelInfo> z;
  z.push_back({"lenet5",
               "LeNet-5 (2 conv + 3 FC, ReLU, max pool), f32[N,1,28,28] pixels in [0,1] -> "
               "logits [N,classes]; ~61.7k params",
               withNorm({{"num_classes", 10}}), [](const ModelOptions& m, uint64_t seed) {
                 Opts o{"lenet5", m};
                 return buildLeNet5({o.integer("num_classes"), o.norm()}, seed);
               }});
  z.push_back({"resnet20",
               "CIFAR-style ResNet-20 (3x3 BasicBlocks, 16/32/64 ch, 1x1 projection "
               "shortcuts), f32[N,1,28,28] -> [N,classes]; ~0.27M params",
               withNorm({{"num_classes", 10}, {"blocks_per_stage", 3}, {"base_width", 16}}),
               [](const ModelOptions& m, uint64_t seed) {
                 Opts o{"resnet20", m};
                 return buildResNet20({o.integer("num_classes"), o.integer("blocks_per_stage"),
                                       o.integer("base_width"), o.norm()},
                                      seed);
               }});
  z.push_back({"mobilenetv2",
               "MobileNetV2 (torchvision layout, width 0.5, stem stride 1 for 28x28, ReLU6 as "
               "Clip), f32[N,1,28,28] -> [N,classes]; ~0.7M params",
               withNorm({{"num_classes", 10}, {"width", 0.5}}),
               [](const ModelOptions& m, uint64_t seed) {
                 Opts o{"mobilenetv2", m};
                 return buildMobileNetV2({o.num("width"), o.integer("num_classes"), o.norm()},
                                         seed);
               }});
  z.push_back({"vit-tiny",
               "pre-LN ViT (patch 7, dim 64, 4 layers, 4 heads, erf-GELU MLP x4, mean pool), "
               "f32[N,1,28,28] -> [N,classes]; ~0.2M params",
               withNorm({{"num_classes", 10},
                         {"patch", 7},
                         {"dim", 64},
                         {"layers", 4},
                         {"heads", 4},
                         {"mlp_ratio", 4}}),
               [](const ModelOptions& m, uint64_t seed) {
                 Opts o{"vit-tiny", m};
                 ViTConfig c;
                 c.patch = o.integer("patch");
                 c.dim = o.integer("dim");
                 c.layers = o.integer("layers");
                 c.heads = o.integer("heads");
                 c.mlp_ratio = o.integer("mlp_ratio");
                 c.num_classes = o.integer("num_classes");
                 c.norm = o.norm();
                 return buildViT(c, seed);
               }});
  LlamaConfig d;
  z.push_back({"llama-tiny",
               "Llama-style byte-level decoder (RMSNorm, RoPE, GQA 8/4 heads, SwiGLU, HF names), "
               "i64[N,T] token ids -> logits [N,T,vocab]; ~5.9M params",
               {{"vocab", d.vocab},
                {"dim", d.dim},
                {"layers", d.layers},
                {"heads", d.heads},
                {"kv_heads", d.kv_heads},
                {"ffn", d.ffn},
                {"max_seq", d.max_seq},
                {"rope_theta", d.rope_theta},
                {"rms_eps", d.rms_eps},
                {"tie_embeddings", d.tie_embeddings ? 1 : 0}},
               [](const ModelOptions& m, uint64_t seed) {
                 Opts o{"llama-tiny", m};
                 LlamaConfig c;
                 c.vocab = o.integer("vocab");
                 c.dim = o.integer("dim");
                 c.layers = o.integer("layers");
                 c.heads = o.integer("heads");
                 c.kv_heads = o.integer("kv_heads");
                 c.ffn = o.integer("ffn");
                 c.max_seq = o.integer("max_seq");
                 c.rope_theta = o.num("rope_theta");
                 c.rms_eps = o.num("rms_eps");
                 c.tie_embeddings = o.integer("tie_embeddings") != 0;
                 return buildLlama(c, seed);
               }});
  return z;
}

}  // namespace

const std::vector<ModelInfo>& modelZoo() {
  static const std::vector<ModelInfo> zoo = makeZoo();
  return zoo;
}

const ModelInfo* findModel(const std::string& name) {
  for (const auto& m : modelZoo())
    if (m.name == name) return &m;
  return nullptr;
}

std::unique_ptr<Graph> buildModel(const std::string& name, const ModelOptions& overrides,
                                  uint64_t seed) {
  const ModelInfo* info = findModel(name);
  if (!info) {
    std::ostringstream known;
    for (const auto& m : modelZoo()) known << (known.tellp() > 0 ? ", " : "") << m.name;
    GS_CHECK(false, "unknown model '", name, "' (known: ", known.str(), ")");
  }
  ModelOptions full = info->defaults;
  for (const auto& [k, v] : overrides) {
    if (!full.count(k)) {
      std::ostringstream keys;
      for (const auto& [dk, dv] : info->defaults) keys << (keys.tellp() > 0 ? ", " : "") << dk;
      GS_CHECK(false, "model '", name, "': unknown option '", k, "' (accepted: ", keys.str(), ")");
    }
    full[k] = v;
  }
  return info->build(full, seed);
}

int64_t countParams(const Graph& g, bool trainable_only) {
  int64_t n = 0;
  for (const Value* p : g.params())
    if (!trainable_only || p->trainable()) n += p->data().numel();
  return n;
}

}  // namespace gs::models
