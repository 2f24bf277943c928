// Graph / Node / Value implementation.
#include "ir/graph.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <sstream>

#include "support/error.h"

namespace gs {

// ---------------- Value ----------------

void Value::setData(at::Tensor t) {
  GS_CHECK(t.defined(), "parameter '", name_, "': undefined tensor");
  dtype_ = fromScalarType(t.scalar_type());
  shape_ = shapeOf(t);
  data_ = std::move(t);
  is_param_ = true;
}

// ---------------- Node ----------------

void Node::setInput(size_t i, Value* v) {
  GS_ASSERT(i < inputs_.size(), "input index out of range");
  Value* old = inputs_[i];
  if (old == v) return;
  if (old) {
    auto& u = old->uses_;
    auto it = std::find(u.begin(), u.end(), Use{this, static_cast<int>(i)});
    GS_ASSERT(it != u.end());
    u.erase(it);
  }
  inputs_[i] = v;
  if (v) v->uses_.push_back(Use{this, static_cast<int>(i)});
}

void Node::addInput(Value* v) {
  inputs_.push_back(nullptr);
  setInput(inputs_.size() - 1, v);
}

void Node::truncateInputs(size_t n) {
  while (inputs_.size() > n) {
    setInput(inputs_.size() - 1, nullptr);
    inputs_.pop_back();
  }
}

const Attribute* Node::findAttr(const std::string& k) const {
  auto it = attrs_.find(k);
  return it == attrs_.end() ? nullptr : &it->second;
}

const Attribute& Node::attr(const std::string& k) const {
  const Attribute* a = findAttr(k);
  GS_CHECK(a, describe(), ": missing required attribute '", k, "'");
  return *a;
}

namespace {
[[noreturn]] void kindMismatch(const Node& n, const std::string& k, AttrKind want, AttrKind got) {
  GS_FAIL(n.describe(), ": attribute '", k, "' must be ", attrKindName(want), ", got ",
          attrKindName(got));
}
}  // namespace

int64_t Node::attrInt(const std::string& k, int64_t def) const {
  const Attribute* a = findAttr(k);
  if (!a) return def;
  if (!a->is(AttrKind::Int)) kindMismatch(*this, k, AttrKind::Int, a->kind());
  return a->i();
}

float Node::attrFloat(const std::string& k, float def) const {
  const Attribute* a = findAttr(k);
  if (!a) return def;
  if (a->is(AttrKind::Int)) return static_cast<float>(a->i());
  if (!a->is(AttrKind::Float)) kindMismatch(*this, k, AttrKind::Float, a->kind());
  return a->f();
}

std::string Node::attrString(const std::string& k, const std::string& def) const {
  const Attribute* a = findAttr(k);
  if (!a) return def;
  if (!a->is(AttrKind::String)) kindMismatch(*this, k, AttrKind::String, a->kind());
  return a->s();
}

std::vector<int64_t> Node::attrInts(const std::string& k, std::vector<int64_t> def) const {
  const Attribute* a = findAttr(k);
  if (!a) return def;
  if (!a->is(AttrKind::Ints)) kindMismatch(*this, k, AttrKind::Ints, a->kind());
  return a->ints();
}

std::vector<float> Node::attrFloats(const std::string& k, std::vector<float> def) const {
  const Attribute* a = findAttr(k);
  if (!a) return def;
  if (!a->is(AttrKind::Floats)) kindMismatch(*this, k, AttrKind::Floats, a->kind());
  return a->floats();
}

std::string Node::describe() const {
  std::string op = domain_.empty() ? op_type_ : domain_ + "::" + op_type_;
  return "node '" + name_ + "' (" + op + ")";
}

// ---------------- Graph ----------------

Graph::Graph(Graph&& o) noexcept { *this = std::move(o); }

Graph& Graph::operator=(Graph&& o) noexcept {
  // std::list self-move-assignment clears the list: guard it.
  if (this == &o) return *this;
  name = std::move(o.name);
  opsets = std::move(o.opsets);
  nodes_ = std::move(o.nodes_);
  node_pos_ = std::move(o.node_pos_);
  values_ = std::move(o.values_);
  nodes_by_name_ = std::move(o.nodes_by_name_);
  inputs_ = std::move(o.inputs_);
  outputs_ = std::move(o.outputs_);
  params_ = std::move(o.params_);
  for (auto& n : nodes_) n->graph_ = this;
  for (auto& [k, v] : values_) v->graph_ = this;
  return *this;
}

Value* Graph::newValue(const std::string& name) {
  GS_CHECK(!name.empty(), "value names must not be empty");
  GS_CHECK(!values_.count(name), "duplicate value name '", name, "'");
  auto v = std::unique_ptr<Value>(new Value());
  v->name_ = name;
  v->graph_ = this;
  Value* raw = v.get();
  values_.emplace(name, std::move(v));
  return raw;
}

Value* Graph::addInput(const std::string& name, DType t, Shape shape) {
  Value* v = newValue(name);
  v->dtype_ = t;
  v->shape_ = std::move(shape);
  v->is_input_ = true;
  inputs_.push_back(v);
  return v;
}

Value* Graph::addParam(const std::string& name, at::Tensor data, bool trainable) {
  Value* v = newValue(name);
  v->setData(std::move(data));
  v->trainable_ = trainable;
  params_.push_back(v);
  return v;
}

void Graph::addOutput(Value* v) {
  GS_ASSERT(v && v->graph_ == this && findValue(v->name_) == v, "output value not in this graph");
  outputs_.push_back(v);
}

void Graph::setOutput(size_t i, Value* v) {
  GS_ASSERT(i < outputs_.size() && v && v->graph_ == this);
  outputs_[i] = v;
}

void Graph::removeOutput(size_t i) {
  GS_ASSERT(i < outputs_.size());
  outputs_.erase(outputs_.begin() + static_cast<long>(i));
}

Value* Graph::findValue(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? nullptr : it->second.get();
}

std::string Graph::uniqueValueName(const std::string& base) const {
  if (!values_.count(base)) return base;
  for (int k = 1;; ++k) {
    std::string cand = base + "_" + std::to_string(k);
    if (!values_.count(cand)) return cand;
  }
}

std::string Graph::uniqueNodeName(const std::string& base) const {
  if (!nodes_by_name_.count(base)) return base;
  for (int k = 1;; ++k) {
    std::string cand = base + "_" + std::to_string(k);
    if (!nodes_by_name_.count(cand)) return cand;
  }
}

void Graph::renameValue(Value* v, const std::string& name) {
  if (v->name_ == name) return;
  GS_CHECK(!name.empty(), "cannot rename value '", v->name_, "' to an empty name");
  GS_CHECK(!values_.count(name), "cannot rename value '", v->name_, "' to '", name,
           "': name is taken");
  auto it = values_.find(v->name_);
  GS_ASSERT(it != values_.end());
  auto holder = std::move(it->second);
  values_.erase(it);
  holder->name_ = name;
  values_.emplace(name, std::move(holder));
}

void Graph::removeInput(Value* v) {
  GS_ASSERT(v && v->is_input_ && findValue(v->name_) == v, "not a graph input of this graph");
  GS_CHECK(v->uses_.empty(), "cannot remove input '", v->name_, "': it still has uses");
  // Otherwise the output list would keep a pointer to the freed value.
  GS_CHECK(std::find(outputs_.begin(), outputs_.end(), v) == outputs_.end(),
           "cannot remove input '", v->name_, "': it is a graph output");
  inputs_.erase(std::remove(inputs_.begin(), inputs_.end(), v), inputs_.end());
  values_.erase(v->name_);
}

void Graph::removeParam(Value* v) {
  GS_ASSERT(v && v->is_param_ && findValue(v->name_) == v, "not a parameter of this graph");
  GS_CHECK(v->uses_.empty(), "cannot remove parameter '", v->name_, "': it still has uses");
  GS_CHECK(std::find(outputs_.begin(), outputs_.end(), v) == outputs_.end(),
           "cannot remove parameter '", v->name_, "': it is a graph output");
  params_.erase(std::remove(params_.begin(), params_.end(), v), params_.end());
  values_.erase(v->name_);
}

Node* Graph::addNode(const std::string& op_type, const std::vector<Value*>& inputs,
                     size_t num_outputs, const std::string& name,
                     std::map<std::string, Attribute> attrs, Node* before,
                     const std::string& domain) {
  std::string nname = uniqueNodeName(name.empty() ? op_type : name);
  std::vector<std::string> outs;
  for (size_t k = 0; k < num_outputs; ++k)
    outs.push_back(uniqueValueName(k == 0 ? nname : nname + ":" + std::to_string(k)));
  return addNodeNamedOutputs(op_type, inputs, outs, nname, std::move(attrs), before, domain);
}

Node* Graph::addNodeNamedOutputs(const std::string& op_type, const std::vector<Value*>& inputs,
                                 const std::vector<std::string>& output_names,
                                 const std::string& name, std::map<std::string, Attribute> attrs,
                                 Node* before, const std::string& domain) {
  GS_CHECK(!name.empty(), "node names must not be empty (op ", op_type, ")");
  GS_CHECK(!nodes_by_name_.count(name), "duplicate node name '", name, "'");
  auto n = std::unique_ptr<Node>(new Node());
  Node* raw = n.get();
  raw->op_type_ = op_type;
  raw->domain_ = domain;
  raw->name_ = name;
  raw->graph_ = this;
  raw->attrs_ = std::move(attrs);
  // Validate everything before the first mutation: a throw after uses were recorded would leave
  // dangling Use entries pointing at the discarded node.
  for (size_t k = 0; k < output_names.size(); ++k) {
    const auto& on = output_names[k];
    GS_CHECK(on.empty() || !values_.count(on), "duplicate value name '", on, "' (output of node '",
             name, "')");
    for (size_t j = 0; j < k; ++j)
      GS_CHECK(on.empty() || output_names[j] != on, "duplicate value name '", on,
               "' (output of node '", name, "')");
  }
  for (Value* v : inputs)
    if (v) GS_ASSERT(v->graph_ == this && findValue(v->name_) == v, "input value from another graph");
  GS_ASSERT(!before || node_pos_.count(before), "insertion point not in graph");
  for (Value* v : inputs) raw->addInput(v);
  for (size_t k = 0; k < output_names.size(); ++k) {
    if (output_names[k].empty()) {
      raw->outputs_.push_back(nullptr);
      continue;
    }
    Value* v = newValue(output_names[k]);
    v->producer_ = raw;
    v->producer_index_ = static_cast<int>(k);
    raw->outputs_.push_back(v);
  }
  NodeList::iterator pos = nodes_.end();
  if (before) {
    auto it = node_pos_.find(before);
    GS_ASSERT(it != node_pos_.end(), "insertion point not in graph");
    pos = it->second;
  }
  auto it = nodes_.insert(pos, std::move(n));
  node_pos_[raw] = it;
  nodes_by_name_[name] = raw;
  return raw;
}

void Graph::eraseNode(Node* n) {
  auto it = node_pos_.find(n);
  GS_ASSERT(it != node_pos_.end(), "node not in graph");
  for (Value* o : n->outputs_) {
    if (!o) continue;
    GS_CHECK(o->uses_.empty(), "cannot erase ", n->describe(), ": output '", o->name_,
             "' still has uses");
    GS_CHECK(std::find(outputs_.begin(), outputs_.end(), o) == outputs_.end(), "cannot erase ",
             n->describe(), ": output '", o->name_, "' is a graph output");
  }
  n->truncateInputs(0);
  for (Value* o : n->outputs_)
    if (o) values_.erase(o->name_);
  nodes_by_name_.erase(n->name_);
  auto lit = it->second;
  node_pos_.erase(it);
  nodes_.erase(lit);
}

void Graph::moveNodeBefore(Node* n, Node* before) {
  auto it = node_pos_.find(n);
  GS_ASSERT(it != node_pos_.end());
  NodeList::iterator pos = nodes_.end();
  if (before) {
    auto b = node_pos_.find(before);
    GS_ASSERT(b != node_pos_.end(), "insertion point not in graph");
    pos = b->second;
  }
  nodes_.splice(pos, nodes_, it->second);
}

void Graph::renameNode(Node* n, const std::string& name) {
  if (n->name_ == name) return;
  GS_CHECK(!name.empty(), "cannot rename node '", n->name_, "' to an empty name");
  GS_CHECK(!nodes_by_name_.count(name), "cannot rename node '", n->name_, "' to '", name,
           "': name is taken");
  nodes_by_name_.erase(n->name_);
  n->name_ = name;
  nodes_by_name_[name] = n;
}

Node* Graph::findNode(const std::string& name) const {
  auto it = nodes_by_name_.find(name);
  return it == nodes_by_name_.end() ? nullptr : it->second;
}

void Graph::replaceAllUsesWith(Value* from, Value* to) {
  if (from == to) return;
  GS_ASSERT(to && to->graph_ == this, "replacement value missing or from another graph");
  auto uses = from->uses_;
  for (const Use& u : uses) u.user->setInput(static_cast<size_t>(u.index), to);
  for (auto& o : outputs_)
    if (o == from) o = to;
}

std::unique_ptr<Graph> Graph::clone(bool copy_data) const {
  auto g = std::make_unique<Graph>();
  g->name = name;
  g->opsets = opsets;
  for (Value* v : inputs_) g->addInput(v->name_, v->dtype_, v->shape_);
  for (Value* p : params_) {
    // detach() first: cloning a requires_grad leaf would yield a non-leaf with a grad_fn.
    at::Tensor d = p->data_;
    if (copy_data) d = d.detach().clone().requires_grad_(p->data_.requires_grad());
    Value* np = g->addParam(p->name_, d, p->trainable_);
    np->dtype_ = p->dtype_;
    np->shape_ = p->shape_;
  }
  for (const auto& n : nodes_) {
    std::vector<Value*> ins;
    for (Value* v : n->inputs_) {
      Value* c = v ? g->findValue(v->name_) : nullptr;
      // A null here would silently turn the input into an omitted one.
      GS_ASSERT(!v || c, "clone: ", n->describe(), " uses '", v->name_, "' before it is produced");
      ins.push_back(c);
    }
    auto attrs = n->attrs_;
    if (copy_data)
      for (auto& [k, a] : attrs)
        if (a.is(AttrKind::Tensor)) a = Attribute(a.t().detach().clone());
    std::vector<std::string> outs;
    for (Value* v : n->outputs_) outs.push_back(v ? v->name_ : "");
    Node* nn = g->addNodeNamedOutputs(n->op_type_, ins, outs, n->name_, std::move(attrs), nullptr,
                                      n->domain_);
    for (size_t k = 0; k < outs.size(); ++k)
      if (Value* o = n->outputs_[k]) {
        nn->outputs_[k]->dtype_ = o->dtype_;
        nn->outputs_[k]->shape_ = o->shape_;
      }
  }
  for (Value* o : outputs_) g->addOutput(g->findValue(o->name_));
  return g;
}

size_t Graph::removeDeadValues() {
  size_t removed = 0;
  std::vector<Value*> dead;
  for (Value* p : params_)
    if (p->uses_.empty() && std::find(outputs_.begin(), outputs_.end(), p) == outputs_.end())
      dead.push_back(p);
  for (Value* p : dead) {
    removeParam(p);
    ++removed;
  }
  return removed;
}

// ---------------- helpers ----------------

int64_t staticNumel(const Shape& s) {
  if (!s) return -1;
  int64_t n = 1;
  for (const Dim& d : *s) {
    if (!d.isStatic()) return -1;
    n *= d.value;
  }
  return n;
}

std::vector<Dim> shapeOf(const at::Tensor& t) {
  std::vector<Dim> d;
  for (int64_t s : t.sizes()) d.emplace_back(s);
  return d;
}

std::string typeString(DType t, const Shape& s) {
  std::ostringstream os;
  os << dtypeName(t);
  if (!s) {
    os << "[*]";
    return os.str();
  }
  os << "[";
  for (size_t i = 0; i < s->size(); ++i) {
    if (i) os << ",";
    const Dim& d = (*s)[i];
    if (d.isStatic())
      os << d.value;
    else if (!d.symbol.empty())
      os << d.symbol;
    else
      os << "?";
  }
  os << "]";
  return os.str();
}

}  // namespace gs
