// Training throughput benchmark: gstick's Trainer vs PyTorch eager (scripts/train_bench.py, run by
// Debian's /usr/bin/python3) on the same architectures, batch sizes, optimizers and thread
// counts, measured alternately in one run; prints a table with the gstick/PyTorch ratio.
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <sys/resource.h>

#include "data/dataset.h"
#include "data/text_dataset.h"
#include "models/zoo.h"
#include "runtime/executor.h"
#include "support/error.h"
#include "train/trainer.h"

namespace {

using Clock = std::chrono::steady_clock;

/// One benchmarked architecture: zoo name + options, batch, input kind.
struct BenchModel {
  std::string name;   // zoo name (and scripts/train_bench.py --model)
  std::string label;  // table label
  gs::models::ModelOptions options;
  int64_t batch;
  bool lm;
};

// The reference tiny Llama's configuration (models/README.md): ~0.8M params, context 128.
const gs::models::ModelOptions kLlama = {
    {"dim", 128}, {"layers", 4}, {"heads", 4}, {"kv_heads", 2}, {"ffn", 352}, {"max_seq", 128}};
constexpr int64_t kSeq = 128;

/// Process CPU time (user + system, all threads), seconds.
double cpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

/// Records wall and CPU time at the end of the last warm-up step and of the last step.
struct StepTimer : gs::Callback {
  int64_t warmup = 0;
  Clock::time_point t0, t1;
  double c0 = 0, c1 = 0;
  void onStepEnd(gs::TrainContext& ctx) override {
    if (ctx.step == warmup) {
      t0 = Clock::now();
      c0 = cpuSeconds();
    }
    t1 = Clock::now();
    c1 = cpuSeconds();
  }
};

/// Samples per wall-clock second and per CPU second (all threads) of one measurement.
struct Rate {
  double wall = 0, cpu = 0;
};

/// gstick: rates of Trainer::fit over warmup + steps batches of fixed random data.
Rate gstickRate(const BenchModel& m, int64_t warmup, int64_t steps) {
  auto g = gs::models::buildModel(m.name, m.options, 0);
  const int64_t n = m.batch * (warmup + steps);
  std::shared_ptr<gs::Dataset> data;
  if (m.lm) {  // n non-overlapping next-token samples of a random byte stream
    data = std::make_shared<gs::TokenSequenceDataset>(
        at::randint(0, 256, {n * kSeq + 1}, at::kLong), kSeq, kSeq, "random");
  } else {
    data = std::make_shared<gs::TensorDataset>(at::rand({n, 1, 28, 28}),
                                               at::randint(0, 10, {n}, at::kLong), "random");
  }
  gs::TrainerOptions o;
  o.epochs = 1;
  o.loader.batchSize = m.batch;
  o.loader.shuffle = false;
  o.progress = false;
  // Same optimizers as scripts/train_bench.py (weight decay on every parameter, no schedule).
  o.optimizer = m.lm ? gs::OptimizerConfig::adamw(1e-3, 0.1, 0.9, 0.95)
                     : gs::OptimizerConfig::sgd(0.01, 0.9, 5e-4);
  gs::Trainer t(*g, o);
  auto timer = std::make_shared<StepTimer>();
  timer->warmup = warmup;
  t.addCallback(timer);
  t.fit(data);
  double s = std::chrono::duration<double>(timer->t1 - timer->t0).count();
  const double n_s = static_cast<double>(m.batch * steps);
  return {n_s / s, n_s / (timer->c1 - timer->c0)};
}

/// Number after `"key": ` in a JSON line.
double jsonNumber(const std::string& out, const std::string& key, const std::string& cmd) {
  const std::string k = "\"" + key + "\": ";
  size_t p = out.find(k);
  GS_CHECK(p != std::string::npos, "no ", key, " in output of ", cmd, ": ", out);
  return std::atof(out.c_str() + p + k.size());
}

/// PyTorch eager: runs scripts/train_bench.py and parses its JSON line.
Rate torchRate(const std::string& python, const BenchModel& m, int threads, int64_t warmup,
                 int64_t steps) {
  std::ostringstream cmd;
  // Debian's torch calls OpenBLAS (pthread build), whose pool defaults to all cores and is not
  // resized by torch.set_num_threads: pin it to the same count gstick's setIntraOpThreads uses.
  cmd << "OPENBLAS_NUM_THREADS=" << threads << " OMP_NUM_THREADS=" << threads << " " << python
      << " " << GS_SOURCE_DIR << "/scripts/train_bench.py --model " << m.name
      << " --threads " << threads << " --batch " << m.batch << " --steps " << steps
      << " --warmup " << warmup << " --seq " << kSeq;
  if (m.lm) {
    cmd << " --llama ";
    bool first = true;
    for (auto& [k, v] : m.options)
      if (k != "max_seq") {
        cmd << (first ? "" : ",") << k << "=" << static_cast<int64_t>(v);
        first = false;
      }
  }
  FILE* p = ::popen(cmd.str().c_str(), "r");
  GS_CHECK(p, "cannot run ", cmd.str());
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  int rc = ::pclose(p);
  GS_CHECK(rc == 0, "'", cmd.str(), "' failed (exit ", rc, ")");
  return {jsonNumber(out, "samples_per_s", cmd.str()),
          jsonNumber(out, "samples_per_cpu_s", cmd.str())};
}

std::string loadAvg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a.empty() ? "n/a" : a + " " + b + " " + c;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> thread_list;
  int64_t steps = 30, warmup = 5;
  std::string python = "/usr/bin/python3", only, out_path;
  for (int i = 1; i < argc; ++i) {
    auto next = [&] { return i + 1 < argc ? argv[++i] : (char*)""; };
    if (!std::strcmp(argv[i], "--threads")) {
      std::stringstream ss(next());
      for (std::string t; std::getline(ss, t, ',');) thread_list.push_back(std::max(1, std::atoi(t.c_str())));
    } else if (!std::strcmp(argv[i], "--steps")) {
      steps = std::max(1, std::atoi(next()));
    } else if (!std::strcmp(argv[i], "--warmup")) {
      warmup = std::max(1, std::atoi(next()));
    } else if (!std::strcmp(argv[i], "--models")) {
      only = next();
    } else if (!std::strcmp(argv[i], "--python")) {
      python = next();
    } else if (!std::strcmp(argv[i], "--out")) {
      out_path = next();
    } else {
      std::fprintf(stderr,
                   "usage: train_bench [--threads T[,T...]] [--steps N] [--warmup N] "
                   "[--models lenet5,resnet20,llama-tiny] [--python PATH] [--out FILE.md]\n");
      return 2;
    }
  }
  try {
    gs::initRuntime();
    if (thread_list.empty()) thread_list = {1, 2};
    std::vector<BenchModel> all = {
        {"lenet5", "LeNet-5", {}, 128, false},
        {"resnet20", "ResNet-20", {}, 128, false},
        {"llama-tiny", "tiny Llama (0.8M, T=128)", kLlama, 16, true},
    };
    std::vector<BenchModel> models;
    for (auto& m : all)
      if (only.empty() || ("," + only + ",").find("," + m.name + ",") != std::string::npos)
        models.push_back(m);
    GS_CHECK(!models.empty(), "--models selects nothing (known: lenet5, resnet20, llama-tiny)");
    std::string load_before = loadAvg();
    std::ostringstream table;
    table << "| Model | batch | threads | gstick samples/s | PyTorch samples/s | gstick / PyTorch "
             "| gstick samples/CPU-s | PyTorch samples/CPU-s | gstick / PyTorch (CPU) |\n"
          << "|---|---|---|---|---|---|---|---|---|\n";
    std::printf("training throughput, %lld warm-up + %lld timed steps per run, load %s\n",
                static_cast<long long>(warmup), static_cast<long long>(steps), load_before.c_str());
    for (const BenchModel& m : models) {
      for (int t : thread_list) {
        gs::setIntraOpThreads(t);
        Rate g = gstickRate(m, warmup, steps);
        Rate p = torchRate(python, m, t, warmup, steps);
        char row[320];
        std::snprintf(row, sizeof row,
                      "| %s | %lld | %d | %.1f | %.1f | %.2fx | %.1f | %.1f | %.2fx |\n",
                      m.label.c_str(), static_cast<long long>(m.batch), t, g.wall, p.wall,
                      g.wall / p.wall, g.cpu, p.cpu, g.cpu / p.cpu);
        table << row;
        std::printf("%s", row);
        std::fflush(stdout);
      }
    }
    std::printf("\n%s", table.str().c_str());
    std::printf("samples/s: wall clock; samples/CPU-s: per second of process CPU time (all "
                "threads), the fairer figure on a shared machine\n");
    std::printf("load average before %s, after %s; LM samples are sequences of %lld tokens\n",
                load_before.c_str(), loadAvg().c_str(), static_cast<long long>(kSeq));
    if (!out_path.empty()) {
      std::ofstream f(out_path);
      f << table.str();
      GS_CHECK(f.good(), "cannot write ", out_path);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_bench: error: %s\n", gs::firstLine(e.what()).c_str());
    return 1;
  }
  return 0;
}
