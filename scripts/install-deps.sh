#!/usr/bin/env bash
# Installs everything gstick needs to build, test and benchmark on Debian 12 (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(
  build-essential cmake ninja-build pkg-config ccache
  libtorch-dev libopenblas0-pthread
  libonnx-dev libprotobuf-dev protobuf-compiler
  nlohmann-json3-dev libcli11-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist libonnx-testdata python3.11-doc
  clang libclang-rt-14-dev
  python3-torch python3-onnx python3-numpy
)

missing=()
for p in "${APT_PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

# Node.js: any install providing node+npm will do (nodesource's nodejs bundles npm and conflicts with Debian's npm).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if dpkg-query -W nodejs >/dev/null 2>&1; then missing+=(npm); else missing+=(nodejs npm); fi
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "[install-deps] installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "[install-deps] Debian packages present"
fi

# ONNX Runtime (reference runtime for parity tests), CPU library ships inside the npm package.
ORT_DIR=tools/ort
ORT_VERSION=1.30.0
if [ ! -f "$ORT_DIR/node_modules/onnxruntime-node/package.json" ] || \
   ! grep -q "\"version\": \"$ORT_VERSION\"" "$ORT_DIR/node_modules/onnxruntime-node/package.json"; then
  echo "[install-deps] installing onnxruntime-node@$ORT_VERSION into $ORT_DIR"
  mkdir -p "$ORT_DIR"
  (cd "$ORT_DIR" && { [ -f package.json ] || echo '{"name":"gstick-test-tools","private":true}' > package.json; } \
     && npm install --no-audit --no-fund --ignore-scripts "onnxruntime-node@$ORT_VERSION" >/dev/null)
else
  echo "[install-deps] onnxruntime-node $ORT_VERSION present"
fi
touch build/.deps-stamp 2>/dev/null || { mkdir -p build && touch build/.deps-stamp; }
