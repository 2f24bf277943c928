// Latency benchmark: gstick Executor vs ONNX Runtime on the same ONNX files (LeNet-5, ResNet-20,
// transformer block; batch 1 and 32) plus the executor's per-node overhead; writes a markdown table.
// Usage: latency_bench [--out FILE.md] [--threads T] [--quick]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <thread>
#include <unistd.h>
#include <filesystem>

#include "io/onnx.h"
#include "model_zoo.h"
#include "ort_runner.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "support/file_util.h"

namespace {

using Clock = std::chrono::steady_clock;

double medianOf(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Median ms of `repeat` runs after one warm-up.
double timeExecutor(gs::Executor& ex, const std::vector<at::Tensor>& in, int repeat) {
  ex.run(in);
  std::vector<double> ms;
  for (int i = 0; i < repeat; ++i) {
    auto t0 = Clock::now();
    ex.run(in);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return medianOf(ms);
}

/// Runs chosen so a config takes roughly `budget_ms`, clamped to [5, 200].
int repeatsFor(double one_run_ms, double budget_ms) {
  return std::clamp(static_cast<int>(budget_ms / std::max(one_run_ms, 1e-3)), 5, 200);
}

/// Top op types by total time over a few profiled runs: "Conv 71%, BatchNormalization 9%".
std::string hotOps(gs::Executor& ex, const std::vector<at::Tensor>& in) {
  std::map<std::string, double> by_op;
  ex.setProfiling(true);
  for (int i = 0; i < 5; ++i) {
    ex.run(in);
    for (const auto& [node, s] : ex.profile()) by_op[node->opType()] += s;
  }
  ex.setProfiling(false);
  std::vector<std::pair<double, std::string>> v;
  double total = 0;
  for (const auto& [op, s] : by_op) {
    v.emplace_back(s, op);
    total += s;
  }
  std::sort(v.rbegin(), v.rend());
  std::ostringstream os;
  for (size_t i = 0; i < v.size() && i < 3; ++i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%s %.0f%%", i ? ", " : "", v[i].second.c_str(), 100 * v[i].first / total);
    os << buf;
  }
  return os.str();
}

/// A chain of `n` Add nodes on a 1-element tensor: measures pure dispatch overhead per node.
std::unique_ptr<gs::Graph> addChain(int n) {
  auto g = std::make_unique<gs::Graph>();
  g->name = "add_chain";
  gs::Value* x = g->addInput("input", gs::DType::Float32, std::vector<gs::Dim>{1});
  gs::Value* c = g->addParam("c", at::full({1}, 1e-3f), false);
  for (int i = 0; i < n; ++i) x = g->addNode("Add", {x, c}, 1, "add" + std::to_string(i))->output(0);
  x->setDType(gs::DType::Float32);
  x->setShape(std::vector<gs::Dim>{1});
  g->addOutput(x);
  return g;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : "(unset)";
}

struct Row {
  std::string model;
  int64_t batch;
  double gs_ms, ort_ms, max_rel;
  int repeat;
  std::string hot;
};

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = std::string(GS_SOURCE_DIR) + "/docs/benchmarks.md";
  int threads = 0;
  double budget_ms = 1500;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--out") && i + 1 < argc) out_path = argv[++i];
    else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--quick")) budget_ms = 300;
    else {
      std::fprintf(stderr, "usage: latency_bench [--out FILE.md] [--threads T] [--quick]\n");
      return 2;
    }
  }
  try {
    gs::initRuntime();
    if (threads > 0) at::set_num_threads(threads);
    threads = at::get_num_threads();
    std::string why = gs::ort::ortMissingReason();
    GS_CHECK(why.empty(), why);
    std::string work = std::filesystem::temp_directory_path() / ("gstick_bench_" + std::to_string(::getpid()));
    std::filesystem::create_directories(work);

    struct Model {
      const char* name;
      std::unique_ptr<gs::Graph> g;
    };
    std::vector<Model> models;
    models.push_back({"LeNet-5", gs::zoo::lenet5()});
    models.push_back({"ResNet-20 (1x28x28)", gs::zoo::resnet20()});
    models.push_back({"Transformer block (T=16, d=64)", gs::zoo::transformerBlock()});

    std::vector<Row> rows;
    int mi = 0;
    for (auto& m : models) {
      std::string path = work + "/model" + std::to_string(mi++) + ".onnx";
      gs::exportOnnxFile(*m.g, path);
      for (int64_t batch : {1, 32}) {
        std::vector<int64_t> shape;
        for (const gs::Dim& d : *m.g->inputs()[0]->shape()) shape.push_back(d.isStatic() ? d.value : batch);
        auto gen = at::make_generator<at::CPUGeneratorImpl>(123);
        at::Tensor x = at::randn(shape, gen);
        gs::Executor ex(*m.g);
        auto t0 = Clock::now();
        auto ours = ex.run({x});
        double first = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        int repeat = repeatsFor(first, budget_ms);
        // Parity on this very input (ORT writes its outputs once, then times `repeat` runs).
        auto ort = gs::ort::runOrt(path, {{"input", x}}, work + "/ort", repeat, threads, true);
        double gs_ms = timeExecutor(ex, {x}, repeat);
        at::Tensor ref = ort.outputs.begin()->second.to(at::kDouble);
        double rel = ((ours[0].to(at::kDouble) - ref).abs() / ref.abs().clamp_min(1.0)).max().item<double>();
        Row r{m.name, batch, gs_ms, ort.median_ms, rel, repeat, ""};
        if (batch == 32 && gs_ms > 1.5 * ort.median_ms) r.hot = hotOps(ex, {x});
        std::fprintf(stderr, "[bench] %s batch %lld: gstick %.3f ms, ORT %.3f ms (%d runs)\n", m.name,
                     static_cast<long long>(batch), gs_ms, ort.median_ms, repeat);
        rows.push_back(r);
      }
    }

    // Per-node overhead: 1000 Adds on one element, so kernel work is negligible.
    const int kNodes = 1000;
    auto chain = addChain(kNodes);
    std::string chain_path = work + "/add_chain.onnx";
    gs::exportOnnxFile(*chain, chain_path);
    gs::Executor cex(*chain);
    at::Tensor one = at::ones({1});
    double chain_ms = timeExecutor(cex, {one}, 50);
    auto ort_chain = gs::ort::runOrt(chain_path, {{"input", one}}, work + "/ort_chain", 50, threads, false);

    std::ostringstream md;
    std::time_t now = std::time(nullptr);
    char date[64];
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    md << "# gstick latency benchmarks\n\n"
       << "Generated by `make bench` (runs `bash scripts/bench.sh build`, which runs `build/bench/latency_bench`).\n"
       << "Rerun that command to refresh this file; numbers below are from the last run, not edited by hand.\n\n"
       << "- Both runtimes execute the **same ONNX file** (built in C++ by `bench/model_zoo.h`, exported with\n"
       << "  `gs::exportOnnxFile`), on the same input, in the same run. ORT = onnxruntime-node 1.30 CPU via\n"
       << "  `tools/ort/ort_run.js` (graphOptimizationLevel=all, sequential execution).\n"
       << "- Median wall time of N runs after one warm-up; intra-op threads = " << threads << " for both.\n"
       << "- `max rel diff` = max |gstick - ORT| / max(1, |ORT|) on the benchmark input.\n"
       << "- Environment: OMP_NUM_THREADS=" << env("OMP_NUM_THREADS") << ", OMP_WAIT_POLICY=" << env("OMP_WAIT_POLICY")
       << " (scripts/bench.sh defaults the wait policy to passive: on an oversubscribed machine GNU OpenMP's\n"
       << "  spinning workers starve each other and single runs stall for 100+ ms).\n"
       << "- Machine: " << std::thread::hardware_concurrency() << " hardware threads; date " << date
       << ". The machine may be shared, so expect noise of tens of percent.\n\n"
       << "| model | batch | gstick median (ms) | ORT median (ms) | gstick / ORT | max rel diff | runs | hot ops (if > 1.5x) |\n"
       << "|---|---:|---:|---:|---:|---:|---:|---|\n";
    char buf[512];
    for (const Row& r : rows) {
      std::snprintf(buf, sizeof buf, "| %s | %lld | %.3f | %.3f | %.2fx | %.1e | %d | %s |\n", r.model.c_str(),
                    static_cast<long long>(r.batch), r.gs_ms, r.ort_ms, r.gs_ms / r.ort_ms, r.max_rel, r.repeat,
                    r.hot.empty() ? "" : r.hot.c_str());
      md << buf;
    }
    std::snprintf(buf, sizeof buf,
                  "\nPer-node executor overhead (chain of %d `Add` nodes on a 1-element tensor): "
                  "**%.2f us/node** in gstick (%.3f ms per run); ORT runs the same chain in %.3f ms "
                  "(%.2f us/node).\n",
                  kNodes, 1000.0 * chain_ms / kNodes, chain_ms, ort_chain.median_ms, 1000.0 * ort_chain.median_ms / kNodes);
    md << buf;
    std::cout << md.str();
    gs::writeFileAtomic(out_path, md.str());
    std::fprintf(stderr, "[bench] wrote %s\n", out_path.c_str());
    std::filesystem::remove_all(work);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "latency_bench: error: %s\n", gs::firstLine(e.what()).c_str());
    return 1;
  }
}
