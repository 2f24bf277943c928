// Small seeded reference models (demo CNN, LeNet-5, ResNet-20, transformer block) built on the
// Graph API; shared by the latency benchmark, the demo exporter and the ORT parity tests.
#pragma once
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace gs::zoo {

/// Graph-construction helper: seeded parameters, one call per layer, hierarchical node names.
class ModelMaker {
 public:
  ModelMaker(Graph& g, uint64_t seed)
      : g_(g), gen_(at::make_generator<at::CPUGeneratorImpl>(seed)) {}
  Graph& graph() { return g_; }

  at::Tensor randn(std::vector<int64_t> shape, double scale) {
    return at::randn(shape, gen_, at::TensorOptions().dtype(at::kFloat)) * scale;
  }
  at::Tensor rand(std::vector<int64_t> shape, double lo, double hi) {
    return at::rand(shape, gen_, at::TensorOptions().dtype(at::kFloat)) * (hi - lo) + lo;
  }
  Value* param(const std::string& name, at::Tensor t) { return g_.addParam(name, std::move(t)); }
  Value* constInts(const std::string& name, std::vector<int64_t> v) {
    return g_.addParam(name, at::tensor(v, at::kLong), /*trainable=*/false);
  }
  Value* op(const std::string& type, std::vector<Value*> in, const std::string& name,
            std::map<std::string, Attribute> attrs = {}) {
    return g_.addNode(type, in, 1, name, std::move(attrs))->output(0);
  }

  /// Conv with Kaiming-normal weights; bias only when `bias`.
  Value* conv(Value* x, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t pad,
              const std::string& name, bool bias = false, int64_t groups = 1) {
    Value* w = param(name + ".weight",
                     randn({cout, cin / groups, k, k}, std::sqrt(2.0 / (cin / groups * k * k))));
    std::vector<Value*> in{x, w};
    if (bias) in.push_back(param(name + ".bias", randn({cout}, 0.05)));
    return op("Conv", in, name,
              {{"kernel_shape", std::vector<int64_t>{k, k}},
               {"strides", std::vector<int64_t>{stride, stride}},
               {"pads", std::vector<int64_t>{pad, pad, pad, pad}},
               {"group", groups}});
  }
  /// Inference BatchNormalization with non-trivial random statistics.
  Value* bn(Value* x, int64_t c, const std::string& name) {
    Value* s = param(name + ".weight", rand({c}, 0.75, 1.25));
    Value* b = param(name + ".bias", randn({c}, 0.1));
    Value* m = param(name + ".running_mean", randn({c}, 0.1));
    Value* v = param(name + ".running_var", rand({c}, 0.75, 1.25));
    return op("BatchNormalization", {x, s, b, m, v}, name, {{"epsilon", 1e-5f}});
  }
  Value* relu(Value* x, const std::string& name) { return op("Relu", {x}, name); }
  Value* maxPool(Value* x, int64_t k, int64_t stride, const std::string& name) {
    return op("MaxPool", {x}, name,
              {{"kernel_shape", std::vector<int64_t>{k, k}},
               {"strides", std::vector<int64_t>{stride, stride}}});
  }
  /// y = x W^T + b as Gemm(transB=1), Kaiming-uniform-like init.
  Value* linear(Value* x, int64_t in, int64_t out, const std::string& name) {
    double bound = 1.0 / std::sqrt(static_cast<double>(in));
    Value* w = param(name + ".weight", rand({out, in}, -bound, bound));
    Value* b = param(name + ".bias", rand({out}, -bound, bound));
    return op("Gemm", {x, w, b}, name, {{"transB", int64_t{1}}});
  }
  /// y = x W + b over the last axis of an N-D x (MatMul + Add).
  Value* dense(Value* x, int64_t in, int64_t out, const std::string& name) {
    double bound = 1.0 / std::sqrt(static_cast<double>(in));
    Value* w = param(name + ".weight", rand({in, out}, -bound, bound));
    Value* b = param(name + ".bias", rand({out}, -bound, bound));
    return op("Add", {op("MatMul", {x, w}, name + ".matmul"), b}, name + ".add");
  }
  Value* layerNorm(Value* x, int64_t d, const std::string& name) {
    Value* s = param(name + ".weight", rand({d}, 0.75, 1.25));
    Value* b = param(name + ".bias", randn({d}, 0.1));
    return op("LayerNormalization", {x, s, b}, name, {{"axis", int64_t{-1}}, {"epsilon", 1e-5f}});
  }
  /// Declares `v` a graph output with the given dtype/shape (ONNX outputs carry a type).
  void output(Value* v, std::vector<Dim> shape) {
    v->setDType(DType::Float32);
    v->setShape(std::move(shape));
    g_.addOutput(v);
  }

 private:
  Graph& g_;
  at::Generator gen_;
};

/// Demo CNN: conv-bn-relu-pool x2, global average pool, Gemm. Input f32[N,1,28,28] -> f32[N,10].
inline std::unique_ptr<Graph> demoCnn(uint64_t seed = 1) {
  auto g = std::make_unique<Graph>();
  g->name = "demo_cnn";
  ModelMaker m(*g, seed);
  Value* x = g->addInput("input", DType::Float32, std::vector<Dim>{Dim("N"), 1, 28, 28});
  x = m.maxPool(m.relu(m.bn(m.conv(x, 1, 8, 3, 1, 1, "conv1"), 8, "bn1"), "relu1"), 2, 2, "pool1");
  x = m.maxPool(m.relu(m.bn(m.conv(x, 8, 16, 3, 1, 1, "conv2"), 16, "bn2"), "relu2"), 2, 2,
                "pool2");
  x = m.op("Flatten", {m.op("GlobalAveragePool", {x}, "gap")}, "flatten", {{"axis", int64_t{1}}});
  m.output(m.linear(x, 16, 10, "fc"), {Dim("N"), 10});
  return g;
}

/// LeNet-5 (ReLU, max pooling) for f32[N,1,28,28] -> f32[N,10].
inline std::unique_ptr<Graph> lenet5(uint64_t seed = 2) {
  auto g = std::make_unique<Graph>();
  g->name = "lenet5";
  ModelMaker m(*g, seed);
  Value* x = g->addInput("input", DType::Float32, std::vector<Dim>{Dim("N"), 1, 28, 28});
  x = m.maxPool(m.relu(m.conv(x, 1, 6, 5, 1, 2, "conv1", true), "relu1"), 2, 2, "pool1");
  x = m.maxPool(m.relu(m.conv(x, 6, 16, 5, 1, 0, "conv2", true), "relu2"), 2, 2, "pool2");
  x = m.op("Flatten", {x}, "flatten", {{"axis", int64_t{1}}});
  x = m.relu(m.linear(x, 400, 120, "fc1"), "relu3");
  x = m.relu(m.linear(x, 120, 84, "fc2"), "relu4");
  m.output(m.linear(x, 84, 10, "fc3"), {Dim("N"), 10});
  return g;
}

/// CIFAR-style ResNet-20 (3 stages x 3 basic blocks, 16/32/64 channels, 1x1 conv+BN projection
/// shortcuts) adapted to f32[N,1,28,28] -> f32[N,10].
inline std::unique_ptr<Graph> resnet20(uint64_t seed = 3) {
  auto g = std::make_unique<Graph>();
  g->name = "resnet20";
  ModelMaker m(*g, seed);
  Value* x = g->addInput("input", DType::Float32, std::vector<Dim>{Dim("N"), 1, 28, 28});
  x = m.relu(m.bn(m.conv(x, 1, 16, 3, 1, 1, "conv1"), 16, "bn1"), "relu1");
  int64_t cin = 16;
  const int64_t widths[3] = {16, 32, 64};
  for (int s = 0; s < 3; ++s) {
    for (int b = 0; b < 3; ++b) {
      std::string p = "layer" + std::to_string(s + 1) + "." + std::to_string(b);
      int64_t cout = widths[s], stride = (b == 0 && s > 0) ? 2 : 1;
      Value* y = m.relu(m.bn(m.conv(x, cin, cout, 3, stride, 1, p + ".conv1"), cout, p + ".bn1"),
                        p + ".relu1");
      y = m.bn(m.conv(y, cout, cout, 3, 1, 1, p + ".conv2"), cout, p + ".bn2");
      Value* sc = x;
      if (stride != 1 || cin != cout)
        sc = m.bn(m.conv(x, cin, cout, 1, stride, 0, p + ".downsample.conv"), cout,
                  p + ".downsample.bn");
      x = m.relu(m.op("Add", {y, sc}, p + ".add"), p + ".relu2");
      cin = cout;
    }
  }
  x = m.op("Flatten", {m.op("GlobalAveragePool", {x}, "gap")}, "flatten", {{"axis", int64_t{1}}});
  m.output(m.linear(x, 64, 10, "fc"), {Dim("N"), 10});
  return g;
}

/// Pre-LN transformer encoder block: f32[N,T,d] -> f32[N,T,d] with `heads` attention heads,
/// LayerNormalization, MatMul attention with Softmax, erf-GELU MLP (4d hidden).
inline std::unique_ptr<Graph> transformerBlock(int64_t t = 16, int64_t d = 64, int64_t heads = 4,
                                               uint64_t seed = 4) {
  auto g = std::make_unique<Graph>();
  g->name = "transformer_block";
  ModelMaker m(*g, seed);
  const int64_t dh = d / heads;
  Value* x = g->addInput("input", DType::Float32, std::vector<Dim>{Dim("N"), t, d});
  Value* h = m.layerNorm(x, d, "ln1");
  Value* split_shape = m.constInts("attn.heads_shape", {0, t, heads, dh});
  auto headsOf = [&](const std::string& n) {
    Value* z = m.dense(h, d, d, "attn." + n);
    z = m.op("Reshape", {z, split_shape}, "attn." + n + ".reshape");
    return m.op("Transpose", {z}, "attn." + n + ".transpose",
                {{"perm", std::vector<int64_t>{0, 2, 1, 3}}});
  };
  Value* q = headsOf("q");
  Value* k = headsOf("k");
  Value* v = headsOf("v");
  Value* kt = m.op("Transpose", {k}, "attn.k_t", {{"perm", std::vector<int64_t>{0, 1, 3, 2}}});
  Value* scale =
      m.param("attn.scale", at::full({}, 1.0 / std::sqrt(static_cast<double>(dh)), at::kFloat));
  scale->setTrainable(false);
  Value* s = m.op("Mul", {m.op("MatMul", {q, kt}, "attn.scores"), scale}, "attn.scaled");
  Value* a = m.op("Softmax", {s}, "attn.softmax", {{"axis", int64_t{-1}}});
  Value* y = m.op("MatMul", {a, v}, "attn.context");
  y = m.op("Transpose", {y}, "attn.merge.transpose", {{"perm", std::vector<int64_t>{0, 2, 1, 3}}});
  y = m.op("Reshape", {y, m.constInts("attn.merge_shape", {0, t, d})}, "attn.merge.reshape");
  x = m.op("Add", {x, m.dense(y, d, d, "attn.out")}, "residual1");
  h = m.dense(m.layerNorm(x, d, "ln2"), d, 4 * d, "mlp.fc1");
  // GELU(h) = 0.5 h (1 + erf(h / sqrt 2)).
  Value* sqrt2 = m.param("mlp.gelu.sqrt2", at::full({}, std::sqrt(2.0), at::kFloat));
  Value* half = m.param("mlp.gelu.half", at::full({}, 0.5, at::kFloat));
  Value* one = m.param("mlp.gelu.one", at::full({}, 1.0, at::kFloat));
  for (Value* c : {sqrt2, half, one}) c->setTrainable(false);
  Value* e = m.op("Erf", {m.op("Div", {h, sqrt2}, "mlp.gelu.div")}, "mlp.gelu.erf");
  h = m.op("Mul",
           {m.op("Mul", {h, half}, "mlp.gelu.mul_half"), m.op("Add", {e, one}, "mlp.gelu.add_one")},
           "mlp.gelu.mul");
  x = m.op("Add", {x, m.dense(h, 4 * d, d, "mlp.fc2")}, "residual2");
  m.output(x, {Dim("N"), t, d});
  return g;
}

}  // namespace gs::zoo
