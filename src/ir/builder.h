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

  /// Generic node in the current scope; returns the node (outputs named after it).
  Node* op(const std::string& op_type, const std::vector<Value*>& inputs,
           std::map<std::string, Attribute> attrs = {}, const std::string& name = "",
           size_t num_outputs = 1, const std::string& domain = "");
  /// Single-output shorthand.
  Value* op1(const std::string& op_type, const std::vector<Value*>& inputs,
             std::map<std::string, Attribute> attrs = {}, const std::string& name = "");

  struct ConvOpts {
    int64_t stride = 1;
    int64_t pad = 0;
    int64_t dilation = 1;
    int64_t groups = 1;
  };
  Value* conv(Value* x, Value* w, Value* b, ConvOpts o, const std::string& name = "conv");
  Value* batchNorm(Value* x, Value* scale, Value* bias, Value* mean, Value* var, float eps = 1e-5f,
                   const std::string& name = "bn");
  Value* relu(Value* x, const std::string& name = "relu");
  Value* add(Value* a, Value* b, const std::string& name = "add");
  Value* mul(Value* a, Value* b, const std::string& name = "mul");
  Value* matmul(Value* a, Value* b, const std::string& name = "matmul");
  Value* gemm(Value* a, Value* b, Value* c, bool trans_b = true, const std::string& name = "gemm");
  Value* maxPool(Value* x, int64_t k, int64_t stride, int64_t pad = 0, const std::string& name = "pool");
  Value* globalAvgPool(Value* x, const std::string& name = "gap");
  Value* flatten(Value* x, int64_t axis = 1, const std::string& name = "flatten");
  Value* softmax(Value* x, int64_t axis = -1, const std::string& name = "softmax");
  Value* reshape(Value* x, const std::vector<int64_t>& shape, const std::string& name = "reshape");
  Value* transpose(Value* x, const std::vector<int64_t>& perm, const std::string& name = "transpose");

  /// Conv (+ optional BatchNorm) with Kaiming-initialised weights drawn from `gen_seed`.
  Value* convBnRelu(Value* x, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t pad,
                    bool bn, bool relu, uint64_t seed, const std::string& name);
  /// Linear layer y = x W^T + b as Gemm (2-D x) with Kaiming-uniform init.
  Value* linear(Value* x, int64_t in, int64_t out, uint64_t seed, const std::string& name);

 private:
  Graph& g_;
  std::vector<std::string> scopes_;
};

}  // namespace gs
