// GPTQ (Frantar et al., 2022): Hessian-aware column-by-column weight quantization with error
// propagation through the Cholesky factor of the inverse Hessian.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "llm/quantizer.h"

namespace gs::llm {

/// Running estimate of the layer Hessian H = 2/n * sum_x x x^T over calibration rows x [in]
/// (the form of GPTQ's reference add_batch: a mean, so H does not grow with n).
class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t in);
  /// Adds the rows of x [..., in] (any leading shape). Accumulates in float32 as the reference
  /// does (one sgemm per batch); gptqQuantize factorises in float64.
  void add(const at::Tensor& x);
  /// The current H [in, in] (float32); zeros before any add.
  const at::Tensor& hessian() const { return h_; }
  int64_t samples() const { return n_; }

 private:
  at::Tensor h_;
  int64_t n_ = 0;
};

/// GPTQ options (names as AutoGPTQ's BaseQuantizeConfig).
struct GptqConfig {
  WeightQuantSpec spec;
  double damp_percent = 0.01;  ///< lambda = damp_percent * mean(diag H) added to the diagonal
  int64_t block_size = 128;    ///< columns per lazy batch update
  bool act_order = false;      ///< desc_act: quantize columns by decreasing diag(H)
  bool static_groups = false;  ///< with act_order: group parameters fixed from the original W
                               ///< (so g_idx stays i / group_size)
  void validate(int64_t in) const;
};

/// Result of gptqQuantize: the codes (QuantizedWeight, in original column order, with g_idx) and
/// GPTQ's reported loss sum over columns of (w_j - q_j)^2 / (2 U_jj^2).
struct GptqResult {
  QuantizedWeight weight;
  double error = 0;
};

/// Quantizes W [out, in] given H [in, in] (from HessianAccumulator). Dead inputs (diag H == 0)
/// get H_ii = 1 and zeroed weight columns. H is dampened, inverted through Cholesky, and the
/// upper Cholesky factor U of H^-1 drives the updates: for column j with error e = (w_j -
/// q_j) / U_jj, the remaining columns k > j get w_k -= e * U_jk (applied lazily per block).
/// Group parameters are computed from the error-updated weights at each group's first column
/// (or up front from the original W with static_groups). Throws gs::Error on bad shapes or a
/// non-positive-definite H even after dampening. `h` is taken by value: a caller that passes it
/// with std::move lets GPTQ free it as soon as its float64 copy is made (a wide layer's peak).
/// Memory: one float64 [in, in] matrix (factorised in place) plus float32 W, Q and U.
GptqResult gptqQuantize(const at::Tensor& w, at::Tensor h, const GptqConfig& cfg);

}  // namespace gs::llm
