// Helpers for the shape-family op tests: run one node through the Executor.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace gs::shape_test {

/// How the non-data inputs (index >= 1) of the node under test are bound.
enum class Bind { Inputs, Params };

/// Runs a single `op` node on `ins` (undefined tensor = omitted input) and returns its outputs.
/// With Bind::Params, inputs 1.. become frozen parameters, exercising the kernels' constant-input
/// precomputation; with `training`, input 0 becomes a trainable parameter instead.
inline std::vector<at::Tensor> runOp(const std::string& op, const std::vector<at::Tensor>& ins,
                                     std::map<std::string, Attribute> attrs = {},
                                     size_t num_outputs = 1, Bind bind = Bind::Inputs,
                                     const std::string& name = "n") {
  Graph g;
  std::vector<Value*> vals;
  std::vector<at::Tensor> feed;
  for (size_t i = 0; i < ins.size(); ++i) {
    const std::string vn = "in" + std::to_string(i);
    if (!ins[i].defined()) {
      vals.push_back(nullptr);
    } else if (bind == Bind::Params && i > 0) {
      vals.push_back(g.addParam(vn, ins[i], false));
    } else {
      vals.push_back(g.addInput(vn, DType::Undefined, Shape()));
      feed.push_back(ins[i]);
    }
  }
  Node* n = g.addNode(op, vals, num_outputs, name, std::move(attrs));
  for (size_t i = 0; i < num_outputs; ++i) g.addOutput(n->output(i));
  Executor ex(g);
  return ex.run(feed);
}

/// Runs with both bindings, checks they agree, returns the first output.
inline at::Tensor runBoth(const std::string& op, const std::vector<at::Tensor>& ins,
                          std::map<std::string, Attribute> attrs = {}) {
  at::Tensor a = runOp(op, ins, attrs, 1, Bind::Inputs)[0];
  at::Tensor b = runOp(op, ins, attrs, 1, Bind::Params)[0];
  EXPECT_TRUE(a.sizes() == b.sizes() && at::equal(a, b)) << op << ": " << a << " vs " << b;
  return a;
}

/// int64 1-d tensor.
inline at::Tensor I(std::vector<int64_t> v) { return at::tensor(v, at::kLong); }
/// float 1-d tensor.
inline at::Tensor F(std::vector<float> v) { return at::tensor(v, at::kFloat); }

/// Exact equality of shape, dtype and values (with a readable failure message).
#define EXPECT_TENSOR_EQ(got, want)                                                 \
  do {                                                                              \
    at::Tensor g_ = (got), w_ = (want);                                             \
    EXPECT_EQ(g_.scalar_type(), w_.scalar_type());                                  \
    EXPECT_TRUE(g_.sizes() == w_.sizes() && at::equal(g_.to(w_.scalar_type()), w_)) \
        << "got " << g_ << "\nwant " << w_;                                         \
  } while (0)

/// Message of the gs::Error thrown by `f`, or "" (with a test failure) if none is thrown.
template <typename F>
std::string errorOf(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected gs::Error";
  return "";
}

}  // namespace gs::shape_test
