// Latency benchmark: gstick Executor vs ONNX Runtime on the same ONNX files (LeNet-5, ResNet-20,
// transformer block; batch 1 and 32) plus the executor's per-node overhead; writes a markdown
// table. Usage: latency_bench [--out FILE.md] [--threads T[,T...]] [--quick] [--no-fuse]
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <thread>

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

/// Top op types by share of time: "Conv 71%, BatchNormalization 9%".
std::string hotOps(gs::Executor& ex, const std::vector<at::Tensor>& in) {
  // Per node, the median over several profiled runs (a run hit by descheduling does not count),
  // then summed per op type.
  std::map<const gs::Node*, std::vector<double>> per_node;
  ex.setProfiling(true);
  for (int i = 0; i < 9; ++i) {
    ex.run(in);
    for (const auto& [node, s] : ex.profile()) per_node[node].push_back(s);
  }
  ex.setProfiling(false);
  std::map<std::string, double> by_op;
  for (auto& [node, ts] : per_node) by_op[node->opType()] += medianOf(ts);
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
    std::snprintf(buf, sizeof buf, "%s%s %.0f%%", i ? ", " : "", v[i].second.c_str(),
                  100 * v[i].first / total);
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
  for (int i = 0; i < n; ++i)
    x = g->addNode("Add", {x, c}, 1, "add" + std::to_string(i))->output(0);
  x->setDType(gs::DType::Float32);
  x->setShape(std::vector<gs::Dim>{1});
  g->addOutput(x);
  return g;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : "(unset)";
}

/// Sets ATen's and OpenBLAS's thread counts together. Debian's libopenblas0-pthread keeps its own
/// thread pool (sized from the core count), so with at::set_num_threads(1) GEMMs would still use
/// every core; ORT's intraOpNumThreads covers its GEMMs too, so this keeps the comparison fair.
/// Returns whether OpenBLAS was found.
bool setThreads(int n) {
  gs::setIntraOpThreads(n);
  return dlsym(RTLD_DEFAULT, "openblas_set_num_threads") != nullptr;
}

std::string loadAvg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a.empty() ? "n/a" : a + " " + b + " " + c;
}

struct Row {
  std::string model;
  int64_t batch;
  double gs_med, ort_med, gs_min, ort_min, max_rel;
  size_t runs;
  std::string hot;
};

struct Model {
  const char* name;
  std::unique_ptr<gs::Graph> g;
  std::string path;
};

/// ExecOptions::fuse for every gstick executor (`--no-fuse` turns eval-mode fusion off for A/B runs).
bool g_fuse = true;

constexpr int kRounds = 3;  // gstick and ORT alternate, so both see the same machine load

/// One table (all models x batch 1/32) at the current thread count.
std::vector<Row> measure(std::vector<Model>& models, int threads, double budget_ms,
                         const std::string& work) {
  std::vector<Row> rows;
  for (auto& m : models) {
    for (int64_t batch : {1, 32}) {
      std::vector<int64_t> shape;
      for (const gs::Dim& d : *m.g->inputs()[0]->shape())
        shape.push_back(d.isStatic() ? d.value : batch);
      auto gen = at::make_generator<at::CPUGeneratorImpl>(123);
      at::Tensor x = at::randn(shape, gen);
      gs::Executor ex(*m.g, {.fuse = g_fuse});
      auto t0 = Clock::now();
      auto ours = ex.run({x});
      double first = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      int per_round = std::max(2, repeatsFor(first, budget_ms) / kRounds);
      std::vector<double> gs_ms, ort_ms;
      double rel = 0;
      for (int round = 0; round < kRounds; ++round) {
        auto ort =
            gs::ort::runOrt(m.path, {{"input", x}}, work + "/ort", per_round, threads, round == 0);
        ort_ms.insert(ort_ms.end(), ort.times_ms.begin(), ort.times_ms.end());
        if (round == 0) {  // parity on this very input
          at::Tensor ref = ort.outputs.begin()->second.to(at::kDouble);
          rel = ((ours[0].to(at::kDouble) - ref).abs() / ref.abs().clamp_min(1.0))
                    .max()
                    .item<double>();
        }
        ex.run({x});  // warm-up after the pause
        for (int i = 0; i < per_round; ++i) {
          auto t = Clock::now();
          ex.run({x});
          gs_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t).count());
        }
      }
      Row r{m.name,
            batch,
            medianOf(gs_ms),
            medianOf(ort_ms),
            *std::min_element(gs_ms.begin(), gs_ms.end()),
            *std::min_element(ort_ms.begin(), ort_ms.end()),
            rel,
            gs_ms.size(),
            ""};
      if (batch == 32) r.hot = hotOps(ex, {x});
      std::fprintf(
          stderr,
          "[bench] threads %d, %s batch %lld: gstick %.3f ms, ORT %.3f ms (%zu runs each)\n",
          threads, m.name, static_cast<long long>(batch), r.gs_med, r.ort_med, r.runs);
      rows.push_back(r);
    }
  }
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = std::string(GS_SOURCE_DIR) + "/docs/benchmarks.md";
  std::vector<int> thread_list;
  double budget_ms = 1500;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--out") && i + 1 < argc) {
      out_path = argv[++i];
    } else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      std::stringstream ss(argv[++i]);
      for (std::string t; std::getline(ss, t, ',');)
        thread_list.push_back(std::max(1, std::atoi(t.c_str())));
    } else if (!std::strcmp(argv[i], "--no-fuse")) {
      g_fuse = false;
    } else if (!std::strcmp(argv[i], "--quick")) {
      budget_ms = 300;
    } else {
      std::fprintf(stderr, "usage: latency_bench [--out FILE.md] [--threads T[,T...]] [--quick] [--no-fuse]\n");
      return 2;
    }
  }
  try {
    gs::initRuntime();
    if (thread_list.empty()) thread_list.push_back(at::get_num_threads());
    std::string why = gs::ort::ortMissingReason();
    GS_CHECK(why.empty(), why);
    std::string work =
        std::filesystem::temp_directory_path() / ("gstick_bench_" + std::to_string(::getpid()));
    std::filesystem::create_directories(work);
    std::string load_before = loadAvg();

    std::vector<Model> models;
    models.push_back({"LeNet-5", gs::zoo::lenet5(), ""});
    models.push_back({"ResNet-20 (1x28x28)", gs::zoo::resnet20(), ""});
    models.push_back({"Transformer block (T=16, d=64)", gs::zoo::transformerBlock(), ""});
    for (size_t i = 0; i < models.size(); ++i) {
      models[i].path = work + "/model" + std::to_string(i) + ".onnx";
      gs::exportOnnxFile(*models[i].g, models[i].path);
    }

    std::time_t now = std::time(nullptr);
    char date[64];
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    std::ostringstream md;
    md << "# gstick latency benchmarks\n\n"
       << "Generated by `make bench` (runs `bash scripts/bench.sh build`, which runs "
          "`build/bench/latency_bench`;\n"
       << "by default one table at 1 thread and one at all cores; `--threads 1,2,4` picks others). "
          "Rerun it "
          "to refresh this\n"
       << "file: the numbers below are from the last run, written by the benchmark, not edited by "
          "hand.\n\n"
       << "- Both runtimes execute the **same ONNX file** (built in C++ by `bench/model_zoo.h`, "
          "exported with\n"
       << "  `gs::exportOnnxFile`), on the same input, in the same run. ORT = onnxruntime-node "
          "1.30 CPU via\n"
       << "  `tools/ort/ort_run.js` (graphOptimizationLevel=all, sequential execution, same "
          "intra-op threads).\n"
       << "  ORT times are measured inside node around `session.run` (they include the JS "
          "binding).\n"
       << "- Timing: " << kRounds
       << " alternating rounds (ORT, then gstick) per row, each after a warm-up run;\n"
       << "  median and minimum over all timed runs. `runs` = timed runs per runtime.\n"
       << "- `max rel diff` = max |gstick - ORT| / max(1, |ORT|) on the benchmark input.\n"
       << "- Last column: share of gstick's batch-32 time per op type (Executor::setProfiling,\n"
          "  per-node median of 9 runs).\n"
       << "- Environment: OMP_NUM_THREADS=" << env("OMP_NUM_THREADS")
       << ", OMP_WAIT_POLICY=" << env("OMP_WAIT_POLICY")
       << ". scripts/bench.sh defaults the wait policy to passive: on an oversubscribed\n"
       << "  machine GNU OpenMP's spinning workers starve each other and single runs stall for "
          "100+ ms.\n"
       << "- Machine: " << std::thread::hardware_concurrency() << " hardware threads; " << date
       << "; load average before the run: " << load_before << ".\n";

    char buf[512];
    for (int threads : thread_list) {
      bool blas = setThreads(threads);
      std::vector<Row> rows = measure(models, threads, budget_ms, work);
      md << "\n## " << threads << " intra-op thread" << (threads > 1 ? "s" : "")
         << (blas ? " (ATen and OpenBLAS)" : "") << "\n\n"
         << "| model | batch | gstick median (ms) | ORT median (ms) | gstick / ORT (median) | "
            "gstick / ORT (min) "
            "| max rel diff | runs | gstick time by op (batch 32) |\n"
         << "|---|---:|---:|---:|---:|---:|---:|---:|---|\n";
      for (const Row& r : rows) {
        std::snprintf(buf, sizeof buf,
                      "| %s | %lld | %.3f | %.3f | %.2fx | %.2fx | %.1e | %zu | %s |\n",
                      r.model.c_str(), static_cast<long long>(r.batch), r.gs_med, r.ort_med,
                      r.gs_med / r.ort_med, r.gs_min / r.ort_min, r.max_rel, r.runs, r.hot.c_str());
        md << buf;
      }
      // Per-node overhead: 1000 Adds on one element, so kernel work is negligible.
      const int kNodes = 1000;
      auto chain = addChain(kNodes);
      std::string chain_path = work + "/add_chain.onnx";
      gs::exportOnnxFile(*chain, chain_path);
      gs::Executor cex(*chain);
      at::Tensor one = at::ones({1});
      double chain_ms = timeExecutor(cex, {one}, 50);
      auto ort_chain =
          gs::ort::runOrt(chain_path, {{"input", one}}, work + "/ort_chain", 50, threads, false);
      std::snprintf(
          buf, sizeof buf,
          "\nPer-node executor overhead (chain of %d `Add` nodes on a 1-element tensor): "
          "**%.2f us/node** in gstick (%.3f ms per run); ORT runs the same chain in %.3f ms "
          "(%.2f us/node).\n",
          kNodes, 1000.0 * chain_ms / kNodes, chain_ms, ort_chain.median_ms,
          1000.0 * ort_chain.median_ms / kNodes);
      md << buf;
    }
    md << "\nLoad average after the run: " << loadAvg() << ".\n";
    // Hand-written analysis below the notes marker survives reruns.
    const std::string kNotes = "\n<!-- notes: kept across reruns -->\n";
    if (std::filesystem::exists(out_path)) {
      std::string old = gs::readFile(out_path);
      auto pos = old.find(kNotes);
      if (pos != std::string::npos) md << old.substr(pos);
    }
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
