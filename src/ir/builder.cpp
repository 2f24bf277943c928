// GraphBuilder: scoped names, parameter creation and ONNX-conformant op helpers.
#include "ir/builder.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "support/error.h"

namespace gs {

GraphBuilder::Scope::Scope(GraphBuilder& b, const std::string& name) : b_(b) {
  GS_CHECK(!name.empty(), "builder scope names must not be empty");
  b_.scopes_.push_back(name);
}

GraphBuilder::Scope::~Scope() { b_.scopes_.pop_back(); }

std::string GraphBuilder::qualify(const std::string& name) const {
  std::string out;
  for (const auto& s : scopes_) {
    if (!out.empty()) out += '.';
    out += s;
  }
  if (!name.empty()) {
    if (!out.empty()) out += '.';
    out += name;
  }
  return out;
}

Value* GraphBuilder::input(const std::string& name, DType t, Shape shape) {
  return g_.addInput(name, t, std::move(shape));
}

void GraphBuilder::output(Value* v) { g_.addOutput(v); }

Value* GraphBuilder::param(const std::string& name, at::Tensor data, bool trainable) {
  return g_.addParam(qualify(name), std::move(data), trainable);
}

Value* GraphBuilder::constant(const std::string& name, at::Tensor data) {
  return g_.addParam(g_.uniqueValueName(qualify(name)), std::move(data), false);
}

Node* GraphBuilder::op(const std::string& op_type, const std::vector<Value*>& inputs,
                       std::map<std::string, Attribute> attrs, const std::string& name,
                       size_t num_outputs, const std::string& domain) {
  std::string base = qualify(name.empty() ? op_type : name);
  Node* n = g_.addNode(op_type, inputs, num_outputs, base, std::move(attrs), nullptr, domain);
  return n;
}

Value* GraphBuilder::op1(const std::string& op_type, const std::vector<Value*>& inputs,
                         std::map<std::string, Attribute> attrs, const std::string& name) {
  Node* n = op(op_type, inputs, std::move(attrs), name, 1);
  // Every helper op below preserves the element type of its first input.
  if (!inputs.empty() && inputs[0]) n->output(0)->setDType(inputs[0]->dtype());
  return n->output(0);
}

namespace {
std::vector<int64_t> repeat(int64_t v, size_t n) { return std::vector<int64_t>(n, v); }
}  // namespace

Value* GraphBuilder::conv(Value* x, Value* w, Value* b, ConvOpts o, const std::string& name) {
  GS_CHECK(x && w, "conv '", qualify(name), "': input and weight are required");
  int64_t numel = staticNumel(w->shape());
  GS_CHECK(numel >= 0 && w->shape()->size() >= 3, "conv '", qualify(name),
           "': weight needs a static shape [C_out, C_in/group, k...], got ",
           typeString(w->dtype(), w->shape()));
  std::vector<int64_t> kernel;
  for (size_t i = 2; i < w->shape()->size(); ++i) kernel.push_back((*w->shape())[i].value);
  size_t sp = kernel.size();
  std::map<std::string, Attribute> attrs{
      {"kernel_shape", kernel},
      {"strides", repeat(o.stride, sp)},
      {"pads", repeat(o.pad, 2 * sp)},
      {"dilations", repeat(o.dilation, sp)},
      {"group", o.groups},
  };
  std::vector<Value*> ins{x, w};
  if (b) ins.push_back(b);
  return op1("Conv", ins, std::move(attrs), name);
}

Value* GraphBuilder::batchNorm(Value* x, Value* scale, Value* bias, Value* mean, Value* var,
                               float eps, const std::string& name) {
  return op1("BatchNormalization", {x, scale, bias, mean, var},
             {{"epsilon", eps}, {"momentum", 0.9f}}, name);
}

Value* GraphBuilder::relu(Value* x, const std::string& name) { return op1("Relu", {x}, {}, name); }
Value* GraphBuilder::add(Value* a, Value* b, const std::string& name) {
  return op1("Add", {a, b}, {}, name);
}
Value* GraphBuilder::mul(Value* a, Value* b, const std::string& name) {
  return op1("Mul", {a, b}, {}, name);
}
Value* GraphBuilder::matmul(Value* a, Value* b, const std::string& name) {
  return op1("MatMul", {a, b}, {}, name);
}

Value* GraphBuilder::gemm(Value* a, Value* b, Value* c, bool trans_b, const std::string& name) {
  std::vector<Value*> ins{a, b};
  if (c) ins.push_back(c);
  return op1("Gemm", ins, {{"transB", int64_t{trans_b ? 1 : 0}}}, name);
}

Value* GraphBuilder::maxPool(Value* x, int64_t k, int64_t stride, int64_t pad,
                             const std::string& name) {
  return op1(
      "MaxPool", {x},
      {{"kernel_shape", repeat(k, 2)}, {"strides", repeat(stride, 2)}, {"pads", repeat(pad, 4)}},
      name);
}

Value* GraphBuilder::globalAvgPool(Value* x, const std::string& name) {
  return op1("GlobalAveragePool", {x}, {}, name);
}

Value* GraphBuilder::flatten(Value* x, int64_t axis, const std::string& name) {
  return op1("Flatten", {x}, {{"axis", axis}}, name);
}

Value* GraphBuilder::softmax(Value* x, int64_t axis, const std::string& name) {
  return op1("Softmax", {x}, {{"axis", axis}}, name);
}

Value* GraphBuilder::reshape(Value* x, const std::vector<int64_t>& shape, const std::string& name) {
  at::Tensor s = at::tensor(shape, at::TensorOptions().dtype(at::kLong));
  Value* sv = constant(name + ".shape", s);
  return op1("Reshape", {x, sv}, {}, name);
}

Value* GraphBuilder::transpose(Value* x, const std::vector<int64_t>& perm,
                               const std::string& name) {
  return op1("Transpose", {x}, {{"perm", perm}}, name);
}

Value* GraphBuilder::convBnRelu(Value* x, int64_t cin, int64_t cout, int64_t k, int64_t stride,
                                int64_t pad, bool bn, bool relu_, uint64_t seed,
                                const std::string& name) {
  GS_CHECK(cin > 0 && cout > 0 && k > 0, "convBnRelu '", qualify(name), "': bad sizes cin=", cin,
           " cout=", cout, " k=", k);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  // Kaiming-normal (fan_in, ReLU gain): std = sqrt(2 / fan_in), as torch.nn.init.kaiming_normal_.
  const double fan_in = static_cast<double>(cin * k * k);
  at::Tensor w = at::randn({cout, cin, k, k}, gen, f32).mul_(std::sqrt(2.0 / fan_in));
  Value* wv = param(name + ".weight", w);
  Value* bv = nullptr;
  if (!bn) {
    // PyTorch's Conv2d bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    double bound = 1.0 / std::sqrt(fan_in);
    bv = param(name + ".bias", at::rand({cout}, gen, f32).mul_(2 * bound).sub_(bound));
  }
  Value* y = conv(x, wv, bv, {.stride = stride, .pad = pad}, name);
  if (bn) {
    Value* s = param(name + ".bn.weight", at::ones({cout}, f32));
    Value* b = param(name + ".bn.bias", at::zeros({cout}, f32));
    Value* m = param(name + ".bn.running_mean", at::zeros({cout}, f32), false);
    Value* v = param(name + ".bn.running_var", at::ones({cout}, f32), false);
    y = batchNorm(y, s, b, m, v, 1e-5f, name + ".bn");
  }
  if (relu_) y = relu(y, name + ".relu");
  return y;
}

Value* GraphBuilder::linear(Value* x, int64_t in, int64_t out, uint64_t seed,
                            const std::string& name) {
  GS_CHECK(in > 0 && out > 0, "linear '", qualify(name), "': bad sizes in=", in, " out=", out);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  // torch.nn.Linear's init: kaiming_uniform_(a=sqrt(5)) gives bound 1/sqrt(in) for W and b.
  double bound = 1.0 / std::sqrt(static_cast<double>(in));
  at::Tensor w = at::rand({out, in}, gen, f32).mul_(2 * bound).sub_(bound);
  at::Tensor b = at::rand({out}, gen, f32).mul_(2 * bound).sub_(bound);
  Value* wv = param(name + ".weight", w);
  Value* bv = param(name + ".bias", b);
  return gemm(x, wv, bv, true, name);
}

}  // namespace gs
