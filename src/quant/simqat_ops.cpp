// Kernel of gs::BnFoldCorrection: the batch-statistics half of SimQAT's two-conv BN fold
// (Golden Stick Conv2dBnFoldQuant's BatchNormFold / BatchNormFold2, Jacob et al. 2018).
#include <ATen/ATen.h>

#include "ops/registry.h"
#include "quant/simqat.h"
#include "support/error.h"

namespace gs {
namespace {

/// gs::BnFoldCorrection(y, gamma, beta, running_mean, running_var, x, W, b?, frozen?) -> z,
/// attributes epsilon / momentum (ONNX BatchNormalization convention).
/// y = Conv(x, fq(W * gamma / sigma)) without bias, sigma = sqrt(running_var + eps).
///  - train mode, frozen == 0: the first conv y0 = Conv(x, W) gives the batch mean mu_B and
///    population variance of the conv output; z = y * sigma / sigma_B + beta - gamma * mu_B /
///    sigma_B (with quantization off this is BN with batch statistics, gradients included), and
///    the running statistics are updated in place like BatchNormalization in train mode
///    (torch momentum 1 - momentum, unbiased variance, the conv bias added to the mean).
///  - otherwise (eval, or frozen != 0): z = y + beta - gamma * (running_mean - b) / sigma, i.e. BN
///    with running statistics of Conv(x, fq(W_fold)) + b; nothing is updated.
/// Inputs 1..4 sit where BatchNormalization has them, so BN folding code reads them unchanged.
Kernel makeBnFoldCorrection(const Node& n) {
  double eps = n.attrFloat("epsilon", 1e-5f);
  double momentum = n.attrFloat("momentum", 0.9f);
  GS_CHECK(n.hasInput(5) && n.hasInput(6), n.describe(), ": inputs x (5) and W (6) are required");
  // The first conv reuses the Conv kernel of the folded conv (same attributes and padding).
  const Node* conv = n.input(0)->producer();
  GS_CHECK(conv && conv->domain().empty() && conv->opType() == "Conv", n.describe(),
           ": input 0 must be the output of the folded Conv");
  Kernel first_conv = OpRegistry::global().find("", "Conv")->kernel(*conv);
  std::string what = n.describe();
  return [=](const KernelContext& ctx, const std::vector<at::Tensor>& in,
             std::vector<at::Tensor>& out) {
    const at::Tensor& y = in[0];
    GS_CHECK(y.dim() >= 3, what, ": expected a conv output of rank >= 3, got ", y.sizes());
    int64_t c = y.size(1);
    for (int i = 1; i <= 4; ++i)
      GS_CHECK(in[static_cast<size_t>(i)].numel() == c, what, ": input ", i, " has ",
               in[static_cast<size_t>(i)].numel(), " elements, expected C = ", c);
    std::vector<int64_t> cs(static_cast<size_t>(y.dim()), 1);
    cs[1] = -1;
    const at::Tensor& gamma = in[1];
    const at::Tensor& beta = in[2];
    bool has_bias = in.size() > 7 && in[7].defined();
    bool frozen = in.size() > 8 && in[8].defined() && in[8].item<double>() != 0.0;
    // Running std before this step's update: the folded weight was computed from it.
    at::Tensor rstd = at::sqrt(in[4] + eps);
    if (!ctx.training || frozen) {
      at::Tensor mean = has_bias ? in[3] - in[7].reshape({-1}) : in[3];
      out[0] = y + (beta - gamma * mean / rstd).reshape(cs);
      return;
    }
    std::vector<at::Tensor> y0(1);
    first_conv(ctx, {in[5], in[6]}, y0);
    std::vector<int64_t> dims{0};
    for (int64_t d = 2; d < y.dim(); ++d) dims.push_back(d);
    auto [bvar, bmean] = at::var_mean(y0[0], dims, /*unbiased=*/false);
    at::Tensor bstd = at::sqrt(bvar + eps);
    out[0] = y * (rstd / bstd).reshape(cs) + (beta - gamma * bmean / bstd).reshape(cs);
    at::NoGradGuard ng;
    double m = 1.0 - momentum;
    double count = static_cast<double>(y0[0].numel() / c);
    at::Tensor rm = in[3].detach(), rv = in[4].detach();
    at::Tensor mu = bmean.detach();
    if (has_bias) mu = mu + in[7].detach().reshape({-1});
    rm.mul_(1.0 - m).add_(mu.to(rm.scalar_type()), m);
    rv.mul_(1.0 - m).add_((bvar.detach() * (count / std::max(count - 1.0, 1.0))).to(rv.scalar_type()), m);
  };
}

}  // namespace

void registerSimQatOps(OpRegistry& r) {
  r.add(OpDef("BnFoldCorrection", "gs")
            .inputs(7, 9)
            .attr("epsilon", AttrKind::Float)
            .attr("momentum", AttrKind::Float)
            .kernel(makeBnFoldCorrection));
}

}  // namespace gs
