# gstick top-level entry points: make demo | test | bench | build (installs missing deps first).
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
export OMP_NUM_THREADS ?= $(shell nproc)
# Passive OpenMP waiting: active spinning makes training 8-40x slower when other processes share
# the cores (docs/quantization.md, "Training speed under contention").
export OMP_WAIT_POLICY ?= passive

.PHONY: all deps configure build test test-all bench demo fuzz clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

configure: deps $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Everything except the `slow` label.
test: build
	cd $(BUILD_DIR) && ctest -LE slow --output-on-failure -j $(JOBS) --timeout 1500

test-all: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

bench: build
	bash scripts/bench.sh $(BUILD_DIR)

demo: build
	bash scripts/demo.sh $(BUILD_DIR)

fuzz: deps
	CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DGS_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build-fuzz -j $(JOBS) --target fuzz_onnx_import fuzz_ir_parser fuzz_npy fuzz_safetensors fuzz_hf_config

clean:
	rm -rf $(BUILD_DIR)
