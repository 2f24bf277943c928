// Miscellaneous ops: Constant, NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss, window
// functions (Hann/Hamming/Blackman) and NonMaxSuppression.
#include <ATen/ATen.h>

#include <algorithm>
#include <limits>
#include <numeric>

#include "ops/kernel_util.h"
#include "ops/registry.h"

namespace gs {
namespace {

/// Constant: exactly one value attribute; the tensor is built once and returned on every run.
Kernel constantKernel(const Node& node) {
  int present = 0;
  for (const char* k : {"value", "sparse_value", "value_float", "value_floats", "value_int",
                        "value_ints", "value_string", "value_strings"})
    present += node.hasAttr(k) ? 1 : 0;
  GS_CHECK(present == 1, node.describe(), ": exactly one value attribute must be set, got ", present);
  GS_CHECK(!node.hasAttr("sparse_value"), node.describe(), ": sparse_value constants are not supported");
  GS_CHECK(!node.hasAttr("value_string") && !node.hasAttr("value_strings"), node.describe(),
           ": string constants are not supported (tensors hold numbers only)");
  at::Tensor t;
  if (const Attribute* a = node.findAttr("value")) {
    GS_CHECK(a->is(AttrKind::Tensor) && a->t().defined(), node.describe(),
             ": attribute 'value' must be a tensor");
    t = a->t();
  } else if (node.hasAttr("value_float")) {
    t = at::scalar_tensor(node.attrFloat("value_float", 0.0f), at::kFloat);
  } else if (node.hasAttr("value_floats")) {
    std::vector<float> v = node.attrFloats("value_floats");
    t = at::tensor(v, at::kFloat);
  } else if (node.hasAttr("value_int")) {
    t = at::scalar_tensor(node.attrInt("value_int", 0), at::kLong);
  } else {
    std::vector<int64_t> v = node.attrInts("value_ints");
    t = at::tensor(v, at::kLong);
  }
  return [t](const KernelContext&, const std::vector<at::Tensor>&, std::vector<at::Tensor>& out) {
    out[0] = t;
  };
}

int64_t parseReduction(const Node& n) {
  std::string r = n.attrString("reduction", "mean");
  if (r == "none") return at::Reduction::None;
  if (r == "sum") return at::Reduction::Sum;
  GS_CHECK(r == "mean", n.describe(), ": reduction must be none, sum or mean, got '", r, "'");
  return at::Reduction::Mean;
}

/// NLL over [N, C, d1..dk] log-probabilities via ATen (differentiable). Without ignore_index
/// nothing is ignored: INT64_MIN never equals a valid class and an invalid one is still rejected.
/// Mean divides by the summed weights of the non-ignored targets, as ONNX specifies.
at::Tensor nll(const Node& n, const at::Tensor& logp, const at::Tensor& target,
               const at::Tensor& weight, int64_t reduction, int64_t ignore) {
  GS_CHECK(logp.dim() >= 2, n.describe(), ": input must be [N, C, d1..dk], got rank ", logp.dim());
  GS_CHECK(target.dim() == logp.dim() - 1, n.describe(), ": target must have rank ", logp.dim() - 1,
           ", got ", target.dim());
  bool half = logp.scalar_type() == at::kHalf;
  at::Tensor x = half ? logp.to(at::kFloat) : logp;
  c10::optional<at::Tensor> w;
  if (weight.defined()) w = weight.to(x.scalar_type());
  at::Tensor y = at::nll_loss_nd(x, target.to(at::kLong), w, reduction, ignore);
  return half ? y.to(at::kHalf) : y;
}

Kernel nllKernel(const Node& node) {
  int64_t reduction = parseReduction(node);
  int64_t ignore = node.attrInt("ignore_index", std::numeric_limits<int64_t>::min());
  const Node* np = &node;
  return [=](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
    out[0] = nll(*np, in[0], in[1], in.size() > 2 ? in[2] : at::Tensor(), reduction, ignore);
  };
}

/// SoftmaxCrossEntropyLoss = NLL(log_softmax(scores, axis 1)); the optional second output is the
/// log-probability tensor.
Kernel sceKernel(const Node& node) {
  int64_t reduction = parseReduction(node);
  int64_t ignore = node.attrInt("ignore_index", std::numeric_limits<int64_t>::min());
  const Node* np = &node;
  return [=](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
    GS_CHECK(in[0].dim() >= 2, np->describe(), ": scores must be [N, C, d1..dk], got rank ",
             in[0].dim());
    bool half = in[0].scalar_type() == at::kHalf;  // no CPU half log_softmax in ATen 1.13
    at::Tensor logp = at::log_softmax(in[0], 1, half ? at::kFloat : in[0].scalar_type());
    out[0] = nll(*np, logp, in[1], in.size() > 2 ? in[2] : at::Tensor(), reduction, ignore);
    if (half) out[0] = out[0].to(at::kHalf);
    if (out.size() > 1) out[1] = half ? logp.to(at::kHalf) : logp;
  };
}

/// Generalized cosine window a0 - a1 cos(t) + a2 cos(2t), t = 2 pi n / N with N = size (periodic)
/// or size - 1 (symmetric), evaluated in float32 exactly as ONNX's function bodies do.
KernelFactory windowKernel(float a0, float a1, float a2) {
  return [=](const Node& node) -> Kernel {
    bool periodic = node.attrInt("periodic", 1) != 0;
    int64_t code = node.attrInt("output_datatype", 1);
    GS_CHECK(isKnownDTypeCode(static_cast<int32_t>(code)), node.describe(),
             ": unknown output_datatype ", code);
    at::ScalarType st = toScalarType(static_cast<DType>(code));
    const Node* np = &node;
    return [=](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
      std::vector<int64_t> sv = toInts(in[0]);
      GS_CHECK(sv.size() == 1 && sv[0] >= 0, np->describe(), ": size must be a non-negative scalar");
      int64_t size = sv[0];
      float denom = static_cast<float>(periodic ? size : size - 1);
      const float tau = 6.2831854820251465f;
      at::Tensor t = at::mul(at::arange(size, at::kFloat), tau / denom);
      at::Tensor w = at::sub(at::scalar_tensor(a0, at::kFloat), at::mul(at::cos(t), a1));
      if (a2 != 0.0f) w = at::add(w, at::mul(at::cos(at::mul(t, 2.0f)), a2));
      out[0] = w.to(st);
    };
  };
}

/// Corner form (y_min, x_min, y_max, x_max) of box i; input is either two corners in any order
/// (center_point_box=0) or (x_center, y_center, width, height).
struct Box {
  float y0, x0, y1, x1;
};
Box boxAt(const float* b, bool center) {
  if (center) {
    float xc = b[0], yc = b[1], w = b[2], h = b[3];
    return {yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2};
  }
  return {std::min(b[0], b[2]), std::min(b[1], b[3]), std::max(b[0], b[2]), std::max(b[1], b[3])};
}

/// True if IoU(a, b) > threshold; degenerate boxes never suppress (ONNX Runtime's rule).
bool suppresses(const Box& a, const Box& b, float threshold) {
  float iy0 = std::max(a.y0, b.y0), ix0 = std::max(a.x0, b.x0);
  float iy1 = std::min(a.y1, b.y1), ix1 = std::min(a.x1, b.x1);
  if (iy1 <= iy0 || ix1 <= ix0) return false;
  float inter = (iy1 - iy0) * (ix1 - ix0);
  float area_a = (a.y1 - a.y0) * (a.x1 - a.x0), area_b = (b.y1 - b.y0) * (b.x1 - b.x0);
  float uni = area_a + area_b - inter;
  if (area_a <= 0 || area_b <= 0 || uni <= 0) return false;
  return inter / uni > threshold;
}

/// NonMaxSuppression: per batch and class, greedy selection in descending score order (equal
/// scores: lower box index first), dropping boxes with score <= score_threshold (when given) and
/// boxes whose IoU with a selected box exceeds iou_threshold. Output rows [batch, class, box].
Kernel nmsKernel(const Node& node) {
  int64_t cpb = node.attrInt("center_point_box", 0);
  GS_CHECK(cpb == 0 || cpb == 1, node.describe(), ": center_point_box must be 0 or 1");
  bool center = cpb == 1;
  const Node* np = &node;
  return [=](const KernelContext&, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) {
    at::Tensor boxes = in[0].to(at::kFloat).contiguous(), scores = in[1].to(at::kFloat).contiguous();
    GS_CHECK(boxes.dim() == 3 && boxes.size(2) == 4, np->describe(), ": boxes must be [B, S, 4]");
    GS_CHECK(scores.dim() == 3 && scores.size(0) == boxes.size(0) && scores.size(2) == boxes.size(1),
             np->describe(), ": scores must be [B, C, S] matching boxes");
    int64_t max_out = in.size() > 2 && in[2].defined() && in[2].numel() ? toInts(in[2])[0] : 0;
    float iou = in.size() > 3 && in[3].defined() && in[3].numel() ? toDoubles(in[3])[0] : 0.0f;
    bool has_st = in.size() > 4 && in[4].defined() && in[4].numel();
    float st = has_st ? static_cast<float>(toDoubles(in[4])[0]) : 0.0f;
    GS_CHECK(iou >= 0.0f && iou <= 1.0f, np->describe(), ": iou_threshold must be in [0, 1]");
    int64_t nb = boxes.size(0), nc = scores.size(1), ns = boxes.size(1);
    const float* bp = boxes.data_ptr<float>();
    const float* sp = scores.data_ptr<float>();
    std::vector<int64_t> sel;
    std::vector<int64_t> order;
    std::vector<Box> kept;
    for (int64_t b = 0; b < nb && max_out > 0; ++b) {
      for (int64_t c = 0; c < nc; ++c) {
        const float* s = sp + (b * nc + c) * ns;
        order.clear();
        for (int64_t i = 0; i < ns; ++i)
          if (!has_st || s[i] > st) order.push_back(i);
        std::stable_sort(order.begin(), order.end(), [s](int64_t x, int64_t y) { return s[x] > s[y]; });
        kept.clear();
        for (int64_t i : order) {
          if (static_cast<int64_t>(kept.size()) >= max_out) break;
          Box bx = boxAt(bp + (b * ns + i) * 4, center);
          bool drop = false;
          for (const Box& k : kept)
            if (suppresses(k, bx, iou)) {
              drop = true;
              break;
            }
          if (drop) continue;
          kept.push_back(bx);
          sel.insert(sel.end(), {b, c, i});
        }
      }
    }
    int64_t n = static_cast<int64_t>(sel.size()) / 3;
    out[0] = at::tensor(sel, at::kLong).reshape({n, 3});
  };
}

}  // namespace

void registerMiscOps(OpRegistry& r) {
  r.add(OpDef("Constant").inputs(0).attr("value", AttrKind::Tensor).attr("sparse_value", AttrKind::Tensor)
            .attr("value_float", AttrKind::Float).attr("value_floats", AttrKind::Floats)
            .attr("value_int", AttrKind::Int).attr("value_ints", AttrKind::Ints)
            .attr("value_string", AttrKind::String).attr("value_strings", AttrKind::Strings)
            .kernel(constantKernel));
  r.add(OpDef("NegativeLogLikelihoodLoss").inputs(2, 3).attr("ignore_index", AttrKind::Int)
            .attr("reduction", AttrKind::String).kernel(nllKernel));
  r.add(OpDef("SoftmaxCrossEntropyLoss").inputs(2, 3).outputs(1, 2).attr("ignore_index", AttrKind::Int)
            .attr("reduction", AttrKind::String).kernel(sceKernel));
  r.add(OpDef("HannWindow").inputs(1).attr("output_datatype", AttrKind::Int)
            .attr("periodic", AttrKind::Int).kernel(windowKernel(0.5f, 0.5f, 0.0f)));
  r.add(OpDef("HammingWindow").inputs(1).attr("output_datatype", AttrKind::Int)
            .attr("periodic", AttrKind::Int).kernel(windowKernel(25.0f / 46.0f, 1.0f - 25.0f / 46.0f, 0.0f)));
  r.add(OpDef("BlackmanWindow").inputs(1).attr("output_datatype", AttrKind::Int)
            .attr("periodic", AttrKind::Int).kernel(windowKernel(0.42f, 0.5f, 0.08f)));
  r.add(OpDef("NonMaxSuppression").inputs(2, 5).attr("center_point_box", AttrKind::Int)
            .kernel(nmsKernel));
}

}  // namespace gs
