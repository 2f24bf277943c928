// Helpers shared by the gstick subcommands (see cli_common.h).
#include "cli/cli_common.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <set>

#include "io/npy.h"
#include "io/onnx.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace gs::cli {

std::unique_ptr<Graph> loadModel(const std::string& path) {
  std::error_code ec;
  GS_CHECK(std::filesystem::exists(path, ec), path, ": no such file");
  GS_CHECK(!std::filesystem::is_directory(path, ec), path,
           ": is a directory, expected an .onnx file");
  return importOnnxFile(path);
}

void addInputOptions(CLI::App& cmd, InputOptions& o, bool with_files) {
  if (with_files)
    cmd.add_option("-i,--input", o.input_specs,
                   "Graph input from a .npy file, as NAME=FILE.npy (repeatable); inputs not given "
                   "are random")
        ->type_name("NAME=FILE");
  cmd.add_option("--seed", o.seed, "Seed for random inputs")->capture_default_str();
  cmd.add_option("--batch", o.batch, "Value used for symbolic/unknown input dims")
      ->check(CLI::Range(1, 1 << 30))
      ->capture_default_str();
}

std::vector<int64_t> concreteShape(const Value& v, int64_t batch) {
  GS_CHECK(v.shape().has_value(), "input '", v.name(),
           "' has unknown rank; give it with --input NAME=FILE.npy");
  std::vector<int64_t> s;
  for (const Dim& d : *v.shape()) s.push_back(d.isStatic() ? d.value : batch);
  return s;
}

at::Tensor randomInput(const Value& v, int64_t batch, uint64_t seed, size_t idx) {
  auto shape = concreteShape(v, batch);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + 1000003ULL * idx);
  DType t = v.dtype() == DType::Undefined ? DType::Float32 : v.dtype();
  switch (t) {
    case DType::Float32:
    case DType::Float64:
    case DType::Float16:
    case DType::BFloat16:
      return at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat)).to(toScalarType(t));
    case DType::Bool:
      return at::randint(0, 2, shape, gen, at::TensorOptions().dtype(at::kLong)).to(at::kBool);
    case DType::Int8:
    case DType::UInt8:
    case DType::Int16:
    case DType::Int32:
    case DType::Int64:
      return at::randint(0, 10, shape, gen, at::TensorOptions().dtype(at::kLong))
          .to(toScalarType(t));
    default:
      GS_FAIL("input '", v.name(), "' has dtype ", dtypeName(t),
              ", which cannot be generated; give it with --input NAME=FILE.npy");
  }
}

std::vector<at::Tensor> makeInputs(const Graph& g, const InputOptions& o) {
  std::map<std::string, std::string> files;
  for (const std::string& spec : o.input_specs) {
    auto eq = spec.find('=');
    GS_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < spec.size(),
             "--input expects NAME=FILE.npy, got '", spec, "'");
    std::string name = spec.substr(0, eq);
    const Value* v = g.findValue(name);
    if (!v || !v->isGraphInput()) {
      std::string names;
      for (const Value* in : g.inputs()) names += (names.empty() ? "" : ", ") + in->name();
      GS_FAIL("--input: '", name, "' is not an input of the model (inputs: ", names, ")");
    }
    GS_CHECK(files.emplace(name, spec.substr(eq + 1)).second, "--input: '", name, "' given twice");
  }
  std::vector<at::Tensor> res;
  for (size_t i = 0; i < g.inputs().size(); ++i) {
    const Value* v = g.inputs()[i];
    auto it = files.find(v->name());
    res.push_back(it != files.end() ? readNpy(it->second) : randomInput(*v, o.batch, o.seed, i));
  }
  return res;
}

std::string outputFileStem(const std::string& name) {
  std::string s = name;
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  if (s.empty() || s == "." || s == "..") s = "_" + s;
  return s;
}

TensorStats tensorStats(const at::Tensor& t) {
  TensorStats s;
  s.numel = t.numel();
  if (s.numel == 0) return s;
  at::Tensor d = t.detach().to(at::kDouble);
  s.min = d.min().item<double>();
  s.max = d.max().item<double>();
  s.mean = d.mean().item<double>();
  return s;
}

Latency summarize(std::vector<double> ms) {
  Latency l;
  if (ms.empty()) return l;
  std::sort(ms.begin(), ms.end());
  size_t n = ms.size();
  l.median_ms = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
  l.mean_ms = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(n);
  return l;
}

std::string withCommas(int64_t n) {
  std::string s = std::to_string(n < 0 ? -n : n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return n < 0 ? "-" + s : s;
}

std::string humanBytes(int64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace gs::cli
