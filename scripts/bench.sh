#!/usr/bin/env bash
# Benchmarks (make bench): latency gstick vs ONNX Runtime (writes docs/benchmarks.md), then training
# throughput gstick vs PyTorch eager (printed).
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

# Training throughput: gstick's Trainer vs PyTorch eager (Debian python3-torch) on the same models,
# batch sizes, optimizers and thread counts, alternating in one run (bench/train_bench.cpp +
# scripts/train_bench.py). GS_TRAIN_BENCH_STEPS shortens / lengthens the timed part.
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  cmake --build "$BUILD" --target train_bench >/dev/null
  "$BUILD/bench/train_bench" --threads 1,2 --steps "${GS_TRAIN_BENCH_STEPS:-30}" --warmup 5
else
  echo "bench: skipping the training benchmark: /usr/bin/python3 has no torch (apt-get install python3-torch)" >&2
fi
