// Graph -> ONNX ModelProto (opset 17): initializers, typed values, attributes, external data.
#include <ATen/ATen.h>
#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>

#include <filesystem>
#include <set>

#include "io/onnx.h"
#include "io/tensor_proto.h"
#include "support/error.h"
#include "support/file_util.h"

namespace gs {

namespace fs = std::filesystem;

/// Registers ONNX schemas of the contrib ops gstick exports (io/onnx_contrib_schemas.cpp).
void registerOnnxContribSchemas();

namespace {

/// ONNX IR version matching opset 17 (ONNX 1.12).
constexpr int64_t kIrVersion = 8;

void setType(const Value* v, onnx::ValueInfoProto* vi) {
  vi->set_name(v->name());
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(static_cast<int32_t>(v->dtype()));
  if (!v->shape()) return;
  auto* sh = tt->mutable_shape();
  for (const Dim& d : *v->shape()) {
    auto* pd = sh->add_dim();
    if (d.isStatic())
      pd->set_dim_value(d.value);
    else if (!d.symbol.empty())
      pd->set_dim_param(d.symbol);
  }
}

void setAttr(const std::string& name, const Attribute& a, onnx::AttributeProto* p) {
  p->set_name(name);
  switch (a.kind()) {
    case AttrKind::Int:
      p->set_type(onnx::AttributeProto::INT);
      p->set_i(a.i());
      break;
    case AttrKind::Float:
      p->set_type(onnx::AttributeProto::FLOAT);
      p->set_f(a.f());
      break;
    case AttrKind::String:
      p->set_type(onnx::AttributeProto::STRING);
      p->set_s(a.s());
      break;
    case AttrKind::Tensor:
      p->set_type(onnx::AttributeProto::TENSOR);
      tensorToProto(a.t(), "", p->mutable_t());
      break;
    case AttrKind::Ints:
      p->set_type(onnx::AttributeProto::INTS);
      for (int64_t x : a.ints()) p->add_ints(x);
      break;
    case AttrKind::Floats:
      p->set_type(onnx::AttributeProto::FLOATS);
      for (float x : a.floats()) p->add_floats(x);
      break;
    case AttrKind::Strings:
      p->set_type(onnx::AttributeProto::STRINGS);
      for (const auto& x : a.strings()) p->add_strings(x);
      break;
  }
}

/// Collects big tensors into one external file; offsets aligned for mmap-friendly reading.
struct ExternalSink {
  std::string location;  // file name relative to the model's folder
  std::string data;

  void add(onnx::TensorProto* t) {
    while (data.size() % 64) data.push_back('\0');
    const std::string& raw = t->raw_data();
    size_t offset = data.size();
    data.append(raw);
    auto entry = [&](const char* k, const std::string& v) {
      auto* e = t->add_external_data();
      e->set_key(k);
      e->set_value(v);
    };
    entry("location", location);
    entry("offset", std::to_string(offset));
    entry("length", std::to_string(raw.size()));
    t->clear_raw_data();
    t->set_data_location(onnx::TensorProto::EXTERNAL);
  }
};

void inferOutputShapes(onnx::ModelProto& m);

onnx::ModelProto buildModel(const Graph& g, const OnnxExportOptions& opts, ExternalSink* sink) {
  registerOnnxContribSchemas();
  onnx::ModelProto m;
  m.set_ir_version(kIrVersion);
  m.set_producer_name(opts.producer_name);
  m.set_producer_version(GS_VERSION);
  std::map<std::string, int64_t> opsets = g.opsets;
  if (!opsets.count("")) opsets[""] = 17;
  for (const auto& n : g.nodes())
    if (!opsets.count(n->domain())) opsets[n->domain()] = 1;
  for (const auto& [dom, ver] : opsets) {
    auto* op = m.add_opset_import();
    op->set_domain(dom);
    op->set_version(ver);
  }
  auto* gp = m.mutable_graph();
  gp->set_name(g.name);

  std::string frozen;
  for (const Value* p : g.params()) {
    auto* t = gp->add_initializer();
    tensorToProto(p->data(), p->name(), t);
    if (sink && opts.external_data_threshold > 0 &&
        static_cast<int64_t>(t->raw_data().size()) >= opts.external_data_threshold)
      sink->add(t);
    if (p->data().is_floating_point() && !p->trainable()) frozen += p->name() + "\n";
  }
  if (!frozen.empty()) {
    auto* kv = m.add_metadata_props();
    kv->set_key(kFrozenParamsKey);
    kv->set_value(frozen);
  }
  for (const Value* v : g.inputs()) setType(v, gp->add_input());
  for (const Value* v : g.outputs()) setType(v, gp->add_output());

  std::set<const Value*> listed(g.outputs().begin(), g.outputs().end());
  for (const auto& n : g.nodes()) {
    auto* np = gp->add_node();
    np->set_name(n->name());
    np->set_op_type(n->opType());
    if (!n->domain().empty()) np->set_domain(n->domain());
    for (const Value* v : n->inputs()) np->add_input(v ? v->name() : "");
    for (const Value* v : n->outputs()) np->add_output(v ? v->name() : "");
    for (const auto& [k, a] : n->attrs()) setAttr(k, a, np->add_attribute());
    for (const Value* v : n->outputs())
      if (v && v->dtype() != DType::Undefined && !listed.count(v)) {
        setType(v, gp->add_value_info());
        listed.insert(v);
      }
  }
  inferOutputShapes(m);
  return m;
}

/// ONNX requires shapes on main-graph inputs and outputs. Outputs whose rank gstick does not know
/// get the shape ONNX's own (non-strict) shape inference derives. Big initializers are replaced
/// by typed inputs in the inference copy, so the copy stays small.
void inferOutputShapes(onnx::ModelProto& m) {
  auto& gp = *m.mutable_graph();
  bool missing = false;
  for (const auto& o : gp.output()) missing |= !o.type().tensor_type().has_shape();
  if (!missing) return;
  onnx::ModelProto copy;
  copy.set_ir_version(m.ir_version());
  *copy.mutable_opset_import() = m.opset_import();
  auto& cg = *copy.mutable_graph();
  *cg.mutable_node() = gp.node();
  *cg.mutable_input() = gp.input();
  *cg.mutable_output() = gp.output();
  *cg.mutable_value_info() = gp.value_info();
  for (const auto& t : gp.initializer()) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL && t.raw_data().size() <= 4096) {
      *cg.add_initializer() = t;
      continue;
    }
    auto* vi = cg.add_input();
    vi->set_name(t.name());
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(t.data_type());
    auto* sh = tt->mutable_shape();
    for (int64_t d : t.dims()) sh->add_dim()->set_dim_value(d);
  }
  try {
    onnx::shape_inference::InferShapes(copy);
  } catch (const std::exception&) {
    return;  // best effort: the checker reports what is still missing
  }
  std::map<std::string, const onnx::TypeProto*> inferred;
  for (const auto& vi : cg.value_info()) inferred[vi.name()] = &vi.type();
  for (const auto& vi : cg.output()) inferred[vi.name()] = &vi.type();
  for (auto& o : *gp.mutable_output()) {
    auto* tt = o.mutable_type()->mutable_tensor_type();
    if (tt->has_shape()) continue;
    auto it = inferred.find(o.name());
    if (it == inferred.end() || !it->second->tensor_type().has_shape()) continue;
    *tt->mutable_shape() = it->second->tensor_type().shape();
    if (tt->elem_type() == 0) tt->set_elem_type(it->second->tensor_type().elem_type());
  }
}

/// Runs the ONNX checker (and optionally strict shape inference); throws gs::Error.
void checkModel(const onnx::ModelProto& m, bool full, const std::string& what) {
  for (const auto* list : {&m.graph().input(), &m.graph().output()})
    for (const auto& vi : *list) {
      const auto& tt = vi.type().tensor_type();
      GS_CHECK(tt.has_shape() && tt.elem_type() != 0, what, ": graph ",
               list == &m.graph().input() ? "input" : "output", " '", vi.name(),
               "' has unknown ", tt.elem_type() == 0 ? "element type" : "rank",
               "; ONNX requires both for graph inputs and outputs");
    }
  try {
    onnx::checker::check_model(m);
    if (full) {
      onnx::ModelProto copy = m;
      onnx::ShapeInferenceOptions so;
      so.check_type = true;
      so.error_mode = 1;
      onnx::shape_inference::InferShapes(copy, onnx::OpSchemaRegistry::Instance(), so);
    }
  } catch (const std::exception& e) {
    std::string msg = e.what();
    auto p = msg.find('\n');
    if (p != std::string::npos) msg = msg.substr(0, p);
    GS_FAIL(what, ": exported model fails the ONNX checker: ", msg);
  }
}

void checkSerializable(const onnx::ModelProto& m, const std::string& what) {
  GS_CHECK(m.ByteSizeLong() < (size_t{1} << 31), what, ": model is larger than protobuf's 2 GB ",
           "limit; set external_data_threshold to store big tensors outside the .onnx file");
}

std::string serialize(const onnx::ModelProto& m, const std::string& what) {
  checkSerializable(m, what);
  std::string out;
  GS_CHECK(m.SerializeToString(&out), what, ": protobuf serialisation failed");
  return out;
}

}  // namespace

std::string exportOnnxBytes(const Graph& g, const OnnxExportOptions& opts) {
  GS_CHECK(opts.external_data_threshold <= 0, "graph '", g.name,
           "': external data needs a file; use exportOnnxFile");
  onnx::ModelProto m = buildModel(g, opts, nullptr);
  if (opts.check) checkModel(m, opts.full_check, "graph '" + g.name + "'");
  return serialize(m, "graph '" + g.name + "'");
}

void exportOnnxFile(const Graph& g, const std::string& path, const OnnxExportOptions& opts) {
  ExternalSink sink;
  sink.location = fs::path(path).filename().string() + ".data";
  onnx::ModelProto m = buildModel(g, opts, &sink);
  fs::path data_path = fs::path(path).parent_path() / sink.location;
  // Data goes to a staging file first so a failed check leaves an existing export untouched.
  fs::path staged = data_path.string() + ".staged";
  if (!sink.data.empty()) writeFileAtomic(staged.string(), sink.data);
  if (opts.check) {
    // The checker resolves external locations against an empty model folder (the working
    // directory): check a copy whose locations are absolute paths of the written data file.
    onnx::ModelProto copy;
    const onnx::ModelProto* to_check = &m;
    if (!sink.data.empty()) {
      copy = m;
      std::string abs = fs::absolute(staged).string();
      for (auto& t : *copy.mutable_graph()->mutable_initializer())
        for (auto& e : *t.mutable_external_data())
          if (e.key() == "location") e.set_value(abs);
      to_check = &copy;
    }
    try {
      checkModel(*to_check, opts.full_check, path);
    } catch (const Error&) {
      if (!sink.data.empty()) fs::remove(staged);
      throw;
    }
  }
  checkSerializable(m, path);
  if (!sink.data.empty()) {
    std::error_code ec;
    fs::rename(staged, data_path, ec);
    GS_CHECK(!ec, data_path.string(), ": cannot move external data into place: ", ec.message());
  }
  // Streamed into the temp file: no serialized copy of the model is held in memory (for an LLM
  // export that copy was as big as the model itself).
  writeFileAtomic(path, [&](int fd) { return m.SerializeToFileDescriptor(fd); });
}

}  // namespace gs
