// Decoder-graph utilities for PTQ: linear discovery, block scopes, extraction, folding, fake-quant.
#include "llm/decoder.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <unordered_set>

#include "rewrite/query.h"
#include "support/error.h"

namespace gs::llm {

at::Tensor LinearRef::weightOI() const {
  const at::Tensor& d = weight->data();
  return (out_in ? d : d.t()).to(at::kFloat);
}

void LinearRef::setWeightOI(const at::Tensor& w) const {
  GS_ASSERT(w.dim() == 2 && w.size(0) == outFeatures() && w.size(1) == inFeatures());
  at::Tensor t = (out_in ? w : w.t()).contiguous().to(weight->data().scalar_type());
  weight->setData(t);
}

int64_t LinearRef::inFeatures() const { return weight->data().size(out_in ? 1 : 0); }
int64_t LinearRef::outFeatures() const { return weight->data().size(out_in ? 0 : 1); }

namespace {

bool isConstMatrix(const Value* v) {
  return v && v->isParam() && v->data().dim() == 2 && v->uses().size() == 1 &&
         at::isFloatingType(v->data().scalar_type());
}

}  // namespace

std::vector<LinearRef> findLinears(const Graph& g) {
  std::vector<LinearRef> r;
  for (const auto& up : g.nodes()) {
    Node* n = up.get();
    if (n->domain() != "" || n->numInputs() < 2) continue;
    Value* b = n->input(1);
    if (n->opType() == "MatMul") {
      if (isConstMatrix(b)) {
        r.push_back({n, b, false});
      } else if (b && b->producer() && b->producer()->opType() == "Transpose" &&
                 b->uses().size() == 1) {
        Node* t = b->producer();
        std::vector<int64_t> perm = t->attrInts("perm", {1, 0});
        if (perm == std::vector<int64_t>{1, 0} && isConstMatrix(t->input(0)))
          r.push_back({n, t->input(0), true});
      }
    } else if (n->opType() == "Gemm" && isConstMatrix(b) && n->attrInt("transA", 0) == 0) {
      r.push_back({n, b, n->attrInt("transB", 0) != 0});
    }
  }
  return r;
}

const LinearRef* DecoderBlock::find(const std::string& suffix) const {
  const std::string full = prefix + "." + suffix;
  for (const LinearRef& l : linears)
    if (l.name() == full) return &l;
  return nullptr;
}

std::vector<DecoderBlock> findDecoderBlocks(const Graph& g) {
  static const std::regex re(R"(^((?:.*\.)?layers\.(\d+))\.)");
  std::map<int64_t, DecoderBlock> blocks;
  for (const auto& up : g.nodes()) {
    std::smatch m;
    if (!std::regex_search(up->name(), m, re)) continue;
    const int64_t i = std::stoll(m[2].str());
    DecoderBlock& b = blocks[i];
    if (b.prefix.empty()) {
      b.index = i;
      b.prefix = m[1].str();
    }
    GS_CHECK(b.prefix == m[1].str(), "decoder blocks: two scopes for layer ", i, " ('", b.prefix,
             "' and '", m[1].str(), "')");
    b.nodes.push_back(up.get());
  }
  GS_CHECK(!blocks.empty(), "graph '", g.name, "' has no decoder blocks (no node named "
           "'...layers.N.*')");
  std::vector<LinearRef> lin = findLinears(g);
  std::vector<DecoderBlock> out;
  for (auto& [i, b] : blocks) {
    for (const LinearRef& l : lin)
      if (l.name().rfind(b.prefix + ".", 0) == 0) b.linears.push_back(l);
    out.push_back(std::move(b));
  }
  return out;
}

Subgraph extractSubgraph(const Graph& g, const std::vector<Node*>& nodes) {
  Subgraph s;
  s.graph = std::make_unique<Graph>();
  Graph& h = *s.graph;
  h.name = g.name + ".sub";
  h.opsets = g.opsets;
  std::unordered_set<const Node*> inside(nodes.begin(), nodes.end());
  std::unordered_map<const Value*, Value*> vmap;
  for (Node* n : nodes) {
    std::vector<Value*> ins;
    for (Value* v : n->inputs()) {
      if (!v) {
        ins.push_back(nullptr);
        continue;
      }
      auto it = vmap.find(v);
      if (it == vmap.end()) {
        Value* nv;
        if (v->isParam()) {
          nv = h.addParam(v->name(), v->data(), v->trainable());
        } else {
          nv = h.addInput(v->name(), v->dtype(), v->shape());
          s.inputs.push_back(v->name());
        }
        it = vmap.emplace(v, nv).first;
      }
      ins.push_back(it->second);
    }
    std::vector<std::string> names;
    for (Value* o : n->outputs()) names.push_back(o ? o->name() : "");
    Node* m = h.addNodeNamedOutputs(n->opType(), ins, names, n->name(), n->attrs(), nullptr,
                                    n->domain());
    for (size_t k = 0; k < n->numOutputs(); ++k) {
      if (!n->output(k)) continue;
      m->output(k)->setDType(n->output(k)->dtype());
      m->output(k)->setShape(n->output(k)->shape());
      vmap[n->output(k)] = m->output(k);
    }
  }
  std::unordered_set<const Value*> gouts(g.outputs().begin(), g.outputs().end());
  for (Node* n : nodes) {
    for (Value* o : n->outputs()) {
      if (!o) continue;
      bool escapes = gouts.count(o) != 0;
      for (const Use& u : o->uses()) escapes = escapes || !inside.count(u.user);
      if (escapes) {
        h.addOutput(vmap.at(o));
        s.outputs.push_back(o->name());
      }
    }
  }
  return s;
}

std::vector<Node*> backwardSlice(const Graph& g, const std::vector<Value*>& values,
                                 const std::vector<Node*>& stop) {
  std::unordered_set<const Node*> stops(stop.begin(), stop.end()), seen;
  std::vector<Value*> work(values.begin(), values.end());
  while (!work.empty()) {
    Value* v = work.back();
    work.pop_back();
    Node* p = v ? v->producer() : nullptr;
    if (!p || stops.count(p) || !seen.insert(p).second) continue;
    for (Value* i : p->inputs()) work.push_back(i);
  }
  std::vector<Node*> out;
  for (const auto& up : g.nodes())
    if (seen.count(up.get())) out.push_back(up.get());
  return out;
}

std::vector<Node*> inspectRegion(const std::vector<Node*>& block_nodes, Value* x) {
  std::unordered_set<const Node*> in_block(block_nodes.begin(), block_nodes.end());
  // Hidden state: the block-external, non-parameter values x is computed from.
  std::unordered_set<const Value*> hidden;
  {
    std::vector<Value*> work{x};
    std::unordered_set<const Value*> seen;
    while (!work.empty()) {
      Value* v = work.back();
      work.pop_back();
      if (!v || v->isParam() || !seen.insert(v).second) continue;
      Node* p = v->producer();
      if (!p || !in_block.count(p)) {
        hidden.insert(v);
        continue;
      }
      for (Value* i : p->inputs()) work.push_back(i);
    }
  }
  // Values (block nodes in graph order) that depend on the hidden state.
  std::unordered_set<const Value*> dependent(hidden.begin(), hidden.end());
  for (Node* n : block_nodes) {
    bool dep = false;
    for (Value* i : n->inputs()) dep = dep || (i && dependent.count(i));
    if (dep)
      for (Value* o : n->outputs())
        if (o) dependent.insert(o);
  }
  // Forward closure from x over nodes whose other inputs are independent of the hidden state.
  std::unordered_set<const Value*> region_values{x};
  std::unordered_set<const Node*> region;
  for (Node* n : block_nodes) {
    bool feeds = false, ok = true;
    for (Value* i : n->inputs()) {
      if (!i) continue;
      if (region_values.count(i)) feeds = true;
      else if (dependent.count(i)) ok = false;
    }
    if (!feeds || !ok) continue;
    region.insert(n);
    for (Value* o : n->outputs())
      if (o) region_values.insert(o);
  }
  if (region.empty()) return {};
  // Constant block nodes the region reads (weight transposes, shape constants).
  std::vector<Value*> needed;
  for (const Node* n : region)
    for (Value* i : n->inputs())
      if (i && !region_values.count(i)) needed.push_back(i);
  std::unordered_set<const Node*> consts;
  while (!needed.empty()) {
    Value* v = needed.back();
    needed.pop_back();
    Node* p = v->producer();
    if (!p || !in_block.count(p) || region.count(p) || dependent.count(v) || !consts.insert(p).second)
      continue;
    for (Value* i : p->inputs())
      if (i) needed.push_back(i);
  }
  std::vector<Node*> out;
  for (Node* n : block_nodes)
    if (region.count(n) || consts.count(n)) out.push_back(n);
  return out;
}

std::string FoldTarget::describe() const {
  switch (kind) {
    case NormWeight: return "norm '" + norm_weight->name() + "'";
    case LinearRows: return "linear '" + prev.name() + "'";
    default: return "none";
  }
}

FoldTarget findFoldTarget(const Graph& g, Value* x) {
  FoldTarget t;
  Node* p = x ? x->producer() : nullptr;
  if (!p || x->uses().empty()) return t;
  // Every consumer must be a linear layer's activation input: others would see scaled values.
  std::vector<LinearRef> lin = findLinears(g);
  auto isLinearInput = [&](const Use& u) {
    if (u.index != 0) return false;
    for (const LinearRef& l : lin)
      if (l.node == u.user) return true;
    return false;
  };
  for (const Use& u : x->uses())
    if (!isLinearInput(u)) return t;
  const int64_t c = x->shape() && !x->shape()->empty() && x->shape()->back().isStatic()
                        ? x->shape()->back().value
                        : -1;
  auto isChannelVector = [&](const Value* v) {
    return v && v->isParam() && v->uses().size() == 1 && v->data().dim() == 1 &&
           (c < 0 || v->data().size(0) == c);
  };
  if (p->opType() == "Mul" && p->numInputs() == 2) {
    for (int k = 0; k < 2; ++k) {
      if (isChannelVector(p->input(k))) {
        t.kind = FoldTarget::NormWeight;
        t.norm_weight = p->input(k);
        return t;
      }
    }
    // Element-wise product with a linear's output (SwiGLU: act(gate) * up): scale up's rows.
    for (int k = 1; k >= 0; --k) {
      Value* a = p->input(k);
      if (!a || a->uses().size() != 1) continue;
      for (const LinearRef& l : lin) {
        if (l.node->output(0) == a) {
          t.kind = FoldTarget::LinearRows;
          t.prev = l;
          return t;
        }
      }
    }
  } else if (p->opType() == "LayerNormalization" && isChannelVector(p->input(1))) {
    t.kind = FoldTarget::NormWeight;
    t.norm_weight = p->input(1);
    if (p->numInputs() > 2 && isChannelVector(p->input(2))) t.norm_bias = p->input(2);
  }
  return t;
}

void foldInverseScales(const FoldTarget& t, const at::Tensor& s) {
  switch (t.kind) {
    case FoldTarget::NormWeight: {
      const at::Tensor& w = t.norm_weight->data();
      t.norm_weight->setData((w.to(at::kFloat) / s).to(w.scalar_type()));
      if (t.norm_bias) {
        const at::Tensor& b = t.norm_bias->data();
        t.norm_bias->setData((b.to(at::kFloat) / s).to(b.scalar_type()));
      }
      break;
    }
    case FoldTarget::LinearRows:
      t.prev.setWeightOI(t.prev.weightOI() / s.unsqueeze(1));
      break;
    default: GS_FAIL("cannot fold scales: no fold target");
  }
}

namespace {

Value* constParam(Graph& g, const std::string& base, at::Tensor t) {
  return g.addParam(g.uniqueValueName(base), std::move(t), false);
}

/// Rewires the saved uses of x to y.
void rewire(const std::vector<Use>& uses, Value* y) {
  for (const Use& u : uses) u.user->setInput(u.index, y);
}

}  // namespace

Value* insertFakeQuant(Graph& g, Value* x, const at::Tensor& scale, const std::string& name) {
  std::vector<Use> uses = x->uses();
  GS_CHECK(!uses.empty(), "fake-quant: value '", x->name(), "' has no consumers");
  Node* before = firstUser(g, x);
  auto node = [&](const std::string& op, std::vector<Value*> in, const std::string& suffix,
                  std::map<std::string, Attribute> attrs = {}) {
    Node* n = g.addNode(op, in, 1, g.uniqueNodeName(name + "." + suffix), std::move(attrs), before);
    n->output(0)->setDType(x->dtype());
    return n->output(0);
  };
  Value* s;
  if (scale.defined()) {
    s = constParam(g, name + ".scale", scale.to(at::kFloat).contiguous());
  } else {
    Value* a = node("Abs", {x}, "abs");
    Value* m = node("ReduceMax", {a}, "absmax",
                    {{"axes", std::vector<int64_t>{-1}}, {"keepdims", int64_t{1}}});
    Value* s0 = node("Div", {m, constParam(g, name + ".qmax", at::scalar_tensor(127.0f))}, "scale");
    s = node("Max", {s0, constParam(g, name + ".eps", at::scalar_tensor(1e-12f))}, "scale_eps");
  }
  Value* d = node("Div", {x, s}, "div");
  Value* r = node("Round", {d}, "round");
  Value* c = node("Clip", {r, constParam(g, name + ".lo", at::scalar_tensor(-128.0f)),
                           constParam(g, name + ".hi", at::scalar_tensor(127.0f))},
                  "clip");
  Value* y = node("Mul", {c, s}, "dequant");
  y->setShape(x->shape());
  rewire(uses, y);
  return y;
}

Value* insertQdq(Graph& g, Value* x, float scale, const std::string& name) {
  std::vector<Use> uses = x->uses();
  GS_CHECK(!uses.empty(), "QDQ: value '", x->name(), "' has no consumers");
  Node* before = firstUser(g, x);
  Value* s = constParam(g, name + ".scale", at::scalar_tensor(scale));
  Value* z = constParam(g, name + ".zero_point", at::zeros({}, at::kChar));
  Node* q = g.addNode("QuantizeLinear", {x, s, z}, 1, g.uniqueNodeName(name + ".quantize"), {},
                      before);
  q->output(0)->setDType(DType::Int8);
  q->output(0)->setShape(x->shape());
  Node* d = g.addNode("DequantizeLinear", {q->output(0), s, z}, 1,
                      g.uniqueNodeName(name + ".dequantize"), {}, before);
  d->output(0)->setDType(x->dtype());
  d->output(0)->setShape(x->shape());
  rewire(uses, d->output(0));
  return d->output(0);
}

}  // namespace gs::llm
