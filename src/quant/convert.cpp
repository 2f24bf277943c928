// lowerToQdq: gs::FakeQuant / gs::LsqQuant -> QuantizeLinear / DequantizeLinear (+ Clip).
#include "quant/convert.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <vector>

#include "quant/fake_quant_ops.h"
#include "quant/quantizer.h"
#include "support/error.h"

namespace gs::quant {

namespace {

Value* param(Graph& g, const std::string& name, const at::Tensor& t) {
  return g.addParam(g.uniqueValueName(name), t.contiguous(), false);
}

at::Tensor paramData(const Node& n, size_t i, const char* what) {
  GS_CHECK(n.input(i) && n.input(i)->isParam(), n.describe(), ": ", what,
           " must be a parameter to lower to QDQ");
  return n.input(i)->data().detach();
}

/// Scale-shaped int8 / uint8 zero point.
at::Tensor zpTensor(const at::Tensor& zp, const QuantSpec& s) {
  return at::round(zp).to(s.is_signed ? at::kChar : at::kByte);
}

void lowerWeight(Graph& g, Node* n, const QuantSpec& s, const at::Tensor& scale, const at::Tensor& zp,
                 QdqReport& rep) {
  QLayout l = QLayout::of(s);
  const at::Tensor& w = n->input(0)->data();
  at::ScalarType it = s.is_signed ? at::kChar : at::kByte;
  at::Tensor codes = quantizeCodes(w, scale, zp, l, n->describe()).to(it);
  std::string base = n->name();
  Node* dq;
  if (s.granularity == Granularity::PerGroup) {
    // Per-axis DQ over the grouped view: codes moved so the group axis is last, [rows, g].
    int64_t a = s.axis, gsz = s.group_size;
    at::Tensor moved = codes.movedim(a, -1).contiguous();
    std::vector<int64_t> mshape(moved.sizes().begin(), moved.sizes().end());
    at::Tensor flat = moved.reshape({-1, gsz});
    at::Tensor sflat = scale.movedim(a, -1).reshape({-1}).to(at::kFloat);
    at::Tensor zflat = zpTensor(zp.movedim(a, -1).reshape({-1}), s);
    Value* q = param(g, base + ".quantized", flat);
    dq = g.addNode("DequantizeLinear", {q, param(g, base + ".scale_q", sflat), param(g, base + ".zp_q", zflat)},
                   1, g.uniqueNodeName(base + ".dq"), {{"axis", Attribute(int64_t{0})}}, n);
    Value* shp = param(g, base + ".shape", at::tensor(mshape, at::kLong));
    Node* rs = g.addNode("Reshape", {dq->output(0), shp}, 1, g.uniqueNodeName(base + ".reshape"), {}, n);
    Value* out = rs->output(0);
    if (a != w.dim() - 1) {
      std::vector<int64_t> perm;  // inverse of movedim(a, -1)
      for (int64_t d = 0; d < w.dim(); ++d) perm.push_back(d < a ? d : d == a ? w.dim() - 1 : d - 1);
      Node* tr = g.addNode("Transpose", {out}, 1, g.uniqueNodeName(base + ".transpose"),
                           {{"perm", Attribute(perm)}}, n);
      out = tr->output(0);
    }
    g.replaceAllUsesWith(n->output(0), out);
    rep.weight_bytes += flat.numel();
  } else {
    Value* q = param(g, base + ".quantized", codes);
    std::map<std::string, Attribute> attrs;
    if (s.granularity == Granularity::PerChannel) attrs["axis"] = Attribute(s.axis);
    dq = g.addNode("DequantizeLinear",
                   {q, param(g, base + ".scale_q", scale.to(at::kFloat)), param(g, base + ".zp_q", zpTensor(zp, s))},
                   1, g.uniqueNodeName(base + ".dq"), attrs, n);
    g.replaceAllUsesWith(n->output(0), dq->output(0));
    rep.weight_bytes += codes.numel();
  }
  ++rep.weights;
}

void lowerActivation(Graph& g, Node* n, const QuantSpec& s, const at::Tensor& scale,
                     const at::Tensor& zp, QdqReport& rep) {
  std::string base = n->name();
  Value* x = n->input(0);
  const bool full = s.bits == 8 && !s.narrow_range;
  std::map<std::string, Attribute> attrs;
  at::Tensor sc = scale.to(at::kFloat), z = zp.to(at::kFloat);
  if (s.granularity == Granularity::PerChannel) attrs["axis"] = Attribute(s.axis);
  GS_CHECK(s.granularity != Granularity::PerGroup, n->describe(),
           ": per-group activation quantization has no opset-17 QDQ form");
  if (!full) {
    // Clip to the grid's real range so QuantizeLinear's 8-bit saturation matches quant_min/max.
    at::Tensor lo = (static_cast<double>(s.qmin()) - z) * sc, hi = (static_cast<double>(s.qmax()) - z) * sc;
    if (sc.numel() == 1) {
      Node* c = g.addNode("Clip", {x, param(g, base + ".clip_min", lo.reshape({})),
                                   param(g, base + ".clip_max", hi.reshape({}))},
                          1, g.uniqueNodeName(base + ".clip"), {}, n);
      x = c->output(0);
    } else {
      // Per channel: Max(Min(x, hi), lo) with the bounds broadcast along the axis.
      int64_t rank = x->shape() ? static_cast<int64_t>(x->shape()->size()) : -1;
      GS_CHECK(rank > 0, n->describe(), ": per-channel clipping needs the input rank");
      int64_t a = s.axis < 0 ? s.axis + rank : s.axis;
      std::vector<int64_t> shp(static_cast<size_t>(rank), 1);
      shp[static_cast<size_t>(a)] = sc.numel();
      Node* mn = g.addNode("Min", {x, param(g, base + ".clip_max", hi.reshape(shp))}, 1,
                           g.uniqueNodeName(base + ".clip_hi"), {}, n);
      Node* mx = g.addNode("Max", {mn->output(0), param(g, base + ".clip_min", lo.reshape(shp))}, 1,
                           g.uniqueNodeName(base + ".clip_lo"), {}, n);
      x = mx->output(0);
    }
  }
  Value* sv = param(g, base + ".scale_q", sc);
  Value* zv = param(g, base + ".zp_q", zpTensor(z, s));
  Node* q = g.addNode("QuantizeLinear", {x, sv, zv}, 1, g.uniqueNodeName(base + ".q"), attrs, n);
  Node* dq = g.addNode("DequantizeLinear", {q->output(0), sv, zv}, 1, g.uniqueNodeName(base + ".dq"), attrs, n);
  g.replaceAllUsesWith(n->output(0), dq->output(0));
  ++rep.activations;
}

/// Per-token dynamic quantization from standard ops (same arithmetic as the gs kernel).
void lowerDynamic(Graph& g, Node* n, const QuantSpec& s, QdqReport& rep) {
  std::string b = n->name();
  Value* x = n->input(0);
  auto node = [&](const std::string& op, std::vector<Value*> in, const std::string& tag,
                  std::map<std::string, Attribute> a = {}) {
    return g.addNode(op, in, 1, g.uniqueNodeName(b + "." + tag), std::move(a), n)->output(0);
  };
  auto cst = [&](const std::string& tag, double v) {
    return param(g, b + "." + tag, at::scalar_tensor(v, at::kFloat));
  };
  std::map<std::string, Attribute> red{{"axes", Attribute(std::vector<int64_t>{-1})},
                                       {"keepdims", Attribute(int64_t{1})}};
  Value* zero = cst("zero", 0.0);
  Value* mn = node("Min", {node("ReduceMin", {x}, "rmin", red), zero}, "min0");
  Value* mx = node("Max", {node("ReduceMax", {x}, "rmax", red), zero}, "max0");
  const double qmin = static_cast<double>(s.qmin()), qmax = static_cast<double>(s.qmax());
  Value* eps = cst("eps", std::numeric_limits<float>::epsilon());
  Value *scale, *zp;
  if (s.symmetric) {
    Value* amax = node("Max", {node("Neg", {mn}, "neg"), mx}, "amax");
    scale = node("Max", {node("Div", {amax, cst("half_range", (qmax - qmin) / 2.0)}, "sdiv"), eps}, "scale");
    zp = cst("zp", s.is_signed ? 0.0 : std::floor((qmin + qmax + 1) / 2.0));
  } else {
    scale = node("Max", {node("Div", {node("Sub", {mx, mn}, "range"), cst("levels", qmax - qmin)}, "sdiv"), eps},
                 "scale");
    Value* r = node("Round", {node("Div", {mn, scale}, "mdiv")}, "mround");
    zp = node("Clip", {node("Sub", {cst("qmin", qmin), r}, "zsub"), cst("qlo", qmin), cst("qhi", qmax)}, "zp");
  }
  Value* q = node("Add", {node("Round", {node("Div", {x, scale}, "xdiv")}, "round"), zp}, "addzp");
  q = node("Clip", {q, cst("clip_lo", qmin), cst("clip_hi", qmax)}, "clip");
  Value* y = node("Mul", {node("Sub", {q, zp}, "subzp"), scale}, "deq");
  g.replaceAllUsesWith(n->output(0), y);
  ++rep.dynamic;
}

/// Per-tensor float scale of a DequantizeLinear fed by QuantizeLinear (an activation), else
/// undefined.
at::Tensor activationScale(const Value* v) {
  const Node* dq = v ? v->producer() : nullptr;
  if (!dq || dq->opType() != "DequantizeLinear" || !dq->input(0) || dq->input(0)->isParam()) return {};
  const Value* s = dq->input(1);
  if (!s || !s->isParam() || s->data().numel() != 1) return {};
  return s->data().to(at::kFloat).reshape({});
}

/// Output-channel scales (n of them, or one) of a DequantizeLinear of integer weight
/// parameters feeding `layer` as its weight, else undefined.
at::Tensor weightScale(const Node& layer, int64_t n) {
  const Node* dq = layer.input(1) ? layer.input(1)->producer() : nullptr;
  if (!dq || dq->opType() != "DequantizeLinear" || !dq->input(0)->isParam()) return {};
  const at::Tensor& codes = dq->input(0)->data();
  const at::Tensor& s = dq->input(1)->data();
  if (s.numel() == 1) return s.to(at::kFloat).reshape({1});
  // Per channel along the output-channel axis of the weight as the layer reads it.
  int64_t rank = codes.dim(), axis = dq->attrInt("axis", 1);
  if (axis < 0) axis += rank;
  int64_t out_axis = 0;
  if (layer.opType() == "Gemm" && layer.attrInt("transB", 0) == 0) out_axis = 1;
  if (axis != out_axis || s.numel() != n) return {};
  return s.to(at::kFloat).reshape({n});
}

int64_t quantizeBiases(Graph& g) {
  int64_t count = 0;
  std::vector<Node*> layers;
  for (const auto& n : g.nodes())
    if (accumulatorBias(*n)) layers.push_back(n.get());
  for (Node* n : layers) {
    at::Tensor bias = accumulatorBias(*n)->data().detach().to(at::kFloat);
    at::Tensor xs = activationScale(n->input(0));
    at::Tensor ws = weightScale(*n, bias.numel());
    if (!xs.defined() || !ws.defined()) continue;
    at::Tensor bs = accumulatorStep(xs, ws, bias.numel());
    at::Tensor codes = int32BiasCodes(bias, bs);
    if (!codes.defined()) continue;
    std::string base = n->name() + ".bias";
    Value* qv = param(g, base + ".quantized", codes);
    Value* sv = param(g, base + ".scale_q", bs);
    Value* zv = param(g, base + ".zp_q", at::zeros({bias.numel()}, at::kInt));
    Node* dq = g.addNode("DequantizeLinear", {qv, sv, zv}, 1, g.uniqueNodeName(base + ".dq"),
                         {{"axis", Attribute(int64_t{0})}}, n);
    dq->output(0)->setDType(DType::Float32);
    n->setInput(2, dq->output(0));
    ++count;
  }
  return count;
}

}  // namespace

Value* accumulatorBias(const Node& n) {
  if (n.opType() != "Conv" && n.opType() != "Gemm") return nullptr;
  if (n.numInputs() < 3 || !n.input(2) || !n.input(2)->isParam() || n.input(2)->data().dim() != 1)
    return nullptr;
  if (n.opType() == "Gemm" && (n.attrFloat("alpha", 1.0f) != 1.0f || n.attrFloat("beta", 1.0f) != 1.0f ||
                               n.attrInt("transA", 0) != 0))
    return nullptr;
  return n.input(2);
}

at::Tensor accumulatorStep(const at::Tensor& x_scale, const at::Tensor& w_scale, int64_t channels) {
  at::Tensor ws = w_scale.to(at::kFloat).reshape({-1});
  if (x_scale.numel() != 1 || (ws.numel() != 1 && ws.numel() != channels)) return {};
  return (ws * x_scale.to(at::kFloat).reshape({})).expand({channels}).contiguous();
}

at::Tensor int32BiasCodes(const at::Tensor& bias, const at::Tensor& step) {
  at::Tensor codes = at::round(bias.to(at::kFloat) / step);
  // Out of int32 range only for degenerate scales.
  if (!at::all(codes.abs() < 2147483520.0).item<bool>()) return {};
  return codes.to(at::kInt).contiguous();
}

QdqReport lowerToQdq(Graph& g, const QdqOptions& opts) {
  QdqReport rep;
  std::vector<Node*> qs;
  for (const auto& n : g.nodes())
    if (isQuantizer(*n)) qs.push_back(n.get());
  for (Node* n : qs) {
    QuantSpec s = specFromAttrs(*n);
    bool lsq = n->opType() == "LsqQuant";
    size_t en = lsq ? 2 : 3;
    bool disabled = n->input(en) && n->input(en)->isParam() && n->input(en)->data().item<double>() == 0.0;
    std::string obs = n->attrString("observer", "none");
    if (disabled) {
      g.replaceAllUsesWith(n->output(0), n->input(0));
    } else if (obs.rfind("dynamic", 0) == 0) {
      GS_CHECK(obs == "dynamic_per_token", n->describe(), ": only per-token dynamic quantization lowers to ONNX");
      lowerDynamic(g, n, s, rep);
    } else {
      at::Tensor scale = paramData(*n, 1, lsq ? "step" : "scale");
      at::Tensor zp = lsq ? at::zeros_like(scale) : paramData(*n, 2, "zero_point");
      if (n->input(0)->isParam()) lowerWeight(g, n, s, scale, zp, rep);
      else lowerActivation(g, n, s, scale, zp, rep);
    }
    g.eraseNode(n);
  }
  if (opts.int32_bias) rep.int32_biases = quantizeBiases(g);
  g.removeDeadValues();
  bool gs_left = false;
  for (const auto& n : g.nodes()) gs_left = gs_left || n->domain() == "gs";
  if (!gs_left) g.opsets.erase("gs");
  return rep;
}

}  // namespace gs::quant
