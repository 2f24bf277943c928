// int4/int8 weight-only linear layer benchmark: gstick's MatMulNBits kernels vs fp32 (ATen/OpenBLAS)
// GEMV/GEMM and vs ONNX Runtime's MatMulNBits on the same exported model, with the measured
// memory bandwidth (streaming read) as the GEMV roofline. Prints a markdown table.
// Usage: int4_bench [--K 4096] [--N 4096] [--block 32] [--threads 2] [--rows 1,32,128]
//                   [--layers 8] [--no-ort]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <chrono>
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

template <typename F>
Stat timeIt(F&& f, int repeat) {
  f();  // warm-up
  std::vector<double> ms;
  for (int i = 0; i < repeat; ++i) {
    auto t0 = Clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms.front(), ms[ms.size() / 2]};
}

/// Streaming-read bandwidth in GB/s (best of 20 passes over 128 MB, all intra-op threads).
double measureBandwidth() {
  const int64_t n = int64_t{32} << 20;  // floats (128 MB, 4x the L3)
  at::Tensor buf = at::ones({n}, at::kFloat);
  const float* p = buf.data_ptr<float>();
  volatile float sink = 0;
  Stat s = timeIt(
      [&] {
        std::vector<float> part(static_cast<size_t>(at::get_num_threads()) + 1, 0.f);
        at::parallel_for(0, n, n / 64, [&](int64_t b, int64_t e) {
          float a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
          int64_t i = b;
          for (; i + 8 <= e; i += 8) {
            a0 += p[i]; a1 += p[i + 1]; a2 += p[i + 2]; a3 += p[i + 3];
            a4 += p[i + 4]; a5 += p[i + 5]; a6 += p[i + 6]; a7 += p[i + 7];
          }
          for (; i < e; ++i) a0 += p[i];
          part[static_cast<size_t>(at::get_thread_num())] += a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
        });
        float t = 0;
        for (float v : part) t += v;
        sink = t;
      },
      20);
  (void)sink;
  return static_cast<double>(n) * 4 / (s.best_ms * 1e-3) / 1e9;
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
    else {
      std::fprintf(stderr, "usage: int4_bench [--K n] [--N n] [--block b] [--threads t] "
                           "[--rows 1,32,128] [--layers 8] [--no-ort]\n");
      return 2;
    }
  }
  try {
    gs::setIntraOpThreads(threads);
    c10::InferenceMode guard;
    double bw = measureBandwidth();
    std::printf("threads %d, K %lld, N %lld, block %lld, chain of %d layers, streaming-read "
                "bandwidth %.1f GB/s\n\n",
                threads, static_cast<long long>(K), static_cast<long long>(N),
                static_cast<long long>(block), layers, bw);

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
            bytes += static_cast<double>(Ws[l].numel()) * 4;
          } else {
            gs::nbits::NBitsWeight q =
                gs::nbits::quantizeRtn(Ws[l], gs::nbits::WeightLayout::NxK, v.bits, block, v.sym);
            cur = gs::nbits::addMatMulNBits(g, cur, q, nullptr, name)->output(0);
            bytes += static_cast<double>(q.bytes());
          }
        }
        g.addOutput(cur);
        gs::Executor ex(g);
        Stat st = timeIt([&] { (void)ex.run({x}); }, rep);
        double best = st.best_ms / layers, med = st.median_ms / layers, mb = bytes / layers / 1e6;
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
                    static_cast<long long>(M), label.c_str(), mb, best, med, fp_best / best,
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
