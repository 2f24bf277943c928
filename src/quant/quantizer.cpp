// Quantizer placement: gs::FakeQuant / gs::LsqQuant insertion and redundant-quantizer removal.
#include "quant/quantizer.h"

#include <ATen/ATen.h>

#include <unordered_map>
#include <unordered_set>

#include "rewrite/query.h"
#include "support/error.h"

namespace gs::quant {

bool isQuantizer(const Node& n) {
  return n.domain() == "gs" && (n.opType() == "FakeQuant" || n.opType() == "LsqQuant");
}

std::optional<LayerIO> quantizableLayer(const Node& n) {
  if (!n.domain().empty()) return std::nullopt;
  const std::string& op = n.opType();
  auto isParam = [&](size_t i) { return n.input(i) && n.input(i)->isParam(); };
  if (op == "Conv" && isParam(1)) return LayerIO{1, 0, 0, 1};
  if (op == "ConvTranspose" && isParam(1)) return LayerIO{1, 0, 1, 0};
  if (op == "Gemm" && isParam(1) && !isParam(0))
    return n.attrInt("transB", 0) ? LayerIO{1, 0, 0, 1} : LayerIO{1, 0, 1, 0};
  if (op == "MatMul" && isParam(1) && !isParam(0)) return LayerIO{1, 0, -1, -2};
  if (op == "MatMul" && isParam(0) && !isParam(1)) return LayerIO{0, 1, -2, -1};
  return std::nullopt;
}

namespace {

Attribute attrOf(int64_t v) { return Attribute(v); }

std::map<std::string, Attribute> fqAttrs(const QuantSpec& s) {
  std::map<std::string, Attribute> a{{"quant_min", attrOf(s.qmin())},
                                     {"quant_max", attrOf(s.qmax())},
                                     {"symmetric", attrOf(s.symmetric ? 1 : 0)}};
  if (s.granularity != Granularity::PerTensor) a["axis"] = attrOf(s.axis);
  if (s.granularity == Granularity::PerGroup) a["group_size"] = attrOf(s.group_size);
  return a;
}

/// Scale / zero point to start from: the tensor's min-max for weights, a unit grid for acts.
QParams initialParams(const Value* x, const QuantSpec& s, bool is_weight) {
  if (is_weight && x->isParam()) {
    auto [mn, mx] = reduceMinMax(x->data(), s);
    return computeQParams(mn, mx, s);
  }
  QParams p = computeQParams(at::scalar_tensor(-1.0f), at::scalar_tensor(1.0f), s);
  return p;
}

Quantizer makeQuantizer(Graph& g, Value* x, const QuantSpec& spec, FqKind kind, bool is_weight,
                        const std::string& base, Node* before, Value* enable,
                        const InsertOptions& opts) {
  Quantizer q;
  q.is_weight = is_weight;
  q.spec = spec;
  q.kind = kind;
  std::string name = g.uniqueNodeName(base);
  if (kind == FqKind::Lsq) {
    at::Tensor step = is_weight && x->isParam() ? lsqInitStep(x->data(), spec)
                                : at::ones(spec.granularity == Granularity::PerTensor
                                               ? at::IntArrayRef{}
                                               : at::IntArrayRef{1});
    q.scale = g.addParam(g.uniqueValueName(name + ".step"), step.to(at::kFloat), true);
    auto attrs = fqAttrs(spec);
    if (!is_weight) attrs["per_sample"] = Attribute(int64_t{1});
    q.node = g.addNode("LsqQuant", {x, q.scale, enable}, 1, name, attrs, before, "gs");
    return q;
  }
  QParams p = initialParams(x, spec, is_weight);
  q.scale = g.addParam(g.uniqueValueName(name + ".scale"), p.scale.to(at::kFloat), false);
  q.zero_point = g.addParam(g.uniqueValueName(name + ".zero_point"), p.zero_point.to(at::kFloat), false);
  auto attrs = fqAttrs(spec);
  std::vector<Value*> ins{x, q.scale, q.zero_point, enable};
  if (kind == FqKind::Train) {
    if (is_weight) {
      attrs["observer"] = Attribute("minmax");
    } else {
      attrs["observer"] = Attribute("ema");
      attrs["averaging_constant"] = Attribute(opts.averaging_constant);
      at::Tensor z = at::zeros_like(p.scale);
      ins.push_back(g.addParam(g.uniqueValueName(name + ".running_min"), z.clone(), false));
      ins.push_back(g.addParam(g.uniqueValueName(name + ".running_max"), z.clone(), false));
    }
  } else if (kind == FqKind::Dynamic) {
    GS_CHECK(!is_weight, "dynamic quantization applies to activations only");
    attrs["observer"] = Attribute("dynamic_per_token");
  }
  while (!ins.empty() && ins.back() == nullptr) ins.pop_back();
  q.node = g.addNode("FakeQuant", ins, 1, name, attrs, before, "gs");
  return q;
}

}  // namespace

std::vector<Quantizer> insertQuantizers(Graph& g, const std::vector<LayerQuantConfig>& layers,
                                        const InsertOptions& opts) {
  std::vector<Quantizer> res;
  std::unordered_map<Value*, size_t> act_q;  // quantized value -> index in res
  if (!g.opsets.count("gs")) g.opsets["gs"] = 1;
  std::vector<Node*> adds;
  if (opts.quantize_outputs)
    for (const auto& n : g.nodes())
      if (n->domain().empty() && n->opType() == "Add" && n->numInputs() == 2) adds.push_back(n.get());
  for (const LayerQuantConfig& lc : layers) {
    Node* n = g.findNode(lc.node);
    GS_CHECK(n, "quantize: no node named '", lc.node, "'");
    auto io = quantizableLayer(*n);
    GS_CHECK(io, n->describe(), ": not a quantizable layer (Conv, ConvTranspose, Gemm or MatMul "
                                "with a parameter weight)");
    if (lc.quant_weight) {
      Value* w = n->input(static_cast<size_t>(io->weight_index));
      QuantSpec ws = lc.weight;
      ws.validate(n->describe() + " weight");
      if (ws.granularity != Granularity::PerTensor) {
        ws.axis = ws.granularity == Granularity::PerChannel ? io->weight_axis : io->in_axis;
        ws.axis = ws.axis < 0 ? ws.axis + w->data().dim() : ws.axis;
      }
      Quantizer q = makeQuantizer(g, w, ws, lc.weight_kind, true, n->name() + ".weight_fq", n,
                                  opts.weight_enable, opts);
      q.layer = n->name();
      q.layers.push_back(n->name());
      n->setInput(static_cast<size_t>(io->weight_index), q.node->output(0));
      res.push_back(q);
    }
    if (lc.quant_act) {
      size_t ai = static_cast<size_t>(io->act_index);
      Value* x = n->input(ai);
      if (x->producer() && isQuantizer(*x->producer())) continue;  // already quantized
      auto it = act_q.find(x);
      if (it != act_q.end()) {
        n->setInput(ai, res[it->second].node->output(0));
        res[it->second].layers.push_back(n->name());
        continue;
      }
      QuantSpec as = lc.act;
      as.validate(n->describe() + " activation");
      Quantizer q = makeQuantizer(g, x, as, lc.act_kind, false, n->name() + ".input_fq", n,
                                  opts.act_enable, opts);
      q.layer = n->name();
      q.layers.push_back(n->name());
      n->setInput(ai, q.node->output(0));
      act_q[x] = res.size();
      res.push_back(q);
    }
  }
  if (!opts.quantize_outputs) return res;
  std::unordered_map<std::string, const LayerQuantConfig*> cfg_of;
  for (const LayerQuantConfig& lc : layers)
    if (lc.quant_act) cfg_of[lc.node] = &lc;
  std::unordered_set<const Value*> graph_outputs(g.outputs().begin(), g.outputs().end());
  auto soleUser = [](const Value* v, std::initializer_list<const char*> ops) -> Node* {
    if (v->uses().size() != 1) return nullptr;
    Node* u = v->uses()[0].user;
    if (!u->domain().empty()) return nullptr;
    for (const char* op : ops)
      if (u->opType() == op) return u;
    return nullptr;
  };
  // Quantizes what `n` computes (after a sole BatchNormalization and Relu / Clip) with `lc`'s
  // activation settings, unless it is a graph output or already quantized.
  auto quantizeOutput = [&](Node* n, const LayerQuantConfig& lc) {
    if (!n || n->numOutputs() != 1) return;
    Value* v = n->output(0);
    if (Node* bn = soleUser(v, {"BatchNormalization"})) v = bn->output(0);
    if (Node* act = soleUser(v, {"Relu", "Clip"})) v = act->output(0);
    if (graph_outputs.count(v) || act_q.count(v) || v->uses().empty()) return;
    if (v->uses().size() == 1 && isQuantizer(*v->uses()[0].user)) return;
    QuantSpec as = lc.act;
    as.validate(n->describe() + " output");
    Node* first = firstUser(g, v);
    Quantizer q = makeQuantizer(g, v, as, lc.act_kind, false, n->name() + ".output_fq", first,
                                opts.act_enable, opts);
    q.layer = lc.node;
    for (const Use& u : std::vector<Use>(v->uses()))
      if (u.user != q.node) {
        u.user->setInput(static_cast<size_t>(u.index), q.node->output(0));
        q.layers.push_back(u.user->name());
      }
    act_q[v] = res.size();
    res.push_back(q);
  };
  for (const LayerQuantConfig& lc : layers)
    if (lc.quant_act && lc.act_kind != FqKind::Lsq && lc.act_kind != FqKind::Dynamic)
      quantizeOutput(g.findNode(lc.node), lc);
  // The config behind `v`: the quantizer producing it, the quantizer already reading it, or the
  // quantized layer computing it (looking through BatchNormalization, folded at convert).
  auto configOf = [&](const Value* v) -> const LayerQuantConfig* {
    const Node* p = v ? v->producer() : nullptr;
    auto byLayer = [&](const std::string& name) -> const LayerQuantConfig* {
      auto it = cfg_of.find(name);
      return it == cfg_of.end() ? nullptr : it->second;
    };
    if (p && isQuantizer(*p)) {
      for (const Quantizer& q : res)
        if (q.node == p) return byLayer(q.layer);
      return nullptr;
    }
    if (auto it = act_q.find(const_cast<Value*>(v)); it != act_q.end()) return byLayer(res[it->second].layer);
    if (p && p->opType() == "BatchNormalization" && p->domain().empty()) p = p->input(0)->producer();
    return p ? byLayer(p->name()) : nullptr;
  };
  for (Node* add : adds) {
    Value* in[2] = {add->input(0), add->input(1)};
    if (!in[0] || !in[1] || in[0]->isParam() || in[1]->isParam()) continue;
    const LayerQuantConfig* src[2] = {configOf(in[0]), configOf(in[1])};
    if (!src[0] && !src[1]) continue;  // not part of a quantized block
    auto skipKind = [](const LayerQuantConfig* c) {
      return c->act_kind == FqKind::Lsq || c->act_kind == FqKind::Dynamic;
    };
    if (skipKind(src[0] ? src[0] : src[1]) || skipKind(src[1] ? src[1] : src[0])) continue;
    for (int k = 0; k < 2; ++k) {
      Value* x = in[k];
      if (x->producer() && isQuantizer(*x->producer())) continue;
      auto it = act_q.find(x);
      if (it != act_q.end()) {
        add->setInput(static_cast<size_t>(k), res[it->second].node->output(0));
        res[it->second].layers.push_back(add->name());
        continue;
      }
      const LayerQuantConfig* c = src[k] ? src[k] : src[1 - k];
      QuantSpec as = c->act;
      as.validate(add->describe() + " input");
      Quantizer q = makeQuantizer(g, x, as, c->act_kind, false,
                                  add->name() + ".input" + std::to_string(k) + "_fq", add,
                                  opts.act_enable, opts);
      q.layer = c->node;
      q.layers.push_back(add->name());
      add->setInput(static_cast<size_t>(k), q.node->output(0));
      act_q[x] = res.size();
      res.push_back(q);
    }
    // The sum too (e.g. the last block's, read by GlobalAveragePool), so the Add is int8.
    quantizeOutput(add, *(src[0] ? src[0] : src[1]));
  }
  return res;
}

int64_t removeRedundantQuantizers(Graph& g) {
  std::vector<Node*> dead;
  for (const auto& up : g.nodes()) {
    Node* n = up.get();
    if (!isQuantizer(*n)) continue;
    Node* p = n->input(0)->producer();
    if (!p || !isQuantizer(*p) || p->opType() != n->opType() || p->attrs() != n->attrs()) continue;
    if (n->attrString("observer", "none") != "none") continue;
    bool same = n->numInputs() == p->numInputs();
    for (size_t i = 1; same && i < n->numInputs(); ++i) {
      const Value *a = n->input(i), *b = p->input(i);
      same = a == b || (a && b && a->isParam() && b->isParam() && a->data().sizes() == b->data().sizes() &&
                        at::equal(a->data(), b->data()));
    }
    if (!same) continue;
    g.replaceAllUsesWith(n->output(0), p->output(0));
    dead.push_back(n);
  }
  for (Node* n : dead) g.eraseNode(n);
  g.removeDeadValues();
  return static_cast<int64_t>(dead.size());
}

}  // namespace gs::quant
