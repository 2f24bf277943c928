// Exact fake-quant Conv / Gemm / MatMul / residual Add for eval mode: integer-code accumulation, deployed-int8 requantization.
#include "runtime/fq_exact_fusion.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <unordered_set>

#include "quant/convert.h"
#include "quant/fake_quant_ops.h"
#include "quant/qparams.h"
#include "runtime/int8_kernels.h"
#include "support/error.h"

namespace gs {
namespace {

/// Largest integer up to which every float32 integer sum is exact.
constexpr double kExactF32 = 16777216.0;  // 2^24

bool isGsQuantizer(const Node* n) {
  return n && n->domain() == "gs" && (n->opType() == "FakeQuant" || n->opType() == "LsqQuant");
}

bool isParamOrAbsent(const Node* n, size_t i) { return !n->input(i) || n->input(i)->isParam(); }

bool oneElementParam(const Value* v) {
  return v && v->isParam() && v->data().defined() && v->data().numel() == 1;
}

/// A static gs quantizer: FakeQuant (scale, zero point, enable?) or LsqQuant (step, enable?) with
/// parameter inputs, and no observer that recomputes parameters in eval mode.
bool staticQuantizer(const Node* q) {
  if (!isGsQuantizer(q) || !q->output(0) || q->numOutputs() != 1) return false;
  if (q->attrInt("group_size", 0) > 0) return false;
  if (q->opType() == "FakeQuant") {
    if (q->attrString("observer", "none").rfind("dynamic", 0) == 0) return false;
    return q->input(1) && q->input(2) && q->input(1)->isParam() && q->input(2)->isParam() &&
           isParamOrAbsent(q, 3);
  }
  return q->input(1) && q->input(1)->isParam() && isParamOrAbsent(q, 2);
}

/// The quantizer's inputs as [scale, zero point (nullptr for LSQ), enable (or nullptr)].
std::vector<const Value*> quantizerParams(const Node* q) {
  if (q->opType() == "FakeQuant") return {q->input(1), q->input(2), q->input(3)};
  return {q->input(1), nullptr, q->input(2)};
}

/// Output-channel axis of the weight of `layer`, or -2 when the layer is not handled.
int64_t outputAxis(const Node* layer) {
  if (!layer->domain().empty() || layer->numOutputs() != 1 || !layer->output(0)) return -2;
  const std::string& op = layer->opType();
  if (op == "Conv") return layer->numInputs() >= 2 && layer->numInputs() <= 3 ? 0 : -2;
  if (op == "Gemm") {
    if (layer->attrFloat("alpha", 1.f) != 1.f || layer->attrFloat("beta", 1.f) != 1.f ||
        layer->attrInt("transA", 0) != 0 || layer->numInputs() < 2 || !isParamOrAbsent(layer, 2))
      return -2;
    return layer->attrInt("transB", 0) != 0 ? 0 : 1;
  }
  if (op == "MatMul") return layer->numInputs() == 2 ? 1 : -2;
  return -2;
}

Kernel kernelOf(const Node& n) {
  const OpSchema* s = OpRegistry::global().find(n.domain(), n.opType());
  GS_CHECK(s && s->kernel, n.describe(), ": unsupported op '", n.opType(), "'");
  return s->kernel(n);
}

bool disabled(const at::Tensor& enable) {
  return enable.defined() && enable.item<double>() == 0.0;
}

/// y[o, c, i] = float(a[o, c, i] * scale[c] + bias[c]) in float64 over an accumulator viewed as
/// [outer, C, inner] (contiguous), plus 16 * hi[o, c, i] first when `hi` is given (the split
/// path), then Relu: one pass, rounded once to float32.
template <typename T>
__attribute__((optimize("tree-vectorize"))) void epilogueBlock(const T* a, const T* h, float* y,
                                                               int64_t n, double s, double b,
                                                               bool relu) {
  if (h) {
    for (int64_t i = 0; i < n; ++i)
      y[i] = static_cast<float>((static_cast<double>(a[i]) + 16.0 * static_cast<double>(h[i])) * s + b);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(static_cast<double>(a[i]) * s + b);
  }
  if (relu)
    for (int64_t i = 0; i < n; ++i) y[i] = std::max(y[i], 0.0f);
}

template <typename T>
at::Tensor epilogue(const at::Tensor& a, const at::Tensor& hi, const std::vector<double>& scale,
                    const std::vector<double>& bias, int64_t inner, bool relu) {
  const int64_t c = static_cast<int64_t>(scale.size());
  at::Tensor y = at::empty(a.sizes(), a.options().dtype(at::kFloat));
  const T* pa = a.data_ptr<T>();
  const T* ph = hi.defined() ? hi.data_ptr<T>() : nullptr;
  float* py = y.data_ptr<float>();
  if (inner == 1) {  // Gemm / MatMul: rows of C channels, the per-channel factors vary fastest
    const int64_t rows = a.numel() / std::max<int64_t>(c, 1);
    at::parallel_for(0, rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(c, 1)),
                     [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t j = 0; j < c; ++j) {
          const int64_t i = r * c + j;
          double v = static_cast<double>(pa[i]);
          if (ph) v += 16.0 * static_cast<double>(ph[i]);
          const float o = static_cast<float>(v * scale[j] + (bias.empty() ? 0.0 : bias[j]));
          py[i] = relu ? std::max(o, 0.0f) : o;
        }
    });
    return y;
  }
  const int64_t blocks = a.numel() / inner;  // outer * C
  at::parallel_for(0, blocks, std::max<int64_t>(1, 4096 / inner), [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const size_t ch = static_cast<size_t>(blk % c);
      const int64_t off = blk * inner;
      epilogueBlock<T>(pa + off, ph ? ph + off : nullptr, py + off, inner, scale[ch],
                       bias.empty() ? 0.0 : bias[ch], relu);
    }
  });
  return y;
}

/// Shape of `t` with dim 0 doubled (two batches stacked).
std::vector<int64_t> cat0Shape(const at::Tensor& t) {
  std::vector<int64_t> s(t.sizes().begin(), t.sizes().end());
  s[0] *= 2;
  return s;
}

/// `t` as `n` doubles (a one-element tensor repeated).
std::vector<double> perChannel(const at::Tensor& t, int64_t n, double factor) {
  at::Tensor d = t.to(at::kDouble).reshape({-1}).contiguous();
  std::vector<double> v(static_cast<size_t>(n));
  const double* p = d.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = p[d.numel() == 1 ? 0 : i] * factor;
  return v;
}

/// Kernel input indices beyond [x, x_scale, x_zp, x_enable, W, w_scale, w_zp, w_enable, bias]:
/// the absorbed Clip's bounds and output quantizer's scale / zero point / enable.
enum : size_t { kLo = 9, kHi = 10, kYs = 11, kYz = 12, kYe = 13 };

/// What one exact layer step needs; kernel inputs are
/// [x, x_scale, x_zp, x_enable, W, w_scale, w_zp, w_enable, bias, clip_lo, clip_hi, y_scale,
///  y_zp, y_enable].
struct ExactLayer {
  std::string op, what;
  int64_t x_qmin = 0, x_qmax = 0;
  quant::QLayout wl;
  bool relu = false;
  bool lsq = false;  // the weight quantizer is a gs::LsqQuant (step, enable)
  Kernel layer_k, wq_k;  // the original layer and weight quantizer
  // Absorbed output: Clip (bounds: inputs kLo / kHi) and the output FakeQuant (kYs / kYz / kYe),
  // requantized as the deployed int8 layer computes it (requantize()).
  bool clip = false, out_q = false;
  bool y_signed = false;  // the output quantizer is on the int8 grid (else uint8)
  Kernel yq_k;

  // Weight codes q_w - zp_w as float32 and their largest magnitude, rebuilt when W, its scale or
  // zero point change (training between eval runs).
  mutable std::array<TensorStamp, 3> stamps;
  mutable at::Tensor cw;
  mutable double max_cw = 0;

  /// Reduction length of one output element.
  int64_t reduction(const at::Tensor& w) const {
    if (op == "Conv") return w.numel() / std::max<int64_t>(w.size(0), 1);
    return w.size(op == "Gemm" && wl.axis == 0 ? 1 : 0);
  }

  void refreshCodes(const std::vector<at::Tensor>& in) const {
    std::array<TensorStamp, 3> now{TensorStamp::of(in[4]), TensorStamp::of(in[5]),
                                   TensorStamp::of(in[6])};
    if (cw.defined() && now == stamps) return;
    // The same rounding as the quantizer's (quantizeCodes), minus the zero point.
    at::Tensor c = quant::quantizeCodes(in[4], in[5], in[6], wl, what);
    if (in[6].defined()) c = c - quant::broadcastParam(in[6].to(at::kFloat), in[4], wl, what);
    cw = c.contiguous();
    max_cw = cw.abs().max().item<double>();
    stamps = now;
  }

  void run(const KernelContext& ctx, const std::vector<at::Tensor>& in,
           std::vector<at::Tensor>& out) const {
    const at::Tensor& x = in[0];
    std::vector<at::Tensor> y(1);
    if (x.scalar_type() != at::kFloat || in[4].scalar_type() != at::kFloat || disabled(in[3]) ||
        disabled(in[7])) {
      std::vector<at::Tensor> wq(1);
      wq_k(ctx, lsq ? std::vector<at::Tensor>{in[4], in[5], in[7]}
                    : std::vector<at::Tensor>{in[4], in[5], in[6], in[7]}, wq);
      layer_k(ctx, {x, wq[0], in[8]}, y);
      out[0] = finish(ctx, in, relu ? at::relu(y[0]) : y[0]);
      return;
    }
    refreshCodes(in);
    const double sx = in[1].item<double>();
    const double zx = in[2].defined() ? in[2].item<double>() : 0.0;
    // x = (q - zp) * s_x exactly as the quantizer computed it: x / s_x is within a few ulps of
    // the integer q - zp, so rounding recovers the code.
    at::Tensor cx = at::mul(x, 1.0 / sx).round_();
    const double max_cx = std::max(static_cast<double>(x_qmax) - zx, zx - static_cast<double>(x_qmin));
    const double k = static_cast<double>(reduction(in[4]));

    // Accumulate exactly: every partial sum is an integer below 2^24 (float32) or 2^53.
    at::Tensor acc, hi;
    const int64_t n = x.dim() >= 2 ? x.size(0) : 0;
    if (k * max_cx * max_cw <= kExactF32) {
      layer_k(ctx, {cx, cw}, y);
      acc = y[0];
    } else if (n > 0 && k * std::max(8.0, std::ceil(max_cx / 16)) * max_cw <= kExactF32) {
      // c_x = 16 h + l with |h| <= ceil(max/16), |l| <= 8: two exact float32 passes in one call.
      at::Tensor hl = at::empty(cat0Shape(cx), cx.options());
      at::Tensor h = hl.narrow(0, 0, n), l = hl.narrow(0, n, n);
      at::mul_out(h, cx, 1.0 / 16).round_();
      at::sub_out(l, cx, h * 16);
      layer_k(ctx, {hl, cw}, y);
      hi = y[0].narrow(0, 0, n).contiguous();
      acc = y[0].narrow(0, n, n);
    } else {
      layer_k(ctx, {cx.to(at::kDouble), cw.to(at::kDouble)}, y);
      acc = y[0];
    }
    acc = acc.contiguous();
    // Channels: dim 1 of a conv output, the last dim of a Gemm / MatMul output.
    const int64_t c = acc.dim() == 0 ? 1 : acc.size(op == "Conv" ? 1 : acc.dim() - 1);
    const int64_t inner = op == "Conv" ? acc.numel() / std::max<int64_t>(acc.size(0) * c, 1) : 1;
    const at::Tensor& b = in[8];
    const bool channel_bias = !b.defined() || b.numel() == c || b.numel() == 1;
    if (out_q && channel_bias && !disabled(in[kYe])) {
      out[0] = requantize(acc, hi, in, c, inner);
      return;
    }
    std::vector<double> scale = perChannel(in[5], c, sx), bias;
    if (b.defined() && channel_bias) bias = perChannel(b, c, 1.0);
    at::Tensor r = acc.scalar_type() == at::kDouble
                       ? epilogue<double>(acc, hi, scale, bias, inner, relu && channel_bias)
                       : epilogue<float>(acc, hi, scale, bias, inner, relu && channel_bias);
    if (!channel_bias) {  // a Gemm C of shape [N, M]: added in float64, then rounded
      r = (acc.to(at::kDouble) + (hi.defined() ? hi.to(at::kDouble) * 16 : at::zeros({}, at::kDouble)))
              .mul_(at::tensor(scale, at::kDouble)).add_(b.to(at::kDouble)).to(at::kFloat);
      if (relu) at::relu_(r);
    }
    out[0] = finish(ctx, in, std::move(r));
  }

  /// The absorbed Clip and output quantizer on a float result (paths that do not requantize).
  at::Tensor finish(const KernelContext& ctx, const std::vector<at::Tensor>& in, at::Tensor y) const {
    if (clip) y = at::clamp(y, in[kLo].defined() ? c10::optional<at::Scalar>(in[kLo].item()) : c10::nullopt,
                            in[kHi].defined() ? c10::optional<at::Scalar>(in[kHi].item()) : c10::nullopt);
    if (!out_q) return y;
    std::vector<at::Tensor> o(1);
    yq_k(ctx, {y, in[kYs], in[kYz], in[kYe]}, o);
    return o[0];
  }

  /// Deploy-exact output: what the int8 layer (gstick's kernels, ONNX Runtime's QLinearConv /
  /// QGemm; int8_gemm.h requantOne) stores, dequantized as the output quantizer would:
  ///   m = float(x_scale * w_scale[c]) / y_scale, v = float(acc + bias_acc[c]) * m,
  ///   q = round_half_even(clamp(v, lo - zp, hi - zp)) + zp, y = (q - zp) * y_scale,
  /// with [lo, hi] the output grid narrowed by Relu (zp) or Clip (QuantizeLinear of its bounds),
  /// and bias_acc = round(bias / (x_scale * w_scale)): the int32 bias every quantization
  /// algorithm's convert writes by default (`int32_bias`; PTQ's fake-quant biases are already on
  /// that grid, QAT's are rounded here as at export). A bias too large for int32 stays float,
  /// as convert keeps it: v = float(acc) * m + bias[c] / y_scale.
  at::Tensor requantize(const at::Tensor& acc, const at::Tensor& hi16, const std::vector<at::Tensor>& in,
                        int64_t c, int64_t inner) const {
    int8::QParams xq, yq;
    xq.scale = in[1].item<float>();
    yq.scale = in[kYs].item<float>();
    yq.zero_point = in[kYz].defined() ? static_cast<int32_t>(in[kYz].item<float>()) : 0;
    yq.is_signed = y_signed;
    int8::Activation act;
    if (relu) act.kind = int8::Activation::kRelu;
    if (clip) {
      act.kind = int8::Activation::kClip;
      act.lo = in[kLo].defined() ? in[kLo].item<float>() : -std::numeric_limits<float>::infinity();
      act.hi = in[kHi].defined() ? in[kHi].item<float>() : std::numeric_limits<float>::infinity();
    }
    const at::Tensor ws = in[5].to(at::kFloat).reshape({-1}).expand({c}).contiguous();
    // The bias as the export stores it: int32 codes on the accumulator grid, or float.
    at::Tensor codes, fbias;
    if (in[8].defined()) {
      const at::Tensor step = quant::accumulatorStep(in[1], in[5], c);
      if (step.defined()) codes = quant::int32BiasCodes(in[8], step);
      if (!codes.defined()) fbias = in[8].to(at::kFloat).reshape({-1}).expand({c}).contiguous();
    }
    std::vector<float> mult, bias_f;
    const int8::detail::Requant rq = int8::makeRequant(
        xq, yq, act, c, ws.data_ptr<float>(), fbias.defined() ? fbias.data_ptr<float>() : nullptr,
        codes.defined() ? codes.data_ptr<int32_t>() : nullptr, mult, bias_f);
    const int32_t zp = yq.zero_point;
    const float sy = yq.scale;
    // The exact accumulator as int64 (float32 / float64 integers, plus 16 * the high half).
    at::Tensor a = acc.to(at::kLong);
    if (hi16.defined()) a.add_(hi16.to(at::kLong), 16);
    a = a.contiguous();
    at::Tensor y = at::empty(a.sizes(), a.options().dtype(at::kFloat));
    const int64_t* pa = a.data_ptr<int64_t>();
    float* py = y.data_ptr<float>();
    at::parallel_for(0, a.numel(), 16384, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t j = inner == 1 ? i % c : (i / inner) % c;
        py[i] = static_cast<float>(int8::detail::requantOne(static_cast<int32_t>(pa[i]), j, rq) - zp) * sy;
      }
    });
    return y;
  }
};

/// A static per-tensor gs::FakeQuant on a full 8-bit grid with one-element parameters: the
/// quantizers an int8 runtime stores as uint8 / int8 tensors.
bool eightBitTensorQuantizer(const Node* q) {
  if (!q || q->opType() != "FakeQuant" || !staticQuantizer(q) || q->hasAttr("axis") ||
      !oneElementParam(q->input(1)) || !oneElementParam(q->input(2)))
    return false;
  const int64_t lo = q->attr("quant_min").i(), hi = q->attr("quant_max").i();
  return (lo == 0 && hi == 255) || (lo == -128 && hi == 127);
}

/// The single-output node that is the only consumer (through its input 0) of n's output, if it
/// is free to join a group; nullptr otherwise (a graph output, several uses, claimed).
const Node* soleConsumer(const Node* n, const std::unordered_set<const Value*>& graph_outputs,
                         const std::unordered_set<const Node*>& claimed) {
  const Value* v = n->output(0);
  if (graph_outputs.count(v) || v->uses().size() != 1) return nullptr;
  const Node* u = v->uses()[0].user;
  return u && !claimed.count(u) && u->numOutputs() == 1 && u->output(0) && u->input(0) == v ? u : nullptr;
}

void matchLayer(const Node* layer, const std::unordered_set<const Value*>& graph_outputs,
                std::unordered_set<const Node*>& claimed, std::vector<FusedGroup>& groups) {
  const int64_t axis = outputAxis(layer);
  if (axis < -1) return;
  const Value* xv = layer->input(0);
  const Value* wv = layer->input(1);
  if (!xv || !wv || xv == wv) return;
  const Node* xq = xv->producer();
  const Node* wq = wv->producer();
  if (!staticQuantizer(xq) || xq->hasAttr("axis") || !staticQuantizer(wq) || claimed.count(wq))
    return;
  if (!oneElementParam(xq->input(1)) || (xq->opType() == "FakeQuant" && !oneElementParam(xq->input(2))))
    return;
  // The weight quantizer reads a float parameter and feeds only this layer.
  const Value* w = wq->input(0);
  if (!w || !w->isParam() || !w->data().defined() || w->data().scalar_type() != at::kFloat ||
      graph_outputs.count(wv) || wv->uses().size() != 1)
    return;
  const at::Tensor& wd = w->data();
  if (layer->opType() == "Conv" ? wd.dim() < 3 : wd.dim() != 2) return;
  quant::QuantSpec wspec = quant::specFromAttrs(*wq);
  quant::QLayout wl = quant::QLayout::of(wspec);
  const bool per_channel = wq->hasAttr("axis");
  if (per_channel) {
    const int64_t a = wl.axis < 0 ? wl.axis + wd.dim() : wl.axis;
    if (a != axis) return;
    wl.axis = a;
  } else {
    wl.axis = axis;  // broadcastParam ignores it for one-element parameters
  }
  const Value* bias = layer->opType() == "Gemm" || layer->opType() == "Conv" ? layer->input(2) : nullptr;
  if (bias && layer->opType() == "Conv" && (!bias->isParam() || bias->data().dim() != 1)) return;

  auto ex = std::make_shared<ExactLayer>();
  ex->op = layer->opType();
  ex->what = layer->describe();
  ex->x_qmin = xq->attr("quant_min").i();
  ex->x_qmax = xq->attr("quant_max").i();
  ex->wl = wl;
  ex->lsq = wq->opType() == "LsqQuant";
  ex->layer_k = kernelOf(*layer);
  ex->wq_k = kernelOf(*wq);

  FusedGroup fg;
  fg.kind = "ExactFakeQuant" + ex->op;
  fg.anchor = layer;
  fg.nodes = {wq, layer};
  const Value* yv = layer->output(0);
  if (!graph_outputs.count(yv) && yv->uses().size() == 1) {
    const Node* r = yv->uses()[0].user;
    if (r && r->opType() == "Relu" && r->domain().empty() && !claimed.count(r) &&
        r->numOutputs() == 1 && r->output(0)) {
      fg.nodes.push_back(r);
      fg.kind += "+Relu";
      ex->relu = true;
    }
  }
  // Then a Clip with parameter bounds (Relu6), and the output's static per-tensor 8-bit
  // FakeQuant: the step requantizes as the deployed layer does.
  auto next = [&](const Node* n) { return soleConsumer(n, graph_outputs, claimed); };
  const Value* clip_lo = nullptr;
  const Value* clip_hi = nullptr;
  const Node* cl = ex->relu ? nullptr : next(fg.nodes.back());
  if (cl && cl->opType() == "Clip" && cl->domain().empty() && isParamOrAbsent(cl, 1) &&
      isParamOrAbsent(cl, 2) && (!cl->input(1) || oneElementParam(cl->input(1))) &&
      (!cl->input(2) || oneElementParam(cl->input(2)))) {
    fg.nodes.push_back(cl);
    fg.kind += "+Clip";
    ex->clip = true;
    clip_lo = cl->numInputs() > 1 ? cl->input(1) : nullptr;
    clip_hi = cl->numInputs() > 2 ? cl->input(2) : nullptr;
  }
  std::vector<const Value*> yp{nullptr, nullptr, nullptr};
  const Node* yq = next(fg.nodes.back());
  if (eightBitTensorQuantizer(yq)) {
    fg.nodes.push_back(yq);
    fg.kind += "+Requant";
    ex->out_q = true;
    ex->y_signed = yq->attr("quant_min").i() < 0;
    ex->yq_k = kernelOf(*yq);
    yp = quantizerParams(yq);
  }
  std::vector<const Value*> xp = quantizerParams(xq), wp = quantizerParams(wq);
  fg.inputs = {xv, xp[0], xp[1], xp[2], w, wp[0], wp[1], wp[2], bias, clip_lo, clip_hi,
               yp[0], yp[1], yp[2]};
  fg.outputs = {fg.nodes.back()->output(0)};
  fg.kernel = [ex](const KernelContext& ctx, const std::vector<at::Tensor>& in,
                   std::vector<at::Tensor>& out) { ex->run(ctx, in, out); };
  for (const Node* m : fg.nodes) claimed.insert(m);
  groups.push_back(std::move(fg));
}

/// Residual Add of two 8-bit fake-quantized tensors, optionally through Relu, into an 8-bit
/// output quantizer: computed as the int8 runtime's (and ONNX Runtime's) QLinearAdd does
/// (int8::addOne: on unsigned tensors q = round(fma(q_a, s_a/s_y, fma(q_b, s_b/s_y, k))), else
/// the float-op form), then dequantized as the output quantizer would.
struct ExactAdd {
  bool relu = false;
  bool a_signed = false, b_signed = false, y_signed = false;
  Kernel add_k, yq_k;

  void run(const KernelContext& ctx, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) const {
    // in: [a, a_scale, a_zp, a_enable, b, b_scale, b_zp, b_enable, y_scale, y_zp, y_enable]
    const at::Tensor &a = in[0], &b = in[4];
    if (a.scalar_type() != at::kFloat || b.scalar_type() != at::kFloat || a.sizes() != b.sizes() ||
        disabled(in[3]) || disabled(in[7]) || disabled(in[10])) {
      std::vector<at::Tensor> y(1), o(1);
      add_k(ctx, {a, b}, y);
      yq_k(ctx, {relu ? at::relu(y[0]) : y[0], in[8], in[9], in[10]}, o);
      out[0] = o[0];
      return;
    }
    auto qp = [](const at::Tensor& s, const at::Tensor& z, bool is_signed) {
      int8::QParams q;
      q.scale = s.item<float>();
      q.zero_point = static_cast<int32_t>(z.item<float>());
      q.is_signed = is_signed;
      return q;
    };
    const int8::QParams aq = qp(in[1], in[2], a_signed), bq = qp(in[5], in[6], b_signed),
                        yq = qp(in[8], in[9], y_signed);
    const int8::AddArgs p = int8::addArgs(aq, bq, yq, relu);
    // Codes of the inputs: x = (q - zp) * s exactly as the quantizers computed it.
    const at::Tensor qa = at::div(a, aq.scale).round_().add_(aq.zero_point).contiguous();
    const at::Tensor qb = at::div(b, bq.scale).round_().add_(bq.zero_point).contiguous();
    at::Tensor y = at::empty(a.sizes(), a.options());
    const float* pa = qa.data_ptr<float>();
    const float* pb = qb.data_ptr<float>();
    float* py = y.data_ptr<float>();
    const float zy = static_cast<float>(yq.zero_point);
    at::parallel_for(0, y.numel(), 16384, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) py[i] = (int8::addOne(pa[i], pb[i], p) - zy) * yq.scale;
    });
    out[0] = std::move(y);
  }
};

void matchAdd(const Node* add, const std::unordered_set<const Value*>& graph_outputs,
              std::unordered_set<const Node*>& claimed, std::vector<FusedGroup>& groups) {
  if (add->opType() != "Add" || !add->domain().empty() || add->numInputs() != 2 ||
      add->numOutputs() != 1 || !add->output(0))
    return;
  const Value *av = add->input(0), *bv = add->input(1);
  if (!av || !bv || !eightBitTensorQuantizer(av->producer()) || !eightBitTensorQuantizer(bv->producer()))
    return;
  auto next = [&](const Node* n) { return soleConsumer(n, graph_outputs, claimed); };
  auto ex = std::make_shared<ExactAdd>();
  FusedGroup fg;
  fg.kind = "ExactFakeQuantAdd";
  fg.anchor = add;
  fg.nodes = {add};
  const Node* r = next(add);
  if (r && r->opType() == "Relu" && r->domain().empty()) {
    fg.nodes.push_back(r);
    fg.kind += "+Relu";
    ex->relu = true;
  }
  const Node* yq = next(fg.nodes.back());
  if (!eightBitTensorQuantizer(yq)) return;
  fg.nodes.push_back(yq);
  ex->a_signed = av->producer()->attr("quant_min").i() < 0;
  ex->b_signed = bv->producer()->attr("quant_min").i() < 0;
  ex->y_signed = yq->attr("quant_min").i() < 0;
  ex->add_k = kernelOf(*add);
  ex->yq_k = kernelOf(*yq);
  std::vector<const Value*> ap = quantizerParams(av->producer()), bp = quantizerParams(bv->producer()),
                            yp = quantizerParams(yq);
  fg.inputs = {av, ap[0], ap[1], ap[2], bv, bp[0], bp[1], bp[2], yp[0], yp[1], yp[2]};
  fg.outputs = {yq->output(0)};
  fg.kernel = [ex](const KernelContext& ctx, const std::vector<at::Tensor>& in,
                   std::vector<at::Tensor>& out) { ex->run(ctx, in, out); };
  for (const Node* m : fg.nodes) claimed.insert(m);
  groups.push_back(std::move(fg));
}

}  // namespace

std::vector<FusedGroup> findExactFakeQuantFusions(const Graph& g,
                                                  const std::unordered_set<const Node*>& claimed) {
  std::vector<FusedGroup> groups;
  if (const char* e = std::getenv("GS_EXACT_FAKE_QUANT"); e && std::string(e) == "0") return groups;
  std::unordered_set<const Value*> graph_outputs(g.outputs().begin(), g.outputs().end());
  std::unordered_set<const Node*> taken = claimed;
  for (const auto& n : g.nodes())
    if (!taken.count(n.get()) && outputAxis(n.get()) >= -1)
      matchLayer(n.get(), graph_outputs, taken, groups);
  for (const auto& n : g.nodes())
    if (!taken.count(n.get())) matchAdd(n.get(), graph_outputs, taken, groups);
  return groups;
}

}  // namespace gs
