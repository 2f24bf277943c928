// `identity`: the trivial algorithm (graph unchanged, summary lists the layers); used in tests and
// as the smallest example of the CompAlgo contract.
#include "algo/registry.h"

namespace gs {

namespace {

class IdentityAlgo : public CompAlgo {
 public:
  using CompAlgo::CompAlgo;
  std::string name() const override { return "identity"; }

 protected:
  Graph applyImpl(Graph g) override { return g; }
};

}  // namespace

void registerIdentityAlgo(AlgoRegistry& r) {
  r.add({"identity", "leaves the graph unchanged; the summary lists every layer (for tests)", {},
         algoFactory<IdentityAlgo>(), {}});
}

}  // namespace gs
