// Graph -> ONNX (opset 17): typed values, attributes, initializers streamed one at a time into the
// protobuf wire format (never a ModelProto holding every tensor), external data.
#include <ATen/ATen.h>
#include <google/protobuf/io/coded_stream.h>
#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>

#include <filesystem>
#include <optional>
#include <set>

#include "io/onnx.h"
#include "io/safetensors.h"
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

/// Bytes of `v` as a protobuf varint.
size_t varintSize(uint64_t v) { return google::protobuf::io::CodedOutputStream::VarintSize64(v); }

/// Tag of a length-delimited field (messages, strings, bytes).
uint64_t lengthDelimitedTag(int field) { return (static_cast<uint64_t>(field) << 3) | 2; }

/// One initializer: its TensorProto without the data (name, type, dims; the external-data entries
/// when its bytes go to the .data file) and the tensor the bytes are streamed from.
struct Init {
  const Value* value = nullptr;
  onnx::TensorProto meta;
  uint64_t nbytes = 0;
  bool external = false;
  uint64_t offset = 0;  ///< in the external data file

  /// Size of the serialised TensorProto: the header, then (inline) the raw_data field.
  uint64_t protoBytes() const {
    uint64_t n = meta.ByteSizeLong();
    if (!external) n += varintSize(lengthDelimitedTag(onnx::TensorProto::kRawDataFieldNumber)) +
                        varintSize(nbytes) + nbytes;
    return n;
  }
};

/// The model without tensor data: the ModelProto whose graph has no initializers, plus the
/// initializers in graph order. Streamed out (streamModel) it is byte for byte the ModelProto
/// holding every initializer, without ever holding that ModelProto.
struct Skeleton {
  onnx::ModelProto model;
  std::vector<Init> inits;
  uint64_t external_bytes = 0;  ///< size of the external data file (0: none)
};


Skeleton buildSkeleton(const Graph& g, const OnnxExportOptions& opts,
                       const std::string& external_location) {
  registerOnnxContribSchemas();
  Skeleton sk;
  onnx::ModelProto& m = sk.model;
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
    Init in;
    in.value = p;
    const at::Tensor& t = p->data();
    in.nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    tensorProtoHeader(t, p->name(), &in.meta);
    // Big tensors go to the external file, each at an offset aligned for mmap-friendly reading.
    if (!external_location.empty() && opts.external_data_threshold > 0 &&
        static_cast<int64_t>(in.nbytes) >= opts.external_data_threshold) {
      in.external = true;
      in.offset = (sk.external_bytes + 63) / 64 * 64;
      sk.external_bytes = in.offset + in.nbytes;
      auto entry = [&](const char* k, const std::string& v) {
        auto* e = in.meta.add_external_data();
        e->set_key(k);
        e->set_value(v);
      };
      entry("location", external_location);
      entry("offset", std::to_string(in.offset));
      entry("length", std::to_string(in.nbytes));
      in.meta.set_data_location(onnx::TensorProto::EXTERNAL);
    }
    sk.inits.push_back(std::move(in));
    if (t.is_floating_point() && !p->trainable()) frozen += p->name() + "\n";
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
  return sk;
}

/// Initializers up to this size are copied whole into the model the checker and shape inference
/// see (shape-like constants whose values inference reads); bigger ones are declared as typed
/// graph inputs there, so checking never holds a copy of the big tensors.
constexpr uint64_t kCheckInlineBytes = 4096;

/// The skeleton as the ONNX checker and shape inference see it: small inline initializers whole,
/// the others (and external ones) as typed graph inputs of the same name, type and shape.
onnx::ModelProto lightModel(const Skeleton& sk) {
  onnx::ModelProto light = sk.model;
  auto& cg = *light.mutable_graph();
  for (const Init& in : sk.inits) {
    if (!in.external && in.nbytes <= kCheckInlineBytes) {
      tensorToProto(in.value->data(), in.value->name(), cg.add_initializer());
      continue;
    }
    auto* vi = cg.add_input();
    vi->set_name(in.meta.name());
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(in.meta.data_type());
    auto* sh = tt->mutable_shape();
    for (int64_t d : in.meta.dims()) sh->add_dim()->set_dim_value(d);
  }
  return light;
}

/// ONNX requires shapes on main-graph inputs and outputs. Outputs whose rank gstick does not know
/// get the shape ONNX's own (non-strict) shape inference derives on the light model; they are
/// set in both `m` and `light`.
void inferOutputShapes(onnx::ModelProto& m, onnx::ModelProto& light) {
  bool missing = false;
  for (const auto& o : m.graph().output()) missing |= !o.type().tensor_type().has_shape();
  if (!missing) return;
  onnx::ModelProto copy = light;
  try {
    onnx::shape_inference::InferShapes(copy);
  } catch (const std::exception&) {
    return;  // best effort: the checker reports what is still missing
  }
  const auto& cg = copy.graph();
  std::map<std::string, const onnx::TypeProto*> inferred;
  for (const auto& vi : cg.value_info()) inferred[vi.name()] = &vi.type();
  for (const auto& vi : cg.output()) inferred[vi.name()] = &vi.type();
  for (onnx::ModelProto* target : {&m, &light})
    for (auto& o : *target->mutable_graph()->mutable_output()) {
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

/// Destination of the streamed model: a string, or a file descriptor through a buffer (tensor
/// bytes bigger than the buffer are written straight from the tensor's memory).
class ByteSink {
 public:
  explicit ByteSink(std::string* out) : out_(out) {}
  explicit ByteSink(int fd) : fd_(fd) { buf_.reserve(kBuffer); }
  /// False on an I/O error (errno set).
  bool write(const void* p, size_t n) {
    if (out_) {
      out_->append(static_cast<const char*>(p), n);
      return true;
    }
    if (buf_.size() + n > kBuffer && !flush()) return false;
    if (n >= kBuffer) return writeAll(fd_, p, n);
    buf_.append(static_cast<const char*>(p), n);
    return true;
  }
  bool writeVarint(uint64_t v) {
    uint8_t b[10];
    uint8_t* e = google::protobuf::io::CodedOutputStream::WriteVarint64ToArray(v, b);
    return write(b, static_cast<size_t>(e - b));
  }
  bool writeMessage(const google::protobuf::MessageLite& m) {
    std::string bytes;
    return m.SerializeToString(&bytes) && write(bytes.data(), bytes.size());
  }
  bool flush() {
    if (out_ || buf_.empty()) return true;
    bool ok = writeAll(fd_, buf_.data(), buf_.size());
    buf_.clear();
    return ok;
  }

 private:
  static constexpr size_t kBuffer = size_t{1} << 20;
  std::string* out_ = nullptr;
  int fd_ = -1;
  std::string buf_;
};

/// Writes a tensor's raw bytes in chunks. A tensor viewing a memory-mapped checkpoint (fp32
/// embedding / lm_head of an HF import) is read from the file as it is written; each written
/// chunk's pages are handed back (dropMappedPages) so they do not stay counted in RSS.
bool writeTensorBytes(ByteSink& sink, const at::Tensor& t) {
  constexpr size_t kChunk = size_t{16} << 20;
  at::Tensor c = rawDataTensor(t);
  const char* p = static_cast<const char*>(c.data_ptr());
  const size_t n = c.nbytes();
  for (size_t off = 0; off < n; off += kChunk) {
    const size_t len = std::min(kChunk, n - off);
    if (!sink.write(p + off, len)) return false;
    dropMappedPages(p + off, len);
  }
  return true;
}

/// Copy of `m` keeping only its fields numbered in [lo, hi] (reflection, so no field is missed).
template <class M>
M fieldRange(const M& m, int lo, int hi) {
  M out = m;
  const auto* r = out.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  r->ListFields(out, &fields);
  for (const auto* f : fields)
    if (f->number() < lo || f->number() > hi) r->ClearField(&out, f);
  return out;
}

/// The serialised model in its pieces. Protobuf writes a message's fields in field-number order
/// and a sub-message as tag + length + its own fields, so the ModelProto with every initializer
/// is exactly: model fields before `graph`, the graph's tag and length, graph fields before
/// `initializer`, each initializer (tag, length, TensorProto header, raw_data field), the other
/// graph fields, the other model fields.
struct Layout {
  std::string model_head, model_tail, graph_head, graph_tail;
  uint64_t graph_bytes = 0, total = 0;
};

Layout layoutOf(const Skeleton& sk) {
  constexpr int kGraph = onnx::ModelProto::kGraphFieldNumber;
  constexpr int kInit = onnx::GraphProto::kInitializerFieldNumber;
  constexpr int kLast = 536870911;  // largest protobuf field number
  Layout l;
  onnx::ModelProto no_graph = sk.model;
  no_graph.clear_graph();
  l.model_head = fieldRange(no_graph, 1, kGraph - 1).SerializeAsString();
  l.model_tail = fieldRange(no_graph, kGraph + 1, kLast).SerializeAsString();
  const onnx::GraphProto& gp = sk.model.graph();
  l.graph_head = fieldRange(gp, 1, kInit - 1).SerializeAsString();
  l.graph_tail = fieldRange(gp, kInit + 1, kLast).SerializeAsString();
  l.graph_bytes = l.graph_head.size() + l.graph_tail.size();
  for (const Init& in : sk.inits) {
    const uint64_t n = in.protoBytes();
    l.graph_bytes += varintSize(lengthDelimitedTag(kInit)) + varintSize(n) + n;
  }
  l.total = l.model_head.size() + varintSize(lengthDelimitedTag(kGraph)) +
            varintSize(l.graph_bytes) + l.graph_bytes + l.model_tail.size();
  return l;
}

/// Streams the model: one initializer at a time, its bytes straight from the graph's tensor, so
/// memory holds the graph plus small buffers, never a ModelProto with the tensors.
bool streamModel(const Skeleton& sk, const Layout& l, ByteSink& s) {
  bool ok = s.write(l.model_head.data(), l.model_head.size()) &&
            s.writeVarint(lengthDelimitedTag(onnx::ModelProto::kGraphFieldNumber)) &&
            s.writeVarint(l.graph_bytes) && s.write(l.graph_head.data(), l.graph_head.size());
  for (const Init& in : sk.inits) {
    if (!ok) return false;
    // The header holds fields numbered below raw_data only (dims, data_type, name) for inline
    // tensors, so raw_data follows it in field order.
    ok = s.writeVarint(lengthDelimitedTag(onnx::GraphProto::kInitializerFieldNumber)) &&
         s.writeVarint(in.protoBytes()) && s.writeMessage(in.meta);
    if (ok && !in.external)
      ok = s.writeVarint(lengthDelimitedTag(onnx::TensorProto::kRawDataFieldNumber)) &&
           s.writeVarint(in.nbytes) && writeTensorBytes(s, in.value->data());
  }
  return ok && s.write(l.graph_tail.data(), l.graph_tail.size()) &&
         s.write(l.model_tail.data(), l.model_tail.size()) && s.flush();
}

/// Streams the external tensors' bytes at the offsets recorded in their headers (zero padding).
bool streamExternalData(const Skeleton& sk, ByteSink& s) {
  static const char zeros[64] = {};
  uint64_t pos = 0;
  for (const Init& in : sk.inits) {
    if (!in.external) continue;
    if (!s.write(zeros, in.offset - pos) || !writeTensorBytes(s, in.value->data())) return false;
    pos = in.offset + in.nbytes;
  }
  return s.flush();
}

/// Shapes of unknown outputs, the ONNX checker (on the light model) and protobuf's 2 GB limit,
/// all before anything is written. Returns the layout to stream.
Layout prepare(Skeleton& sk, const OnnxExportOptions& opts, const std::string& what) {
  onnx::ModelProto light = lightModel(sk);
  inferOutputShapes(sk.model, light);
  if (opts.check) checkModel(light, opts.full_check, what);
  Layout l = layoutOf(sk);
  GS_CHECK(l.total < (uint64_t{1} << 31), what, ": model is larger than protobuf's 2 GB ",
           "limit; set external_data_threshold to store big tensors outside the .onnx file");
  return l;
}

}  // namespace

int64_t autoExternalDataThreshold(const Graph& g) {
  int64_t bytes = 0;
  for (const Value* p : g.params()) bytes += p->data().numel() * p->data().element_size();
  return bytes >= kAutoExternalDataBytes ? int64_t{1} << 20 : 0;
}

std::string exportOnnxBytes(const Graph& g, const OnnxExportOptions& opts) {
  GS_CHECK(opts.external_data_threshold <= 0, "graph '", g.name,
           "': external data needs a file; use exportOnnxFile");
  Skeleton sk = buildSkeleton(g, opts, "");
  Layout l = prepare(sk, opts, "graph '" + g.name + "'");
  std::string out;
  out.reserve(l.total);
  ByteSink sink(&out);
  streamModel(sk, l, sink);
  return out;
}

void exportOnnxFile(const Graph& g, const std::string& path, const OnnxExportOptions& opts) {
  const std::string location = fs::path(path).filename().string() + ".data";
  Skeleton sk = buildSkeleton(g, opts, location);
  Layout l = prepare(sk, opts, path);
  // Both files are streamed into temp files and renamed into place only once both are written:
  // a failed check or write leaves any existing export (both files) untouched.
  std::optional<StagedFile> data;
  if (sk.external_bytes > 0) {
    data.emplace((fs::path(path).parent_path() / location).string());
    data->write([&](int fd) {
      ByteSink sink(fd);
      return streamExternalData(sk, sink);
    });
  }
  StagedFile model(path);
  model.write([&](int fd) {
    ByteSink sink(fd);
    return streamModel(sk, l, sink);
  });
  if (data) data->commit();
  model.commit();
}

}  // namespace gs
