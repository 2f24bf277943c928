// Pattern construction and the backtracking DAG matcher.
#include "rewrite/pattern.h"

#include <algorithm>
#include <sstream>

#include "rewrite/rewriter.h"
#include "support/error.h"

namespace gs {

// ---------------------------------------------------------------- Match

Node* Match::node(const std::string& name) const {
  auto it = captured_nodes.find(name);
  GS_CHECK(it != captured_nodes.end(), "pattern has no captured node '", name, "'");
  return it->second;
}

Value* Match::value(const std::string& name) const {
  auto it = captured_values.find(name);
  GS_CHECK(it != captured_values.end(), "pattern has no captured value '", name, "'");
  return it->second;
}

bool Match::has(const std::string& name) const {
  auto v = captured_values.find(name);
  if (v != captured_values.end()) return v->second != nullptr;
  return captured_nodes.count(name) != 0;
}

bool attrIsNumber(const Attribute* a, double x) {
  if (!a) return false;
  if (a->is(AttrKind::Int)) return static_cast<double>(a->i()) == x;
  if (a->is(AttrKind::Float)) return static_cast<double>(a->f()) == static_cast<double>(static_cast<float>(x));
  return false;
}

// ---------------------------------------------------------------- builders

ValuePat Pattern::addValue(ValueKind k, const std::string& capture) {
  ValueSpec s;
  s.kind = k;
  s.capture = capture;
  values_.push_back(std::move(s));
  return ValuePat(this, static_cast<int>(values_.size()) - 1);
}

ValuePat Pattern::any(const std::string& c) { return addValue(ValueKind::Any, c); }
ValuePat Pattern::param(const std::string& c) { return addValue(ValueKind::Param, c); }
ValuePat Pattern::constant(const std::string& c) { return addValue(ValueKind::Constant, c); }
ValuePat Pattern::graphInput(const std::string& c) { return addValue(ValueKind::GraphInput, c); }
ValuePat Pattern::optional(const std::string& c) { return addValue(ValueKind::Optional, c); }
ValuePat Pattern::omitted() { return addValue(ValueKind::Omitted, ""); }

NodePat Pattern::op(std::set<std::string> ops, std::vector<ValuePat> inputs,
                    const std::string& capture) {
  NodeSpec s;
  s.ops = std::move(ops);
  for (const ValuePat& v : inputs) {
    GS_ASSERT(v.p_ == this, "value pattern from another Pattern");
    s.inputs.push_back(v.id());
  }
  s.capture = capture;
  nodes_.push_back(std::move(s));
  return NodePat(this, static_cast<int>(nodes_.size()) - 1);
}

const std::set<std::string>& Pattern::rootOps() const {
  GS_ASSERT(!nodes_.empty(), "empty pattern");
  return nodes_[static_cast<size_t>(root())].ops;
}

ValuePat& ValuePat::singleUse() {
  p_->values_[id_].preds.emplace_back("single use", [](const Value& v) {
    return v.uses().size() == 1 && !isGraphOutput(*v.graph(), &v);
  });
  return *this;
}

ValuePat& ValuePat::dtype(DType t) {
  p_->values_[id_].preds.emplace_back("dtype " + std::string(dtypeName(t)),
                                      [t](const Value& v) { return v.dtype() == t; });
  return *this;
}

ValuePat& ValuePat::rank(int64_t r) {
  p_->values_[id_].preds.emplace_back("rank " + std::to_string(r), [r](const Value& v) {
    return v.shape() && static_cast<int64_t>(v.shape()->size()) == r;
  });
  return *this;
}

ValuePat& ValuePat::scalar() {
  p_->values_[id_].preds.emplace_back("one-element parameter", [](const Value& v) {
    return v.isParam() && v.data().numel() == 1;
  });
  return *this;
}

ValuePat& ValuePat::where(std::function<bool(const Value&)> pred, std::string what) {
  p_->values_[id_].preds.emplace_back(std::move(what), std::move(pred));
  return *this;
}

ValuePat& ValuePat::capture(const std::string& name) {
  p_->values_[id_].capture = name;
  return *this;
}

NodePat& NodePat::attrEq(const std::string& key, Attribute a) {
  std::ostringstream what;
  what << "attribute " << key << " as required";
  p_->nodes_[id_].preds.emplace_back(what.str(), [key, a](const Node& n) {
    const Attribute* x = n.findAttr(key);
    if (!x) return false;
    if (a.is(AttrKind::Int) && x->is(AttrKind::Float)) return attrIsNumber(x, static_cast<double>(a.i()));
    if (a.is(AttrKind::Float) && x->is(AttrKind::Int)) return attrIsNumber(x, a.f());
    return *x == a;
  });
  return *this;
}

NodePat& NodePat::attrEqOrAbsent(const std::string& key, Attribute a) {
  p_->nodes_[id_].preds.emplace_back("attribute " + key + " as required", [key, a](const Node& n) {
    const Attribute* x = n.findAttr(key);
    if (!x) return true;
    if (a.is(AttrKind::Int) || a.is(AttrKind::Float))
      return attrIsNumber(x, a.is(AttrKind::Int) ? static_cast<double>(a.i()) : a.f());
    return *x == a;
  });
  return *this;
}

NodePat& NodePat::attrWhere(const std::string& key, std::function<bool(const Attribute*)> pred) {
  p_->nodes_[id_].preds.emplace_back("attribute " + key + " predicate",
                                     [key, pred](const Node& n) { return pred(n.findAttr(key)); });
  return *this;
}

NodePat& NodePat::where(std::function<bool(const Node&)> pred, std::string what) {
  p_->nodes_[id_].preds.emplace_back(std::move(what), std::move(pred));
  return *this;
}

NodePat& NodePat::domain(const std::string& d) {
  p_->nodes_[id_].domain = d;
  return *this;
}

NodePat& NodePat::commutative() {
  GS_ASSERT(p_->nodes_[id_].inputs.size() == 2, "commutative() needs exactly two input patterns");
  p_->nodes_[id_].commutative = true;
  return *this;
}

NodePat& NodePat::allowExtraInputs() {
  p_->nodes_[id_].extra_inputs = true;
  return *this;
}

NodePat& NodePat::singleUse() {
  p_->nodes_[id_].preds.emplace_back("outputs used once", [](const Node& n) {
    for (const Value* o : n.outputs())
      if (o && (o->uses().size() > 1 || isGraphOutput(*n.graph(), o))) return false;
    return true;
  });
  return *this;
}

NodePat& NodePat::capture(const std::string& name) {
  p_->nodes_[id_].capture = name;
  return *this;
}

ValuePat NodePat::out(int k) {
  auto& outs = p_->nodes_[id_].outs;
  auto it = outs.find(k);
  if (it != outs.end()) return ValuePat(p_, it->second);
  ValuePat v = p_->addValue(Pattern::ValueKind::NodeOutput, "");
  p_->values_[v.id()].node = id_;
  p_->values_[v.id()].index = k;
  outs[k] = v.id();
  return v;
}

// ---------------------------------------------------------------- matcher

namespace {

struct State {
  std::vector<Node*> nodes;
  std::vector<Value*> values;
  std::vector<char> value_bound;
};

using Cont = std::function<bool(State&)>;

class Matcher {
 public:
  Matcher(const Pattern& p, std::string* why) : p_(p), why_(why) {}

  bool fail(const std::string& msg) {
    if (why_) *why_ = msg;
    return false;
  }

  bool matchValue(int vid, Value* v, State& s, const Cont& k) {
    const auto& spec = p_.valueSpecs()[static_cast<size_t>(vid)];
    if (s.value_bound[vid]) {
      if (s.values[vid] != v)
        return fail("value '" + (v ? v->name() : std::string("_")) +
                    "' differs from the value already bound to the same pattern value");
      return k(s);
    }
    using K = Pattern::ValueKind;
    if (!v) {
      if (spec.kind != K::Optional && spec.kind != K::Omitted)
        return fail("an input the pattern requires is omitted");
      s.value_bound[vid] = 1;
      s.values[vid] = nullptr;
      if (k(s)) return true;
      s.value_bound[vid] = 0;
      return false;
    }
    switch (spec.kind) {
      case K::Omitted: return fail("value '" + v->name() + "' must be an omitted input");
      case K::Param:
        if (!v->isParam()) return fail("value '" + v->name() + "' is not a parameter");
        break;
      case K::Constant:
        if (!v->isParam() || v->trainable())
          return fail("value '" + v->name() + "' is not a frozen parameter");
        break;
      case K::GraphInput:
        if (!v->isGraphInput()) return fail("value '" + v->name() + "' is not a graph input");
        break;
      case K::NodeOutput:
        if (!v->producer() || v->producerIndex() != spec.index)
          return fail("value '" + v->name() + "' is not output " + std::to_string(spec.index) +
                      " of a node");
        break;
      default: break;
    }
    for (const auto& [what, pred] : spec.preds)
      if (!pred(*v)) return fail("value '" + v->name() + "': " + what + " does not hold");
    s.value_bound[vid] = 1;
    s.values[vid] = v;
    bool ok = spec.kind == K::NodeOutput ? matchNode(spec.node, v->producer(), s, k) : k(s);
    if (!ok) s.value_bound[vid] = 0;
    return ok;
  }

  bool matchNode(int nid, Node* n, State& s, const Cont& k) {
    const auto& spec = p_.nodeSpecs()[static_cast<size_t>(nid)];
    if (s.nodes[nid]) {
      if (s.nodes[nid] != n) return fail(n->describe() + " differs from the node already bound");
      return k(s);
    }
    if (std::find(s.nodes.begin(), s.nodes.end(), n) != s.nodes.end())
      return fail(n->describe() + " is already bound to another pattern node");
    if (n->domain() != spec.domain || !spec.ops.count(n->opType()))
      return fail(n->describe() + ": op type not in the pattern's alternatives");
    for (const auto& [what, pred] : spec.preds)
      if (!pred(*n)) return fail(n->describe() + ": " + what + " does not hold");
    size_t arity = 0;
    for (size_t i = 0; i < n->numInputs(); ++i)
      if (n->input(i)) arity = i + 1;
    if (!spec.extra_inputs && arity > spec.inputs.size())
      return fail(n->describe() + ": has " + std::to_string(arity) + " inputs, pattern expects " +
                  std::to_string(spec.inputs.size()));
    s.nodes[nid] = n;
    std::vector<std::vector<size_t>> orders{{}};
    for (size_t i = 0; i < spec.inputs.size(); ++i) orders[0].push_back(i);
    if (spec.commutative) orders.push_back({1, 0});
    for (const auto& order : orders) {
      State saved = s;
      if (matchInputs(spec, n, order, 0, s, k)) return true;
      s = saved;
    }
    s.nodes[nid] = nullptr;
    return false;
  }

  bool matchInputs(const Pattern::NodeSpec& spec, Node* n, const std::vector<size_t>& order,
                   size_t i, State& s, const Cont& k) {
    if (i == spec.inputs.size()) return k(s);
    Value* v = n->input(order[i]);
    return matchValue(spec.inputs[i], v, s, [&](State& st) {
      return matchInputs(spec, n, order, i + 1, st, k);
    });
  }

 private:
  const Pattern& p_;
  std::string* why_;
};

}  // namespace

std::optional<Match> Pattern::matchAt(Node* n, std::string* why) const {
  GS_ASSERT(!nodes_.empty(), "empty pattern");
  State s;
  s.nodes.assign(nodes_.size(), nullptr);
  s.values.assign(values_.size(), nullptr);
  s.value_bound.assign(values_.size(), 0);
  Matcher m(*this, why);
  State result;
  bool ok = m.matchNode(root(), n, s, [&](State& st) {
    result = st;
    return true;
  });
  if (!ok) return std::nullopt;
  Match mt;
  mt.root = n;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    GS_ASSERT(result.nodes[i], "pattern node ", i, " is not reachable from the root");
    mt.nodes.push_back(result.nodes[i]);
    if (!nodes_[i].capture.empty()) mt.captured_nodes[nodes_[i].capture] = result.nodes[i];
  }
  for (size_t i = 0; i < values_.size(); ++i)
    if (!values_[i].capture.empty() && result.value_bound[i])
      mt.captured_values[values_[i].capture] = result.values[i];
  return mt;
}

std::vector<Match> Pattern::matchAll(const Graph& g) const {
  std::vector<Match> out;
  const auto& ops = rootOps();
  for (const auto& n : g.nodes())
    if (ops.count(n->opType()))
      if (auto m = matchAt(n.get())) out.push_back(std::move(*m));
  return out;
}

}  // namespace gs
