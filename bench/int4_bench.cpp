// int4/int8 weight-only linear layer benchmark: gstick's MatMulNBits kernels vs fp32 (ATen/OpenBLAS)
// GEMV/GEMM and vs ONNX Runtime's MatMulNBits on the same exported model, with the measured
// memory bandwidth (STREAM-like read / copy / triad, 1 and N threads) as the GEMV roofline.
// Prints markdown tables.
// Usage: int4_bench [--K 4096] [--N 4096] [--block 32] [--threads 2] [--rows 1,32,128]
//                   [--layers 8] [--no-ort] [--clock wall|cpu]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "io/onnx.h"
#include "ort_runner.h"
#include "quant/int4_pack.h"
#include "runtime/executor.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Stat {
  double best_ms = 0, median_ms = 0;
};

/// --clock cpu: time by the process CPU clock instead of the wall clock. On a machine shared with
/// other jobs, wall time measures the share of the CPU the process got; with --threads 1 the CPU
/// clock measures the work itself (with more threads it also counts OpenMP spin-waiting).
bool g_cpu_clock = false;

double clockMs() {
  if (!g_cpu_clock)
    return std::chrono::duration<double, std::milli>(Clock::now().time_since_epoch()).count();
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

template <typename F>
Stat timeIt(F&& f, int repeat) {
  f();  // warm-up
  std::vector<double> ms;
  for (int i = 0; i < repeat; ++i) {
    const double t0 = clockMs();
    f();
    ms.push_back(clockMs() - t0);
  }
  std::sort(ms.begin(), ms.end());
  return {ms.front(), ms[ms.size() / 2]};
}

/// STREAM-like memory bandwidth (GB/s, best of `reps` passes) over arrays of 32 M floats (128 MB
/// each, 4x the 32 MB L3) with `threads` threads: read (sum of a: 4 bytes per element), copy
/// (b = a: 8) and triad (a = b + s * c: 12), counting bytes as STREAM does (no write-allocate).
struct Bandwidth {
  double read = 0, copy = 0, triad = 0;
};

Bandwidth measureBandwidth(int threads, int reps = 10) {
  const int64_t n = int64_t{32} << 20;
  const int saved = at::get_num_threads();
  at::set_num_threads(threads);
  at::Tensor ta = at::ones({n}, at::kFloat), tb = at::ones({n}, at::kFloat),
             tc = at::ones({n}, at::kFloat);
  float* a = ta.data_ptr<float>();
  float* b = tb.data_ptr<float>();
  const float* c = tc.data_ptr<float>();
  const int64_t grain = n / 64;
  volatile float sink = 0;
  Stat rd = timeIt(
      [&] {
        std::vector<float> part(static_cast<size_t>(at::get_num_threads()) + 1, 0.f);
        at::parallel_for(0, n, grain, [&](int64_t lo, int64_t hi) {
          float a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
          int64_t i = lo;
          for (; i + 8 <= hi; i += 8) {
            a0 += a[i]; a1 += a[i + 1]; a2 += a[i + 2]; a3 += a[i + 3];
            a4 += a[i + 4]; a5 += a[i + 5]; a6 += a[i + 6]; a7 += a[i + 7];
          }
          for (; i < hi; ++i) a0 += a[i];
          part[static_cast<size_t>(at::get_thread_num())] += a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
        });
        float t = 0;
        for (float v : part) t += v;
        sink = t;
      },
      reps);
  Stat cp = timeIt(
      [&] {
        at::parallel_for(0, n, grain, [&](int64_t lo, int64_t hi) {
          std::memcpy(b + lo, a + lo, static_cast<size_t>(hi - lo) * sizeof(float));
        });
      },
      reps);
  Stat tr = timeIt(
      [&] {
        at::parallel_for(0, n, grain, [&](int64_t lo, int64_t hi) {
          for (int64_t i = lo; i < hi; ++i) a[i] = b[i] + 3.f * c[i];
        });
      },
      reps);
  (void)sink;
  at::set_num_threads(saved);
  auto gbs = [&](double bytes_per_elem, const Stat& st) {
    return static_cast<double>(n) * bytes_per_elem / (st.best_ms * 1e-3) / 1e9;
  };
  return {gbs(4, rd), gbs(8, cp), gbs(12, tr)};
}

std::vector<int64_t> parseList(const std::string& s) {
  std::vector<int64_t> v;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');) v.push_back(std::stoll(t));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t K = 4096, N = 4096, block = 32;
  int threads = 2, layers = 8;
  bool with_ort = true;
  std::vector<int64_t> rows{1, 32, 128};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return std::string(i + 1 < argc ? argv[++i] : ""); };
    if (a == "--K") K = std::stoll(next());
    else if (a == "--N") N = std::stoll(next());
    else if (a == "--block") block = std::stoll(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--rows") rows = parseList(next());
    else if (a == "--layers") layers = std::stoi(next());
    else if (a == "--no-ort") with_ort = false;
    else if (a == "--clock") g_cpu_clock = next() == "cpu";
    else {
      std::fprintf(stderr, "usage: int4_bench [--K n] [--N n] [--block b] [--threads t] "
                           "[--rows 1,32,128] [--layers 8] [--no-ort] [--clock wall|cpu]\n");
      return 2;
    }
  }
  try {
    gs::initRuntime();  // the runtime set-up every gstick process gets (threads, malloc policy)
    gs::setIntraOpThreads(threads);
    c10::InferenceMode guard;
    Bandwidth bw1 = measureBandwidth(1), bw2 = measureBandwidth(threads);
    const double bw = bw2.read;
    std::printf("Memory bandwidth (STREAM-like, 128 MB arrays, best of 10, GB/s):\n\n"
                "| threads | read | copy | triad |\n|---|---|---|---|\n"
                "| 1 | %.1f | %.1f | %.1f |\n| %d | %.1f | %.1f | %.1f |\n\n",
                bw1.read, bw1.copy, bw1.triad, threads, bw2.read, bw2.copy, bw2.triad);
    std::printf("threads %d, K %lld, N %lld, block %lld, chain of %d layers; GB/s = bytes the "
                "kernel moves per call (weights as the kernel reads them + activations + output) "
                "/ time, fraction of the %d-thread read bandwidth (%.1f GB/s)\n\n",
                threads, static_cast<long long>(K), static_cast<long long>(N),
                static_cast<long long>(block), layers, threads, bw);

    // Every configuration runs a chain of `layers` K x K linear layers (x -> fc1 -> ... -> fcL) in
    // one graph, so the weights (layers x size) exceed the 32 MB L3 and each layer streams its
    // weights from DRAM as in a real decoder; the same ONNX file runs in ORT. Reported per layer.
    GS_CHECK(K == N, "int4_bench: the layer chain needs K == N");
    std::vector<at::Tensor> Ws;
    for (int l = 0; l < layers; ++l) Ws.push_back(at::randn({N, K}) * (1.0 / std::sqrt(double(K))));
    struct Variant {
      std::string name;
      int bits;  // 32 = fp32 MatMul
      bool sym;
    };
    std::vector<Variant> variants{{"fp32 MatMul (OpenBLAS)", 32, true}, {"int4 sym", 4, true},
                                  {"int4 asym", 4, false}, {"int8 sym", 8, true}};
    std::printf("| M | weights | MB per layer | gstick ms per layer, best / median | vs fp32 (best) | "
                "GB/s (fraction of bw) | ORT ms per layer, best / median |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    for (int64_t M : rows) {
      at::Tensor x = at::randn({M, K});
      int rep = M == 1 ? 30 : M <= 32 ? 10 : 5;
      double fp_best = 0;
      for (const Variant& v : variants) {
        gs::Graph g;
        gs::Value* cur = g.addInput("x", gs::DType::Float32, std::vector<gs::Dim>{M, K});
        double bytes = 0;
        for (int l = 0; l < layers; ++l) {
          std::string name = "fc" + std::to_string(l);
          if (v.bits == 32) {
            gs::Value* w = g.addParam(name + ".weight", Ws[l].t().contiguous(), false);
            cur = g.addNode("MatMul", {cur, w}, 1, name)->output(0);
            bytes += static_cast<double>(Ws[l].numel()) * 4 + 4.0 * M * (K + N);
          } else {
            gs::nbits::NBitsWeight q =
                gs::nbits::quantizeRtn(Ws[l], gs::nbits::WeightLayout::NxK, v.bits, block, v.sym);
            cur = gs::nbits::addMatMulNBits(g, cur, q, nullptr, name)->output(0);
            // What the kernel reads: packed codes, fp32 scales, zero points unpacked to one byte
            // per block (asymmetric only), plus activations in and outputs out.
            const double nb = static_cast<double>(q.numBlocks());
            bytes += static_cast<double>(q.B.numel()) + 4.0 * N * nb + (v.sym ? 0.0 : N * nb) +
                     4.0 * M * (K + N);
          }
        }
        g.addOutput(cur);
        gs::Executor ex(g);
        Stat st = timeIt([&] { (void)ex.run({x}); }, rep);
        double best = st.best_ms / layers, med = st.median_ms / layers, mb = bytes / layers / 1e6;
        const double weight_mb =
            v.bits == 32 ? static_cast<double>(K) * N * 4 / 1e6 : mb - 4.0 * M * (K + N) / 1e6;
        if (v.bits == 32) fp_best = best;
        std::string ort_ms;
        if (with_ort && gs::ort::ortMissingReason().empty()) {
          std::string dir = "/tmp/int4_bench_ort";
          std::filesystem::create_directories(dir);
          gs::exportOnnxFile(g, dir + "/m.onnx");
          auto r = gs::ort::runOrt(dir + "/m.onnx", {{"x", x}}, dir + "/run", rep, threads, false);
          double ob = *std::min_element(r.times_ms.begin(), r.times_ms.end());
          char b[96];
          std::snprintf(b, sizeof b, "%.3f / %.3f", ob / layers, r.median_ms / layers);
          ort_ms = b;
        }
        std::string label = v.bits == 32 ? v.name : v.name + " g" + std::to_string(block);
        std::printf("| %lld | %s | %.1f | %.3f / %.3f | %.2fx | %.1f (%.0f%%) | %s |\n",
                    static_cast<long long>(M), label.c_str(), weight_mb, best, med, fp_best / best,
                    mb / 1e3 / (best * 1e-3), 100 * mb / 1e3 / (best * 1e-3) / bw, ort_ms.c_str());
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "int4_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
