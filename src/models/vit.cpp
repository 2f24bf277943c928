// Small pre-LN Vision Transformer builder (timm names) for 28x28 single-channel images.
#include <cmath>

#include "models/layers.h"
#include "models/zoo.h"
#include "support/error.h"

namespace gs::models {

std::unique_ptr<Graph> buildViT(const ViTConfig& c, uint64_t seed) {
  GS_CHECK(c.patch > 0 && 28 % c.patch == 0, "vit: patch must divide 28, got ", c.patch);
  GS_CHECK(c.dim > 0 && c.heads > 0 && c.dim % c.heads == 0, "vit: dim (", c.dim,
           ") must be a positive multiple of heads (", c.heads, ")");
  GS_CHECK(c.layers > 0 && c.mlp_ratio > 0 && c.num_classes > 0,
           "vit: layers, mlp_ratio and num_classes must be positive");
  auto g = std::make_unique<Graph>();
  g->name = "vit";
  LayerBuilder L(*g, seed);
  GraphBuilder& b = L.b();
  const int64_t D = c.dim, H = c.heads, hd = D / H, P = (28 / c.patch) * (28 / c.patch);
  Value* x = L.imageInput(28, 28, c.norm);
  {
    auto s = b.scope("patch_embed");
    x = L.conv(x, 1, D, c.patch, c.patch, 0, 1, true, "proj");  // [N, D, g, g]
    x = b.reshape(x, {0, D, P}, "flatten");
    x = b.transpose(x, {0, 2, 1}, "transpose");  // [N, P, D]
  }
  x = b.add(x, b.param("pos_embed", L.normal({1, P, D}, 0.02)), "pos_add");
  for (int64_t i = 0; i < c.layers; ++i) {
    auto s = b.scope("blocks." + std::to_string(i));
    Value* h = L.layerNorm(x, D, "norm1");
    {
      auto sa = b.scope("attn");
      auto heads = [&](const std::string& n) {
        Value* z = L.dense(h, D, D, true, n);
        z = b.reshape(z, {0, 0, H, hd}, n + ".reshape");
        return b.transpose(z, {0, 2, 1, 3}, n + ".transpose");  // [N, H, P, hd]
      };
      Value* q = heads("q");
      Value* k = heads("k");
      Value* v = heads("v");
      Value* y = L.attention(q, k, v, nullptr, hd);
      y = b.reshape(b.transpose(y, {0, 2, 1, 3}, "merge.transpose"), {0, 0, D}, "merge.reshape");
      h = L.dense(y, D, D, true, "proj");
    }
    x = b.add(x, h, "residual1");
    h = L.layerNorm(x, D, "norm2");
    h = L.dense(h, D, D * c.mlp_ratio, true, "mlp.fc1");
    h = L.gelu(h, "mlp.act");
    h = L.dense(h, D * c.mlp_ratio, D, true, "mlp.fc2");
    x = b.add(x, h, "residual2");
  }
  x = L.layerNorm(x, D, "norm");
  x = b.op1("ReduceMean", {x}, {{"axes", std::vector<int64_t>{1}}, {"keepdims", int64_t{0}}},
            "pool");  // mean over tokens: [N, D]
  L.output(L.linear(x, D, c.num_classes, "head"), "logits", {Dim("N"), c.num_classes});
  return g;
}

}  // namespace gs::models
