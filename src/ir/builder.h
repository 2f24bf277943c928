// Builder API for writing graphs in C++ with hierarchical scopes and op helpers.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "ir/graph.h"

namespace gs {

/// Convenience layer over Graph: named scopes ("layer1.0"), parameter creation and one-line op
/// helpers that return output values. Node names are `<scope>.<name>`.
///
///   GraphBuilder b(g);
///   auto s = b.scope("layer1");
///   Value* y = b.conv(x, w, bias, {.stride = 1, .pad = 1}, "conv1");   // node "layer1.conv1"
class GraphBuilder {
 public:
  explicit GraphBuilder(Graph& g) : g_(g) {}
  Graph& graph() { return g_; }

  /// RAII scope guard: pushes a name component, pops on destruction.
  class Scope {
   public:
    Scope(GraphBuilder& b, const std::string& name);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    GraphBuilder& b_;
  };
  [[nodiscard]] Scope scope(const std::string& name) { return Scope(*this, name); }
  /// Current scope prefix joined with `name` ("layer1.0" + "conv1" -> "layer1.0.conv1").
  std::string qualify(const std::string& name) const;

  Value* input(const std::string& name, DType t, Shape shape);
  void output(Value* v);
  /// Parameter named `<scope>.<name>`.
  Value* param(const std::string& name, at::Tensor data, bool trainable = true);
  /// Frozen constant parameter (not trainable) with a unique name derived from `name`.
  Value* constant(const std::string& name, at::Tensor data);

  /// Generic node `<scope>.<name>` (name defaults to op_type; made unique); outputs are named
  /// `<node>`, `<node>:1`, ... Returns the node.
  Node* op(const std::string& op_type, const std::vector<Value*>& inputs,
           std::map<std::string, Attribute> attrs = {}, const std::string& name = "",
           size_t num_outputs = 1, const std::string& domain = "");
  /// Single-output shorthand; the output's dtype is copied from the first input (true for every
  /// helper below). Shapes are left unknown (shape inference is a separate pass).
  Value* op1(const std::string& op_type, const std::vector<Value*>& inputs,
             std::map<std::string, Attribute> attrs = {}, const std::string& name = "");

  struct ConvOpts {
    int64_t stride = 1;
    int64_t pad = 0;
    int64_t dilation = 1;
    int64_t groups = 1;
  };
  /// ONNX Conv: kernel_shape from w's static shape, strides/dilations per spatial axis, pads
  /// begin+end per axis ([4] in 2-D), group. `b` may be nullptr.
  Value* conv(Value* x, Value* w, Value* b, ConvOpts o, const std::string& name = "conv");
  /// BatchNormalization (inference form: one output) with epsilon and momentum=0.9.
  Value* batchNorm(Value* x, Value* scale, Value* bias, Value* mean, Value* var, float eps = 1e-5f,
                   const std::string& name = "bn");
  Value* relu(Value* x, const std::string& name = "relu");
  Value* add(Value* a, Value* b, const std::string& name = "add");
  Value* mul(Value* a, Value* b, const std::string& name = "mul");
  Value* matmul(Value* a, Value* b, const std::string& name = "matmul");
  Value* gemm(Value* a, Value* b, Value* c, bool trans_b = true, const std::string& name = "gemm");
  /// 2-D MaxPool with square kernel/stride and symmetric pads.
  Value* maxPool(Value* x, int64_t k, int64_t stride, int64_t pad = 0,
                 const std::string& name = "pool");
  Value* globalAvgPool(Value* x, const std::string& name = "gap");
  Value* flatten(Value* x, int64_t axis = 1, const std::string& name = "flatten");
  Value* softmax(Value* x, int64_t axis = -1, const std::string& name = "softmax");
  /// Reshape with a frozen i64 constant `<scope>.<name>.shape` as second input.
  Value* reshape(Value* x, const std::vector<int64_t>& shape, const std::string& name = "reshape");
  Value* transpose(Value* x, const std::vector<int64_t>& perm,
                   const std::string& name = "transpose");

  /// Conv (+ optional BatchNorm, + optional Relu) named `<scope>.<name>`, `<name>.bn`,
  /// `<name>.relu`. The weight `<name>.weight` [cout, cin, k, k] is Kaiming-normal (fan_in, ReLU
  /// gain) from at::make_generator<at::CPUGeneratorImpl>(seed); without BN the conv also gets
  /// `<name>.bias` ~ U(+-1/sqrt(fan_in)). BN params: `<name>.bn.{weight,bias,running_mean,
  /// running_var}` = ones, zeros, zeros (frozen), ones (frozen); epsilon 1e-5, momentum 0.9.
  Value* convBnRelu(Value* x, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t pad,
                    bool bn, bool relu, uint64_t seed, const std::string& name);
  /// Linear layer y = x W^T + b as Gemm(transB=1) (2-D x) with torch.nn.Linear's
  /// Kaiming-uniform init: W, b ~ U(+-1/sqrt(in)), params `<name>.weight` [out, in], `<name>.bias`.
  Value* linear(Value* x, int64_t in, int64_t out, uint64_t seed, const std::string& name);

 private:
  Graph& g_;
  std::vector<std::string> scopes_;
};

}  // namespace gs
