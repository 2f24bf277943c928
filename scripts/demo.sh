#!/usr/bin/env bash
# End-to-end demo (make demo): build a CNN in C++, export ONNX, inspect and run it with gstick,
# run it in ONNX Runtime on the same input and check parity.
# Usage: bash scripts/demo.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT="$BUILD/demo"
GSTICK="$BUILD/gstick"
ORT_DIR=${GS_ORT_DIR:-tools/ort}
if [ ! -f "$ORT_DIR/node_modules/onnxruntime-node/package.json" ]; then
  echo "demo: error: ONNX Runtime not installed in $ORT_DIR: run scripts/install-deps.sh" >&2
  exit 1
fi
# Passive OpenMP waiting avoids 100+ ms stalls when the machine is oversubscribed (see docs/benchmarks.md).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
cmake --build "$BUILD" --target gstick demo_tool >/dev/null
rm -rf "$OUT" && mkdir -p "$OUT"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Build a small CNN (conv-bn-relu-pool x2, GAP, Gemm) with the C++ graph API and export it to ONNX"
"$BUILD/bench/demo_tool" export-cnn "$OUT/cnn.onnx" "$OUT/input.npy" 4

step "gstick info $OUT/cnn.onnx"
"$GSTICK" info "$OUT/cnn.onnx"

step "gstick run $OUT/cnn.onnx --input input=$OUT/input.npy -o $OUT/gstick --repeat 20"
"$GSTICK" run "$OUT/cnn.onnx" --input "input=$OUT/input.npy" -o "$OUT/gstick" --repeat 20

step "ONNX Runtime on the same file and input"
node "$ORT_DIR/ort_run.js" "$OUT/cnn.onnx" --input "input=$OUT/input.npy" --out-dir "$OUT/ort" --repeat 20 |
  node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const j = JSON.parse(s);
    for (const [n, o] of Object.entries(j.outputs)) console.log(`${n}  ${o.type}[${o.dims}]  -> ${process.argv[1]}/${n}.npy`);
    console.log(`latency: median ${j.median_ms.toFixed(3)} ms, mean ${j.mean_ms.toFixed(3)} ms over ${j.repeat} runs (after 1 warm-up), ${j.threads} threads`);
  });' "$OUT/ort"

step "Parity"
"$BUILD/bench/demo_tool" compare "$OUT/gstick" "$OUT/ort"

step "gstick eval models/lenet5-fmnist.onnx on the Fashion-MNIST test set (trained by gstick; see models/README.md)"
"$GSTICK" eval models/lenet5-fmnist.onnx --data fashion-mnist:test
