// LeNet-5 builder for 28x28 single-channel images (normalisation inside the graph).
#include "models/layers.h"
#include "models/zoo.h"
#include "support/error.h"

namespace gs::models {

std::unique_ptr<Graph> buildLeNet5(const LeNetConfig& cfg, uint64_t seed) {
  GS_CHECK(cfg.num_classes > 0, "lenet5: num_classes must be positive, got ", cfg.num_classes);
  auto g = std::make_unique<Graph>();
  g->name = "lenet5";
  LayerBuilder L(*g, seed);
  GraphBuilder& b = L.b();
  Value* x = L.imageInput(28, 28, cfg.norm);
  x = b.maxPool(b.relu(L.conv(x, 1, 6, 5, 1, 2, 1, true, "conv1"), "relu1"), 2, 2, 0, "pool1");
  x = b.maxPool(b.relu(L.conv(x, 6, 16, 5, 1, 0, 1, true, "conv2"), "relu2"), 2, 2, 0, "pool2");
  x = b.flatten(x, 1, "flatten");  // 16 x 5 x 5 = 400
  x = b.relu(L.linear(x, 400, 120, "fc1"), "relu3");
  x = b.relu(L.linear(x, 120, 84, "fc2"), "relu4");
  L.output(L.linear(x, 84, cfg.num_classes, "fc3"), "logits", {Dim("N"), cfg.num_classes});
  return g;
}

}  // namespace gs::models
