// IR text printer (see ir/text.h for the grammar); output parses back to an identical graph.
#include <ATen/ATen.h>

#include <complex>

#include "ir/text.h"
#include "ir/text_syntax.h"
#include "support/error.h"

namespace gs {

namespace {

using text::appendFloat;
using text::appendFloatLiteral;
using text::nameText;
using text::opText;
using text::quote;

void appendType(std::string& out, DType t, const Shape& s) {
  out += dtypeName(t);
  if (!s) {
    out += "[*]";
    return;
  }
  out += '[';
  for (size_t i = 0; i < s->size(); ++i) {
    if (i) out += ',';
    const Dim& d = (*s)[i];
    if (d.isStatic())
      out += std::to_string(d.value);
    else if (d.symbol.empty())
      out += '?';
    else
      out += text::isBareSymbol(d.symbol) ? d.symbol : quote(d.symbol);
  }
  out += ']';
}

template <typename T, typename F>
void appendElements(std::string& out, const at::Tensor& c, F fmt) {
  const T* p = c.data_ptr<T>();
  int64_t n = c.numel();
  for (int64_t i = 0; i < n; ++i) {
    if (i) out += ", ";
    fmt(out, p[i]);
  }
}

void appendInt(std::string& out, int64_t v) { out += std::to_string(v); }

template <typename F>
void appendComplex(std::string& out, std::complex<F> v) {
  out += '(';
  appendFloat(out, v.real());
  out += ", ";
  appendFloat(out, v.imag());
  out += ')';
}

void appendTensor(std::string& out, const at::Tensor& t, const PrintOptions& opts) {
  GS_CHECK(t.defined(), "cannot print an undefined tensor");
  DType dt = fromScalarType(t.scalar_type());
  out += "tensor<";
  appendType(out, dt, shapeOf(t));
  out += '>';
  if (!opts.tensor_data && t.numel() > opts.max_inline_elements) {
    out += "...";
    return;
  }
  at::Tensor c = t.detach().cpu().contiguous();
  out += '[';
  switch (dt) {
    case DType::Float32:
      appendElements<float>(out, c, [](std::string& o, float v) { appendFloat(o, v); });
      break;
    case DType::Float64:
      appendElements<double>(out, c, [](std::string& o, double v) { appendFloat(o, v); });
      break;
    case DType::Float16:
      appendElements<at::Half>(
          out, c, [](std::string& o, at::Half v) { appendFloat(o, static_cast<float>(v)); });
      break;
    case DType::BFloat16:
      appendElements<at::BFloat16>(
          out, c, [](std::string& o, at::BFloat16 v) { appendFloat(o, static_cast<float>(v)); });
      break;
    case DType::Int8:
      appendElements<int8_t>(out, c, [](std::string& o, int8_t v) { appendInt(o, v); });
      break;
    case DType::UInt8:
      appendElements<uint8_t>(out, c, [](std::string& o, uint8_t v) { appendInt(o, v); });
      break;
    case DType::Int16:
      appendElements<int16_t>(out, c, [](std::string& o, int16_t v) { appendInt(o, v); });
      break;
    case DType::Int32:
      appendElements<int32_t>(out, c, [](std::string& o, int32_t v) { appendInt(o, v); });
      break;
    case DType::Int64:
      appendElements<int64_t>(out, c, [](std::string& o, int64_t v) { appendInt(o, v); });
      break;
    case DType::Bool:
      appendElements<bool>(out, c, [](std::string& o, bool v) { o += v ? "true" : "false"; });
      break;
    case DType::Complex64:
      appendElements<c10::complex<float>>(out, c, [](std::string& o, c10::complex<float> v) {
        appendComplex(o, std::complex<float>(v.real(), v.imag()));
      });
      break;
    case DType::Complex128:
      appendElements<c10::complex<double>>(out, c, [](std::string& o, c10::complex<double> v) {
        appendComplex(o, std::complex<double>(v.real(), v.imag()));
      });
      break;
    default: GS_FAIL("cannot print a tensor of element type ", dtypeName(dt));
  }
  out += ']';
}

void appendAttr(std::string& out, const Attribute& a, const PrintOptions& opts) {
  switch (a.kind()) {
    case AttrKind::Int: out += std::to_string(a.i()); break;
    case AttrKind::Float: appendFloatLiteral(out, a.f()); break;
    case AttrKind::String: out += quote(a.s()); break;
    case AttrKind::Tensor: appendTensor(out, a.t(), opts); break;
    case AttrKind::Ints:
      if (a.ints().empty()) {
        out += "ints[]";
        break;
      }
      out += '[';
      for (size_t i = 0; i < a.ints().size(); ++i) {
        if (i) out += ',';
        out += std::to_string(a.ints()[i]);
      }
      out += ']';
      break;
    case AttrKind::Floats:
      if (a.floats().empty()) {
        out += "floats[]";
        break;
      }
      out += '[';
      for (size_t i = 0; i < a.floats().size(); ++i) {
        if (i) out += ',';
        appendFloatLiteral(out, a.floats()[i]);
      }
      out += ']';
      break;
    case AttrKind::Strings:
      if (a.strings().empty()) {
        out += "strings[]";
        break;
      }
      out += '[';
      for (size_t i = 0; i < a.strings().size(); ++i) {
        if (i) out += ',';
        out += quote(a.strings()[i]);
      }
      out += ']';
      break;
  }
}

/// `%name` plus `: type` unless the value is untyped (undef dtype and unknown rank).
void appendValueDecl(std::string& out, const Value* v) {
  out += '%';
  out += nameText(v->name());
  if (v->dtype() != DType::Undefined || v->shape()) {
    out += ": ";
    appendType(out, v->dtype(), v->shape());
  }
}

void appendNode(std::string& out, const Node& n, const PrintOptions& opts) {
  out += "  ";
  if (n.outputs().empty()) out += "()";
  for (size_t i = 0; i < n.outputs().size(); ++i) {
    if (i) out += ", ";
    if (const Value* v = n.output(i))
      appendValueDecl(out, v);
    else
      out += '_';
  }
  out += " = ";
  if (!n.domain().empty()) {
    out += opText(n.domain());
    out += "::";
  }
  out += opText(n.opType());
  out += '(';
  for (size_t i = 0; i < n.inputs().size(); ++i) {
    if (i) out += ", ";
    if (const Value* v = n.input(i)) {
      out += '%';
      out += nameText(v->name());
    } else {
      out += '_';
    }
  }
  out += ") @";
  out += nameText(n.name());
  if (!n.attrs().empty()) {
    out += " {";
    bool first = true;
    for (const auto& [k, a] : n.attrs()) {
      if (!first) out += ", ";
      first = false;
      out += nameText(k);
      out += '=';
      appendAttr(out, a, opts);
    }
    out += '}';
  }
  out += '\n';
}

}  // namespace

std::string printGraph(const Graph& g, const PrintOptions& opts) {
  std::string out = "graph ";
  out += quote(g.name);
  out += " {\n";
  for (const auto& [dom, ver] : g.opsets) {
    out += "  opset ";
    out += quote(dom);
    out += ' ';
    out += std::to_string(ver);
    out += '\n';
  }
  for (const Value* v : g.inputs()) {
    out += "  input ";
    appendValueDecl(out, v);
    out += '\n';
  }
  for (const Value* p : g.params()) {
    out += p->trainable() ? "  param " : "  param frozen ";
    out += '%';
    out += nameText(p->name());
    out += ": ";
    appendType(out, p->dtype(), p->shape());
    out += " = ";
    appendTensor(out, p->data(), opts);
    out += '\n';
  }
  for (const auto& n : g.nodes()) appendNode(out, *n, opts);
  for (const Value* v : g.outputs()) {
    out += "  output %";
    out += nameText(v->name());
    out += '\n';
  }
  out += "}\n";
  return out;
}

}  // namespace gs
