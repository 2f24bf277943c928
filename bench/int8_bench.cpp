// Int8 benchmark: fp32 vs QDQ-int8 latency in gstick (real int8 kernels, and the float QDQ
// reference path) and ONNX Runtime on the same QDQ models; optional Fashion-MNIST accuracy and
// int8 fidelity. Usage:
//   int8_bench [--threads T] [--runs R] [--models lenet5,resnet20,mobilenetv2] [--batches 1,32]
//              [--accuracy N] [--no-ort] [--signed] [--profile] [--work DIR]
// Trained models/<name>-fmnist.onnx are used when present, else seeded zoo models; QDQ graphs
// are what `gstick compress --algo ptq` writes (static min-max W8A8, per-channel weights, int32
// biases), calibrated on 256 Fashion-MNIST training images (or seeded uniform inputs without the
// dataset).
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sys/resource.h>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "algo/registry.h"
#include "data/dataset.h"
#include "io/onnx.h"
#include "models/zoo.h"
#include "ort_runner.h"
#include "runtime/executor.h"
#include "runtime/int8_kernels.h"
#include "support/error.h"

namespace {

using Clock = std::chrono::steady_clock;

double medianOf(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// CPU time of the whole process (all threads) in ms: on a shared, oversubscribed machine the
/// wall clock mostly measures how long the scheduler parks the process, CPU time the work done.
double cpuMs() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/// CPU time (user + system) of terminated, waited-for child processes, in ms.
double childCpuMs() {
  rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  auto ms = [](const timeval& t) { return t.tv_sec * 1e3 + t.tv_usec * 1e-3; };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

struct OrtTiming {
  double cpu_ms = 0;   // per run: CPU of a (2 + n)-run process minus a 2-run process, / n
  double wall_ms = 0;  // ORT's own median wall time per run
};

/// ONNX Runtime per-run CPU time (node start-up and session creation cancel out between the two
/// processes) and its reported median wall time.
OrtTiming timeOrt(const std::string& model, const at::Tensor& x, const std::string& dir, int runs,
                  int threads) {
  double c0 = childCpuMs();
  auto r0 = gs::ort::runOrt(model, {{"input", x}}, dir, 2, threads, false);
  double c1 = childCpuMs();
  // Enough runs (~2 s of work) that start-up noise between the two processes stays small.
  int n = std::clamp(static_cast<int>(2000.0 / std::max(r0.median_ms, 0.01)), runs, 5000);
  auto r = gs::ort::runOrt(model, {{"input", x}}, dir, 2 + n, threads, false);
  double c2 = childCpuMs();
  return {((c2 - c1) - (c1 - c0)) / n, r.median_ms};
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> r;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');)
    if (!t.empty()) r.push_back(t);
  return r;
}

std::unique_ptr<gs::Graph> loadModel(const std::string& name, std::string* source) {
  std::string path = std::string(GS_SOURCE_DIR) + "/models/" + name + "-fmnist.onnx";
  if (std::filesystem::exists(path)) {
    *source = "models/" + name + "-fmnist.onnx";
    return gs::importOnnxFile(path);
  }
  *source = "zoo (seeded, untrained)";
  if (name == "lenet5") return gs::models::buildLeNet5({}, 1);
  if (name == "resnet20") return gs::models::buildResNet20({}, 1);
  if (name == "mobilenetv2") return gs::models::buildMobileNetV2({}, 1);
  GS_FAIL("unknown model '", name, "' (lenet5, resnet20, mobilenetv2)");
}

/// Executor with the int8 fusions on or off (GS_INT8_FUSION is read when the plan is built).
std::unique_ptr<gs::Executor> makeExecutor(const gs::Graph& g, bool int8) {
  setenv("GS_INT8_FUSION", int8 ? "1" : "0", 1);
  auto ex = std::make_unique<gs::Executor>(g);
  unsetenv("GS_INT8_FUSION");
  return ex;
}

/// Per-step median times of the int8 plan (fused groups under their anchor node).
void printProfile(gs::Executor& ex, const std::vector<at::Tensor>& in) {
  ex.setProfiling(true);
  std::map<std::string, std::vector<double>> t;
  std::vector<std::string> order;
  std::vector<double> wall;
  for (int r = 0; r < 9; ++r) {
    auto t0 = Clock::now();
    ex.run(in);
    wall.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    for (const auto& [node, sec] : ex.profile()) {
      std::string k = node->name() + " (" + node->opType() + ")";
      if (!t.count(k)) order.push_back(k);
      t[k].push_back(sec * 1e3);
    }
  }
  ex.setProfiling(false);
  double total = 0;
  for (const auto& k : order) {
    total += medianOf(t[k]);
    std::printf("    %-50s %.3f ms\n", k.c_str(), medianOf(t[k]));
  }
  std::printf("    sum of step medians: %.3f ms, run median %.3f ms\n", total, medianOf(wall));
}

}  // namespace

int main(int argc, char** argv) try {
  int threads = 1, runs = 30, accuracy = 0;
  bool ort = true, is_signed = false, profile = false;
  std::vector<std::string> names{"lenet5", "resnet20", "mobilenetv2"};
  std::vector<int64_t> batches{1, 32};
  std::string work = "/tmp/gs_int8_bench";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      GS_CHECK(i + 1 < argc, a, " needs a value");
      return argv[++i];
    };
    if (a == "--threads") threads = std::stoi(next());
    else if (a == "--runs") runs = std::stoi(next());
    else if (a == "--models") names = split(next());
    else if (a == "--batches") {
      batches.clear();
      for (auto& b : split(next())) batches.push_back(std::stoll(b));
    } else if (a == "--accuracy") accuracy = std::stoi(next());
    else if (a == "--no-ort") ort = false;
    else if (a == "--signed") is_signed = true;
    else if (a == "--profile") profile = true;
    else if (a == "--work") work = next();
    else GS_FAIL("unknown option '", a, "'");
  }
  gs::initRuntime();  // the runtime set-up every gstick process gets (threads, malloc policy)
  gs::setIntraOpThreads(threads);
  const std::string engine = gs::int8::kernelPath();  // VNNI, AVX2 or scalar
  if (ort && !gs::ort::ortMissingReason().empty()) {
    std::cerr << "int8_bench: " << gs::ort::ortMissingReason() << "; skipping ORT\n";
    ort = false;
  }
  std::filesystem::create_directories(work);

  std::shared_ptr<gs::FashionMnistDataset> train, test;
  try {
    train = std::make_shared<gs::FashionMnistDataset>(gs::FashionMnistDataset::Split::Train, 256);
    if (accuracy > 0)
      test = std::make_shared<gs::FashionMnistDataset>(gs::FashionMnistDataset::Split::Test, accuracy);
  } catch (const gs::Error& e) {
    std::cerr << "int8_bench: no Fashion-MNIST (" << e.what() << "): calibrating on uniform noise\n";
  }
  std::shared_ptr<const gs::Dataset> calib_ds = train;
  if (!train) {
    at::Generator gen = at::detail::createCPUGenerator(1);
    calib_ds = std::make_shared<gs::TensorDataset>(at::rand({256, 1, 28, 28}, gen));
  }

  std::printf("threads %d, engine %s, %d interleaved timed runs (medians), activations %s\n\n", threads,
              engine.c_str(), runs, is_signed ? "int8" : "uint8");
  std::printf("| model | batch | fp32 CPU ms | int8 CPU ms | QDQ float-ref CPU ms | int8 speed-up (CPU) | "
              "fp32 wall ms | int8 wall ms | speed-up (wall) | QDQ float-ref wall ms |%s\n",
              ort ? " ORT fp32 CPU ms | ORT QDQ CPU ms | ORT fp32 wall ms | ORT QDQ wall ms |" : "");
  std::printf("|---|---|---|---|---|---|---|---|---|---|%s\n", ort ? "---|---|---|---|" : "");
  std::vector<std::string> acc_lines;
  for (const std::string& name : names) {
    std::string source;
    auto fp32 = loadModel(name, &source);
    auto ex_fp32 = makeExecutor(*fp32, false);  // before PTQ touches anything
    // The product path: the ptq algorithm, then convert() to ONNX QDQ.
    auto algo = gs::AlgoRegistry::global().create("ptq", gs::Json{{"act_signed", is_signed}});
    gs::AlgoContext actx;
    actx.calibration = gs::CalibrationData{calib_ds, 4, 64};
    algo->setContext(actx);
    auto qdq = std::make_unique<gs::Graph>(algo->convert(algo->apply(std::move(*fp32->clone()))));
    std::string fp32_path = work + "/" + name + "-fp32.onnx", qdq_path = work + "/" + name + "-qdq.onnx";
    gs::exportOnnxFile(*fp32, fp32_path);
    gs::exportOnnxFile(*qdq, qdq_path);
    auto ex_ref = makeExecutor(*qdq, false);
    auto ex_int8 = makeExecutor(*qdq, true);
    for (int64_t batch : batches) {
      at::Generator gen = at::detail::createCPUGenerator(7);
      at::Tensor x = at::rand({batch, 1, 28, 28}, gen);
      // Interleaved rounds (fp32, int8, reference in turn) so machine load hits all alike.
      std::vector<gs::Executor*> exs{ex_fp32.get(), ex_int8.get(), ex_ref.get()};
      std::vector<std::vector<double>> ms(exs.size()), cpu(exs.size());
      for (gs::Executor* e : exs) e->run({x});
      for (int r = 0; r < runs; ++r)
        for (size_t k = 0; k < exs.size(); ++k) {
          if (k == 2 && r % 3) continue;  // the float reference is slow and only for context
          double c0 = cpuMs();
          auto t0 = Clock::now();
          exs[k]->run({x});
          ms[k].push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
          cpu[k].push_back(cpuMs() - c0);
        }
      double w_fp32 = medianOf(ms[0]), w_int8 = medianOf(ms[1]), w_ref = medianOf(ms[2]);
      double c_fp32 = medianOf(cpu[0]), c_int8 = medianOf(cpu[1]), c_ref = medianOf(cpu[2]);
      std::printf("| %s | %lld | %.3f | %.3f | %.3f | **%.2fx** | %.3f | %.3f | %.2fx | %.3f |",
                  name.c_str(), static_cast<long long>(batch), c_fp32, c_int8, c_ref,
                  c_fp32 / c_int8, w_fp32, w_int8, w_fp32 / w_int8, w_ref);
      if (ort) {
        OrtTiming of = timeOrt(fp32_path, x, work + "/ort", runs, threads);
        OrtTiming oq = timeOrt(qdq_path, x, work + "/ort", runs, threads);
        std::printf(" %.3f | %.3f | %.3f | %.3f |", of.cpu_ms, oq.cpu_ms, of.wall_ms, oq.wall_ms);
      }
      std::printf("\n");
      if (profile) printProfile(*ex_int8, {x});
      std::fflush(stdout);
    }
    if (test) {
      at::Tensor xs = test->images().to(at::kFloat) / 255.0f;
      at::Tensor labels = test->labels();
      auto logits = [&](gs::Executor& ex) {
        std::vector<at::Tensor> parts;
        for (int64_t s = 0; s < xs.size(0); s += 256) parts.push_back(ex.run({xs.slice(0, s, s + 256)})[0]);
        return at::cat(parts);
      };
      at::Tensor lf = logits(*ex_fp32), lr = logits(*ex_ref), li = logits(*ex_int8);
      auto acc = [&](const at::Tensor& l) { return 100.0 * l.argmax(1).eq(labels).sum().item<double>() / labels.numel(); };
      auto agree = [&](const at::Tensor& a, const at::Tensor& b) {
        return 100.0 * a.argmax(1).eq(b.argmax(1)).sum().item<double>() / labels.numel();
      };
      // Logit differences in output quantization steps: the output DQ's scale, or for a float
      // output the step of a uint8 min-max quantizer over the fp32 test logits.
      const gs::Node* out_dq = qdq->outputs()[0]->producer();
      double step = out_dq && out_dq->opType() == "DequantizeLinear"
                        ? out_dq->input(1)->data().item<double>()
                        : (lf.max() - lf.min()).item<double>() / 255.0;
      auto steps = [&](const at::Tensor& a, const at::Tensor& b) {
        return step > 0 ? ((a - b).abs() / step).max().item<double>() : -1.0;
      };
      std::ostringstream line;
      line.precision(4);
      line << "| " << name << " | " << source << " | " << labels.numel() << " | " << acc(lf) << " | "
           << acc(lr) << " | " << acc(li) << " | " << agree(li, lr) << " | " << steps(li, lr) << " |";
      if (ort) {
        auto o = gs::ort::runOrt(qdq_path, {{"input", xs}}, work + "/ort_acc", 1, threads, true);
        at::Tensor lo = o.outputs.begin()->second;
        line << " " << acc(lo) << " | " << agree(li, lo) << " | " << steps(li, lo) << " |";
      }
      acc_lines.push_back(line.str());
    }
  }
  if (!acc_lines.empty()) {
    std::printf("\n| model | weights | test images | fp32 top-1 %% | QDQ float ref top-1 %% | int8 top-1 %% | "
                "int8 vs ref top-1 agree %% | int8 vs ref max logit diff (steps) |%s\n",
                ort ? " ORT QDQ top-1 % | int8 vs ORT agree % | int8 vs ORT max diff (steps) |" : "");
    std::printf("|---|---|---|---|---|---|---|---|%s\n", ort ? "---|---|---|" : "");
    for (const auto& l : acc_lines) std::printf("%s\n", l.c_str());
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "int8_bench: error: " << gs::firstLine(e.what()) << "\n";
  return 1;
}
