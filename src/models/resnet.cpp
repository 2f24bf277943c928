// CIFAR-style ResNet-20 builder (option-B projection shortcuts) for 28x28 single-channel images.
#include "models/layers.h"
#include "models/zoo.h"
#include "support/error.h"

namespace gs::models {

namespace {

/// torchvision-style BasicBlock `layer<s>.<b>`: conv1-bn1-relu1-conv2-bn2 (+ shortcut) -add-relu2;
/// the shortcut is downsample.0 (1x1 conv, stride) + downsample.1 (BN) when the shape changes.
Value* basicBlock(LayerBuilder& L, Value* x, int64_t cin, int64_t cout, int64_t stride) {
  GraphBuilder& b = L.b();
  Value* y = b.relu(L.bn(L.conv(x, cin, cout, 3, stride, 1, 1, false, "conv1"), cout, "bn1"),
                    "relu1");
  y = L.bn(L.conv(y, cout, cout, 3, 1, 1, 1, false, "conv2"), cout, "bn2");
  Value* sc = x;
  if (stride != 1 || cin != cout)
    sc = L.bn(L.conv(x, cin, cout, 1, stride, 0, 1, false, "downsample.0"), cout, "downsample.1");
  return b.relu(b.add(y, sc, "add"), "relu2");
}

}  // namespace

std::unique_ptr<Graph> buildResNet20(const ResNetConfig& cfg, uint64_t seed) {
  GS_CHECK(cfg.num_classes > 0 && cfg.blocks_per_stage > 0 && cfg.base_width > 0,
           "resnet20: num_classes, blocks_per_stage and base_width must be positive");
  auto g = std::make_unique<Graph>();
  g->name = "resnet20";
  LayerBuilder L(*g, seed);
  GraphBuilder& b = L.b();
  const int64_t w0 = cfg.base_width;
  Value* x = L.imageInput(28, 28, cfg.norm);
  x = b.relu(L.bn(L.conv(x, 1, w0, 3, 1, 1, 1, false, "conv1"), w0, "bn1"), "relu");
  int64_t cin = w0;
  for (int64_t s = 0; s < 3; ++s) {
    const int64_t cout = w0 << s;  // 16, 32, 64: 28 -> 14 -> 7 spatially
    for (int64_t i = 0; i < cfg.blocks_per_stage; ++i) {
      auto sc = b.scope("layer" + std::to_string(s + 1) + "." + std::to_string(i));
      x = basicBlock(L, x, cin, cout, (i == 0 && s > 0) ? 2 : 1);
      cin = cout;
    }
  }
  x = b.flatten(b.globalAvgPool(x, "avgpool"), 1, "flatten");
  L.output(L.linear(x, cin, cfg.num_classes, "fc"), "logits", {Dim("N"), cfg.num_classes});
  return g;
}

}  // namespace gs::models
