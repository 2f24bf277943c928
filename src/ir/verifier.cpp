// Graph verifier: structural invariants (order, producers, use lists, ownership) and op schemas.
#include "ir/verifier.h"

#include <algorithm>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "ops/registry.h"
#include "support/error.h"

namespace gs {

namespace {

template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

std::string quoteName(const std::string& n) { return "'" + n + "'"; }

/// Number of slots once trailing omitted (nullptr) entries are dropped.
size_t effectiveCount(const std::vector<Value*>& v) {
  size_t n = v.size();
  while (n > 0 && v[n - 1] == nullptr) --n;
  return n;
}

/// A declared shape admits a tensor if the rank is unknown, or ranks agree and static dims match.
bool shapeAdmits(const Shape& s, const at::Tensor& t) {
  if (!s) return true;
  if (static_cast<int64_t>(s->size()) != t.dim()) return false;
  for (size_t i = 0; i < s->size(); ++i)
    if ((*s)[i].isStatic() && (*s)[i].value != t.size(static_cast<int64_t>(i))) return false;
  return true;
}

bool kindAccepted(AttrKind want, AttrKind got) {
  return want == got || (want == AttrKind::Float && got == AttrKind::Int);
}

class Verifier {
 public:
  Verifier(const Graph& g, const VerifyOptions& o) : g_(g), opts_(o) {}

  std::vector<std::string> run() {
    for (const auto& n : g_.nodes()) node_set_.insert(n.get());
    checkSources();
    std::set<std::string> node_names;
    for (const auto& up : g_.nodes()) {
      const Node& n = *up;
      if (!node_names.insert(n.name()).second)
        err(n.describe(), ": duplicate node name ", quoteName(n.name()));
      if (n.graph() != &g_) err(n.describe(), ": node belongs to another graph");
      if (g_.findNode(n.name()) != &n)
        err(n.describe(), ": node is not registered under its name in the graph");
      checkInputs(n);
      checkOutputs(n);
      if (opts_.check_schemas) checkSchema(n);
    }
    for (const Value* v : all_values_) checkUses(v);
    checkGraphOutputs();
    return std::move(errs_);
  }

 private:
  template <typename... Args>
  void err(const Args&... args) {
    errs_.push_back(cat(args...));
  }

  /// A value reachable from the graph lists must be the one registered under its name.
  bool owned(const Value* v) const { return v->graph() == &g_ && g_.findValue(v->name()) == v; }

  void define(const Value* v, const std::string& who) {
    if (!defined_.insert(v).second) {
      err(who, ": value ", quoteName(v->name()), " has more than one producer");
      return;
    }
    all_values_.push_back(v);
  }

  void checkSources() {
    for (const Value* v : g_.inputs()) {
      if (!v) {
        err("graph input list holds a null value");
        continue;
      }
      std::string who = "graph input " + quoteName(v->name());
      if (!owned(v)) err(who, ": value does not belong to this graph");
      if (!v->isGraphInput()) err(who, ": value is not marked as a graph input");
      if (v->producer()) err(who, ": graph input has a producer ", v->producer()->describe());
      define(v, who);
    }
    for (const Value* v : g_.params()) {
      if (!v) {
        err("parameter list holds a null value");
        continue;
      }
      std::string who = "parameter " + quoteName(v->name());
      if (!owned(v)) err(who, ": value does not belong to this graph");
      if (!v->isParam() || !v->data().defined())
        err(who, ": parameter has no data");
      else if (fromScalarType(v->data().scalar_type()) != v->dtype())
        err(who, ": dtype ", dtypeName(v->dtype()), " differs from its data (",
            dtypeName(fromScalarType(v->data().scalar_type())), ")");
      else if (!shapeAdmits(v->shape(), v->data()))
        err(who, ": declared type ", typeString(v->dtype(), v->shape()),
            " does not match its data ", typeString(v->dtype(), shapeOf(v->data())));
      if (v->producer()) err(who, ": parameter has a producer ", v->producer()->describe());
      define(v, who);
    }
  }

  void checkInputs(const Node& n) {
    for (size_t i = 0; i < n.numInputs(); ++i) {
      const Value* v = n.input(i);
      if (!v) continue;
      std::string slot = cat(n.describe(), ": input ", i, " ", quoteName(v->name()));
      if (!owned(v)) {
        err(slot, " does not belong to this graph");
        continue;
      }
      if (!defined_.count(v)) {
        if (v->producer() && node_set_.count(v->producer()))
          err(slot, " is used before it is produced by ", v->producer()->describe(),
              " (nodes are not in topological order)");
        else
          err(slot, " has no producer in this graph");
      }
      const auto& uses = v->uses();
      if (std::find(uses.begin(), uses.end(), Use{const_cast<Node*>(&n), static_cast<int>(i)}) ==
          uses.end())
        err(slot, " is missing from the value's use list");
    }
  }

  void checkOutputs(const Node& n) {
    for (size_t k = 0; k < n.numOutputs(); ++k) {
      const Value* v = n.output(k);
      if (!v) continue;
      std::string slot = cat(n.describe(), ": output ", k, " ", quoteName(v->name()));
      if (!owned(v)) err(slot, " does not belong to this graph");
      if (v->producer() != &n || v->producerIndex() != static_cast<int>(k))
        err(slot, " does not record this node as its producer");
      if (v->isParam() || v->isGraphInput()) err(slot, " is also a graph input or parameter");
      define(v, n.describe());
    }
  }

  void checkUses(const Value* v) {
    std::set<std::pair<const Node*, int>> seen;
    for (const Use& u : v->uses()) {
      std::string who = cat("value ", quoteName(v->name()), ": use by ");
      if (!node_set_.count(u.user)) {
        err(who, "a node that is not in this graph (dangling use)");
        continue;
      }
      if (!seen.insert({u.user, u.index}).second)
        err(who, u.user->describe(), " input ", u.index, " is listed twice");
      if (u.index < 0 || static_cast<size_t>(u.index) >= u.user->numInputs() ||
          u.user->input(static_cast<size_t>(u.index)) != v)
        err(who, u.user->describe(), " input ", u.index,
            " is stale (that input slot does not hold the value)");
    }
  }

  void checkGraphOutputs() {
    for (size_t i = 0; i < g_.outputs().size(); ++i) {
      const Value* v = g_.outputs()[i];
      if (!v) {
        err("graph output ", i, " is null");
        continue;
      }
      if (!owned(v))
        err("graph output ", i, " ", quoteName(v->name()), " does not belong to this graph");
      else if (!defined_.count(v))
        err("graph output ", i, " ", quoteName(v->name()), " is never produced");
    }
  }

  void checkSchema(const Node& n) {
    const OpRegistry& reg = opts_.registry ? *opts_.registry : OpRegistry::global();
    const OpSchema* s = reg.find(n.domain(), n.opType());
    if (!s) {
      if (!opts_.allow_unknown_ops)
        err(n.describe(), ": unknown op '",
            n.domain().empty() ? n.opType() : n.domain() + "::" + n.opType(), "'");
      return;
    }
    size_t nin = effectiveCount(n.inputs());
    for (int i = 0; i < s->min_inputs; ++i)
      if (!n.hasInput(static_cast<size_t>(i)))
        err(n.describe(), ": required input ", i, " is missing (op takes at least ", s->min_inputs,
            " inputs, got ", nin, ")");
    if (s->max_inputs >= 0 && nin > static_cast<size_t>(s->max_inputs))
      err(n.describe(), ": too many inputs (op takes at most ", s->max_inputs, ", got ", nin, ")");
    size_t nout = effectiveCount(n.outputs());
    for (int k = 0; k < s->min_outputs; ++k)
      if (!n.output(static_cast<size_t>(k)))
        err(n.describe(), ": required output ", k, " is missing (op has at least ", s->min_outputs,
            " outputs, got ", nout, ")");
    if (s->max_outputs >= 0 && nout > static_cast<size_t>(s->max_outputs))
      err(n.describe(), ": too many outputs (op has at most ", s->max_outputs, ", got ", nout, ")");
    for (const AttrSpec& a : s->attrs)
      if (a.required && !n.hasAttr(a.name))
        err(n.describe(), ": missing required attribute '", a.name, "'");
    for (const auto& [k, a] : n.attrs()) {
      const AttrSpec* spec = s->findAttr(k);
      if (!spec) {
        if (!s->allow_unknown_attrs) err(n.describe(), ": unknown attribute '", k, "'");
        continue;
      }
      if (!kindAccepted(spec->kind, a.kind()))
        err(n.describe(), ": attribute '", k, "' must be ", attrKindName(spec->kind), ", got ",
            attrKindName(a.kind()));
    }
  }

  const Graph& g_;
  VerifyOptions opts_;
  std::unordered_set<const Node*> node_set_;
  std::unordered_set<const Value*> defined_;
  std::vector<const Value*> all_values_;
  std::vector<std::string> errs_;
};

}  // namespace

std::vector<std::string> verifyGraph(const Graph& g, const VerifyOptions& opts) {
  return Verifier(g, opts).run();
}

void verifyGraphOrThrow(const Graph& g, const VerifyOptions& opts) {
  auto errs = verifyGraph(g, opts);
  if (errs.empty()) return;
  if (errs.size() == 1) GS_FAIL("graph '", g.name, "' is invalid: ", errs[0]);
  GS_FAIL("graph '", g.name, "' is invalid: ", errs[0], " (and ", errs.size() - 1,
          " more problems)");
}

}  // namespace gs
