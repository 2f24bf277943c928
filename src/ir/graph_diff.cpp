// Structural graph comparison.
#include "ir/graph_diff.h"

#include <ATen/ATen.h>

#include <sstream>

namespace gs {

namespace {

std::string valueDesc(const Value* v) {
  if (!v) return "_";
  return "'" + v->name() + "': " + typeString(v->dtype(), v->shape());
}

std::string shapeText(const Shape& s) {
  // typeString renders symbols bare; add quotes around symbols so "" vs "?" differences show.
  if (!s) return "[*]";
  std::string o = "[";
  for (size_t i = 0; i < s->size(); ++i) {
    const Dim& d = (*s)[i];
    if (i) o += ",";
    o += d.isStatic() ? std::to_string(d.value) : "\"" + d.symbol + "\"";
  }
  return o + "]";
}

bool sameValueDecl(const Value* a, const Value* b) {
  if (!a || !b) return a == b;
  return a->name() == b->name() && a->dtype() == b->dtype() && a->shape() == b->shape();
}

}  // namespace

bool tensorsIdentical(const at::Tensor& a, const at::Tensor& b) {
  if (a.defined() != b.defined()) return false;
  if (!a.defined()) return true;
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  at::Tensor x = a.detach(), y = b.detach();
  if (x.is_complex()) {
    x = at::view_as_real(x.resolve_conj());
    y = at::view_as_real(y.resolve_conj());
  }
  if (!x.is_floating_point()) return at::equal(x, y);
  at::Tensor nx = x.isnan(), ny = y.isnan();
  if (!at::equal(nx, ny)) return false;
  if (!at::equal(x.signbit().logical_or(nx), y.signbit().logical_or(ny))) return false;
  return at::equal(x.nan_to_num(0, 0, 0), y.nan_to_num(0, 0, 0));
}

std::string graphDiff(const Graph& a, const Graph& b) {
  std::ostringstream os;
  if (a.name != b.name) return "graph name '" + a.name + "' vs '" + b.name + "'";
  if (a.opsets != b.opsets) return "opsets differ";
  if (a.inputs().size() != b.inputs().size()) return "input counts differ";
  for (size_t i = 0; i < a.inputs().size(); ++i)
    if (!sameValueDecl(a.inputs()[i], b.inputs()[i]) ||
        shapeText(a.inputs()[i]->shape()) != shapeText(b.inputs()[i]->shape()))
      return "input " + std::to_string(i) + ": " + valueDesc(a.inputs()[i]) + " vs " +
             valueDesc(b.inputs()[i]);
  if (a.params().size() != b.params().size()) return "param counts differ";
  for (size_t i = 0; i < a.params().size(); ++i) {
    const Value *p = a.params()[i], *q = b.params()[i];
    if (!sameValueDecl(p, q)) return "param " + valueDesc(p) + " vs " + valueDesc(q);
    if (p->trainable() != q->trainable()) return "param '" + p->name() + "': trainable flag";
    if (!tensorsIdentical(p->data(), q->data())) return "param '" + p->name() + "': data differs";
  }
  if (a.numNodes() != b.numNodes())
    return "node counts differ: " + std::to_string(a.numNodes()) + " vs " +
           std::to_string(b.numNodes());
  auto ia = a.nodes().begin();
  auto ib = b.nodes().begin();
  for (; ia != a.nodes().end(); ++ia, ++ib) {
    const Node &m = **ia, &n = **ib;
    if (m.name() != n.name() || m.opType() != n.opType() || m.domain() != n.domain())
      return m.describe() + " vs " + n.describe();
    if (m.numInputs() != n.numInputs()) return m.describe() + ": input counts differ";
    for (size_t i = 0; i < m.numInputs(); ++i) {
      const Value *u = m.input(i), *v = n.input(i);
      if ((u == nullptr) != (v == nullptr) || (u && u->name() != v->name()))
        return m.describe() + ": input " + std::to_string(i) + " differs";
    }
    if (m.numOutputs() != n.numOutputs()) return m.describe() + ": output counts differ";
    for (size_t k = 0; k < m.numOutputs(); ++k)
      if (!sameValueDecl(m.output(k), n.output(k)))
        return m.describe() + ": output " + valueDesc(m.output(k)) + " vs " +
               valueDesc(n.output(k));
    if (m.attrs().size() != n.attrs().size()) return m.describe() + ": attribute sets differ";
    for (const auto& [k, at] : m.attrs()) {
      const Attribute* bt = n.findAttr(k);
      if (!bt) return m.describe() + ": attribute '" + k + "' missing";
      if (at.kind() != bt->kind()) return m.describe() + ": attribute '" + k + "' kind differs";
      bool same = at.kind() == AttrKind::Tensor ? tensorsIdentical(at.t(), bt->t()) : at == *bt;
      if (!same) return m.describe() + ": attribute '" + k + "' value differs";
    }
  }
  if (a.outputs().size() != b.outputs().size()) return "output counts differ";
  for (size_t i = 0; i < a.outputs().size(); ++i)
    if (a.outputs()[i]->name() != b.outputs()[i]->name())
      return "output " + std::to_string(i) + ": '" + a.outputs()[i]->name() + "' vs '" +
             b.outputs()[i]->name() + "'";
  return "";
}

}  // namespace gs
