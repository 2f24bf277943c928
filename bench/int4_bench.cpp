// int4/int8 weight-only linear layer benchmark: gstick's MatMulNBits kernels vs fp32 (ATen/OpenBLAS)
// GEMV/GEMM and vs ONNX Runtime's MatMulNBits on the same exported model, with the measured
// memory bandwidth (streaming read) as the GEMV roofline. Prints a markdown table.
// Usage: int4_bench [--K 4096] [--N 4096] [--block 32] [--threads 2] [--rows 1,32,128] [--no-ort]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
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

/// Streaming-read bandwidth in GB/s (best of 5 passes over 256 MB, all intra-op threads).
double measureBandwidth() {
  const int64_t n = int64_t{64} << 20;  // floats
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
      5);
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
  int threads = 2;
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
    else if (a == "--no-ort") with_ort = false;
    else {
      std::fprintf(stderr, "usage: int4_bench [--K n] [--N n] [--block b] [--threads t] "
                           "[--rows 1,32,128] [--no-ort]\n");
      return 2;
    }
  }
  try {
    gs::setIntraOpThreads(threads);
    c10::InferenceMode guard;
    double bw = measureBandwidth();
    std::printf("threads %d, K %lld, N %lld, block %lld, streaming-read bandwidth %.1f GB/s\n\n",
                threads, static_cast<long long>(K), static_cast<long long>(N),
                static_cast<long long>(block), bw);

    at::Tensor W = at::randn({N, K}) * 0.02;  // nn.Linear layout
    struct Variant {
      std::string name;
      int bits;
      bool sym;
    };
    std::vector<Variant> variants{{"int4 sym", 4, true}, {"int4 asym", 4, false},
                                  {"int8 sym", 8, true}};
    std::printf("| M | weights | bytes read (MB) | gstick best / median ms | vs fp32 (best) | "
                "GB/s (fraction of bw) | ORT MatMulNBits median ms |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    for (int64_t M : rows) {
      at::Tensor x = at::randn({M, K});
      int rep = M == 1 ? 200 : M <= 32 ? 40 : 15;
      at::Tensor xv = x.reshape({K});
      at::Tensor Wt = W.t();
      Stat fp = M == 1 ? timeIt([&] { (void)at::mv(W, xv); }, rep)
                       : timeIt([&] { (void)at::mm(x, Wt); }, rep);
      double fp_mb = static_cast<double>(W.numel()) * 4 / 1e6;
      std::printf("| %lld | fp32 (at::%s) | %.1f | %.3f / %.3f | 1.00x | %.1f (%.0f%%) | |\n",
                  static_cast<long long>(M), M == 1 ? "mv" : "mm", fp_mb, fp.best_ms,
                  fp.median_ms, fp_mb / 1e3 / (fp.best_ms * 1e-3),
                  100 * fp_mb / 1e3 / (fp.best_ms * 1e-3) / bw);
      for (const Variant& v : variants) {
        gs::nbits::NBitsWeight q =
            gs::nbits::quantizeRtn(W, gs::nbits::WeightLayout::NxK, v.bits, block, v.sym);
        gs::Graph g;
        gs::Value* in = g.addInput("x", gs::DType::Float32, std::vector<gs::Dim>{M, K});
        gs::Node* n = gs::nbits::addMatMulNBits(g, in, q, nullptr, "fc");
        g.addOutput(n->output(0));
        gs::Executor ex(g);
        Stat st = timeIt([&] { (void)ex.run({x}); }, rep);
        double mb = static_cast<double>(q.bytes()) / 1e6;
        std::string ort_ms = "";
        if (with_ort && gs::ort::ortMissingReason().empty()) {
          std::string dir = "/tmp/int4_bench_ort";
          gs::exportOnnxFile(g, dir + "/m.onnx");
          auto r = gs::ort::runOrt(dir + "/m.onnx", {{"x", x}}, dir + "/run", rep, threads, false);
          double best = *std::min_element(r.times_ms.begin(), r.times_ms.end());
          char b[64];
          std::snprintf(b, sizeof b, "%.3f (best %.3f)", r.median_ms, best);
          ort_ms = b;
        }
        std::printf("| %lld | %s g%lld | %.1f | %.3f / %.3f | %.2fx | %.1f (%.0f%%) | %s |\n",
                    static_cast<long long>(M), v.name.c_str(), static_cast<long long>(block), mb,
                    st.best_ms, st.median_ms, fp.best_ms / st.best_ms,
                    mb / 1e3 / (st.best_ms * 1e-3), 100 * mb / 1e3 / (st.best_ms * 1e-3) / bw,
                    ort_ms.c_str());
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "int4_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
