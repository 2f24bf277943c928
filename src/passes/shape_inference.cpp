// Shape inference by probing: run the graph twice with substituted symbolic dims and compare.
#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <unordered_map>

#include "passes/passes.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace gs {
namespace {

/// Executor on `g` with zero inputs whose k-th symbol is `base + k`; records every node output.
using Probe = std::unordered_map<const Value*, std::pair<at::ScalarType, std::vector<int64_t>>>;

Probe probe(const Graph& g,
                                                   const std::vector<std::string>& symbols,
                                                   int64_t base) {
  std::vector<at::Tensor> inputs;
  for (const Value* in : g.inputs()) {
    GS_CHECK(in->shape(), "input '", in->name(), "' has unknown rank");
    std::vector<int64_t> shape;
    for (size_t d = 0; d < in->shape()->size(); ++d) {
      const Dim& dim = (*in->shape())[d];
      if (dim.isStatic()) {
        shape.push_back(dim.value);
        continue;
      }
      std::string key = dim.symbol.empty() ? in->name() + "#" + std::to_string(d) : dim.symbol;
      auto it = std::find(symbols.begin(), symbols.end(), key);
      shape.push_back(base + (it - symbols.begin()));
    }
    inputs.push_back(at::zeros(shape, at::TensorOptions().dtype(toScalarType(in->dtype()))));
  }
  ExecOptions eo;
  eo.check_inputs = false;
  Executor ex(g, eo);
  Probe seen;
  ex.setObserver([&](const Node& n, const std::vector<at::Tensor>&,
                     const std::vector<at::Tensor>& out) {
    for (size_t k = 0; k < out.size() && k < n.numOutputs(); ++k)
      if (n.output(k) && out[k].defined())
        seen[n.output(k)] = {out[k].scalar_type(), out[k].sizes().vec()};
  });
  ex.run(inputs);
  return seen;
}

}  // namespace

PassResult inferShapes(Graph& g, const ShapeInferenceOptions& opts, RewriteListener* listener) {
  PassResult res{"shape-inference", 0, {}};
  // Distinct symbols (unknown dims count as their own symbol), in order of first appearance.
  std::vector<std::string> symbols;
  for (const Value* in : g.inputs()) {
    if (!in->shape()) {
      res.notes.push_back("input '" + in->name() + "' has unknown rank: not inferred");
      return res;
    }
    for (size_t d = 0; d < in->shape()->size(); ++d) {
      const Dim& dim = (*in->shape())[d];
      if (dim.isStatic()) continue;
      std::string key = dim.symbol.empty() ? in->name() + "#" + std::to_string(d) : dim.symbol;
      if (std::find(symbols.begin(), symbols.end(), key) == symbols.end()) symbols.push_back(key);
    }
  }
  Probe a, b;
  try {
    a = probe(g, symbols, opts.first_probe);
    b = symbols.empty() ? a : probe(g, symbols, opts.second_probe);
  } catch (const std::exception& e) {
    res.notes.push_back("does not apply: the graph does not run on probe inputs: " +
                        firstLine(e.what()));
    return res;
  }
  Rewriter rw(g);
  if (listener) rw.addListener(listener);
  for (const auto& n : g.nodes()) {
    for (Value* o : n->outputs()) {
      if (!o || !a.count(o) || !b.count(o)) continue;
      const auto& [ta_type, ta] = a.at(o);
      const auto& tb = b.at(o).second;
      DType dt = fromScalarType(ta_type);
      Shape shape;
      if (ta.size() == tb.size()) {
        std::vector<Dim> dims;
        for (size_t d = 0; d < ta.size(); ++d) {
          int64_t x = ta[d], y = tb[d];
          if (x == y) {
            dims.emplace_back(x);
            continue;
          }
          Dim dim;  // unknown unless it tracks one symbol
          int64_t k = x - opts.first_probe;
          if (k >= 0 && k < static_cast<int64_t>(symbols.size()) && y == opts.second_probe + k &&
              symbols[k].find('#') == std::string::npos)
            dim = Dim(symbols[k]);
          dims.push_back(dim);
        }
        shape = dims;
      }
      if (o->dtype() != dt || !(o->shape() == shape)) {
        rw.setType(o, dt, shape);
        ++res.changes;
      }
    }
  }
  return res;
}

}  // namespace gs
