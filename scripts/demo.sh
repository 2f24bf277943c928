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

# The reference models trained by gstick (see models/README.md for the commands that regenerate
# them): accuracy on the 10,000 Fashion-MNIST test images in gstick and in ONNX Runtime, file size
# and latency per batch of 32.
step "Reference models: gstick eval vs ONNX Runtime on the Fashion-MNIST test set"
"$GSTICK" eval models/lenet5-fmnist.onnx --data fashion-mnist:test --batch 32 --dump-npy "$OUT/fmnist" >/dev/null
# One table row: params, file size, top-1 in gstick and in ONNX Runtime, latency per batch of 32.
table_header() {
  printf '%-30s %9s %9s %12s %12s %14s %12s\n' model params size "gstick top1" "ORT top1" "gstick ms/32" "ORT ms/32"
}
table_row() {  # FILE [LABEL]
  local f=$1 label=${2:-$(basename "$1")}
  local ours info theirs
  ours=$("$GSTICK" eval "$f" --data fashion-mnist:test --batch 32)
  info=$("$GSTICK" info "$f" --json)
  theirs=$(node "$ORT_DIR/ort_eval.js" "$f" --inputs "$OUT/fmnist/inputs.npy" --labels "$OUT/fmnist/labels.npy" --batch 32)
  node -e '
    const [file, label, ours, info, theirs] = process.argv.slice(1);
    const top1 = /top1 ([0-9.]+)%/.exec(ours)[1];
    const ms = /latency: median ([0-9.]+) ms/.exec(ours)[1];
    const t = JSON.parse(theirs), i = JSON.parse(info);
    const size = require("fs").statSync(file).size;
    console.log([label.padEnd(30), String(i.parameters.count).padStart(9),
      ((size / 1e6).toFixed(2) + " MB").padStart(9), (top1 + "%").padStart(12),
      ((100 * t.top1).toFixed(2) + "%").padStart(12), Number(ms).toFixed(2).padStart(14),
      t.median_ms.toFixed(2).padStart(12)].join(" "));
  ' "$f" "$label" "$ours" "$info" "$theirs"
}
table_header
for f in models/*-fmnist.onnx; do
  table_row "$f"
done

# Quantization of the reference ResNet-20 (docs/quantization.md): static PTQ int8 calibrated on
# 2048 training images, and SimQAT (simulated quantization-aware training) fine-tuned for one
# epoch on 10,000 training images. Both are converted to ONNX QDQ (int8 weights, int32 biases);
# gstick runs them with real int8 kernels, ONNX Runtime with its QDQ fusions.
step "gstick compress --algo ptq models/resnet20-fmnist.onnx (static int8, 2048 calibration images)"
"$GSTICK" compress --algo ptq --data fashion-mnist:train:2048 --calib-batches 64 \
  models/resnet20-fmnist.onnx -o "$OUT/resnet20-ptq-int8.onnx"
step "gstick compress --algo simqat models/resnet20-fmnist.onnx (1 epoch on 10,000 images)"
"$GSTICK" compress --algo simqat --data fashion-mnist:train:10000 --epochs 1 --lr 0.001 --batch 64 \
  models/resnet20-fmnist.onnx -o "$OUT/resnet20-simqat-int8.onnx" | tail -n 8
step "ResNet-20: fp32 vs int8 (gstick runtime and ONNX Runtime, Fashion-MNIST test set)"
table_header
table_row models/resnet20-fmnist.onnx "resnet20 fp32"
table_row "$OUT/resnet20-ptq-int8.onnx" "resnet20 PTQ int8"
table_row "$OUT/resnet20-simqat-int8.onnx" "resnet20 SimQAT int8"

# LLM post-training quantization (docs/ptq.md): the trained tiny Llama at W4 g128 with RTN and GPTQ
# through `gstick compress` (32 x 128 calibration tokens of the train split), then the held-out
# perplexity of each model on the first 32,768 test tokens and the file sizes.
llm_ptq_demo() {
  local model=models/llama-tiny-text.onnx algo f name p fp size
  step "LLM PTQ: $model at W4 g128 with RTN and GPTQ (gstick compress --algo rtn|gptq), perplexity on text:test"
  for algo in rtn gptq; do
    echo "gstick compress --algo $algo $model -o $OUT/llama-$algo.onnx --data text:train --set calib_samples=32 --set calib_seq=128"
    "$GSTICK" compress --algo "$algo" "$model" -o "$OUT/llama-$algo.onnx" --data text:train \
      --set calib_samples=32 --set calib_seq=128 >"$OUT/llama-$algo.log" 2>&1 ||
      { tail -3 "$OUT/llama-$algo.log" >&2; return 1; }
  done
  lm_ppl() { "$GSTICK" eval "$1" --data text:test:32768 | sed -n 's/^perplexity \([0-9.]*\).*/\1/p'; }
  fp=$(lm_ppl "$model")
  printf '%-22s %11s %9s %10s\n' config perplexity "vs fp32" size
  for f in "$model" "$OUT/llama-rtn.onnx" "$OUT/llama-gptq.onnx"; do
    case $f in
      "$model") name="fp32"; p=$fp ;;
      *rtn*) name="RTN W4 g128"; p=$(lm_ppl "$f") ;;
      *) name="GPTQ W4 g128"; p=$(lm_ppl "$f") ;;
    esac
    size=$(stat -c %s "$f")
    awk -v n="$name" -v p="$p" -v fp="$fp" -v s="$size" \
      'BEGIN { printf "%-22s %11.4f %+8.2f%% %7.1f KiB\n", n, p, 100 * (p / fp - 1), s / 1024 }'
  done
}
llm_ptq_demo
