// `gstick run MODEL.onnx`: runs a model on given or seeded inputs, saves outputs, reports latency.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "io/npy.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace gs::cli {
namespace {

struct RunOptions {
  std::string model;
  std::string output_dir;
  int repeat = 1;
  int threads = 0;
  InputOptions inputs;
};

int runRun(const RunOptions& o) {
  if (o.threads > 0) gs::setIntraOpThreads(o.threads);
  auto g = loadModel(o.model);
  std::vector<at::Tensor> inputs = makeInputs(*g, o.inputs);  // input errors before op errors
  Executor ex(*g);

  namespace fs = std::filesystem;
  std::vector<std::string> files;
  if (!o.output_dir.empty()) {
    // Create the folder and resolve file names before running, so a bad folder fails fast.
    std::error_code ec;
    fs::create_directories(o.output_dir, ec);
    GS_CHECK(!ec && fs::is_directory(o.output_dir), "cannot create output directory '",
             o.output_dir, "'", ec ? ": " + ec.message() : std::string());
    std::set<std::string> seen;
    for (const Value* v : g->outputs()) {
      std::string stem = outputFileStem(v->name());
      GS_CHECK(seen.insert(stem).second, "outputs '", v->name(),
               "' and another output map to the same file ", stem, ".npy");
      files.push_back((fs::path(o.output_dir) / (stem + ".npy")).string());
    }
  }

  // Warm-up run: its outputs are the ones reported and written.
  std::vector<at::Tensor> outs = ex.run(inputs);
  std::vector<double> ms;
  for (int r = 0; r < o.repeat; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    ex.run(inputs);
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }

  for (size_t i = 0; i < outs.size(); ++i) {
    const Value* v = g->outputs()[i];
    const at::Tensor& t = outs[i];
    TensorStats s = tensorStats(t);
    std::printf("%-24s %-20s", v->name().c_str(),
                typeString(fromScalarType(t.scalar_type()), shapeOf(t)).c_str());
    if (s.numel > 0)
      std::printf(" min %.6g  max %.6g  mean %.6g", s.min, s.max, s.mean);
    else
      std::printf(" (empty)");
    if (!files.empty()) {
      writeNpy(files[i], t);
      std::printf("  -> %s", files[i].c_str());
    }
    std::printf("\n");
  }
  Latency l = summarize(ms);
  int nt = at::get_num_threads();
  std::printf(
      "latency: median %.3f ms, mean %.3f ms over %d run%s (after 1 warm-up), %d thread%s\n",
      l.median_ms, l.mean_ms, o.repeat, o.repeat == 1 ? "" : "s", nt, nt == 1 ? "" : "s");
  return 0;
}

}  // namespace

Command addRunCommand(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand(
      "run",
      "Run a model on .npy or seeded random inputs; print output stats and latency, save outputs");
  cmd->add_option("model", o->model, "ONNX model file")->required()->type_name("MODEL.onnx");
  addInputOptions(*cmd, o->inputs, true);
  cmd->add_option("-o,--output-dir", o->output_dir,
                  "Write each output as DIR/<output name>.npy (created if missing)")
      ->type_name("DIR");
  cmd->add_option("-n,--repeat", o->repeat, "Timed runs after one warm-up run")
      ->check(CLI::Range(1, 1 << 30))
      ->capture_default_str();
  cmd->add_option("--threads", o->threads,
                  "Intra-op threads for ATen and OpenBLAS (default: OMP_NUM_THREADS or all cores)")
      ->check(CLI::Range(1, 1 << 30));
  return {cmd, [o] { return runRun(*o); }};
}

}  // namespace gs::cli
