// Reduce op family (filled in by the op-family work).
#include "ops/registry.h"

namespace gs {

void registerReduceOps(OpRegistry& r) { (void)r; }

}  // namespace gs
