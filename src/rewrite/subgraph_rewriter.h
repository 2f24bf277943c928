// Declarative rewrite: pattern and replacement written as IR text graphs.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "rewrite/driver.h"

namespace gs {

/// Rewrites every occurrence of a pattern graph by a replacement graph, both in the IR text form
/// (ir/text.h):
///
///   pattern:      graph "p" { input %x
///                             %y = Transpose(%x) {perm=[1,0]}
///                             %z = Transpose(%y) {perm=[1,0]}
///                             output %z }
///   replacement:  graph "r" { input %x
///                             %i = Identity(%x)
///                             output %i }
///
/// Pattern semantics: each pattern input is a wildcard value (the same input used twice must bind
/// the same graph value); each pattern node matches a graph node with the same domain and op type,
/// the same inputs (`_` = omitted) and at least the attributes written (equal values; attributes
/// not written are unconstrained). The pattern's last node is the root; every pattern node must
/// feed it. Values of matched nodes that are not pattern outputs must have no users outside the
/// match (otherwise the rewrite does not apply, with that reason).
/// Replacement semantics: replacement inputs bind by name to pattern inputs; replacement params
/// become new parameters (unique names; trainable flag kept); replacement nodes are inserted
/// before the matched root; replacement output k replaces pattern output k. A replacement node
/// named like a pattern node inherits the matched node's name; others are named
/// "<root>.<name>". Attributes are literal. Both texts are parsed once, at construction
/// (gs::Error "<name> pattern:<line>:<col>: ..." on bad text or mismatched interfaces).
class SubgraphRewriter : public RewritePattern {
 public:
  SubgraphRewriter(std::string name, std::string_view pattern_text,
                   std::string_view replacement_text);
  ~SubgraphRewriter() override;
  std::string name() const override { return name_; }
  std::set<std::string> rootOps() const override;
  bool matchAndRewrite(Node& n, Rewriter& rw, std::string& why) override;
  const Pattern& pattern() const { return pattern_; }

 private:
  std::string name_;
  std::unique_ptr<Graph> pat_g_, rep_g_;
  Pattern pattern_;
};

/// Applies one SubgraphRewriter greedily to `g`; returns the number of rewrites.
int64_t rewriteSubgraphs(Graph& g, std::string_view pattern_text, std::string_view replacement_text,
                         RewriteListener* listener = nullptr);

}  // namespace gs
