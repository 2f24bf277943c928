// QDQ pattern matching for the int8 runtime (see int8_fusion.h) and the fused step kernels.
#include "runtime/int8_fusion.h"

#include <ATen/ATen.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "runtime/int8_kernels.h"
#include "support/error.h"

namespace gs {
namespace {

using int8::Activation;
using int8::QParams;

bool isOp(const Node* n, const char* op) { return n && n->opType() == op && n->domain().empty(); }

bool singleOutput(const Node* n) {
  if (!n->output(0)) return false;
  for (size_t k = 1; k < n->numOutputs(); ++k)
    if (n->output(k)) return false;
  return true;
}

bool isParamOf(const Value* v, std::initializer_list<at::ScalarType> types) {
  if (!v || !v->isParam() || !v->data().defined()) return false;
  for (at::ScalarType t : types)
    if (v->data().scalar_type() == t) return true;
  return false;
}

struct Ctx {
  std::unordered_set<const Value*> graph_outputs;
  std::unordered_set<const Node*> claimed;

  /// The single consumer of `v` if it is a free ONNX `op` reading `v` as input 0.
  const Node* soleUser(const Value* v, const char* op) const {
    if (!v || graph_outputs.count(v) || v->uses().size() != 1) return nullptr;
    const Node* u = v->uses()[0].user;
    if (!isOp(u, op) || claimed.count(u) || u->input(0) != v || !singleOutput(u)) return nullptr;
    return u;
  }
};

/// A per-tensor 8-bit activation feeding a group through DequantizeLinear.
struct ActIn {
  const Value* x = nullptr;
  const Value* scale = nullptr;
  const Value* zp = nullptr;  // nullptr: uint8, zero point 0
};

/// Scale / zero point pair of a per-tensor Q or DQ node (inputs 1 and 2).
bool perTensorParams(const Node* n, const Value*& scale, const Value*& zp) {
  scale = n->input(1);
  zp = n->input(2);
  if (!isParamOf(scale, {at::kFloat}) || scale->data().numel() != 1) return false;
  return !zp || (isParamOf(zp, {at::kByte, at::kChar}) && zp->data().numel() == 1);
}

bool actDq(const Value* v, const Ctx& c, ActIn& a) {
  const Node* dq = v ? v->producer() : nullptr;
  if (!isOp(dq, "DequantizeLinear") || c.claimed.count(dq) || !dq->input(0)) return false;
  a.x = dq->input(0);
  return perTensorParams(dq, a.scale, a.zp);
}

/// The QuantizeLinear ending a group, after an optional Relu / Clip on `cur`.
struct OutQ {
  const Node* act = nullptr;
  const Node* q = nullptr;
  const Value *scale = nullptr, *zp = nullptr, *clip_lo = nullptr, *clip_hi = nullptr;
};

bool outQ(const Value* cur, const Ctx& c, bool allow_clip, OutQ& o) {
  const Node* act = c.soleUser(cur, "Relu");
  if (!act && allow_clip) {
    act = c.soleUser(cur, "Clip");
    if (act) {
      o.clip_lo = act->input(1);
      o.clip_hi = act->input(2);
      for (const Value* b : {o.clip_lo, o.clip_hi})
        if (b && (!isParamOf(b, {at::kFloat}) || b->data().numel() != 1)) return false;
    }
  }
  if (act) cur = act->output(0);
  o.act = act;
  o.q = c.soleUser(cur, "QuantizeLinear");
  return o.q && perTensorParams(o.q, o.scale, o.zp);
}

QParams readQ(const at::Tensor& scale, const at::Tensor& zp) {
  QParams q;
  q.scale = scale.item<float>();
  if (zp.defined()) {
    q.is_signed = zp.scalar_type() == at::kChar;
    q.zero_point = static_cast<int32_t>(zp.to(at::kInt).item<int32_t>());
  }
  return q;
}

/// Content identity of the parameters a prepared kernel was built from.
struct Stamps {
  std::vector<std::pair<const void*, int64_t>> v;
  static Stamps of(const std::vector<at::Tensor>& in, size_t from) {
    Stamps s;
    for (size_t i = from; i < in.size(); ++i) {
      const at::Tensor& t = in[i];
      if (!t.defined()) s.v.emplace_back(nullptr, -1);
      else s.v.emplace_back(t.unsafeGetTensorImpl(), t.is_inference() ? -1 : int64_t(t._version()));
    }
    return s;
  }
  bool operator==(const Stamps& o) const { return v == o.v; }
};

// ---------------------------------------------------------------- Conv / Gemm / MatMul

enum class LinKind { kConv, kGemm, kMatMul };

/// True when bias scale `bs` equals x_scale * w_scale per channel (to float rounding): the int32
/// bias is then in accumulator units.
bool accUnitScale(const at::Tensor& bs, const at::Tensor& ws, float x_scale) {
  at::Tensor want = ws.to(at::kFloat).reshape({-1}) * x_scale;
  at::Tensor got = bs.to(at::kFloat).reshape({-1});
  if (got.numel() != want.numel() && got.numel() != 1 && want.numel() != 1) return false;
  return at::le(at::abs(got - want), at::abs(want) * 1e-6).all().item<bool>();
}

/// Kernel input layout of a conv / linear group.
enum LinIn { kX, kXs, kXz, kW, kWs, kWz, kB, kBs, kYs, kYz, kLo, kHi, kNumLinIn };

/// Everything built from the group's parameters; rebuilt when any of them changes.
struct LinState {
  LinKind kind;
  bool transpose_w = false;  // Gemm transB = 0 / MatMul: weight stored [K, N]
  std::vector<int64_t> strides, pads, dilations;
  int64_t groups = 1;
  bool has_act = false;  // Relu or Clip present
  bool bias_in_acc_units = false;  // QLinearConv: int32 bias added to the accumulator
  bool is_clip = false;
  bool valid = false;
  Stamps stamps;
  QParams xq, yq;
  Activation act;
  std::unique_ptr<int8::QConv2d> conv;
  std::unique_ptr<int8::QLinear> lin;

  void refresh(const std::vector<at::Tensor>& in, const Node* anchor) {
    Stamps now = Stamps::of(in, 1);
    if (valid && now == stamps) return;
    xq = readQ(in[kXs], in[kXz]);
    yq = readQ(in[kYs], in[kYz]);
    if (has_act && !is_clip) act.kind = Activation::kRelu;
    if (is_clip) {
      act.kind = Activation::kClip;
      act.lo = in[kLo].defined() ? in[kLo].item<float>() : -std::numeric_limits<float>::infinity();
      act.hi = in[kHi].defined() ? in[kHi].item<float>() : std::numeric_limits<float>::infinity();
    }
    int8::QWeight w;
    w.w = transpose_w ? in[kW].t().contiguous() : in[kW];
    w.scale = in[kWs].to(at::kFloat);
    if (in[kWz].defined())
      GS_CHECK(at::all(in[kWz] == 0).item<bool>(), anchor->describe(),
               ": int8 weights must have zero point 0");
    if (in[kB].defined()) {
      // QLinearConv's int32 bias is in accumulator units (scale x_scale * w_scale). So is a
      // DQ(int32) bias whose scale is that product: ONNX Runtime's QDQ fusion then adds the
      // integers to the accumulator, and so do we (same result, bit for bit). Any other bias
      // is applied in float: DQ computes float(b) * scale.
      if (bias_in_acc_units || (in[kBs].defined() && accUnitScale(in[kBs], in[kWs], xq.scale)))
        w.bias_acc = in[kB].to(at::kInt);
      else
        w.bias = in[kBs].defined() ? at::mul(in[kB].to(at::kFloat), in[kBs].to(at::kFloat))
                                   : in[kB].to(at::kFloat);
    }
    conv.reset();
    lin.reset();
    if (kind == LinKind::kConv) conv = std::make_unique<int8::QConv2d>(w, strides, pads, dilations, groups);
    else lin = std::make_unique<int8::QLinear>(w);
    stamps = std::move(now);
    valid = true;
  }
};

/// Weight DQ of `op`: constant int8 weight, per-tensor or per-channel along `axis`.
bool weightDq(const Node* op, int64_t axis, const Ctx& c, std::array<const Value*, kNumLinIn>& io) {
  const Node* dq = op->input(1) ? op->input(1)->producer() : nullptr;
  if (!isOp(dq, "DequantizeLinear") || c.claimed.count(dq)) return false;
  const Value* w = dq->input(0);
  const Value* s = dq->input(1);
  const Value* z = dq->input(2);
  if (!isParamOf(w, {at::kChar}) || !isParamOf(s, {at::kFloat})) return false;
  const at::Tensor& wt = w->data();
  if (s->data().numel() != 1) {
    int64_t a = dq->attrInt("axis", 1);
    if (a < 0) a += wt.dim();
    if (a != axis || s->data().dim() != 1 || s->data().numel() != wt.size(axis)) return false;
  }
  if (z && (!isParamOf(z, {at::kChar}) || z->data().numel() != s->data().numel() ||
            !at::all(z->data() == 0).item<bool>()))
    return false;
  io[kW] = w;
  io[kWs] = s;
  io[kWz] = z;
  return true;
}

/// Float bias parameter of size `n`, or DQ(int32 bias) with zero point 0 (per-tensor or
/// per-channel scale).
bool biasInput(const Value* b, int64_t n, const Ctx& c, std::array<const Value*, kNumLinIn>& io) {
  if (!b) return true;
  if (isParamOf(b, {at::kFloat}) && b->data().dim() == 1 && b->data().numel() == n) {
    io[kB] = b;
    return true;
  }
  const Node* dq = b->producer();
  if (!isOp(dq, "DequantizeLinear") || c.claimed.count(dq)) return false;
  const Value *bq = dq->input(0), *s = dq->input(1), *z = dq->input(2);
  if (!isParamOf(bq, {at::kInt}) || bq->data().dim() != 1 || bq->data().numel() != n ||
      !isParamOf(s, {at::kFloat}) || (s->data().numel() != 1 && s->data().numel() != n))
    return false;
  if (z && (!isParamOf(z, {at::kInt}) || !at::all(z->data() == 0).item<bool>())) return false;
  io[kB] = bq;
  io[kBs] = s;
  return true;
}

/// 2-D conv attributes of `op` (Conv or QLinearConv) for weight `w` into `st`; false when the
/// int8 engine cannot take them (auto_pad SAME, asymmetric pads, ...).
bool convAttrs(const Node* op, const at::Tensor& w, LinState& st) {
  std::string ap = op->attrString("auto_pad", "NOTSET");
  if (ap != "NOTSET" && ap != "VALID") return false;
  std::vector<int64_t> pads = op->attrInts("pads", {0, 0, 0, 0});
  if (ap == "VALID") pads = {0, 0, 0, 0};
  if (pads.size() != 4 || pads[0] != pads[2] || pads[1] != pads[3]) return false;
  st.pads = {pads[0], pads[1]};
  st.strides = op->attrInts("strides", {1, 1});
  st.dilations = op->attrInts("dilations", {1, 1});
  st.groups = op->attrInt("group", 1);
  std::vector<int64_t> ks = op->attrInts("kernel_shape", {});
  return st.strides.size() == 2 && st.dilations.size() == 2 &&
         (ks.empty() || ks == std::vector<int64_t>{w.size(2), w.size(3)});
}

void matchLinear(const Node* op, LinKind kind, Ctx& c, std::vector<FusedGroup>& groups) {
  if (!singleOutput(op)) return;
  std::array<const Value*, kNumLinIn> io{};
  ActIn x;
  if (!actDq(op->input(0), c, x)) return;
  io[kX] = x.x;
  io[kXs] = x.scale;
  io[kXz] = x.zp;
  auto st = std::make_shared<LinState>();
  st->kind = kind;
  std::vector<const Node*> nodes{op};
  const Value* cur = op->output(0);
  if (kind == LinKind::kConv) {
    if (op->numInputs() < 2 || !weightDq(op, 0, c, io) || io[kW]->data().dim() != 4) return;
    if (!convAttrs(op, io[kW]->data(), *st)) return;
    const at::Tensor& w = io[kW]->data();
    if (!biasInput(op->input(2), w.size(0), c, io)) return;
  } else if (kind == LinKind::kGemm) {
    if (op->attrFloat("alpha", 1.0f) != 1.0f || op->attrFloat("beta", 1.0f) != 1.0f ||
        op->attrInt("transA", 0) != 0)
      return;
    st->transpose_w = op->attrInt("transB", 0) == 0;
    if (!weightDq(op, st->transpose_w ? 1 : 0, c, io) || io[kW]->data().dim() != 2) return;
    if (!biasInput(op->input(2), io[kW]->data().size(st->transpose_w ? 1 : 0), c, io)) return;
  } else {
    st->transpose_w = true;
    if (op->numInputs() != 2 || !weightDq(op, 1, c, io) || io[kW]->data().dim() != 2) return;
    // MatMul -> Add(bias) with a float [N] parameter, in either operand order.
    if (!c.graph_outputs.count(cur) && cur->uses().size() == 1) {
      const Node* add = cur->uses()[0].user;
      if (isOp(add, "Add") && !c.claimed.count(add) && singleOutput(add) && add->numInputs() == 2) {
        const Value* other = add->input(0) == cur ? add->input(1) : add->input(0);
        if (other != cur && biasInput(other, io[kW]->data().size(1), c, io) && io[kB] &&
            !io[kBs]) {
          nodes.push_back(add);
          cur = add->output(0);
        } else {
          io[kB] = io[kBs] = nullptr;
        }
      }
    }
  }
  OutQ o;
  if (!outQ(cur, c, true, o)) return;
  if (o.act) nodes.push_back(o.act);
  nodes.push_back(o.q);
  st->has_act = o.act != nullptr;
  st->is_clip = isOp(o.act, "Clip");
  io[kYs] = o.scale;
  io[kYz] = o.zp;
  io[kLo] = o.clip_lo;
  io[kHi] = o.clip_hi;

  FusedGroup fg;
  fg.kind = std::string("QDQ:") + op->opType() + (o.act ? "+" + o.act->opType() : "");
  fg.anchor = op;
  fg.nodes = nodes;
  fg.inputs.assign(io.begin(), io.end());
  fg.outputs.push_back(o.q->output(0));
  fg.kernel = [st, op](const KernelContext&, const std::vector<at::Tensor>& in,
                       std::vector<at::Tensor>& out) {
    st->refresh(in, op);
    const at::Tensor& x = in[kX];
    GS_CHECK(x.scalar_type() == (st->xq.is_signed ? at::kChar : at::kByte), op->describe(),
             ": quantized input dtype does not match its zero point");
    if (st->conv) {
      GS_CHECK(x.dim() == 4, op->describe(), ": int8 conv expects a 4-D input, got rank ", x.dim());
      out[0] = st->conv->run(x, st->xq, st->yq, st->act);
    } else {
      GS_CHECK(st->kind != LinKind::kGemm || x.dim() == 2, op->describe(), ": Gemm input must be 2-D");
      out[0] = st->lin->run(x, st->xq, st->yq, st->act);
    }
  };
  for (const Node* n : nodes) c.claimed.insert(n);
  groups.push_back(std::move(fg));
}

/// An explicit QLinearConv with constant int8 weights (zero point 0) runs on the same engine:
/// y = requant(acc + B) == requant(acc) with the float bias B * x_scale * w_scale.
void matchQLinearConv(const Node* op, Ctx& c, std::vector<FusedGroup>& groups) {
  if (!singleOutput(op) || op->numInputs() < 8) return;
  std::array<const Value*, kNumLinIn> io{};
  const Value *xs = op->input(1), *xz = op->input(2), *w = op->input(3), *ws = op->input(4),
              *wz = op->input(5), *ys = op->input(6), *yz = op->input(7), *b = op->input(8);
  auto perTensor = [](const Value* sc, const Value* z) {
    return isParamOf(sc, {at::kFloat}) && sc->data().numel() == 1 &&
           (!z || (isParamOf(z, {at::kByte, at::kChar}) && z->data().numel() == 1));
  };
  if (!op->input(0) || !perTensor(xs, xz) || !perTensor(ys, yz) || !yz) return;
  if (!isParamOf(w, {at::kChar}) || w->data().dim() != 4 || !isParamOf(ws, {at::kFloat})) return;
  const int64_t o = w->data().size(0);
  if (ws->data().numel() != 1 && ws->data().numel() != o) return;
  if (wz && (!isParamOf(wz, {at::kChar}) || !at::all(wz->data() == 0).item<bool>())) return;
  if (b && (!isParamOf(b, {at::kInt}) || b->data().numel() != o)) return;
  auto st = std::make_shared<LinState>();
  st->kind = LinKind::kConv;
  st->bias_in_acc_units = true;
  if (!convAttrs(op, w->data(), *st)) return;
  io[kX] = op->input(0);
  io[kXs] = xs;
  io[kXz] = xz;
  io[kW] = w;
  io[kWs] = ws;
  io[kWz] = wz;
  io[kB] = b;
  io[kYs] = ys;
  io[kYz] = yz;
  FusedGroup fg;
  fg.kind = "QLinearConv";
  fg.anchor = op;
  fg.nodes = {op};
  fg.inputs.assign(io.begin(), io.end());
  fg.outputs.push_back(op->output(0));
  fg.kernel = [st, op](const KernelContext&, const std::vector<at::Tensor>& in,
                       std::vector<at::Tensor>& out) {
    st->refresh(in, op);
    GS_CHECK(in[kX].dim() == 4, op->describe(), ": int8 conv expects a 4-D input");
    GS_CHECK(in[kX].scalar_type() == (st->xq.is_signed ? at::kChar : at::kByte), op->describe(),
             ": x dtype does not match x_zero_point");
    out[0] = st->conv->run(in[kX], st->xq, st->yq, st->act);
  };
  c.claimed.insert(op);
  groups.push_back(std::move(fg));
}

// ---------------------------------------------------------------- Add / MaxPool

enum AddIn { kA, kAs, kAz, kBb, kBbs, kBbz, kAYs, kAYz, kNumAddIn };

void matchAdd(const Node* add, Ctx& c, std::vector<FusedGroup>& groups) {
  if (!singleOutput(add) || add->numInputs() != 2) return;
  ActIn a, b;
  if (!actDq(add->input(0), c, a) || !actDq(add->input(1), c, b)) return;
  OutQ o;
  if (!outQ(add->output(0), c, false, o)) return;
  FusedGroup fg;
  fg.kind = o.act ? "QDQ:Add+Relu" : "QDQ:Add";
  fg.anchor = add;
  fg.nodes = {add};
  if (o.act) fg.nodes.push_back(o.act);
  fg.nodes.push_back(o.q);
  fg.inputs = {a.x, a.scale, a.zp, b.x, b.scale, b.zp, o.scale, o.zp};
  fg.outputs.push_back(o.q->output(0));
  const bool relu = o.act != nullptr;
  fg.kernel = [relu](const KernelContext&, const std::vector<at::Tensor>& in,
                     std::vector<at::Tensor>& out) {
    out[0] = int8::add(in[kA], readQ(in[kAs], in[kAz]), in[kBb], readQ(in[kBbs], in[kBbz]),
                       readQ(in[kAYs], in[kAYz]), relu);
  };
  for (const Node* n : fg.nodes) c.claimed.insert(n);
  groups.push_back(std::move(fg));
}

void matchMaxPool(const Node* pool, Ctx& c, std::vector<FusedGroup>& groups) {
  if (!singleOutput(pool)) return;
  ActIn x;
  if (!actDq(pool->input(0), c, x)) return;
  std::vector<int64_t> k = pool->attrInts("kernel_shape", {});
  if (k.size() != 2 || pool->attrString("auto_pad", "NOTSET") != "NOTSET") return;
  std::vector<int64_t> pads = pool->attrInts("pads", {0, 0, 0, 0});
  std::vector<int64_t> strides = pool->attrInts("strides", {1, 1});
  std::vector<int64_t> dil = pool->attrInts("dilations", {1, 1});
  if (pads.size() != 4 || pads[0] != pads[2] || pads[1] != pads[3] || strides.size() != 2 ||
      dil.size() != 2)
    return;
  const bool ceil = pool->attrInt("ceil_mode", 0) != 0;
  OutQ o;
  if (!outQ(pool->output(0), c, false, o) || o.act) return;
  FusedGroup fg;
  fg.kind = "QDQ:MaxPool";
  fg.anchor = pool;
  fg.nodes = {pool, o.q};
  fg.inputs = {x.x, x.scale, x.zp, o.scale, o.zp};
  fg.outputs.push_back(o.q->output(0));
  fg.kernel = [k, strides, pads, dil, ceil](const KernelContext&, const std::vector<at::Tensor>& in,
                                            std::vector<at::Tensor>& out) {
    QParams xq = readQ(in[1], in[2]), yq = readQ(in[3], in[4]);
    at::Tensor y = int8::maxPool2d(in[0], xq, k, strides, pads, dil, ceil);
    if (xq.scale != yq.scale || xq.zero_point != yq.zero_point || xq.is_signed != yq.is_signed) {
      // Different output parameters: requantize the (exact) pooled values as DQ -> Q would.
      at::Tensor r = at::mul(at::sub(y.to(at::kInt), xq.zero_point).to(at::kFloat), xq.scale);
      at::Tensor q = at::add(at::round(at::div(r, yq.scale)), static_cast<float>(yq.zero_point));
      y = at::clamp(q, yq.qmin(), yq.qmax()).to(yq.is_signed ? at::kChar : at::kByte);
    }
    out[0] = std::move(y);
  };
  for (const Node* n : fg.nodes) c.claimed.insert(n);
  groups.push_back(std::move(fg));
}

}  // namespace

std::vector<FusedGroup> findInt8Fusions(const Graph& g) {
  std::vector<FusedGroup> groups;
  if (const char* e = std::getenv("GS_INT8_FUSION"); e && std::string(e) == "0") return groups;
  Ctx c;
  for (const Value* v : g.outputs()) c.graph_outputs.insert(v);
  for (const auto& n : g.nodes()) {
    const Node* p = n.get();
    if (c.claimed.count(p)) continue;
    if (isOp(p, "Conv")) matchLinear(p, LinKind::kConv, c, groups);
    else if (isOp(p, "Gemm")) matchLinear(p, LinKind::kGemm, c, groups);
    else if (isOp(p, "MatMul")) matchLinear(p, LinKind::kMatMul, c, groups);
    else if (isOp(p, "Add")) matchAdd(p, c, groups);
    else if (isOp(p, "MaxPool")) matchMaxPool(p, c, groups);
    else if (isOp(p, "QLinearConv")) matchQLinearConv(p, c, groups);
  }
  // DequantizeLinear nodes whose every consumer is an int8 group are dead in the fused plan.
  std::unordered_map<const Node*, size_t> group_of;
  for (size_t i = 0; i < groups.size(); ++i)
    for (const Node* n : groups[i].nodes) group_of[n] = i;
  for (const auto& n : g.nodes()) {
    const Node* dq = n.get();
    if (!isOp(dq, "DequantizeLinear") || c.claimed.count(dq) || !singleOutput(dq) ||
        c.graph_outputs.count(dq->output(0)) || dq->output(0)->uses().empty())
      continue;
    bool all = true;
    for (const Use& u : dq->output(0)->uses()) all = all && group_of.count(u.user);
    if (!all) continue;
    FusedGroup& fg = groups[group_of.at(dq->output(0)->uses()[0].user)];
    fg.nodes.insert(fg.nodes.begin(), dq);
    c.claimed.insert(dq);
  }
  return groups;
}

}  // namespace gs
