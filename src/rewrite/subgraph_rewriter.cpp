// SubgraphRewriter: compiles a pattern IR text into a Pattern and instantiates replacement text.
#include "rewrite/subgraph_rewriter.h"

#include <map>
#include <set>

#include "ir/text.h"
#include "support/error.h"

namespace gs {

SubgraphRewriter::~SubgraphRewriter() = default;

SubgraphRewriter::SubgraphRewriter(std::string name, std::string_view pattern_text,
                                   std::string_view replacement_text)
    : name_(std::move(name)) {
  pat_g_ = parseGraph(pattern_text, name_ + " pattern");
  rep_g_ = parseGraph(replacement_text, name_ + " replacement");
  const Graph& pg = *pat_g_;
  GS_CHECK(pg.numNodes() > 0, name_, " pattern: no nodes");
  GS_CHECK(pg.params().empty(), name_, " pattern: parameters are not allowed (use inputs)");
  GS_CHECK(!pg.outputs().empty(), name_, " pattern: no outputs");
  GS_CHECK(pg.outputs().size() == rep_g_->outputs().size(), name_, " : pattern has ",
           pg.outputs().size(), " outputs, replacement has ", rep_g_->outputs().size());
  for (const Value* o : pg.outputs())
    GS_CHECK(o->producer(), name_, " pattern: output '", o->name(), "' is not a node output");
  for (const Value* in : rep_g_->inputs())
    GS_CHECK(pg.findValue(in->name()) && pg.findValue(in->name())->isGraphInput(), name_,
             " replacement: input '", in->name(), "' is not a pattern input");

  // Pattern values by text name; node outputs via NodePat::out.
  std::map<const Value*, ValuePat> vals;
  for (const Value* in : pg.inputs()) vals.emplace(in, pattern_.any(in->name()));
  for (const auto& n : pg.nodes()) {
    std::vector<ValuePat> ins;
    for (const Value* v : n->inputs()) {
      if (!v) {
        ins.push_back(pattern_.omitted());
        continue;
      }
      auto it = vals.find(v);
      GS_ASSERT(it != vals.end());
      ins.push_back(it->second);
    }
    NodePat np = pattern_.op(std::set<std::string>{n->opType()}, ins, n->name()).domain(n->domain());
    for (const auto& [k, a] : n->attrs()) np.attrEq(k, a);
    for (size_t k = 0; k < n->numOutputs(); ++k)
      if (const Value* o = n->output(k)) {
        ValuePat vp = np.out(static_cast<int>(k));
        vp.capture(o->name());
        vals.emplace(o, vp);
      }
  }
  // Every node must feed the root (the last node), since matching walks producers from it.
  std::set<const Node*> reach;
  std::vector<const Node*> work{pg.nodes().back().get()};
  while (!work.empty()) {
    const Node* n = work.back();
    work.pop_back();
    if (!reach.insert(n).second) continue;
    for (const Value* v : n->inputs())
      if (v && v->producer()) work.push_back(v->producer());
  }
  for (const auto& n : pg.nodes())
    GS_CHECK(reach.count(n.get()), name_, " pattern: node '", n->name(),
             "' does not feed the last node (patterns need a single root)");
}

std::set<std::string> SubgraphRewriter::rootOps() const { return pattern_.rootOps(); }

bool SubgraphRewriter::matchAndRewrite(Node& root, Rewriter& rw, std::string& why) {
  auto m = pattern_.matchAt(&root, &why);
  if (!m) return false;
  Graph& g = rw.graph();
  const Graph& pg = *pat_g_;
  // Internal values must not escape the match.
  std::set<const Node*> inside(m->nodes.begin(), m->nodes.end());
  std::set<const Value*> outs;
  for (const Value* po : pg.outputs()) outs.insert(m->value(po->name()));
  for (const Node* n : m->nodes)
    for (const Value* o : n->outputs()) {
      if (!o || outs.count(o)) continue;
      if (isGraphOutput(g, o)) {
        why = "value '" + o->name() + "' inside the match is a graph output";
        return false;
      }
      for (const Use& u : o->uses())
        if (!inside.count(u.user)) {
          why = "value '" + o->name() + "' inside the match is also used by " + u.user->describe();
          return false;
        }
    }
  // Instantiate the replacement before the root.
  std::map<const Value*, Value*> map;
  for (const Value* in : rep_g_->inputs()) map[in] = m->value(in->name());
  for (const Value* p : rep_g_->params())
    map[p] = rw.addParam(root.name() + "." + p->name(), p->data(), p->trainable());
  std::vector<std::pair<Node*, std::string>> wanted_names;
  for (const auto& rn : rep_g_->nodes()) {
    std::vector<Value*> ins;
    for (const Value* v : rn->inputs()) ins.push_back(v ? map.at(v) : nullptr);
    std::string want = m->captured_nodes.count(rn->name())
                           ? m->captured_nodes.at(rn->name())->name()
                           : root.name() + "." + rn->name();
    Node* nn = rw.insertBefore(&root, rn->opType(), ins, rn->numOutputs(), want, rn->attrs(),
                               rn->domain());
    wanted_names.emplace_back(nn, want);
    for (size_t k = 0; k < rn->numOutputs(); ++k)
      if (rn->output(k)) {
        map[rn->output(k)] = nn->output(k);
        nn->output(k)->setDType(rn->output(k)->dtype());
        nn->output(k)->setShape(rn->output(k)->shape());
      }
  }
  std::vector<std::pair<Value*, Value*>> pairs;
  for (size_t k = 0; k < pg.outputs().size(); ++k) {
    Value* from = m->value(pg.outputs()[k]->name());
    Value* to = map.at(rep_g_->outputs()[k]);
    // Keep the richer type information of the matched value when the replacement has none.
    if (to->producer() && to->dtype() == DType::Undefined) to->setDType(from->dtype());
    if (to->producer() && !to->shape()) to->setShape(from->shape());
    pairs.emplace_back(from, to);
  }
  rw.replaceSubgraph(m->nodes, pairs);
  for (auto& [n, want] : wanted_names)
    if (!g.findNode(want)) rw.rename(n, want);
  return true;
}

int64_t rewriteSubgraphs(Graph& g, std::string_view pattern_text, std::string_view replacement_text,
                         RewriteListener* listener) {
  PatternSet set;
  set.add(std::make_unique<SubgraphRewriter>("subgraph", pattern_text, replacement_text));
  return applyPatternsGreedily(g, set, {}, listener).applied;
}

}  // namespace gs
