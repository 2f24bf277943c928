// Rewriter implementation: Graph mutations with listener notification and dead-code cleanup.
#include "rewrite/rewriter.h"

#include <algorithm>
#include <set>

#include "support/error.h"

namespace gs {

bool isGraphOutput(const Graph& g, const Value* v) {
  return std::find(g.outputs().begin(), g.outputs().end(), v) != g.outputs().end();
}

bool isDead(const Node& n) {
  for (const Value* o : n.outputs())
    if (o && (!o->uses().empty() || isGraphOutput(*n.graph(), o))) return false;
  return true;
}

void Rewriter::removeListener(RewriteListener* l) {
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), l), listeners_.end());
}

void Rewriter::notifyInserted(Node* n) {
  ++changes_;
  for (auto* l : listeners_) l->nodeInserted(*n);
}

void Rewriter::notifyModified(Node* n) {
  ++changes_;
  for (auto* l : listeners_) l->nodeModified(*n);
}

Node* Rewriter::insertBefore(Node* anchor, const std::string& op_type,
                             const std::vector<Value*>& inputs, size_t num_outputs,
                             const std::string& name, std::map<std::string, Attribute> attrs,
                             const std::string& domain) {
  Node* n = g_.addNode(op_type, inputs, num_outputs, name, std::move(attrs), anchor, domain);
  notifyInserted(n);
  return n;
}

Node* Rewriter::insertAfter(Node* anchor, const std::string& op_type,
                            const std::vector<Value*>& inputs, size_t num_outputs,
                            const std::string& name, std::map<std::string, Attribute> attrs,
                            const std::string& domain) {
  GS_ASSERT(anchor && anchor->graph() == &g_);
  // The node following `anchor` in graph order (nullptr = anchor is last).
  Node* next = nullptr;
  const auto& nodes = g_.nodes();
  for (auto it = nodes.begin(); it != nodes.end(); ++it)
    if (it->get() == anchor) {
      auto nx = std::next(it);
      next = nx == nodes.end() ? nullptr : nx->get();
      break;
    }
  return insertBefore(next, op_type, inputs, num_outputs, name, std::move(attrs), domain);
}

Value* Rewriter::addParam(const std::string& name, at::Tensor data, bool trainable) {
  Value* p = g_.addParam(g_.uniqueValueName(name), std::move(data), trainable);
  ++changes_;
  for (auto* l : listeners_) l->paramChanged(*p, false);
  return p;
}

void Rewriter::setParamData(Value* p, at::Tensor data) {
  GS_ASSERT(p && p->isParam());
  p->setData(std::move(data));
  ++changes_;
  for (auto* l : listeners_) l->paramChanged(*p, false);
}

void Rewriter::replaceAllUsesWith(Value* from, Value* to) {
  if (from == to) return;
  // Listeners see the users as modified, so per-node caches can be invalidated.
  std::vector<Node*> users;
  for (const Use& u : from->uses())
    if (std::find(users.begin(), users.end(), u.user) == users.end()) users.push_back(u.user);
  g_.replaceAllUsesWith(from, to);
  ++changes_;
  for (auto* l : listeners_) l->valueReplaced(*from, *to);
  for (Node* u : users)
    for (auto* l : listeners_) l->nodeModified(*u);
}

void Rewriter::setInput(Node* n, size_t i, Value* v) {
  while (n->numInputs() <= i) n->addInput(nullptr);
  n->setInput(i, v);
  notifyModified(n);
}

void Rewriter::replaceSubgraph(const std::vector<Node*>& nodes,
                               const std::vector<std::pair<Value*, Value*>>& outputs) {
  std::set<const Node*> inside(nodes.begin(), nodes.end());
  std::set<const Value*> mapped;
  for (const auto& [from, to] : outputs) mapped.insert(from);
  for (const Node* n : nodes)
    for (const Value* o : n->outputs()) {
      if (!o || mapped.count(o)) continue;
      GS_CHECK(!isGraphOutput(g_, o), "cannot replace subgraph at ", n->describe(), ": value '",
               o->name(), "' is a graph output");
      for (const Use& u : o->uses())
        GS_CHECK(inside.count(u.user), "cannot replace subgraph at ", n->describe(), ": value '",
                 o->name(), "' is also used by ", u.user->describe());
    }
  // Remember which graph-output names the replacement values should inherit.
  std::vector<std::pair<Value*, std::string>> renames;
  for (const auto& [from, to] : outputs) {
    if (!from || !to) continue;
    if (isGraphOutput(g_, from) && to->producer() && !isGraphOutput(g_, to))
      renames.emplace_back(to, from->name());
    replaceAllUsesWith(from, to);
  }
  // Erase in reverse graph order so users go before producers.
  std::vector<Node*> order;
  for (const auto& n : g_.nodes())
    if (inside.count(n.get())) order.push_back(n.get());
  GS_ASSERT(order.size() == inside.size(), "replaceSubgraph: node not in graph");
  // Inputs produced inside the subgraph die with it; only outside values are cleaned up.
  std::vector<Value*> outside;
  for (Node* n : order)
    for (Value* v : n->inputs())
      if (v && !(v->producer() && inside.count(v->producer()))) outside.push_back(v);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    for (auto* l : listeners_) l->nodeErased(**it);
    ++changes_;
    g_.eraseNode(*it);
  }
  cleanupFrom(outside);
  for (auto& [v, name] : renames)
    if (!g_.findValue(name)) renameValue(v, name);
}

void Rewriter::replaceNode(Node* n, const std::vector<Value*>& new_outputs) {
  std::vector<std::pair<Value*, Value*>> pairs;
  for (size_t k = 0; k < n->numOutputs(); ++k)
    if (n->output(k) && k < new_outputs.size() && new_outputs[k])
      pairs.emplace_back(n->output(k), new_outputs[k]);
  replaceSubgraph({n}, pairs);
}

int64_t Rewriter::cleanupFrom(const std::vector<Value*>& start) {
  // Work by name: a value reached twice may have been erased with its producer in between.
  int64_t erased = 0;
  std::vector<std::string> work;
  for (Value* v : start) work.push_back(v->name());
  while (!work.empty()) {
    Value* v = g_.findValue(work.back());
    work.pop_back();
    if (!v || !v->uses().empty() || isGraphOutput(g_, v)) continue;
    if (v->isParam()) {
      removeParam(v);
    } else if (Node* p = v->producer(); p && isDead(*p)) {
      for (Value* in : p->inputs())
        if (in) work.push_back(in->name());
      for (auto* l : listeners_) l->nodeErased(*p);
      ++changes_;
      g_.eraseNode(p);
      ++erased;
    }
  }
  return erased;
}

int64_t Rewriter::eraseNode(Node* n) {
  GS_CHECK(isDead(*n), "cannot erase ", n->describe(),
           ": an output is still used or is a graph output");
  std::vector<Value*> inputs;
  for (Value* v : n->inputs())
    if (v) inputs.push_back(v);
  for (auto* l : listeners_) l->nodeErased(*n);
  g_.eraseNode(n);
  ++changes_;
  return 1 + cleanupFrom(inputs);
}

int64_t Rewriter::eraseIfDead(Node* n) { return isDead(*n) ? eraseNode(n) : 0; }

void Rewriter::removeParam(Value* p) {
  for (auto* l : listeners_) l->paramChanged(*p, true);
  g_.removeParam(p);
  ++changes_;
}

void Rewriter::setAttr(Node* n, const std::string& key, Attribute a) {
  n->setAttr(key, std::move(a));
  notifyModified(n);
}

void Rewriter::removeAttr(Node* n, const std::string& key) {
  if (!n->hasAttr(key)) return;
  n->removeAttr(key);
  notifyModified(n);
}

void Rewriter::rename(Node* n, const std::string& name) {
  std::string old = n->name();
  if (old == name) return;
  g_.renameNode(n, name);
  for (size_t k = 0; k < n->numOutputs(); ++k) {
    Value* o = n->output(k);
    if (!o) continue;
    std::string expect = k == 0 ? old : old + ":" + std::to_string(k);
    std::string want = k == 0 ? name : name + ":" + std::to_string(k);
    if (o->name() == expect && !g_.findValue(want)) g_.renameValue(o, want);
  }
  notifyModified(n);
}

void Rewriter::renameValue(Value* v, const std::string& name) {
  if (v->name() == name) return;
  g_.renameValue(v, name);
  ++changes_;
  if (v->isParam()) {
    for (auto* l : listeners_) l->paramChanged(*v, false);
  } else if (Node* p = v->producer()) {
    for (auto* l : listeners_) l->nodeModified(*p);
  }
}

void Rewriter::setType(Value* v, DType t, Shape s) {
  v->setDType(t);
  v->setShape(std::move(s));
  if (Node* p = v->producer()) {
    notifyModified(p);
  } else {
    ++changes_;
  }
}

void Rewriter::moveToScope(Node* n, const std::string& from_prefix, const std::string& to_prefix) {
  const std::string& nm = n->name();
  std::string rest;
  if (from_prefix.empty()) {
    rest = "." + nm;  // the root scope contains every node
  } else if (nm == from_prefix) {
    rest = "";
  } else {
    GS_CHECK(nm.size() > from_prefix.size() && nm.compare(0, from_prefix.size(), from_prefix) == 0 &&
                 nm[from_prefix.size()] == '.',
             n->describe(), " is not in scope '", from_prefix, "'");
    rest = nm.substr(from_prefix.size());
  }
  rename(n, to_prefix + rest);
}

void Rewriter::moveBefore(Node* n, Node* before) {
  g_.moveNodeBefore(n, before);
  notifyModified(n);
}

}  // namespace gs
