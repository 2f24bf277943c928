// Test helpers: build small ONNX ModelProtos with protobuf directly; expect one-line gs::Errors.
#pragma once
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "io/tensor_proto.h"
#include "ir/graph.h"
#include "support/error.h"

namespace gs::test {

// ---- tiny ModelProto builders (protobuf directly, no python) ----

inline onnx::ModelProto makeModel(int64_t opset) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  m.mutable_graph()->set_name("g");
  return m;
}

/// dims: >= 0 static, -1 unknown; `syms` gives dim_param for the positions it names.
inline void addValue(google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>* list,
              const std::string& name, int elem, const std::vector<int64_t>& dims,
              const std::map<int, std::string>& syms = {}) {
  auto* vi = list->Add();
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem);
  auto* sh = tt->mutable_shape();
  for (size_t i = 0; i < dims.size(); ++i) {
    auto* d = sh->add_dim();
    if (syms.count(static_cast<int>(i))) d->set_dim_param(syms.at(static_cast<int>(i)));
    else if (dims[i] >= 0) d->set_dim_value(dims[i]);
  }
}

inline onnx::NodeProto* addNode(onnx::ModelProto& m, const std::string& op,
                         const std::vector<std::string>& ins, const std::vector<std::string>& outs,
                         const std::string& name = "") {
  auto* n = m.mutable_graph()->add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (const auto& i : ins) n->add_input(i);
  for (const auto& o : outs) n->add_output(o);
  return n;
}

inline void attrInts(onnx::NodeProto* n, const std::string& k, const std::vector<int64_t>& v) {
  auto* a = n->add_attribute();
  a->set_name(k);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
inline void attrInt(onnx::NodeProto* n, const std::string& k, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(k);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
inline void attrFloat(onnx::NodeProto* n, const std::string& k, float v) {
  auto* a = n->add_attribute();
  a->set_name(k);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
inline void attrString(onnx::NodeProto* n, const std::string& k, const std::string& v) {
  auto* a = n->add_attribute();
  a->set_name(k);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(v);
}

inline void addInit(onnx::ModelProto& m, const at::Tensor& t, const std::string& name) {
  tensorToProto(t, name, m.mutable_graph()->add_initializer());
}

/// Expects `f` to throw gs::Error whose message contains `needle`.
template <typename F>
void expectError(F f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing: " << needle;
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(needle), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << "multi-line error: " << m;
  }
}

/// Structural identity: nodes (names, op types, domains, attrs, value names), params, io types.
inline void expectSameGraph(const Graph& a, const Graph& b) {
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
