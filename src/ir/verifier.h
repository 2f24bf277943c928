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
};

/// All problems found, one line each (empty = valid). Checks: topological order, one producer
/// per value, use lists consistent with inputs (no dangling uses), outputs/params belong to the
/// graph, unique names, and (with schemas) arity and attributes against the registry.
std::vector<std::string> verifyGraph(const Graph& g, const VerifyOptions& opts = {});

/// Throws gs::Error with the first problem (and a count of the rest) if the graph is invalid.
void verifyGraphOrThrow(const Graph& g, const VerifyOptions& opts = {});

}  // namespace gs
