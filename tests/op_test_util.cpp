// Shared helpers for op and ONNX tests (see op_test_util.h).
#include "op_test_util.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "conformance.h"
#include "io/onnx.h"
#include "io/tensor_proto.h"
#include "runtime/executor.h"
#include "support/file_util.h"

namespace gs::test {

namespace fs = std::filesystem;

// ---- one-node runs ----

std::vector<at::Tensor> runOp(const std::string& op_type, const std::vector<at::Tensor>& inputs,
                              const Attrs& attrs, size_t num_outputs, const std::string& domain,
                              const RunOptions& opts) {
  Graph g;
  std::vector<Value*> ins;
  std::vector<at::Tensor> feed;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const at::Tensor& t = inputs[i];
    const std::string name = "in" + std::to_string(i);
    bool as_param = (opts.operands_as_params && i > 0) ||
                    std::find(opts.params.begin(), opts.params.end(), i) != opts.params.end();
    if (!t.defined()) {
      ins.push_back(nullptr);
    } else if (as_param) {
      ins.push_back(g.addParam(name, t, t.requires_grad()));
    } else {
      ins.push_back(g.addInput(name, fromScalarType(t.scalar_type()), Shape()));
      feed.push_back(t);
    }
  }
  Node* n = g.addNode(op_type, ins, num_outputs, opts.node_name, attrs, nullptr, domain);
  for (size_t k = 0; k < num_outputs; ++k) g.addOutput(n->output(k));
  Executor ex(g, {.training = opts.training});
  return ex.run(feed);
}

at::Tensor run1(const std::string& op_type, const std::vector<at::Tensor>& inputs,
                const Attrs& attrs) {
  return runOp(op_type, inputs, attrs, 1).at(0);
}

at::Tensor runBoth(const std::string& op_type, const std::vector<at::Tensor>& inputs,
                   const Attrs& attrs) {
  at::Tensor a = runOp(op_type, inputs, attrs, 1)[0];
  at::Tensor b = runOp(op_type, inputs, attrs, 1, "", {.operands_as_params = true})[0];
  EXPECT_TRUE(sameTensor(a, b)) << op_type << ": graph inputs vs parameters";
  return a;
}

void expectGradMatchesFiniteDiff(const std::string& op_type, const std::vector<at::Tensor>& inputs,
                                 size_t slot, const Attrs& attrs) {
  SCOPED_TRACE(op_type);
  at::Tensor x0 = inputs.at(slot).to(at::kDouble);
  auto forward = [&](const at::Tensor& xv, bool training) {
    std::vector<at::Tensor> ins = inputs;
    ins[slot] = xv;
    return runOp(op_type, ins, attrs, 1, "", {.training = training, .params = {slot}})[0];
  };
  at::Tensor y0 = forward(x0, false);
  at::Tensor w = randn(y0.sizes(), 77).to(at::kDouble);
  at::Tensor xg = x0.clone().requires_grad_(true);
  (forward(xg, true) * w).sum().backward();
  ASSERT_TRUE(xg.grad().defined());
  at::Tensor fd = at::zeros_like(x0);
  const double h = 1e-6;
  for (int64_t i = 0; i < x0.numel(); ++i) {
    at::Tensor xp = x0.clone(), xm = x0.clone();
    xp.view(-1)[i] += h;
    xm.view(-1)[i] -= h;
    fd.view(-1)[i] = ((forward(xp, false) - forward(xm, false)) * w).sum() / (2 * h);
  }
  EXPECT_LT(maxRelDiff(xg.grad(), fd), 1e-5) << "autograd " << xg.grad() << "\nfinite diff " << fd;
}

// ---- ONNX node conformance cases ----

const std::string& onnxNodeDir() {
  static const std::string dir = "/usr/share/libonnx-testdata/data/node";
  return dir;
}

bool haveOnnxNodeCases() { return fs::is_directory(onnxNodeDir()); }

::testing::AssertionResult matchesExpected(const at::Tensor& got, const at::Tensor& want,
                                           const CaseOptions& opts) {
  std::string why;
  if (!conformance::allClose(got, want, 1e-3, 1e-7, &why))
    return ::testing::AssertionFailure() << why << " (ONNX rtol 1e-3, atol 1e-7)";
  if (!want.is_floating_point() || want.numel() == 0) return ::testing::AssertionSuccess();
  if (opts.rtol >= 0 && opts.atol >= 0 &&
      !conformance::allClose(got, want, opts.rtol, opts.atol, &why)) {
    return ::testing::AssertionFailure()
           << why << " (test's rtol " << opts.rtol << ", atol " << opts.atol << ")";
  }
  if (opts.max_rel_diff >= 0) {
    // Over the differing elements only: equal infinities and NaN pairs (allClose accepted
    // those) would make the difference NaN.
    at::Tensor g = got.to(at::kDouble), w = want.to(at::kDouble);
    at::Tensor differ = g.ne(w).logical_and(g.isnan().logical_and(w.isnan()).logical_not());
    double d = differ.any().item<bool>()
                   ? maxRelDiff(g.masked_select(differ), w.masked_select(differ))
                   : 0.0;
    if (!(d <= opts.max_rel_diff)) {
      return ::testing::AssertionFailure() << "max |got - want| / max(1, |want|) = " << d << " > "
                                           << opts.max_rel_diff << " (test's bound)";
    }
  }
  return ::testing::AssertionSuccess();
}

namespace {

/// Files `<prefix><k>.pb` in `dir` for k = 0, 1, ... until one is missing.
std::vector<fs::path> numberedFiles(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> v;
  for (size_t k = 0;; ++k) {
    fs::path p = dir / (prefix + std::to_string(k) + ".pb");
    if (!fs::exists(p)) return v;
    v.push_back(p);
  }
}

void logCase(const std::string& name) {
  const char* log = std::getenv("GS_TEST_CASE_LOG");
  if (!log || !*log) return;
  const ::testing::TestInfo* t = ::testing::UnitTest::GetInstance()->current_test_info();
  std::ofstream f(log, std::ios::app);
  if (t) f << t->test_suite_name() << "." << t->name() << " ";
  f << name << "\n";
}

/// importOnnxFile, or (when the importer refuses the model's opset and `as_opset` > 0) the same
/// model with its default-domain opset import replaced by `as_opset`.
std::unique_ptr<Graph> importCase(const fs::path& model, int64_t as_opset) {
  try {
    return importOnnxFile(model.string());
  } catch (const Error& e) {
    if (as_opset <= 0 || std::string(e.what()).find("unsupported opset") == std::string::npos)
      throw;
  }
  onnx::ModelProto m;
  GS_CHECK(m.ParseFromString(readFile(model.string())), model.string(), ": cannot parse");
  for (auto& op : *m.mutable_opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") op.set_version(as_opset);
  OnnxImportOptions o;
  o.base_dir = model.parent_path().string();
  return importOnnxBytes(m.SerializeAsString(), model.string(), o);
}

}  // namespace

::testing::AssertionResult runConformanceCase(const std::string& name_or_dir,
                                              const CaseOptions& opts) {
  fs::path dir = name_or_dir.find('/') == std::string::npos ? fs::path(onnxNodeDir()) / name_or_dir
                                                            : fs::path(name_or_dir);
  const std::string name = dir.filename().string();
  logCase(name);
  auto fail = [&](const std::string& where, const std::string& why) {
    return ::testing::AssertionFailure() << name << where << ": " << firstLine(why);
  };
  if (!fs::exists(dir / "model.onnx")) return fail("", "no model.onnx in " + dir.string());
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0)
      sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) return fail("", "no test_data_set_* folder");
  try {
    std::unique_ptr<Graph> g = importCase(dir / "model.onnx", opts.as_opset);
    Executor ex(*g);
    for (const fs::path& set : sets) {
      const std::string where = " " + set.filename().string();
      std::vector<at::Tensor> ins;
      for (const auto& p : numberedFiles(set, "input_"))
        ins.push_back(readTensorProtoFile(p.string()));
      std::vector<fs::path> outs = numberedFiles(set, "output_");
      if (ins.size() != g->inputs().size() || outs.size() != g->outputs().size()) {
        std::ostringstream os;
        os << ins.size() << " input / " << outs.size() << " output files for a graph with "
           << g->inputs().size() << " inputs / " << g->outputs().size() << " outputs";
        return fail(where, os.str());
      }
      std::vector<at::Tensor> got = ex.run(ins);
      for (size_t k = 0; k < outs.size(); ++k) {
        ::testing::AssertionResult r =
            matchesExpected(got[k], readTensorProtoFile(outs[k].string()), opts);
        if (!r)
          return fail(where + " output " + std::to_string(k) + " '" + g->outputs()[k]->name() + "'",
                      r.message());
      }
    }
  } catch (const std::exception& e) {
    return fail("", e.what());
  }
  return ::testing::AssertionSuccess();
}

std::vector<std::string> conformanceCases(const std::string& prefix) {
  std::vector<std::string> v;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(onnxNodeDir(), ec)) {
    std::string n = e.path().filename().string();
    const std::string suffix = "_expanded";
    bool expanded = n.size() >= suffix.size() &&
                    n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
    if (n.rfind(prefix, 0) == 0 && !expanded) v.push_back(n);
  }
  std::sort(v.begin(), v.end());
  return v;
}

::testing::AssertionResult runConformanceCaseList(const std::vector<std::string>& names,
                                                  const CaseOptions& opts) {
  std::ostringstream bad;
  size_t failed = 0;
  for (const auto& n : names) {
    ::testing::AssertionResult r = runConformanceCase(n, opts);
    if (!r) {
      ++failed;
      bad << "\n  " << r.message();
    }
  }
  if (failed == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << failed << " of " << names.size() << " conformance cases failed:" << bad.str();
}

::testing::AssertionResult runConformanceCases(const std::vector<std::string>& prefixes,
                                               const CaseOptions& opts) {
  std::vector<std::string> names;
  std::ostringstream unmatched;
  for (const auto& p : prefixes) {
    auto c = conformanceCases(p);
    if (c.empty()) unmatched << " " << p;
    names.insert(names.end(), c.begin(), c.end());
  }
  if (!unmatched.str().empty())
    return ::testing::AssertionFailure() << "no conformance case matches:" << unmatched.str();
  return runConformanceCaseList(names, opts);
}

// ---- tensors ----

at::Tensor f32(const std::vector<float>& v) { return at::tensor(v, at::kFloat); }
at::Tensor f64(const std::vector<double>& v) { return at::tensor(v, at::kDouble); }
at::Tensor i64(const std::vector<int64_t>& v) { return at::tensor(v, at::kLong); }
at::Tensor i32(const std::vector<int32_t>& v) { return at::tensor(v, at::kInt); }
at::Tensor i8(const std::vector<int>& v) { return at::tensor(v, at::kInt).to(at::kChar); }
at::Tensor u8(const std::vector<int>& v) { return at::tensor(v, at::kInt).to(at::kByte); }
at::Tensor bools(const std::vector<int>& v) { return at::tensor(v, at::kInt).to(at::kBool); }

namespace {

::testing::AssertionResult sameLayout(const at::Tensor& got, const at::Tensor& want) {
  if (!got.defined() || !want.defined())
    return ::testing::AssertionFailure()
           << "undefined tensor (got " << got.defined() << ", want " << want.defined() << ")";
  if (got.scalar_type() != want.scalar_type())
    return ::testing::AssertionFailure() << "dtype " << got.scalar_type() << " != expected "
                                         << want.scalar_type() << "\ngot " << got;
  if (got.sizes() != want.sizes())
    return ::testing::AssertionFailure()
           << "shape " << got.sizes() << " != expected " << want.sizes() << "\ngot " << got;
  return ::testing::AssertionSuccess();
}

}  // namespace

::testing::AssertionResult sameTensor(const at::Tensor& got, const at::Tensor& want) {
  if (auto r = sameLayout(got, want); !r) return r;
  at::Tensor gn = got.isnan(), wn = want.isnan();
  if (at::equal(gn, wn) && at::equal(got.masked_fill(gn, 0), want.masked_fill(wn, 0)))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "values differ\ngot " << got << "\nwant " << want;
}

::testing::AssertionResult closeTensor(const at::Tensor& got, const at::Tensor& want, double tol) {
  if (auto r = sameLayout(got, want); !r) return r;
  double d = maxRelDiff(got, want);
  if (d < tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max relative difference " << d << " >= " << tol
                                       << "\ngot " << got << "\nwant " << want;
}

// ---- ModelProto builders ----

onnx::ModelProto makeModel(int64_t opset) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  m.mutable_graph()->set_name("g");
  return m;
}

void addValue(google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>* list,
              const std::string& name, int elem, const std::vector<int64_t>& dims,
              const std::map<int, std::string>& syms) {
  auto* vi = list->Add();
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem);
  auto* sh = tt->mutable_shape();
  for (size_t i = 0; i < dims.size(); ++i) {
    auto* d = sh->add_dim();
    if (syms.count(static_cast<int>(i)))
      d->set_dim_param(syms.at(static_cast<int>(i)));
    else if (dims[i] >= 0)
      d->set_dim_value(dims[i]);
  }
}

onnx::NodeProto* addNode(onnx::ModelProto& m, const std::string& op,
                         const std::vector<std::string>& ins, const std::vector<std::string>& outs,
                         const std::string& name) {
  auto* n = m.mutable_graph()->add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (const auto& i : ins) n->add_input(i);
  for (const auto& o : outs) n->add_output(o);
  return n;
}

namespace {

onnx::AttributeProto* newAttr(onnx::NodeProto* n, const std::string& k,
                              onnx::AttributeProto::AttributeType type) {
  auto* a = n->add_attribute();
  a->set_name(k);
  a->set_type(type);
  return a;
}

}  // namespace

void attrInts(onnx::NodeProto* n, const std::string& k, const std::vector<int64_t>& v) {
  auto* a = newAttr(n, k, onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
void attrInt(onnx::NodeProto* n, const std::string& k, int64_t v) {
  newAttr(n, k, onnx::AttributeProto::INT)->set_i(v);
}
void attrFloat(onnx::NodeProto* n, const std::string& k, float v) {
  newAttr(n, k, onnx::AttributeProto::FLOAT)->set_f(v);
}
void attrString(onnx::NodeProto* n, const std::string& k, const std::string& v) {
  newAttr(n, k, onnx::AttributeProto::STRING)->set_s(v);
}

void addInit(onnx::ModelProto& m, const at::Tensor& t, const std::string& name) {
  tensorToProto(t, name, m.mutable_graph()->add_initializer());
}

void expectSameGraph(const Graph& a, const Graph& b) {
  ASSERT_EQ(a.numNodes(), b.numNodes());
  for (auto ia = a.nodes().begin(), ib = b.nodes().begin(); ia != a.nodes().end(); ++ia, ++ib) {
    const Node &na = **ia, &nb = **ib;
    EXPECT_EQ(na.name(), nb.name());
    EXPECT_EQ(na.opType(), nb.opType());
    EXPECT_EQ(na.domain(), nb.domain());
    EXPECT_EQ(na.attrs(), nb.attrs()) << na.describe();
    ASSERT_EQ(na.numInputs(), nb.numInputs());
    for (size_t i = 0; i < na.numInputs(); ++i)
      EXPECT_EQ(na.input(i) ? na.input(i)->name() : "", nb.input(i) ? nb.input(i)->name() : "");
    ASSERT_EQ(na.numOutputs(), nb.numOutputs());
    for (size_t i = 0; i < na.numOutputs(); ++i) {
      Value *oa = na.output(i), *ob = nb.output(i);
      ASSERT_EQ(!oa, !ob);
      if (!oa) continue;
      EXPECT_EQ(oa->name(), ob->name());
      EXPECT_EQ(typeString(oa->dtype(), oa->shape()), typeString(ob->dtype(), ob->shape()));
    }
  }
  ASSERT_EQ(a.params().size(), b.params().size());
  for (size_t i = 0; i < a.params().size(); ++i) {
    EXPECT_EQ(a.params()[i]->name(), b.params()[i]->name());
    EXPECT_EQ(a.params()[i]->trainable(), b.params()[i]->trainable()) << a.params()[i]->name();
    EXPECT_TRUE(at::equal(a.params()[i]->data(), b.params()[i]->data())) << a.params()[i]->name();
  }
  ASSERT_EQ(a.inputs().size(), b.inputs().size());
  for (size_t i = 0; i < a.inputs().size(); ++i)
    EXPECT_EQ(typeString(a.inputs()[i]->dtype(), a.inputs()[i]->shape()),
              typeString(b.inputs()[i]->dtype(), b.inputs()[i]->shape()));
  ASSERT_EQ(a.outputs().size(), b.outputs().size());
  for (size_t i = 0; i < a.outputs().size(); ++i)
    EXPECT_EQ(a.outputs()[i]->name(), b.outputs()[i]->name());
  EXPECT_EQ(a.opsets, b.opsets);
}

}  // namespace gs::test
