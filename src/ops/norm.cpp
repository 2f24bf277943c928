// Normalization ops: BatchNormalization, InstanceNormalization, LayerNormalization,
// LpNormalization, MeanVarianceNormalization, LRN (ONNX opset-17 semantics).
#include <ATen/ATen.h>

#include "ops/kernel_util.h"
#include "ops/registry.h"
#include "ops/spatial_util.h"

namespace gs {
namespace {

at::Tensor like(const at::Tensor& t, const at::Tensor& ref) {
  return t.scalar_type() == ref.scalar_type() ? t : t.to(ref.scalar_type());
}

/// All dims except the channel dim 1.
DimVec nonChannelDims(const at::Tensor& x) {
  DimVec d{0};
  for (int64_t i = 2; i < x.dim(); ++i) d.push_back(i);
  return d;
}

/// BatchNormalization (opset 15).
///  - training_mode=1: ONNX's pure function: Y from batch statistics, outputs running_mean/var =
///    input * momentum + batch * (1 - momentum) with the population variance.
///  - gstick train mode (ctx.training), training_mode=0: like torch's BatchNorm in train(): batch
///    statistics, and the running statistics are updated in place when they are graph
///    parameters (torch momentum = 1 - ONNX momentum, unbiased variance, as torch does).
///  - otherwise: inference with the given mean/var.
Kernel makeBatchNorm(const Node& n) {
  double eps = n.attrFloat("epsilon", 1e-5f);
  double momentum = n.attrFloat("momentum", 0.9f);
  bool onnx_training = n.attrInt("training_mode", 0) != 0;
  bool stats_are_params = n.input(3) && n.input(3)->isParam() && n.input(4) && n.input(4)->isParam();
  bool want_stats = n.numOutputs() > 1;
  return [=, &n](const KernelContext& ctx, const std::vector<at::Tensor>& in,
                 std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    GS_CHECK(x.dim() >= 2, n.describe(), ": expected input of rank >= 2 (N x C x ...), got ",
             x.sizes());
    int64_t c = x.size(1);
    for (int i = 1; i <= 4; ++i)
      GS_CHECK(in[i].numel() == c, n.describe(), ": input ", i, " has ", in[i].numel(),
               " elements, expected C = ", c);
    at::Tensor scale = like(in[1], x), bias = like(in[2], x);
    const at::Tensor& mean = in[3];
    const at::Tensor& var = in[4];
    if (onnx_training) {
      out[0] = at::batch_norm(x, scale, bias, {}, {}, true, 0.0, eps, false);
      if (want_stats) {
        auto [bvar, bmean] = at::var_mean(x, nonChannelDims(x), /*unbiased=*/false);
        out[1] = mean * momentum + like(bmean, mean) * (1.0 - momentum);
        if (out.size() > 2) out[2] = var * momentum + like(bvar, var) * (1.0 - momentum);
      }
      return;
    }
    if (ctx.training) {
      if (stats_are_params) {
        // Detached aliases share storage with the parameters: ATen updates them in place.
        at::Tensor rm = mean.detach(), rv = var.detach();
        out[0] = at::batch_norm(x, scale, bias, rm, rv, true, 1.0 - momentum, eps, false);
        if (want_stats) {
          out[1] = rm;
          if (out.size() > 2) out[2] = rv;
        }
      } else {
        out[0] = at::batch_norm(x, scale, bias, {}, {}, true, 0.0, eps, false);
        if (want_stats) {
          out[1] = mean;
          if (out.size() > 2) out[2] = var;
        }
      }
      return;
    }
    out[0] = at::batch_norm(x, scale, bias, like(mean, x), like(var, x), false, 0.0, eps, false);
    if (want_stats) {
      out[1] = mean;
      if (out.size() > 2) out[2] = var;
    }
  };
}

/// InstanceNormalization: per (n, c) plane statistics, y = scale * (x - mean) / sqrt(var + eps) + B.
Kernel makeInstanceNorm(const Node& n) {
  double eps = n.attrFloat("epsilon", 1e-5f);
  return [eps, &n](const KernelContext&, const std::vector<at::Tensor>& in,
                   std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    GS_CHECK(x.dim() >= 3, n.describe(), ": expected input of rank >= 3 (N x C x D1...), got ",
             x.sizes());
    GS_CHECK(in[1].numel() == x.size(1) && in[2].numel() == x.size(1), n.describe(),
             ": scale and B must have C = ", x.size(1), " elements");
    out[0] = at::instance_norm(x, like(in[1], x).reshape({-1}), like(in[2], x).reshape({-1}), {},
                               {}, true, 0.0, eps, false);
  };
}

/// LayerNormalization (opset 17): normalises over dims [axis, rank); stage one runs in float32
/// when stash_type=1 and X is a 16-bit float. Scale/B broadcast (they may be smaller than the
/// normalised shape). Mean and InvStdDev have shape d[0..axis) followed by ones.
Kernel makeLayerNorm(const Node& n) {
  int64_t axis_attr = n.attrInt("axis", -1);
  double eps = n.attrFloat("epsilon", 1e-5f);
  int64_t stash = n.attrInt("stash_type", 1);
  bool want_stats = n.numOutputs() > 1;
  return [=, &n](const KernelContext&, const std::vector<at::Tensor>& in,
                 std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    int64_t r = x.dim();
    int64_t axis = normAxis(n, axis_attr, r);
    at::IntArrayRef nshape = x.sizes().slice(axis);
    bool low = x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
    at::Tensor xc = stash == 1 && low ? x.to(at::kFloat) : x;
    const at::Tensor& scale = in[1];
    at::Tensor bias = in.size() > 2 ? in[2] : at::Tensor();
    bool fused = scale.sizes() == nshape && (!bias.defined() || bias.sizes() == nshape) &&
                 xc.scalar_type() == x.scalar_type();
    at::Tensor y, mean, rstd;
    if (fused) {
      std::tie(y, mean, rstd) = at::native_layer_norm(
          x, nshape, like(scale, x), bias.defined() ? c10::optional<at::Tensor>(like(bias, x))
                                                    : c10::nullopt, eps);
    } else {
      std::tie(y, mean, rstd) = at::native_layer_norm(xc, nshape, {}, {}, eps);
      y = like(y, x) * like(scale, x);
      if (bias.defined()) y = y + like(bias, x);
    }
    out[0] = y;
    if (want_stats) {
      DimVec stat_shape(x.sizes().begin(), x.sizes().begin() + axis);
      stat_shape.resize(r, 1);
      at::ScalarType st = stash == 1 ? at::kFloat : x.scalar_type();
      out[1] = mean.reshape(stat_shape).to(st);
      if (out.size() > 2) out[2] = rstd.reshape(stat_shape).to(st);
    }
  };
}

/// LpNormalization: x / ||x||_p along `axis` (p in {1, 2}); an all-zero slice stays zero.
Kernel makeLpNorm(const Node& n) {
  int64_t axis_attr = n.attrInt("axis", -1);
  int64_t p = n.attrInt("p", 2);
  GS_CHECK(p == 1 || p == 2, n.describe(), ": p must be 1 or 2, got ", p);
  return [=, &n](const KernelContext&, const std::vector<at::Tensor>& in,
                 std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    int64_t axis = normAxis(n, axis_attr, x.dim());
    at::Tensor norm = p == 1 ? x.abs().sum(axis, true) : x.norm(2, axis, true);
    out[0] = x / norm.masked_fill(norm == 0, 1);
  };
}

/// MeanVarianceNormalization: (X - mean) / (sqrt(var) + 1e-9) over `axes` (default 0, 2, 3),
/// ONNX's function body with a numerically stable variance.
Kernel makeMvn(const Node& n) {
  std::vector<int64_t> axes_attr = n.attrInts("axes", {0, 2, 3});
  return [axes_attr, &n](const KernelContext&, const std::vector<at::Tensor>& in,
                         std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    DimVec axes;
    for (int64_t a : axes_attr) axes.push_back(normAxis(n, a, x.dim()));
    auto [var, mean] = at::var_mean(x, axes, /*unbiased=*/false, /*keepdim=*/true);
    out[0] = (x - mean) / (var.sqrt() + 1e-9);
  };
}

/// LRN, ONNX's formula: y = x / (bias + alpha / size * square_sum)^beta where the channel window
/// of c is [c - floor((size-1)/2), c + ceil((size-1)/2)] (torch centres even windows the other way).
Kernel makeLrn(const Node& n) {
  double alpha = n.attrFloat("alpha", 1e-4f);
  double beta = n.attrFloat("beta", 0.75f);
  double bias = n.attrFloat("bias", 1.0f);
  int64_t size = n.attr("size").i();
  GS_CHECK(size >= 1, n.describe(), ": size must be >= 1, got ", size);
  return [=, &n](const KernelContext&, const std::vector<at::Tensor>& in,
                 std::vector<at::Tensor>& out) {
    const at::Tensor& x = in[0];
    GS_CHECK(x.dim() >= 3, n.describe(), ": expected input of rank >= 3, got ", x.sizes());
    int64_t before = (size - 1) / 2, after = size - 1 - before;
    // [N, 1, C, rest]: average over a (size x 1) window along C of the zero-padded squares.
    at::Tensor sq = (x * x).reshape({x.size(0), 1, x.size(1), -1});
    sq = at::constant_pad_nd(sq, {0, 0, before, after}, 0);
    at::Tensor avg = at::avg_pool2d(sq, {size, 1}, {1, 1}, {0, 0}, false, true);
    at::Tensor div = (avg * alpha + bias).pow(beta).reshape(x.sizes());
    out[0] = x / div;
  };
}

}  // namespace

void registerNormOps(OpRegistry& r) {
  r.add(OpDef("BatchNormalization").inputs(5).outputs(1, 3)
            .attr("epsilon", AttrKind::Float)
            .attr("momentum", AttrKind::Float)
            .attr("training_mode", AttrKind::Int)
            .kernel(makeBatchNorm));
  r.add(OpDef("InstanceNormalization").inputs(3)
            .attr("epsilon", AttrKind::Float)
            .kernel(makeInstanceNorm));
  r.add(OpDef("LayerNormalization").inputs(2, 3).outputs(1, 3)
            .attr("axis", AttrKind::Int)
            .attr("epsilon", AttrKind::Float)
            .attr("stash_type", AttrKind::Int)
            .kernel(makeLayerNorm));
  r.add(OpDef("LpNormalization").inputs(1)
            .attr("axis", AttrKind::Int)
            .attr("p", AttrKind::Int)
            .kernel(makeLpNorm));
  r.add(OpDef("MeanVarianceNormalization").inputs(1)
            .attr("axes", AttrKind::Ints)
            .kernel(makeMvn));
  r.add(OpDef("LRN").inputs(1)
            .attr("alpha", AttrKind::Float)
            .attr("beta", AttrKind::Float)
            .attr("bias", AttrKind::Float)
            .attr("size", AttrKind::Int, true)
            .kernel(makeLrn));
}

}  // namespace gs
