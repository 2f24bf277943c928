// Metrics implementation.
#include "train/metrics.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>

#include "support/error.h"

namespace gs {

double perplexity(double meanNll) { return std::exp(meanNll); }

double Metrics::perplexity() const { return gs::perplexity(loss); }

std::string Metrics::summary() const {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "loss %.4f top1 %.2f%% top5 %.2f%%", loss, 100 * top1,
                100 * top5);
  std::string s = buf;
  if (tokenLevel) {
    std::snprintf(buf, sizeof(buf), " ppl %.3f", perplexity());
    s += buf;
  }
  return s;
}

int64_t topkCorrect(const at::Tensor& logits, const at::Tensor& labels, int64_t k) {
  GS_CHECK(logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == logits.size(0),
           "top-k accuracy: expected logits [N, C] and labels [N], got ", logits.sizes(), " and ",
           labels.sizes());
  if (logits.size(0) == 0) return 0;
  k = std::min<int64_t>(k, logits.size(1));
  at::Tensor idx = std::get<1>(logits.detach().topk(k, 1));
  return idx.eq(labels.to(at::kLong).unsqueeze(1)).any(1).sum().item<int64_t>();
}

void flattenForLoss(const at::Tensor& logits, const at::Tensor& labels, at::Tensor& flatLogits,
                    at::Tensor& flatLabels, bool& tokenLevel) {
  GS_CHECK(labels.defined(), "loss: the dataset has no labels");
  if (logits.dim() == 2 && labels.dim() == 1 && logits.size(0) == labels.size(0)) {
    flatLogits = logits;
    flatLabels = labels.to(at::kLong);
    tokenLevel = false;
    return;
  }
  GS_CHECK(logits.dim() == 3 && labels.dim() == 2 && logits.size(0) == labels.size(0) &&
               logits.size(1) == labels.size(1),
           "loss: expected logits [N, C] with labels [N], or [B, T, V] with labels [B, T]; got ",
           logits.sizes(), " and ", labels.sizes());
  flatLogits = logits.reshape({-1, logits.size(2)});
  flatLabels = labels.reshape({-1}).to(at::kLong);
  tokenLevel = true;
}

void MetricAccumulator::add(const at::Tensor& flatLogits, const at::Tensor& flatLabels,
                            double lossSum, bool tokenLevel) {
  loss_sum_ += lossSum;
  top1_ += topkCorrect(flatLogits, flatLabels, 1);
  top5_ += topkCorrect(flatLogits, flatLabels, 5);
  count_ += flatLabels.size(0);
  token_level_ = tokenLevel;
}

Metrics MetricAccumulator::result() const {
  Metrics m;
  m.count = count_;
  m.tokenLevel = token_level_;
  if (count_ > 0) {
    m.loss = loss_sum_ / static_cast<double>(count_);
    m.top1 = static_cast<double>(top1_) / static_cast<double>(count_);
    m.top5 = static_cast<double>(top5_) / static_cast<double>(count_);
  }
  return m;
}

}  // namespace gs
