// MobileNetV2 builder (torchvision layer table and names) adapted to 28x28 single-channel images.
#include <algorithm>
#include <cmath>

#include "models/layers.h"
#include "models/zoo.h"
#include "support/error.h"

namespace gs::models {

int64_t makeDivisible(double v, int64_t divisor) {
  // torchvision's _make_divisible (min_value = divisor).
  const int64_t rounded = static_cast<int64_t>(v + divisor / 2.0) / divisor * divisor;
  int64_t nv = std::max<int64_t>(divisor, rounded);
  if (nv < 0.9 * v) nv += divisor;
  return nv;
}

namespace {

struct Net {
  LayerBuilder& L;
  Value* clip_min;
  Value* clip_max;

  /// ReLU6 as Clip(x, 0, 6) (ONNX has no Relu6).
  Value* relu6(Value* x, const std::string& name) {
    return L.b().op1("Clip", {x, clip_min, clip_max}, {}, name);
  }
  /// torchvision Conv2dNormActivation `<name>`: conv `<name>.0`, BN `<name>.1`, ReLU6 `<name>.2`.
  Value* convBnAct(Value* x, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t groups,
                   const std::string& name) {
    Value* y = L.conv(x, cin, cout, k, stride, (k - 1) / 2, groups, false, name + ".0");
    return relu6(L.bn(y, cout, name + ".1"), name + ".2");
  }
  /// InvertedResidual (inside scope features.<i>): [1x1 expand] - 3x3 depthwise - 1x1 project-BN,
  /// plus the identity when stride 1 and cin == cout.
  Value* invertedResidual(Value* x, int64_t cin, int64_t cout, int64_t stride, int64_t t) {
    const int64_t hidden = static_cast<int64_t>(std::lround(static_cast<double>(cin * t)));
    int j = 0;
    Value* y = x;
    if (t != 1) y = convBnAct(y, cin, hidden, 1, 1, 1, "conv." + std::to_string(j++));
    y = convBnAct(y, hidden, hidden, 3, stride, hidden, "conv." + std::to_string(j++));
    y = L.conv(y, hidden, cout, 1, 1, 0, 1, false, "conv." + std::to_string(j++));
    y = L.bn(y, cout, "conv." + std::to_string(j));
    if (stride == 1 && cin == cout) y = L.b().add(x, y, "add");
    return y;
  }
};

}  // namespace

std::unique_ptr<Graph> buildMobileNetV2(const MobileNetV2Config& cfg, uint64_t seed) {
  GS_CHECK(cfg.width > 0 && cfg.width <= 4, "mobilenetv2: width must be in (0, 4], got ",
           cfg.width);
  GS_CHECK(cfg.num_classes > 0, "mobilenetv2: num_classes must be positive");
  auto g = std::make_unique<Graph>();
  g->name = "mobilenetv2";
  LayerBuilder L(*g, seed);
  GraphBuilder& b = L.b();
  Net net{L, L.scalar("relu6.min", 0.0), L.scalar("relu6.max", 6.0)};
  // torchvision's table {t, c, n, s}; the stem's stride 2 becomes 1 for 28x28 inputs so the
  // remaining stride 16 leaves a 2x2 final feature map (28 -> 14 -> 7 -> 4 -> 2).
  const int64_t table[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                               {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  int64_t cin = makeDivisible(32 * cfg.width);
  const int64_t last = makeDivisible(1280 * std::max(1.0, cfg.width));
  Value* x = L.imageInput(28, 28, cfg.norm);
  x = net.convBnAct(x, 1, cin, 3, 1, 1, "features.0");
  int64_t idx = 1;
  for (const auto& row : table) {
    const int64_t cout = makeDivisible(row[1] * cfg.width);
    for (int64_t i = 0; i < row[2]; ++i) {
      auto sc = b.scope("features." + std::to_string(idx++));
      x = net.invertedResidual(x, cin, cout, i == 0 ? row[3] : 1, row[0]);
      cin = cout;
    }
  }
  x = net.convBnAct(x, cin, last, 1, 1, 1, "features." + std::to_string(idx));
  x = b.flatten(b.globalAvgPool(x, "avgpool"), 1, "flatten");
  L.output(L.linear(x, last, cfg.num_classes, "classifier.1"), "logits",
           {Dim("N"), cfg.num_classes});
  return g;
}

}  // namespace gs::models
