// Helpers shared by the gstick subcommands: model loading, input synthesis, output naming, stats.
#pragma once
#include <ATen/core/Tensor.h>

#include <CLI/CLI.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace gs::cli {

/// Loads an ONNX model; throws gs::Error "<path>: no such file" / importer errors.
std::unique_ptr<Graph> loadModel(const std::string& path);

/// Options describing how graph inputs are obtained (shared by `run` and `info`).
struct InputOptions {
  std::vector<std::string> input_specs;  // "NAME=FILE.npy"
  uint64_t seed = 0;
  int64_t batch = 1;  // value substituted for symbolic / unknown dims
};

/// Registers --input/--seed/--batch on `cmd`, bound to `o` (one option table for parse + help).
void addInputOptions(CLI::App& cmd, InputOptions& o, bool with_files);

/// Concrete shape of input `v`: static dims kept, symbolic/unknown dims = `batch`.
/// Throws if the rank is unknown.
std::vector<int64_t> concreteShape(const Value& v, int64_t batch);

/// Seeded random tensor for input `v` (input index `idx` offsets the seed so inputs differ):
/// floats ~ N(0,1), integers uniform in [0, 10), bool uniform.
at::Tensor randomInput(const Value& v, int64_t batch, uint64_t seed, size_t idx);

/// Inputs in graph-input order: from the given .npy files, the rest random. Rejects names that
/// are not graph inputs and malformed specs.
std::vector<at::Tensor> makeInputs(const Graph& g, const InputOptions& o);

/// File stem for an output value name: characters outside [A-Za-z0-9._-] become '_'
/// (tools/ort/ort_run.js applies the same rule).
std::string outputFileStem(const std::string& name);

/// Summary statistics of a tensor (computed in double; bool/int converted).
struct TensorStats {
  double min = 0, max = 0, mean = 0;
  int64_t numel = 0;
};
TensorStats tensorStats(const at::Tensor& t);

/// Median and mean of timings (ms).
struct Latency {
  double median_ms = 0, mean_ms = 0;
};
Latency summarize(std::vector<double> ms);

/// Thousands separators for counts ("1,234,567").
std::string withCommas(int64_t n);
/// Human-readable byte size ("48.2 KiB").
std::string humanBytes(int64_t n);

}  // namespace gs::cli
