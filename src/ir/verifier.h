// Graph verifier: structural invariants and op-schema checks.
#pragma once
#include <string>
#include <vector>

#include "ir/graph.h"

namespace gs {

class OpRegistry;

struct VerifyOptions {
  /// Check every node against the op registry (arity, required/unknown attributes, kinds).
  bool check_schemas = true;
  /// Unknown ops are errors (otherwise only structural checks apply to them).
  bool allow_unknown_ops = false;
  /// Registry to check against; nullptr = OpRegistry::global().
  const OpRegistry* registry = nullptr;
};

/// All problems found, one line each (empty = valid). Checks: topological order, one producer
/// per value, use lists consistent with inputs (no dangling uses), outputs/params belong to the
/// graph, unique names, and (with schemas) arity and attributes against the registry.
/// Node problems start with node.describe(): "node 'conv1' (Conv): ...". Inputs count up to the
/// last non-omitted slot (Conv(x, w, _) has 2); an Int attribute is accepted where a Float is
/// declared (the typed accessors convert it).
std::vector<std::string> verifyGraph(const Graph& g, const VerifyOptions& opts = {});

/// Throws gs::Error with the first problem (and a count of the rest) if the graph is invalid.
void verifyGraphOrThrow(const Graph& g, const VerifyOptions& opts = {});

}  // namespace gs
