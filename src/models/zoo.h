// Model zoo: seeded IR builders (LeNet-5, ResNet-20, MobileNetV2, ViT, Llama) and a name registry.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace gs::models {

// Image classifiers share one interface: input "input" f32[N,1,28,28] holding raw pixels in
// [0,1]; the graph's first nodes ("normalize.sub", "normalize.div") apply (x - mean) / std;
// output "logits" f32[N,num_classes]. Parameters use torchvision's names; BatchNorm running
// statistics are frozen (non-trainable) parameters, everything else is trainable.

/// Fashion-MNIST normalisation constants baked into every image classifier.
struct ImageNorm {
  float mean = 0.2860f;
  float std = 0.3530f;
};

/// LeNet-5: conv5x5(6, pad 2)-relu-maxpool2-conv5x5(16)-relu-maxpool2-fc120-relu-fc84-relu-fc10.
struct LeNetConfig {
  int64_t num_classes = 10;
  ImageNorm norm;
};
std::unique_ptr<Graph> buildLeNet5(const LeNetConfig& cfg = {}, uint64_t seed = 0);

/// CIFAR-style ResNet-20 (3 stages x 3 BasicBlocks, 16/32/64 channels, 3x3 stem with stride 1,
/// option-B 1x1 conv + BN projection shortcuts where the shape changes, global average pool, FC).
struct ResNetConfig {
  int64_t num_classes = 10;
  int64_t blocks_per_stage = 3;  // 3 -> ResNet-20 (6n+2 layers)
  int64_t base_width = 16;
  ImageNorm norm;
};
std::unique_ptr<Graph> buildResNet20(const ResNetConfig& cfg = {}, uint64_t seed = 0);

/// MobileNetV2 (torchvision's layer table, _make_divisible(c * width, 8) channel rounding, last
/// conv max(1.0, width) * 1280) adapted to 28x28: the stem has stride 1 instead of 2, so the final
/// feature map is 2x2 (total stride 16). No classifier dropout.
struct MobileNetV2Config {
  double width = 0.5;
  int64_t num_classes = 10;
  ImageNorm norm;
};
std::unique_ptr<Graph> buildMobileNetV2(const MobileNetV2Config& cfg = {}, uint64_t seed = 0);
/// torchvision's _make_divisible: round to the nearest multiple of `divisor` (at least
/// `divisor`), never going below 90% of v.
int64_t makeDivisible(double v, int64_t divisor = 8);

/// Small pre-LN Vision Transformer: patch embedding as Conv(k = stride = patch), learned position
/// embedding, `layers` blocks (LayerNorm, multi-head attention, LayerNorm, erf-GELU MLP), final
/// LayerNorm, mean pooling over tokens, linear head. Names follow timm (patch_embed.proj,
/// blocks.{i}.attn.q, ..., norm, head).
struct ViTConfig {
  int64_t patch = 7;
  int64_t dim = 64;
  int64_t layers = 4;
  int64_t heads = 4;
  int64_t mlp_ratio = 4;
  int64_t num_classes = 10;
  ImageNorm norm;
};
std::unique_ptr<Graph> buildViT(const ViTConfig& cfg = {}, uint64_t seed = 0);

/// Llama-style decoder LM with Hugging Face tensor names. Input "input_ids" i64[N,T] (T <=
/// max_seq), output "logits" f32[N,T,vocab]. Linear weights are stored as HF does ([out, in]) and
/// applied as MatMul(x, Transpose(W)); the rotary cos/sin tables ("model.rotary_emb.{cos,sin}",
/// [max_seq, head_dim]) are frozen parameters sliced to T; the additive causal mask (node
/// "model.causal_mask": 0 on/below the diagonal, -1e9 above) is generated for T by Expand + Trilu.
struct LlamaConfig {
  int64_t vocab = 256;
  int64_t dim = 256;
  int64_t layers = 8;
  int64_t heads = 8;
  int64_t kv_heads = 4;
  int64_t ffn = 688;
  int64_t max_seq = 256;
  double rope_theta = 10000.0;
  double rms_eps = 1e-5;
  bool tie_embeddings = false;  // lm_head reuses model.embed_tokens.weight when true
  // Checkpoint loaders: random weights become zero-stride placeholders (no memory), bound later.
  bool placeholder_weights = false;
  int64_t headDim() const { return dim / heads; }
  /// Throws gs::Error for non-positive sizes, dim % heads != 0, heads % kv_heads != 0, an odd
  /// head_dim, rms_eps outside (0, 1), rope_theta outside (1, 1e15], or sizes beyond what fits
  /// in memory.
  void validate() const;
};
std::unique_ptr<Graph> buildLlama(const LlamaConfig& cfg = {}, uint64_t seed = 0);
/// The longest sequence a zoo / HF Llama graph accepts (rows of model.rotary_emb.cos), 0 if `g`
/// is not one.
int64_t llamaMaxSeq(const Graph& g);

// ---------------------------------------------------------------- registry

/// Named numeric options of a model ("width" -> 0.5); integers and booleans are stored as doubles.
using ModelOptions = std::map<std::string, double>;

/// One zoo entry: name, one-line description, default options (every accepted key) and builder.
struct ModelInfo {
  std::string name;
  std::string description;
  ModelOptions defaults;
  /// Builds the model from a full option map (defaults overlaid with the caller's values).
  std::function<std::unique_ptr<Graph>(const ModelOptions&, uint64_t seed)> build;
};

/// Every zoo model, in a fixed order (lenet5, resnet20, mobilenetv2, vit-tiny, llama-tiny).
const std::vector<ModelInfo>& modelZoo();
/// The entry called `name`, or nullptr.
const ModelInfo* findModel(const std::string& name);
/// Builds `name` with `overrides` on top of its defaults. Throws gs::Error for an unknown model
/// (listing the known ones) or an unknown / out-of-range option (listing the accepted keys).
std::unique_ptr<Graph> buildModel(const std::string& name, const ModelOptions& overrides = {},
                                  uint64_t seed = 0);
/// Number of elements over parameters, trainable only or all.
int64_t countParams(const Graph& g, bool trainable_only = true);

}  // namespace gs::models
