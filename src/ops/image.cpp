// Image op family (filled in by the op-family work).
#include "ops/registry.h"

namespace gs {

void registerImageOps(OpRegistry& r) { (void)r; }

}  // namespace gs
