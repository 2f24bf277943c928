// MAC counting per op from run-time tensor shapes (used by `gstick info`).
#include "cli/macs.h"

#include <map>
#include <string>

namespace gs::cli {
namespace {

/// Conv-like: each output element needs (Cin/groups * prod(kernel)) MACs = W.numel() / Cout.
int64_t convMacs(const at::Tensor& w, const at::Tensor& y) {
  if (!w.defined() || !y.defined() || w.dim() < 1 || w.size(0) == 0) return 0;
  return y.numel() * (w.numel() / w.size(0));
}

/// Matmul-like: each output element is a K-long dot product, K = last dim of A.
int64_t matmulMacs(const at::Tensor& a, const at::Tensor& y) {
  if (!a.defined() || !y.defined() || a.dim() < 1) return 0;
  return y.numel() * a.size(-1);
}

/// Einsum: output elements times the product of the sizes of the summed-over labels.
int64_t einsumMacs(const Node& n, const std::vector<at::Tensor>& in, const at::Tensor& y) {
  std::string eq;
  for (char c : n.attrString("equation", ""))
    if (c != ' ') eq += c;
  auto arrow = eq.find("->");
  std::string lhs = eq.substr(0, arrow);
  std::map<char, int64_t> size;
  std::map<char, int> count;
  size_t term = 0, start = 0;
  while (start <= lhs.size() && term < in.size()) {
    size_t comma = lhs.find(',', start);
    std::string t =
        lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const at::Tensor& x = in[term];
    if (!x.defined()) return 0;
    auto ell = t.find("...");
    std::string head = ell == std::string::npos ? t : t.substr(0, ell);
    std::string tail = ell == std::string::npos ? "" : t.substr(ell + 3);
    for (size_t i = 0; i < head.size() && static_cast<int64_t>(i) < x.dim(); ++i) {
      size[head[i]] = x.size(static_cast<int64_t>(i));
      ++count[head[i]];
    }
    for (size_t i = 0; i < tail.size(); ++i) {
      int64_t d = x.dim() - static_cast<int64_t>(tail.size()) + static_cast<int64_t>(i);
      if (d >= 0) size[tail[i]] = x.size(d);
      ++count[tail[i]];
    }
    ++term;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  int64_t k = 1;
  for (auto& [c, s] : size) {
    bool kept =
        arrow != std::string::npos ? eq.find(c, arrow + 2) != std::string::npos : count[c] == 1;
    if (!kept) k *= s;
  }
  return y.numel() * k;
}

}  // namespace

int64_t nodeMacs(const Node& node, const std::vector<at::Tensor>& in,
                 const std::vector<at::Tensor>& out) {
  if (out.empty() || !out[0].defined()) return 0;
  const at::Tensor& y = out[0];
  const std::string& op = node.opType();
  auto input = [&](size_t i) { return i < in.size() ? in[i] : at::Tensor(); };
  if (op == "Conv" || op == "ConvInteger") return convMacs(input(1), y);
  if (op == "QLinearConv") return convMacs(input(3), y);
  if (op == "ConvTranspose") {
    // Every input element is scattered into (Cout/groups * prod(kernel)) outputs; W is [Cin,
    // Cout/g, k...].
    at::Tensor x = input(0), w = input(1);
    if (!x.defined() || !w.defined() || w.dim() < 1 || w.size(0) == 0) return 0;
    return x.numel() * (w.numel() / w.size(0));
  }
  if (op == "MatMul" || op == "MatMulInteger") return matmulMacs(input(0), y);
  if (op == "QLinearMatMul") return matmulMacs(input(0), y);
  if (op == "Gemm") {
    at::Tensor a = input(0);
    if (!a.defined() || a.dim() != 2) return 0;
    int64_t k = node.attrInt("transA", 0) ? a.size(0) : a.size(1);
    return y.numel() * k;
  }
  if (op == "Einsum") return einsumMacs(node, in, y);
  return 0;
}

}  // namespace gs::cli
