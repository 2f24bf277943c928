// ONNX ModelProto -> Graph: parse, opset check, params, typed values, nodes; then opset upgrade.
#include <ATen/ATen.h>

#include <filesystem>
#include <limits>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "io/onnx.h"
#include "io/tensor_proto.h"
#include "support/error.h"
#include "support/file_util.h"

namespace gs {

namespace fs = std::filesystem;

namespace {

/// "node 'name' (Op)" for a NodeProto before it becomes a Node.
std::string describeProto(const onnx::NodeProto& n, const std::string& name) {
  std::string op = n.domain().empty() || n.domain() == "ai.onnx" ? n.op_type()
                                                                  : n.domain() + "::" + n.op_type();
  return "node '" + name + "' (" + op + ")";
}

const char* attrTypeName(onnx::AttributeProto::AttributeType t) {
  switch (t) {
    case onnx::AttributeProto::GRAPH: return "graph";
    case onnx::AttributeProto::GRAPHS: return "graphs";
    case onnx::AttributeProto::TENSORS: return "tensors";
    case onnx::AttributeProto::SPARSE_TENSOR: return "sparse tensor";
    case onnx::AttributeProto::SPARSE_TENSORS: return "sparse tensors";
    case onnx::AttributeProto::TYPE_PROTO: return "type proto";
    case onnx::AttributeProto::TYPE_PROTOS: return "type protos";
    default: return "unknown";
  }
}

/// Attribute type, inferred from the populated field for old models that leave `type` unset.
onnx::AttributeProto::AttributeType attrType(const onnx::AttributeProto& a) {
  if (a.type() != onnx::AttributeProto::UNDEFINED) return a.type();
  if (a.has_f()) return onnx::AttributeProto::FLOAT;
  if (a.has_i()) return onnx::AttributeProto::INT;
  if (a.has_s()) return onnx::AttributeProto::STRING;
  if (a.has_t()) return onnx::AttributeProto::TENSOR;
  if (a.has_g()) return onnx::AttributeProto::GRAPH;
  if (a.has_sparse_tensor()) return onnx::AttributeProto::SPARSE_TENSOR;
  if (a.has_tp()) return onnx::AttributeProto::TYPE_PROTO;
  if (a.floats_size()) return onnx::AttributeProto::FLOATS;
  if (a.ints_size()) return onnx::AttributeProto::INTS;
  if (a.strings_size()) return onnx::AttributeProto::STRINGS;
  if (a.tensors_size()) return onnx::AttributeProto::TENSORS;
  if (a.graphs_size()) return onnx::AttributeProto::GRAPHS;
  return onnx::AttributeProto::UNDEFINED;
}

Attribute convertAttr(const onnx::AttributeProto& a, const std::string& who,
                      const TensorLoadContext& ctx) {
  GS_CHECK(a.ref_attr_name().empty(), who, ": attribute '", a.name(),
           "' references a function attribute (only valid inside functions)");
  auto t = attrType(a);
  switch (t) {
    case onnx::AttributeProto::FLOAT: return Attribute(a.f());
    case onnx::AttributeProto::INT: return Attribute(static_cast<int64_t>(a.i()));
    case onnx::AttributeProto::STRING: return Attribute(a.s());
    case onnx::AttributeProto::TENSOR: {
      TensorLoadContext c = ctx;
      c.source = ctx.source + ": " + who + " attribute '" + a.name() + "'";
      return Attribute(tensorFromProto(a.t(), c));
    }
    case onnx::AttributeProto::FLOATS:
      return Attribute(std::vector<float>(a.floats().begin(), a.floats().end()));
    case onnx::AttributeProto::INTS:
      return Attribute(std::vector<int64_t>(a.ints().begin(), a.ints().end()));
    case onnx::AttributeProto::STRINGS:
      return Attribute(std::vector<std::string>(a.strings().begin(), a.strings().end()));
    case onnx::AttributeProto::GRAPH:
    case onnx::AttributeProto::GRAPHS:
      GS_FAIL(who, ": attribute '", a.name(), "' is a subgraph (", attrTypeName(t),
              "); control flow with subgraphs (If/Loop/Scan) is not supported");
    case onnx::AttributeProto::UNDEFINED:
      GS_FAIL(who, ": attribute '", a.name(), "' has no value");
    default:
      GS_FAIL(who, ": attribute '", a.name(), "' has unsupported kind '", attrTypeName(t), "'");
  }
}

/// Constant node -> tensor (ONNX Constant-13 value forms).
at::Tensor constantValue(const onnx::NodeProto& n, const std::string& who,
                         const TensorLoadContext& ctx) {
  GS_CHECK(n.attribute_size() == 1, who, ": Constant must have exactly one value attribute, has ",
           n.attribute_size());
  GS_CHECK(n.output_size() == 1 && !n.output(0).empty(), who, ": Constant must have one output");
  const auto& a = n.attribute(0);
  const std::string& k = a.name();
  if (k == "value") {
    GS_CHECK(attrType(a) == onnx::AttributeProto::TENSOR, who, ": 'value' must be a tensor");
    return convertAttr(a, who, ctx).t();
  }
  if (k == "value_float") return at::scalar_tensor(a.f(), at::kFloat);
  if (k == "value_int") return at::scalar_tensor(static_cast<int64_t>(a.i()), at::kLong);
  if (k == "value_floats")
    return at::tensor(std::vector<float>(a.floats().begin(), a.floats().end()), at::kFloat);
  if (k == "value_ints")
    return at::tensor(std::vector<int64_t>(a.ints().begin(), a.ints().end()), at::kLong);
  GS_FAIL(who, ": Constant attribute '", k, "' is not supported (string and sparse constants)");
}

/// Applies a TypeProto (tensor types only) to dtype/shape; returns false for non-tensor types.
bool tensorType(const onnx::TypeProto& tp, const std::string& what, DType* dt, Shape* shape) {
  if (!tp.has_tensor_type()) return false;
  const auto& tt = tp.tensor_type();
  *dt = tt.elem_type() == 0 ? DType::Undefined : dtypeFromOnnx(tt.elem_type(), what);
  if (!tt.has_shape()) {
    *shape = std::nullopt;
    return true;
  }
  std::vector<Dim> dims;
  for (const auto& d : tt.shape().dim()) {
    if (d.has_dim_value()) {
      GS_CHECK(d.dim_value() >= 0, what, ": negative dimension ", d.dim_value());
      dims.emplace_back(d.dim_value());
    } else if (d.has_dim_param() && !d.dim_param().empty()) {
      dims.emplace_back(d.dim_param());
    } else {
      dims.emplace_back();
    }
  }
  *shape = std::move(dims);
  return true;
}

const char* typeKind(const onnx::TypeProto& tp) {
  if (tp.has_sequence_type()) return "sequence";
  if (tp.has_map_type()) return "map";
  if (tp.has_optional_type()) return "optional";
  if (tp.has_sparse_tensor_type()) return "sparse tensor";
  return "unknown";
}

/// Node order: the file's order if already topological, else a stable Kahn sort.
std::vector<int> topoOrder(const onnx::GraphProto& gp, const std::string& source) {
  const int n = gp.node_size();
  std::unordered_map<std::string, int> producer;
  for (int i = 0; i < n; ++i)
    for (const auto& o : gp.node(i).output())
      if (!o.empty()) producer.emplace(o, i);
  std::vector<std::vector<int>> users(n);
  std::vector<int> indeg(n, 0);
  bool sorted = true;
  for (int i = 0; i < n; ++i) {
    std::set<int> deps;
    for (const auto& in : gp.node(i).input()) {
      auto it = in.empty() ? producer.end() : producer.find(in);
      if (it != producer.end() && it->second != i) deps.insert(it->second);
    }
    for (int d : deps) {
      users[d].push_back(i);
      ++indeg[i];
      if (d > i) sorted = false;
    }
  }
  std::vector<int> order;
  order.reserve(n);
  if (sorted) {
    for (int i = 0; i < n; ++i) order.push_back(i);
    return order;
  }
  std::set<int> ready;
  for (int i = 0; i < n; ++i)
    if (!indeg[i]) ready.insert(i);
  while (!ready.empty()) {
    int i = *ready.begin();
    ready.erase(ready.begin());
    order.push_back(i);
    for (int u : users[i])
      if (--indeg[u] == 0) ready.insert(u);
  }
  GS_CHECK(static_cast<int>(order.size()) == n, source, ": the graph has a cycle");
  return order;
}

/// Builds the graph; initializer data is released from `m` as it is converted (peak memory).
std::unique_ptr<Graph> buildGraph(onnx::ModelProto& m, const std::string& source,
                                  const OnnxImportOptions& opts) {
  GS_CHECK(m.has_graph(), source, ": not a valid ONNX model (no graph)");
  const onnx::GraphProto& gp = m.graph();
  auto g = std::make_unique<Graph>();
  g->name = gp.name().empty() ? "main" : gp.name();

  // ---- opsets ----
  g->opsets.clear();
  bool has_default = false;
  for (const auto& op : m.opset_import()) {
    std::string dom = op.domain() == "ai.onnx" ? "" : op.domain();
    if (dom.empty()) {
      has_default = true;
      // Opsets 1-8 are checked op by op in upgradeToOpset17.
      GS_CHECK(op.version() >= 1 && op.version() <= 17, source, ": unsupported opset ",
               op.version(), " (gstick supports 9-17)");
    }
    g->opsets[dom] = op.version();
  }
  GS_CHECK(has_default, source, ": the model imports no opset of the default ONNX domain");
  GS_CHECK(gp.sparse_initializer_size() == 0, source, ": sparse initializers are not supported");

  TensorLoadContext ctx;
  ctx.source = source;
  ctx.base_dir = opts.base_dir;
  ctx.max_tensor_bytes = opts.max_tensor_bytes;

  std::unordered_set<std::string> frozen;
  for (const auto& kv : m.metadata_props())
    if (kv.key() == kFrozenParamsKey) {
      std::istringstream is(kv.value());
      for (std::string line; std::getline(is, line);) frozen.insert(line);
    }

  // ---- parameters ----
  std::unordered_set<std::string> init_names;
  for (auto& t : *m.mutable_graph()->mutable_initializer()) {
    GS_CHECK(!t.name().empty(), source, ": initializer without a name");
    at::Tensor data = tensorFromProto(t, ctx);
    std::string().swap(*t.mutable_raw_data());
    bool trainable = data.is_floating_point() && !frozen.count(t.name());
    GS_CHECK(!g->findValue(t.name()), source, ": duplicate initializer '", t.name(), "'");
    g->addParam(t.name(), std::move(data), trainable);
    init_names.insert(t.name());
  }

  // ---- inputs ----
  for (const auto& vi : gp.input()) {
    if (init_names.count(vi.name())) continue;  // IR < 4 lists initializers as inputs
    const std::string what = source + ": graph input '" + vi.name() + "'";
    GS_CHECK(!vi.name().empty(), source, ": graph input without a name");
    DType dt = DType::Undefined;
    Shape shape;
    GS_CHECK(!vi.has_type() || tensorType(vi.type(), what, &dt, &shape), what,
             " has a non-tensor type (",
             typeKind(vi.type()), "); only tensors are supported");
    GS_CHECK(!g->findValue(vi.name()), source, ": duplicate graph input '", vi.name(), "'");
    g->addInput(vi.name(), dt, std::move(shape));
  }

  // ---- node names (stable: given names first, then <OpType>_<k>) ----
  const int n = gp.node_size();
  std::vector<std::string> names(n);
  std::unordered_set<std::string> taken;
  for (int i = 0; i < n; ++i) {
    const auto& np = gp.node(i);
    if (np.op_type() == "Constant" && (np.domain().empty() || np.domain() == "ai.onnx")) continue;
    if (!np.name().empty() && taken.insert(np.name()).second) names[i] = np.name();
  }
  std::unordered_map<std::string, int> counter;
  for (int i = 0; i < n; ++i) {
    const auto& np = gp.node(i);
    if (!names[i].empty()) continue;
    int& k = counter[np.op_type()];
    std::string cand;
    do cand = np.op_type() + "_" + std::to_string(k++);
    while (!taken.insert(cand).second);
    names[i] = cand;
  }

  // ---- nodes ----
  for (int i : topoOrder(gp, source)) {
    const auto& np = gp.node(i);
    std::string domain = np.domain() == "ai.onnx" ? "" : np.domain();
    const std::string who = describeProto(np, names[i]);
    GS_CHECK(!np.op_type().empty(), source, ": node ", i, " has no op type");
    if (np.op_type() == "Constant" && domain.empty()) {
      GS_CHECK(np.input_size() == 0, source, ": ", who, ": Constant takes no inputs");
      at::Tensor t = constantValue(np, source + ": " + who, ctx);
      GS_CHECK(!g->findValue(np.output(0)), source, ": ", who, ": output '", np.output(0),
               "' is already defined");
      g->addParam(np.output(0), std::move(t), false);
      continue;
    }
    std::vector<Value*> ins;
    for (const auto& in : np.input()) {
      if (in.empty()) {
        ins.push_back(nullptr);
        continue;
      }
      Value* v = g->findValue(in);
      GS_CHECK(v, source, ": ", who, ": input '", in, "' is not defined in the graph");
      ins.push_back(v);
    }
    std::map<std::string, Attribute> attrs;
    for (const auto& a : np.attribute()) {
      GS_CHECK(!attrs.count(a.name()), source, ": ", who, ": duplicate attribute '", a.name(), "'");
      attrs.emplace(a.name(), convertAttr(a, source + ": " + who, ctx));
    }
    std::vector<std::string> outs(np.output().begin(), np.output().end());
    for (const auto& o : outs)
      GS_CHECK(o.empty() || !g->findValue(o), source, ": ", who, ": output '", o,
               "' is already defined");
    std::set<std::string> uniq;
    for (const auto& o : outs)
      GS_CHECK(o.empty() || uniq.insert(o).second, source, ": ", who, ": output '", o,
               "' is listed twice");
    g->addNodeNamedOutputs(np.op_type(), ins, outs, names[i], std::move(attrs), nullptr, domain);
  }

  // ---- value types ----
  for (const auto& vi : gp.value_info()) {
    Value* v = g->findValue(vi.name());
    if (!v || v->isParam() || v->isGraphInput()) continue;
    DType dt;
    Shape shape;
    if (!tensorType(vi.type(), source + ": value '" + vi.name() + "'", &dt, &shape)) continue;
    v->setDType(dt);
    v->setShape(std::move(shape));
  }
  for (const auto& vi : gp.output()) {
    const std::string what = source + ": graph output '" + vi.name() + "'";
    Value* v = g->findValue(vi.name());
    GS_CHECK(v, what, " is not produced by any node");
    DType dt;
    Shape shape;
    GS_CHECK(!vi.has_type() || tensorType(vi.type(), what, &dt, &shape), what,
             " has a non-tensor type (", typeKind(vi.type()), "); only tensors are supported");
    if (vi.has_type() && !v->isParam() && !v->isGraphInput()) {
      v->setDType(dt);
      v->setShape(std::move(shape));
    }
    g->addOutput(v);
  }
  return g;
}

}  // namespace

namespace {

onnx::ModelProto parseModel(const std::string& bytes, const std::string& source) {
  GS_CHECK(bytes.size() < (size_t{1} << 31), source, ": file is larger than protobuf's 2 GB limit;",
           " large models must keep their tensors in external data");
  onnx::ModelProto m;
  GS_CHECK(!bytes.empty() && m.ParseFromString(bytes), source,
           ": not a valid ONNX model (protobuf parse failed)");
  return m;
}

std::unique_ptr<Graph> importModel(onnx::ModelProto& m, const std::string& source,
                                   const OnnxImportOptions& opts) {
  std::unique_ptr<Graph> g;
  try {
    g = buildGraph(m, source, opts);
    upgradeToOpset17(*g);
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind(source + ":", 0) == 0) throw;
    throw Error(source + ": " + msg);  // Graph-level errors do not know the file
  }
  return g;
}

}  // namespace

std::unique_ptr<Graph> importOnnxBytes(const std::string& bytes, const std::string& source,
                                       const OnnxImportOptions& opts) {
  onnx::ModelProto m = parseModel(bytes, source);
  return importModel(m, source, opts);
}

std::unique_ptr<Graph> importOnnxFile(const std::string& path, const OnnxImportOptions& opts) {
  std::error_code ec;
  GS_CHECK(!fs::is_directory(path, ec), path, ": cannot open: is a directory");
  auto size = fs::file_size(path, ec);
  GS_CHECK(ec || size < (uintmax_t{1} << 31), path, ": file is larger than protobuf's 2 GB limit;",
           " large models must keep their tensors in external data");
  onnx::ModelProto m;
  {
    std::string bytes = readFile(path);
    m = parseModel(bytes, path);
  }  // the file bytes are freed before tensors are materialised
  OnnxImportOptions o = opts;
  if (o.base_dir.empty()) {
    o.base_dir = fs::path(path).parent_path().string();
    if (o.base_dir.empty()) o.base_dir = ".";
  }
  return importModel(m, path, o);
}

}  // namespace gs
