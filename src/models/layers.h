// Internal layer helpers shared by the zoo builders: seeded init, conv/BN/linear, normalisation.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "ir/builder.h"
#include "models/zoo.h"

namespace gs::models {

/// GraphBuilder plus one seeded generator: parameters are drawn in declaration order, so a model
/// built twice with the same seed is bit-identical. Node and parameter names are
/// `<scope>.<name>` as in GraphBuilder.
class LayerBuilder {
 public:
  LayerBuilder(Graph& g, uint64_t seed);
  GraphBuilder& b() { return b_; }
  Graph& graph() { return b_.graph(); }

  /// Shape-only mode for loaders that bind every weight afterwards: normal() and uniform() return
  /// zero-stride placeholders (one element expanded to the shape, no memory, no random draws).
  void setPlaceholderInit(bool on) { placeholder_ = on; }
  /// f32 tensor ~ N(0, std).
  at::Tensor normal(std::vector<int64_t> shape, double std);
  /// f32 tensor ~ U(-bound, bound).
  at::Tensor uniform(std::vector<int64_t> shape, double bound);
  /// Frozen f32 scalar constant named `<scope>.<name>`.
  Value* scalar(const std::string& name, double v);
  /// Frozen i64 1-D constant named `<scope>.<name>`.
  Value* ints(const std::string& name, std::vector<int64_t> v);

  /// Image input "input" f32[N,1,h,w] followed by nodes normalize.sub / normalize.div.
  Value* imageInput(int64_t h, int64_t w, const ImageNorm& n);
  /// Renames `v` to `name`, declares its dtype/shape and makes it a graph output.
  void output(Value* v, const std::string& name, std::vector<Dim> shape);

  /// Conv node `<name>` with Kaiming-normal weight (fan_out, ReLU gain, as torchvision) and,
  /// when `bias`, a zero bias. Weight [cout, cin/groups, k, k].
  Value* conv(Value* x, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t pad,
              int64_t groups, bool bias, const std::string& name);
  /// Inference BatchNormalization `<name>`: weight 1, bias 0 (trainable), running_mean 0,
  /// running_var 1 (frozen), epsilon 1e-5.
  Value* bn(Value* x, int64_t c, const std::string& name);
  /// y = x W^T + b on a 2-D x as Gemm(transB=1), torch.nn.Linear init (U(+-1/sqrt(in))).
  Value* linear(Value* x, int64_t in, int64_t out, const std::string& name);
  /// y = x W^T (+ b) on an N-D x as MatMul(x, Transpose(W)) (+ Add), W [out, in] stored as
  /// torch/HF do. Nodes `<name>.weight_t`, `<name>` (MatMul), `<name>.bias_add`. `init_std` > 0
  /// draws W ~ N(0, init_std) (HF Llama), else torch.nn.Linear's init; biases start at zero
  /// for N(0, std) init and at U(+-1/sqrt(in)) otherwise.
  Value* dense(Value* x, int64_t in, int64_t out, bool bias, const std::string& name,
               double init_std = 0.0);
  /// MatMul(x, Transpose(w)) for an existing weight value (tied embeddings).
  Value* denseWith(Value* x, Value* w, const std::string& name);
  /// LayerNormalization over the last axis (weight 1, bias 0, epsilon 1e-5).
  Value* layerNorm(Value* x, int64_t d, const std::string& name);
  /// Erf-form GELU 0.5 x (1 + erf(x / sqrt 2)) (ONNX Gelu needs opset 20; ORT at 17 runs Erf).
  Value* gelu(Value* x, const std::string& name);
  /// Multi-head attention core on q [N,H,T,d], k [N,H,T,d], v [N,H,T,d] with optional additive
  /// mask (broadcast to [.., T, T]): Softmax(q k^T / sqrt(d) + mask) v -> [N,H,T,d].
  Value* attention(Value* q, Value* k, Value* v, Value* mask, int64_t head_dim);

 private:
  GraphBuilder b_;
  at::Generator gen_;
  bool placeholder_ = false;
};

}  // namespace gs::models
