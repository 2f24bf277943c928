#!/usr/bin/env bash
# Latency benchmark (make bench): gstick vs ONNX Runtime on the same ONNX files; writes docs/benchmarks.md.
# Usage: bash scripts/bench.sh [BUILD_DIR] [latency_bench options, e.g. --quick --threads 2]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
shift || true
if [ ! -f tools/ort/node_modules/onnxruntime-node/package.json ] && [ -z "${GS_ORT_DIR:-}" ]; then
  echo "bench: error: ONNX Runtime not installed in tools/ort: run scripts/install-deps.sh" >&2
  exit 1
fi
# Passive OpenMP waiting: on a shared/oversubscribed machine spinning workers cause 100+ ms stalls.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
cmake --build "$BUILD" --target latency_bench >/dev/null
# Default: one table at 1 thread (least noisy on a shared machine) and one at all cores.
if [ $# -eq 0 ]; then
  n=$(nproc)
  if [ "$n" -gt 1 ]; then set -- --threads "1,$n"; fi
fi
"$BUILD/bench/latency_bench" --out docs/benchmarks.md "$@"
