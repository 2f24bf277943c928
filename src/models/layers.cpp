// Internal layer helpers for the zoo builders (seeded init, conv/BN/linear/attention).
#include "models/layers.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "support/error.h"

namespace gs::models {

namespace {
const at::TensorOptions kF32 = at::TensorOptions().dtype(at::kFloat);
}

LayerBuilder::LayerBuilder(Graph& g, uint64_t seed)
    : b_(g), gen_(at::make_generator<at::CPUGeneratorImpl>(seed)) {}

at::Tensor LayerBuilder::normal(std::vector<int64_t> shape, double std) {
  if (placeholder_) return at::zeros({1}, kF32).expand(shape);
  return at::randn(shape, gen_, kF32).mul_(std);
}

at::Tensor LayerBuilder::uniform(std::vector<int64_t> shape, double bound) {
  if (placeholder_) return at::zeros({1}, kF32).expand(shape);
  return at::rand(shape, gen_, kF32).mul_(2 * bound).sub_(bound);
}

Value* LayerBuilder::scalar(const std::string& name, double v) {
  return b_.param(name, at::full({}, v, kF32), /*trainable=*/false);
}

Value* LayerBuilder::ints(const std::string& name, std::vector<int64_t> v) {
  return b_.param(name, at::tensor(v, at::TensorOptions().dtype(at::kLong)), false);
}

Value* LayerBuilder::imageInput(int64_t h, int64_t w, const ImageNorm& n) {
  GS_CHECK(n.std > 0, "image normalisation std must be positive, got ", n.std);
  Value* x = b_.input("input", DType::Float32, std::vector<Dim>{Dim("N"), 1, h, w});
  auto s = b_.scope("normalize");
  x = b_.op1("Sub", {x, scalar("mean", n.mean)}, {}, "sub");
  return b_.op1("Div", {x, scalar("std", n.std)}, {}, "div");
}

void LayerBuilder::output(Value* v, const std::string& name, std::vector<Dim> shape) {
  graph().renameValue(v, name);
  v->setDType(DType::Float32);
  v->setShape(std::move(shape));
  b_.output(v);
}

Value* LayerBuilder::conv(Value* x, int64_t cin, int64_t cout, int64_t k, int64_t stride,
                          int64_t pad, int64_t groups, bool bias, const std::string& name) {
  GS_CHECK(cin > 0 && cout > 0 && k > 0 && groups > 0 && cin % groups == 0 && cout % groups == 0,
           "conv '", b_.qualify(name), "': bad sizes cin=", cin, " cout=", cout, " k=", k,
           " groups=", groups);
  // torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / fan_out).
  const double fan_out = static_cast<double>(cout / groups * k * k);
  Value* w =
      b_.param(name + ".weight", normal({cout, cin / groups, k, k}, std::sqrt(2.0 / fan_out)));
  Value* bv = bias ? b_.param(name + ".bias", at::zeros({cout}, kF32)) : nullptr;
  return b_.conv(x, w, bv, {.stride = stride, .pad = pad, .groups = groups}, name);
}

Value* LayerBuilder::bn(Value* x, int64_t c, const std::string& name) {
  Value* s = b_.param(name + ".weight", at::ones({c}, kF32));
  Value* bb = b_.param(name + ".bias", at::zeros({c}, kF32));
  Value* m = b_.param(name + ".running_mean", at::zeros({c}, kF32), false);
  Value* v = b_.param(name + ".running_var", at::ones({c}, kF32), false);
  return b_.batchNorm(x, s, bb, m, v, 1e-5f, name);
}

Value* LayerBuilder::linear(Value* x, int64_t in, int64_t out, const std::string& name) {
  // torch.nn.Linear: kaiming_uniform_(a=sqrt(5)) gives bound 1/sqrt(in) for W and b.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  Value* w = b_.param(name + ".weight", uniform({out, in}, bound));
  Value* bv = b_.param(name + ".bias", uniform({out}, bound));
  return b_.gemm(x, w, bv, true, name);
}

Value* LayerBuilder::dense(Value* x, int64_t in, int64_t out, bool bias, const std::string& name,
                           double init_std) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  at::Tensor wt = init_std > 0 ? normal({out, in}, init_std) : uniform({out, in}, bound);
  Value* w = b_.param(name + ".weight", wt);
  Value* y = denseWith(x, w, name);
  if (bias) {
    at::Tensor bt = init_std > 0 ? at::zeros({out}, kF32) : uniform({out}, bound);
    y = b_.add(y, b_.param(name + ".bias", bt), name + ".bias_add");
  }
  return y;
}

Value* LayerBuilder::denseWith(Value* x, Value* w, const std::string& name) {
  // Transpose is a view in gstick and constant-folded by ORT; at::matmul hands the transposed
  // view to BLAS without a copy (measured equal to a pre-transposed weight, see docs/models.md).
  Value* wt = b_.transpose(w, {1, 0}, name + ".weight_t");
  return b_.matmul(x, wt, name);
}

Value* LayerBuilder::layerNorm(Value* x, int64_t d, const std::string& name) {
  Value* s = b_.param(name + ".weight", at::ones({d}, kF32));
  Value* bb = b_.param(name + ".bias", at::zeros({d}, kF32));
  return b_.op1("LayerNormalization", {x, s, bb}, {{"axis", int64_t{-1}}, {"epsilon", 1e-5f}},
                name);
}

Value* LayerBuilder::gelu(Value* x, const std::string& name) {
  auto s = b_.scope(name);
  Value* e = b_.op1("Erf", {b_.op1("Div", {x, scalar("sqrt2", std::sqrt(2.0))}, {}, "div")}, {},
                    "erf");
  Value* h = b_.mul(x, scalar("half", 0.5), "mul_half");
  return b_.mul(h, b_.add(e, scalar("one", 1.0), "add_one"), "mul");
}

Value* LayerBuilder::attention(Value* q, Value* k, Value* v, Value* mask, int64_t head_dim) {
  Value* kt = b_.transpose(k, {0, 1, 3, 2}, "k_t");
  Value* s = b_.matmul(q, kt, "scores");
  s = b_.mul(s, scalar("scale_factor", 1.0 / std::sqrt(static_cast<double>(head_dim))), "scale");
  if (mask) s = b_.add(s, mask, "mask_add");
  Value* p = b_.softmax(s, -1, "softmax");
  return b_.matmul(p, v, "context");
}

}  // namespace gs::models
