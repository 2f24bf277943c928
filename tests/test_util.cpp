// Shared test helpers.
#include "test_util.h"

#include <filesystem>
#include <fstream>
#include <random>

namespace gs::test {

double maxRelDiff(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = a.to(at::kDouble), y = b.to(at::kDouble);
  if (x.numel() == 0 && y.numel() == 0) return 0.0;
  return ((x - y).abs() / y.abs().clamp_min(1.0)).max().item<double>();
}

at::Tensor randn(at::IntArrayRef shape, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat));
}

std::string tempDir(const std::string& tag) {
  std::random_device rd;
  auto p = std::filesystem::temp_directory_path() / ("gstick_" + tag + "_" + std::to_string(rd()));
  std::filesystem::create_directories(p);
  return p.string();
}

int64_t rssFileKb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("RssFile:", 0) == 0) return std::stoll(line.substr(8));
  return -1;
}

}  // namespace gs::test
