// Graph query implementations.
#include "rewrite/query.h"

#include <algorithm>
#include <regex>
#include <unordered_set>

#include "support/error.h"

namespace gs {

std::vector<Node*> nodesByOpType(const Graph& g, const std::set<std::string>& ops,
                                 const std::string& domain) {
  std::vector<Node*> out;
  for (const auto& n : g.nodes())
    if (ops.count(n->opType()) && (domain == "*" || n->domain() == domain)) out.push_back(n.get());
  return out;
}

std::vector<Node*> nodesByNameRegex(const Graph& g, const std::string& pattern) {
  std::regex re;
  try {
    re = std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    GS_FAIL("invalid node-name regex '", pattern, "': ", e.what());
  }
  std::vector<Node*> out;
  for (const auto& n : g.nodes())
    if (std::regex_match(n->name(), re)) out.push_back(n.get());
  return out;
}

bool inScope(const std::string& name, const std::string& prefix) {
  if (prefix.empty()) return true;
  if (name.size() < prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return false;
  return name.size() == prefix.size() || name[prefix.size()] == '.';
}

std::vector<Node*> nodesInScope(const Graph& g, const std::string& prefix) {
  std::vector<Node*> out;
  for (const auto& n : g.nodes())
    if (inScope(n->name(), prefix)) out.push_back(n.get());
  return out;
}

std::vector<Node*> producers(const Node& n) {
  std::vector<Node*> out;
  for (const Value* v : n.inputs())
    if (v && v->producer() && std::find(out.begin(), out.end(), v->producer()) == out.end())
      out.push_back(v->producer());
  return out;
}

std::vector<Node*> consumers(const Node& n) {
  std::unordered_set<const Node*> users;
  for (const Value* o : n.outputs())
    if (o)
      for (const Use& u : o->uses()) users.insert(u.user);
  std::vector<Node*> out;
  for (const auto& m : n.graph()->nodes())
    if (users.count(m.get())) out.push_back(m.get());
  return out;
}

Node* firstUser(const Graph& g, const Value* v) {
  if (!v || v->uses().empty()) return nullptr;
  std::unordered_set<const Node*> users;
  for (const Use& u : v->uses()) users.insert(u.user);
  for (const auto& n : g.nodes())
    if (users.count(n.get())) return n.get();
  return nullptr;
}

namespace {

/// The parameter behind input `i` of `n`: direct, or through a Transpose (sets `transposed`).
Value* weightAt(const Node& n, size_t i, bool& transposed) {
  Value* v = n.input(i);
  transposed = false;
  if (!v) return nullptr;
  if (v->isParam()) return v;
  Node* p = v->producer();
  if (p && p->opType() == "Transpose" && p->domain().empty() && p->input(0) &&
      p->input(0)->isParam()) {
    transposed = true;
    return p->input(0);
  }
  return nullptr;
}

}  // namespace

std::vector<Layer> layers(const Graph& g) {
  std::vector<Layer> out;
  for (const auto& up : g.nodes()) {
    Node* n = up.get();
    if (!n->domain().empty()) continue;
    const std::string& op = n->opType();
    Layer l;
    l.node = n;
    bool tr = false;
    if (op == "Conv" || op == "ConvTranspose" || op == "Gemm") {
      l.weight = weightAt(*n, 1, tr);
      if (op != "Gemm" && tr) l.weight = nullptr;  // conv weights are never transposed params
      l.transposed = tr;
      if (n->input(2) && n->input(2)->isParam()) l.bias = n->input(2);
    } else if (op == "MatMul") {
      for (int i : {1, 0}) {
        Value* w = weightAt(*n, static_cast<size_t>(i), tr);
        if (w && w->data().dim() >= 2) {
          l.weight = w;
          l.weight_input = i;
          l.transposed = tr;
          break;
        }
      }
    } else if (op == "Gather") {
      Value* w = n->input(0);
      if (w && w->isParam() && w->data().dim() == 2 && w->data().is_floating_point()) {
        l.weight = w;
        l.weight_input = 0;
      }
    }
    if (l.weight) out.push_back(l);
  }
  return out;
}

}  // namespace gs
