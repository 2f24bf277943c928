// Helper for scripts/demo.sh: builds + exports the demo CNN with a seeded input, and compares two
// folders of .npy outputs (gstick vs ONNX Runtime). Not part of the public `gstick` CLI.
// Usage: demo_tool export-cnn MODEL.onnx INPUT.npy [BATCH]
//        demo_tool compare GSTICK_DIR ORT_DIR
#include <ATen/ATen.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "io/npy.h"
#include "io/onnx.h"
#include "model_zoo.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace {

int exportCnn(const std::string& model, const std::string& input, int64_t batch) {
  auto g = gs::zoo::demoCnn();
  gs::exportOnnxFile(*g, model);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(2024);
  gs::writeNpy(input, at::randn({batch, 1, 28, 28}, gen));
  std::printf("demo: built %s (%zu nodes, %zu parameter tensors), input %s f32[%lld,1,28,28]\n",
              model.c_str(), g->numNodes(), g->params().size(), input.c_str(),
              static_cast<long long>(batch));
  return 0;
}

/// Max |a-b|/max(1,|b|) over every .npy in `a_dir` against the same-named file in `b_dir`.
int compare(const std::string& a_dir, const std::string& b_dir) {
  namespace fs = std::filesystem;
  double worst = 0;
  int files = 0;
  for (const auto& e : fs::directory_iterator(a_dir)) {
    if (e.path().extension() != ".npy") continue;
    std::string other = (fs::path(b_dir) / e.path().filename()).string();
    GS_CHECK(fs::exists(other), other, ": missing (ONNX Runtime did not write this output)");
    at::Tensor a = gs::readNpy(e.path().string()).to(at::kDouble),
               b = gs::readNpy(other).to(at::kDouble);
    GS_CHECK(a.sizes() == b.sizes(), e.path().filename().string(), ": shapes differ");
    worst = std::max(worst, ((a - b).abs() / b.abs().clamp_min(1.0)).max().item<double>());
    ++files;
  }
  GS_CHECK(files > 0, a_dir, ": no .npy outputs to compare");
  bool ok = worst <= 1e-4;
  std::printf("parity: max rel diff = %.3g (<= 1e-4: %s) over %d output(s)\n", worst,
              ok ? "OK" : "FAILED", files);
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 4 && !std::strcmp(argv[1], "export-cnn"))
      return exportCnn(argv[2], argv[3], argc >= 5 ? std::atoll(argv[4]) : 4);
    if (argc == 4 && !std::strcmp(argv[1], "compare")) return compare(argv[2], argv[3]);
    std::fprintf(
        stderr, "usage: demo_tool export-cnn MODEL.onnx INPUT.npy [BATCH] | compare DIR_A DIR_B\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo_tool: error: %s\n", gs::firstLine(e.what()).c_str());
    return 1;
  }
}
