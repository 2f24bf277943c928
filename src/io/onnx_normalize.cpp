// Opset upgrade: rewrites default-domain nodes of opsets 9-16 to their opset-17 form.
//
// Each rewrite follows the op's ONNX version history (onnx.defs.get_schema(op, v).doc).
// Attribute operands that later became inputs are turned into frozen parameters, so a kernel
// only ever sees the opset-17 signature.
#include <ATen/ATen.h>
#include <onnx/defs/schema.h>

#include <vector>

#include "io/onnx.h"
#include "support/error.h"

namespace gs {

namespace {

/// Adds a frozen parameter named after the node (`<node>_<what>`) and returns it.
Value* constParam(Graph& g, const Node& n, const std::string& what, at::Tensor t) {
  return g.addParam(g.uniqueValueName(n.name() + "_" + what), std::move(t), false);
}

Value* intsParam(Graph& g, const Node& n, const std::string& what,
                 const std::vector<int64_t>& v) {
  return constParam(g, n, what, at::tensor(v, at::kLong));
}

/// Scalar of the element type of `like` (float32 when unknown: the legacy ops were float-only).
Value* scalarParam(Graph& g, const Node& n, const std::string& what, double v, const Value* like) {
  at::ScalarType st = at::kFloat;
  if (like && like->dtype() != DType::Undefined) st = toScalarType(like->dtype());
  return constParam(g, n, what, at::scalar_tensor(v, at::TensorOptions().dtype(st)));
}

/// Sets input slot `i`, growing the input list with omitted slots as needed.
void setInputAt(Node* n, size_t i, Value* v) {
  while (n->numInputs() <= i) n->addInput(nullptr);
  n->setInput(i, v);
}

/// Moves int-list attribute `attr` to input slot `slot` (only if present).
void intsAttrToInput(Graph& g, Node* n, const std::string& attr, size_t slot) {
  if (!n->hasAttr(attr)) return;
  std::vector<int64_t> v = n->attrInts(attr);
  n->removeAttr(attr);
  setInputAt(n, slot, intsParam(g, *n, attr, v));
}

/// Replaces `old` by a new node of `op_type` with the same name, output names and value types.
/// Outputs of `old` beyond `num_outputs` must be unused.
Node* replaceNode(Graph& g, Node* old, const std::string& op_type, std::vector<Value*> inputs,
                  std::map<std::string, Attribute> attrs, size_t num_outputs) {
  const std::string name = old->name();
  std::vector<std::string> orig, tmp;
  for (size_t k = 0; k < num_outputs; ++k) {
    Value* o = old->output(k);
    orig.push_back(o ? o->name() : "");
    tmp.push_back(o ? g.uniqueValueName(o->name() + "__upgrade") : "");
  }
  for (size_t k = num_outputs; k < old->numOutputs(); ++k) {
    Value* o = old->output(k);
    if (!o) continue;
    bool is_out = false;
    for (Value* go : g.outputs()) is_out |= go == o;
    GS_CHECK(o->uses().empty() && !is_out, old->describe(), ": output '", o->name(),
             "' has no opset-17 equivalent but is used");
  }
  g.renameNode(old, g.uniqueNodeName(name + "__old"));
  Node* n = g.addNodeNamedOutputs(op_type, inputs, tmp, name, std::move(attrs), old, old->domain());
  for (size_t k = 0; k < num_outputs; ++k) {
    Value* o = old->output(k);
    if (!o) continue;
    n->output(k)->setDType(o->dtype());
    n->output(k)->setShape(o->shape());
    g.replaceAllUsesWith(o, n->output(k));
  }
  g.eraseNode(old);
  for (size_t k = 0; k < num_outputs; ++k)
    if (!orig[k].empty()) g.renameValue(n->output(k), orig[k]);
  return n;
}

/// Softmax/LogSoftmax/Hardmax before 13 coerce the input to 2-D at `axis` (default 1):
///   op_v11(x, axis=a)  =>  Reshape(op_v13(Flatten(x, axis=a), axis=1), Shape(x))
/// When `a` is the last axis of a known rank the coercion is a no-op and only `axis` is kept.
void upgradeSoftmax(Graph& g, Node* n) {
  int64_t axis = n->attrInt("axis", 1);
  Value* x = n->input(0);
  if (!x) return;
  if (x->shape()) {
    int64_t r = static_cast<int64_t>(x->shape()->size());
    if (r >= 1 && (axis == r - 1 || axis == -1)) {
      n->setAttr("axis", int64_t{-1});
      return;
    }
  }
  const std::string op = n->opType();
  Node* flat = g.addNode("Flatten", {x}, 1, g.uniqueNodeName(n->name() + "_flatten"),
                         {{"axis", axis}}, n);
  Node* sm = g.addNode(op, {flat->output(0)}, 1, g.uniqueNodeName(n->name() + "_2d"),
                       {{"axis", int64_t{1}}}, n);
  Node* shp = g.addNode("Shape", {x}, 1, g.uniqueNodeName(n->name() + "_shape"), {}, n);
  if (Value* o = n->output(0)) {
    sm->output(0)->setDType(o->dtype());
    flat->output(0)->setDType(o->dtype());
  }
  shp->output(0)->setDType(DType::Int64);
  replaceNode(g, n, "Reshape", {sm->output(0), shp->output(0)}, {}, 1);
}

/// Resize/Upsample forms with only (X, scales) and asymmetric coordinates:
///   Upsample_9(X, scales, mode) / Resize_10(X, scales, mode)
///     =>  Resize_13(X, "", scales, mode, coordinate_transformation_mode="asymmetric",
///                   nearest_mode="floor")
void upgradeScalesOnlyResize(Graph& g, Node* n) {
  std::string mode = n->attrString("mode", "nearest");
  std::map<std::string, Attribute> attrs{{"mode", mode},
                                         {"coordinate_transformation_mode", "asymmetric"}};
  if (mode == "nearest") attrs["nearest_mode"] = "floor";
  replaceNode(g, n, "Resize", {n->input(0), nullptr, n->input(1)}, std::move(attrs), 1);
}

/// An input that is an empty parameter (the pre-13 way to say "not given") becomes omitted.
void emptyParamToOmitted(Node* n, size_t i) {
  Value* v = n->input(i);
  if (v && v->isParam() && v->data().numel() == 0) n->setInput(i, nullptr);
}

/// Resize-11's coordinate mode tf_half_pixel_for_nn (x_in = (x_out + 0.5) / s) was removed in
/// 13. With y = (x_out + 0.5) / s, half_pixel gives y - 0.5, and for nearest rounding
///   round_prefer_floor(y) = ceil(y - 0.5),   floor(y) = round_prefer_ceil(y - 0.5),
/// so those two nearest modes map exactly; the others have no opset-13 form and are left for
/// the kernel to reject.
void upgradeTfHalfPixelForNn(Node* n) {
  if (n->attrString("coordinate_transformation_mode", "") != "tf_half_pixel_for_nn") return;
  if (n->attrString("mode", "nearest") != "nearest") return;
  std::string nm = n->attrString("nearest_mode", "round_prefer_floor");
  std::string to = nm == "round_prefer_floor" ? "ceil" : nm == "floor" ? "round_prefer_ceil" : "";
  if (to.empty()) return;
  n->setAttr("coordinate_transformation_mode", "half_pixel");
  n->setAttr("nearest_mode", to);
}

void upgradeNode(Graph& g, Node* n, int64_t v) {
  const std::string& op = n->opType();
  if ((op == "Squeeze" || op == "Unsqueeze" || op == "ReduceSum") && v < 13) {
    intsAttrToInput(g, n, "axes", 1);
  } else if (op == "Split" && v < 13) {
    intsAttrToInput(g, n, "split", 1);
  } else if (op == "Slice" && v < 10) {
    intsAttrToInput(g, n, "starts", 1);
    intsAttrToInput(g, n, "ends", 2);
    intsAttrToInput(g, n, "axes", 3);
  } else if (op == "Pad" && v < 11) {
    std::vector<int64_t> pads = n->attrInts("pads");
    float value = n->attrFloat("value", 0.f);
    n->removeAttr("pads");
    n->removeAttr("value");
    setInputAt(n, 1, intsParam(g, *n, "pads", pads));
    if (value != 0.f) setInputAt(n, 2, scalarParam(g, *n, "value", value, n->input(0)));
  } else if (op == "Clip" && v < 11) {
    if (n->hasAttr("min"))
      setInputAt(n, 1, scalarParam(g, *n, "min", n->attrFloat("min", 0.f), n->input(0)));
    if (n->hasAttr("max"))
      setInputAt(n, 2, scalarParam(g, *n, "max", n->attrFloat("max", 0.f), n->input(0)));
    n->removeAttr("min");
    n->removeAttr("max");
  } else if (op == "Dropout" && v < 12) {
    if (n->hasAttr("ratio")) {
      float r = n->attrFloat("ratio", 0.5f);
      setInputAt(n, 1, constParam(g, *n, "ratio", at::scalar_tensor(r, at::kFloat)));
    }
    n->removeAttr("ratio");
    n->removeAttr("is_test");
  } else if (op == "TopK" && v < 10) {
    int64_t k = n->attr("k").i();
    n->removeAttr("k");
    setInputAt(n, 1, intsParam(g, *n, "k", {k}));
  } else if (op == "Upsample") {
    upgradeScalesOnlyResize(g, n);
  } else if (op == "Resize" && v < 11) {
    upgradeScalesOnlyResize(g, n);
  } else if (op == "Resize") {
    // Before 13, roi and scales were required and given as empty tensors when unused.
    emptyParamToOmitted(n, 1);
    if (n->hasInput(3)) emptyParamToOmitted(n, 2);
    upgradeTfHalfPixelForNn(n);
  } else if ((op == "Softmax" || op == "LogSoftmax" || op == "Hardmax") && v < 13) {
    upgradeSoftmax(g, n);
  } else if (op == "BatchNormalization") {
    n->removeAttr("spatial");
    n->removeAttr("consumed_inputs");
    n->removeAttr("is_test");
    if (v < 14) {
      // Before 14, requesting the statistics outputs meant training mode; saved_mean and
      // saved_var were dropped in 14.
      bool stats = n->numOutputs() > 1 && n->output(1);
      if (stats) n->setAttr("training_mode", int64_t{1});
      if (n->numOutputs() > 3) {
        std::map<std::string, Attribute> attrs = n->attrs();
        replaceNode(g, n, op, n->inputs(), std::move(attrs), 3);
      }
    }
  } else if (op == "Scatter") {
    // Scatter (9-10) was renamed ScatterElements in 11 with identical semantics.
    std::map<std::string, Attribute> attrs = n->attrs();
    replaceNode(g, n, "ScatterElements", n->inputs(), std::move(attrs), n->numOutputs());
  }
}

/// Opsets 1-8 predate the rewrites above; such a model is accepted only when every op it uses
/// resolves to the same ONNX schema version at its opset as at 17 (e.g. Acos-7, Elu-6,
/// GlobalAveragePool-1), i.e. when its meaning is the opset-17 meaning by definition.
void checkUnchangedUpTo17(const Graph& g, int64_t v) {
  for (const auto& n : g.nodes()) {
    if (!n->domain().empty()) continue;
    const auto* old = onnx::OpSchemaRegistry::Schema(n->opType(), static_cast<int>(v), "");
    const auto* cur = onnx::OpSchemaRegistry::Schema(n->opType(), 17, "");
    if (!old && !cur) continue;  // not an ONNX op: the executor reports it
    GS_CHECK(old && cur && old->since_version() == cur->since_version(), "unsupported opset ", v,
             " (gstick supports 9-17, and older opsets only when no op changed up to 17; ",
             n->describe(), " is version ", old ? old->since_version() : 0, " there, ",
             cur ? cur->since_version() : 0, " in opset 17)");
  }
}

}  // namespace

void upgradeToOpset17(Graph& g) {
  auto it = g.opsets.find("");
  int64_t v = it == g.opsets.end() ? 17 : it->second;
  GS_CHECK(v >= 1 && v <= 17, "unsupported opset ", v, " (gstick supports 9-17)");
  if (v < 9) {
    checkUnchangedUpTo17(g, v);
    g.opsets[""] = 17;
    return;
  }
  // Snapshot: rewrites insert and erase nodes.
  std::vector<Node*> todo;
  for (const auto& n : g.nodes())
    if (n->domain().empty()) todo.push_back(n.get());
  for (Node* n : todo) upgradeNode(g, n, v);
  g.opsets[""] = 17;
}

}  // namespace gs
