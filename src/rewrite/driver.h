// Rewrite patterns and the drivers that decide when to apply them (once in order, greedy).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "rewrite/pattern.h"
#include "rewrite/rewriter.h"

namespace gs {

/// One rewrite: tries to match at a node and, if it applies, changes the IR through the Rewriter.
class RewritePattern {
 public:
  virtual ~RewritePattern() = default;
  /// Short name for logs ("fold-batchnorm-into-conv").
  virtual std::string name() const = 0;
  /// Op types this pattern can anchor on (empty = any); lets drivers skip nodes cheaply.
  virtual std::set<std::string> rootOps() const { return {}; }
  /// Tries at `n`. Returns true if the IR changed. "Does not apply" is not an error: return false
  /// and describe why in `why` (for the reason log). Throws only for malformed IR.
  virtual bool matchAndRewrite(Node& n, Rewriter& rw, std::string& why) = 0;
};

using RewriteFn = std::function<bool(const Match& m, Rewriter& rw, std::string& why)>;

/// A declarative Pattern plus a rewrite function receiving the Match.
class PatternRewrite : public RewritePattern {
 public:
  PatternRewrite(std::string name, Pattern pattern, RewriteFn fn)
      : name_(std::move(name)), pattern_(std::move(pattern)), fn_(std::move(fn)) {}
  std::string name() const override { return name_; }
  std::set<std::string> rootOps() const override { return pattern_.rootOps(); }
  bool matchAndRewrite(Node& n, Rewriter& rw, std::string& why) override;
  const Pattern& pattern() const { return pattern_; }

 private:
  std::string name_;
  Pattern pattern_;
  RewriteFn fn_;
};

/// An ordered list of rewrite patterns (tried in insertion order at each node).
class PatternSet {
 public:
  void add(std::unique_ptr<RewritePattern> p) { patterns_.push_back(std::move(p)); }
  void add(std::string name, Pattern pattern, RewriteFn fn) {
    add(std::make_unique<PatternRewrite>(std::move(name), std::move(pattern), std::move(fn)));
  }
  const std::vector<std::unique_ptr<RewritePattern>>& patterns() const { return patterns_; }
  bool empty() const { return patterns_.empty(); }

 private:
  std::vector<std::unique_ptr<RewritePattern>> patterns_;
};

struct DriverOptions {
  /// Greedy driver: stop after this many sweeps even if patterns still apply.
  int max_iterations = 20;
  /// Collect "<pattern> @ <node>: <why>" lines for every node where a pattern's root op type
  /// matched but the pattern did not apply (also logged at debug level).
  bool log_reasons = false;
};

struct DriverResult {
  /// Number of successful pattern applications.
  int64_t applied = 0;
  /// Number of sweeps over the graph.
  int iterations = 0;
  /// False if the greedy driver hit max_iterations while patterns still applied.
  bool converged = true;
  /// Reason log (when DriverOptions::log_reasons).
  std::vector<std::string> reasons;
};

/// One sweep: visits the nodes present at the start in graph order (skipping erased ones) and
/// applies the first pattern that applies at each.
DriverResult applyPatternsOnce(Graph& g, const PatternSet& patterns, const DriverOptions& opts = {},
                               RewriteListener* listener = nullptr);
/// Sweeps until a sweep changes nothing or max_iterations is reached.
DriverResult applyPatternsGreedily(Graph& g, const PatternSet& patterns,
                                   const DriverOptions& opts = {},
                                   RewriteListener* listener = nullptr);

}  // namespace gs
