// Cleanup passes: dead-code elimination and Identity / eval-mode Dropout removal.
#include "passes/passes.h"
#include "support/error.h"

namespace gs {

PassResult eliminateDeadCode(Graph& g, RewriteListener* listener) {
  PassResult res{"dce", 0, {}};
  Rewriter rw(g);
  if (listener) rw.addListener(listener);
  // Reverse order: users die before their producers, so one sweep removes whole dead chains.
  std::vector<std::string> names;
  for (const auto& n : g.nodes()) names.push_back(n->name());
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    Node* n = g.findNode(*it);
    if (!n || !isDead(*n)) continue;
    GS_ASSERT(rw.eraseNode(n) >= 1);
    ++res.changes;
  }
  std::vector<Value*> dead;
  for (Value* p : g.params())
    if (p->uses().empty() && !isGraphOutput(g, p)) dead.push_back(p);
  for (Value* p : dead) {
    rw.removeParam(p);
    ++res.changes;
  }
  return res;
}

PassResult removeIdentities(Graph& g, RewriteListener* listener) {
  PassResult res{"identity-removal", 0, {}};
  Rewriter rw(g);
  if (listener) rw.addListener(listener);
  std::vector<std::string> names;
  for (const auto& n : g.nodes()) names.push_back(n->name());
  for (const std::string& name : names) {
    Node* n = g.findNode(name);
    if (!n || !n->domain().empty()) continue;
    bool identity = n->opType() == "Identity";
    if (n->opType() == "Dropout") {
      // Eval semantics only; the mask output (if any) must be unused.
      Value* mask = n->output(1);
      identity = !(mask && (!mask->uses().empty() || isGraphOutput(g, mask)));
      if (!identity) res.notes.push_back(n->describe() + ": kept (mask output is used)");
    }
    if (!identity || !n->input(0) || !n->output(0)) continue;
    Value* x = n->input(0);
    Value* y = n->output(0);
    if (isGraphOutput(g, y) && (!x->producer() || isGraphOutput(g, x))) {
      res.notes.push_back(n->describe() + ": kept (its output is a graph output that needs a name)");
      continue;
    }
    rw.replaceNode(n, {x});
    ++res.changes;
  }
  return res;
}

}  // namespace gs
