// Runs an ONNX model in ONNX Runtime via tools/ort/ort_run.js (node) and reads its outputs back;
// shared by the ORT parity tests, the latency benchmark and the demo.
#pragma once
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>
#include <sys/wait.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "io/npy.h"
#include "ir/graph.h"
#include "support/error.h"

namespace gs::ort {

/// Folder holding ort_run.js and node_modules/onnxruntime-node: $GS_ORT_DIR, else
/// <source>/tools/ort.
inline std::string ortDir() {
  if (const char* e = std::getenv("GS_ORT_DIR"); e && *e) return e;
  return std::string(GS_SOURCE_DIR) + "/tools/ort";
}

/// Empty if ORT is usable, else a message telling how to install it.
inline std::string ortMissingReason() {
  namespace fs = std::filesystem;
  std::string d = ortDir();
  if (!fs::exists(d + "/ort_run.js")) return "ONNX Runtime runner " + d + "/ort_run.js not found";
  if (!fs::exists(d + "/node_modules/onnxruntime-node/package.json"))
    return "onnxruntime-node is not installed in " + d +
           "/node_modules: run scripts/install-deps.sh";
  if (std::system("node --version >/dev/null 2>&1") != 0)
    return "node is not on PATH: run scripts/install-deps.sh";
  return "";
}

/// Same naming rule as `gstick run` and ort_run.js: chars outside [A-Za-z0-9._-] become '_'.
inline std::string fileStem(const std::string& name) {
  std::string s = name;
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  if (s.empty() || s == "." || s == "..") s = "_" + s;
  return s;
}

inline std::string shellQuote(const std::string& s) {
  std::string r = "'";
  for (char c : s) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return r + "'";
}

struct OrtResult {
  std::map<std::string, at::Tensor> outputs;  // by output name (empty when write = false)
  double median_ms = 0, mean_ms = 0;
  std::vector<double> times_ms;  // every timed run
};

/// Runs a node script command line (stderr already redirected to `err_file`) and parses the JSON
/// line it prints. Throws gs::Error with the script's first stderr line when it fails.
inline nlohmann::json runNodeJson(const std::string& cmd, const std::string& err_file,
                                  const std::string& model) {
  FILE* p = ::popen(cmd.c_str(), "r");
  GS_CHECK(p, "cannot start node");
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = ::pclose(p);
  if (status != 0) {
    std::ifstream ef(err_file);
    std::string line;
    std::getline(ef, line);
    GS_FAIL("ONNX Runtime failed on ", model, ": ",
            line.empty() ? "exit status " + std::to_string(status) : line);
  }
  return nlohmann::json::parse(out.substr(out.find('{')));
}

/// Runs `model` in ORT on `inputs` (written as .npy into work_dir/in), reads outputs from
/// work_dir/out. Throws gs::Error with ORT's stderr line on failure.
inline OrtResult runOrt(const std::string& model, const std::map<std::string, at::Tensor>& inputs,
                        const std::string& work_dir, int repeat = 1, int threads = 2,
                        bool write = true) {
  namespace fs = std::filesystem;
  std::string why = ortMissingReason();
  GS_CHECK(why.empty(), why);
  fs::create_directories(work_dir + "/in");
  std::string cmd = "node " + shellQuote(ortDir() + "/ort_run.js") + " " + shellQuote(model) +
                    " --out-dir " + shellQuote(work_dir + "/out") + " --repeat " +
                    std::to_string(repeat) + " --threads " + std::to_string(threads) +
                    (write ? "" : " --no-write");
  for (const auto& [name, t] : inputs) {
    std::string f = work_dir + "/in/" + fileStem(name) + ".npy";
    writeNpy(f, t);
    cmd += " --input " + shellQuote(name + "=" + f);
  }
  std::string err_file = work_dir + "/ort_stderr.txt";
  cmd += " 2>" + shellQuote(err_file);
  auto j = runNodeJson(cmd, err_file, model);
  OrtResult r;
  r.median_ms = j.at("median_ms").get<double>();
  r.mean_ms = j.at("mean_ms").get<double>();
  r.times_ms = j.at("times_ms").get<std::vector<double>>();
  if (write)
    for (const auto& [name, info] : j.at("outputs").items())
      r.outputs[name] = readNpy(work_dir + "/out/" + fileStem(name) + ".npy");
  return r;
}

/// Result of ort_eval.js: a classifier evaluated on a labelled .npy dataset in ORT.
struct OrtEvalResult {
  int64_t samples = 0, correct = 0;
  double median_ms = 0;  ///< per batch
};

/// Evaluates classifier `model` in ORT on inputs/labels .npy files (batch `batch`); writes all
/// logits to `logits_npy` when non-empty. Throws gs::Error with ORT's stderr line on failure.
inline OrtEvalResult evalOrt(const std::string& model, const std::string& inputs_npy,
                             const std::string& labels_npy, const std::string& logits_npy = "",
                             int batch = 256, int threads = 2) {
  std::string why = ortMissingReason();
  GS_CHECK(why.empty(), why);
  std::string err_file = inputs_npy + ".ort_stderr.txt";
  std::string cmd = "node " + shellQuote(ortDir() + "/ort_eval.js") + " " + shellQuote(model) +
                    " --inputs " + shellQuote(inputs_npy) + " --labels " + shellQuote(labels_npy) +
                    " --batch " + std::to_string(batch) + " --threads " + std::to_string(threads) +
                    (logits_npy.empty() ? "" : " --logits " + shellQuote(logits_npy)) + " 2>" +
                    shellQuote(err_file);
  auto j = runNodeJson(cmd, err_file, model);
  OrtEvalResult r;
  r.samples = j.at("samples").get<int64_t>();
  r.correct = j.at("correct").get<int64_t>();
  r.median_ms = j.at("median_ms").get<double>();
  return r;
}

}  // namespace gs::ort
