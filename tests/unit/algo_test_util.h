// Helpers for the algo tests: a small named CNN + MLP graph and error-message capture.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "ir/builder.h"
#include "ir/graph.h"
#include "support/error.h"
#include "test_util.h"

namespace gs::test {

/// Message of the gs::Error thrown by `f` (test failure if none); also checks it is one line.
template <typename F>
std::string algoErrorOf(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    return m;
  }
  ADD_FAILURE() << "expected a gs::Error";
  return "";
}

/// x[N,1,8,8] -> backbone.conv1 (1->4, 3x3) -> relu -> backbone.conv2 (4->4, 3x3) -> relu
/// -> head.flatten -> head.fc (Gemm 64->10) -> head.proj (MatMul 10x10) = logits [N, 10].
/// Layers (weights of rank >= 2): backbone.conv1, backbone.conv2, head.fc, head.proj.
inline std::unique_ptr<Graph> smallNet(uint64_t seed) {
  auto g = std::make_unique<Graph>();
  GraphBuilder b(*g);
  Value* x = b.input("x", DType::Float32, std::vector<Dim>{Dim("N"), 1, 8, 8});
  Value* y;
  {
    auto s = b.scope("backbone");
    y = b.convBnRelu(x, 1, 4, 3, 1, 0, /*bn=*/false, /*relu=*/true, seed, "conv1");
    y = b.convBnRelu(y, 4, 4, 3, 1, 0, /*bn=*/false, /*relu=*/true, seed + 1, "conv2");
  }
  {
    auto s = b.scope("head");
    y = b.flatten(y, 1, "flatten");
    y = b.linear(y, 64, 10, seed + 2, "fc");
    y = b.matmul(y, b.param("proj.weight", randn({10, 10}, seed + 3) * 0.3), "proj");
  }
  b.output(y);
  return g;
}

}  // namespace gs::test
