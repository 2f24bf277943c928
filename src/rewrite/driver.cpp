// Pattern drivers: one ordered sweep, or greedy sweeps to a fixpoint, with a reason log.
#include "rewrite/driver.h"

#include <sstream>

#include "support/log.h"

namespace gs {

bool PatternRewrite::matchAndRewrite(Node& n, Rewriter& rw, std::string& why) {
  auto m = pattern_.matchAt(&n, &why);
  if (!m) return false;
  return fn_(*m, rw, why);
}

namespace {

/// One sweep; returns the number of applications.
int64_t sweep(Graph& g, const PatternSet& patterns, const DriverOptions& opts,
              RewriteListener* listener, DriverResult& res) {
  Rewriter rw(g);
  if (listener) rw.addListener(listener);
  // Node pointers may die while rewriting: iterate over names taken at the start.
  std::vector<std::string> names;
  names.reserve(g.numNodes());
  for (const auto& n : g.nodes()) names.push_back(n->name());
  int64_t applied = 0;
  for (const std::string& name : names) {
    for (const auto& p : patterns.patterns()) {
      Node* n = g.findNode(name);
      if (!n) break;
      auto ops = p->rootOps();
      if (!ops.empty() && !ops.count(n->opType())) continue;
      std::string why;
      if (p->matchAndRewrite(*n, rw, why)) {
        ++applied;
        GS_LOG(Debug, p->name() << " applied at '" << name << "'");
        break;
      }
      if (opts.log_reasons) {
        std::string line = p->name() + " @ " + name + ": does not apply: " +
                           (why.empty() ? std::string("no match") : why);
        GS_LOG(Debug, line);
        res.reasons.push_back(std::move(line));
      }
    }
  }
  return applied;
}

}  // namespace

DriverResult applyPatternsOnce(Graph& g, const PatternSet& patterns, const DriverOptions& opts,
                               RewriteListener* listener) {
  DriverResult res;
  res.applied = sweep(g, patterns, opts, listener, res);
  res.iterations = 1;
  return res;
}

DriverResult applyPatternsGreedily(Graph& g, const PatternSet& patterns, const DriverOptions& opts,
                                   RewriteListener* listener) {
  DriverResult res;
  res.converged = false;
  while (res.iterations < opts.max_iterations) {
    // Only the last sweep's reasons are meaningful (earlier ones may have applied later).
    res.reasons.clear();
    int64_t n = sweep(g, patterns, opts, listener, res);
    ++res.iterations;
    res.applied += n;
    if (n == 0) {
      res.converged = true;
      break;
    }
  }
  if (!res.converged)
    GS_LOG(Warn, "rewrite driver stopped after " << res.iterations
                                                 << " sweeps with patterns still applying");
  return res;
}

}  // namespace gs
