// Training / evaluation metrics: cross-entropy loss, top-k accuracy, token-level perplexity.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace gs {

/// Aggregated metrics over an evaluation (or an epoch of training).
struct Metrics {
  double loss = 0;      ///< mean loss per sample (classification) or per token (LM)
  double top1 = 0;      ///< fraction in [0, 1]
  double top5 = 0;      ///< fraction in [0, 1] (equals 1 when there are <= 5 classes)
  int64_t count = 0;    ///< samples (classification) or tokens (LM) seen
  bool tokenLevel = false;
  /// exp(loss): meaningful for token-level LM losses.
  double perplexity() const;
  /// "loss 0.4321 top1 84.20% top5 99.10%" (+ " ppl 12.34" for token-level metrics).
  std::string summary() const;
};

/// Perplexity from a mean token negative log-likelihood (natural log): exp(meanNll).
double perplexity(double meanNll);

/// Number of rows of `logits` [N, C] whose label [N] is among the k largest logits (ties broken
/// as at::topk does).
int64_t topkCorrect(const at::Tensor& logits, const at::Tensor& labels, int64_t k);

/// Flattens model output and labels for the loss: classification logits [N, C] with labels [N]
/// stay as they are; sequence logits [B, T, V] with labels [B, T] become [B*T, V] and [B*T]
/// (token-level). Throws gs::Error for other shape combinations.
void flattenForLoss(const at::Tensor& logits, const at::Tensor& labels, at::Tensor& flatLogits,
                    at::Tensor& flatLabels, bool& tokenLevel);

/// Running sums for Metrics over batches.
class MetricAccumulator {
 public:
  /// Adds a batch: flattened logits [N, C], labels [N] and the batch's summed loss.
  void add(const at::Tensor& flatLogits, const at::Tensor& flatLabels, double lossSum,
           bool tokenLevel);
  Metrics result() const;
  void reset() { *this = MetricAccumulator(); }

 private:
  double loss_sum_ = 0;
  int64_t top1_ = 0, top5_ = 0, count_ = 0;
  bool token_level_ = false;
};

}  // namespace gs
