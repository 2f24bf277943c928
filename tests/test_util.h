// Shared test helpers: seeded tensors, closeness checks, paths.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

namespace gs::test {

/// Max |a-b| / max(1, |b|) elementwise — the relative difference used by parity tests.
double maxRelDiff(const at::Tensor& a, const at::Tensor& b);
/// Seeded standard-normal tensor.
at::Tensor randn(at::IntArrayRef shape, uint64_t seed);
/// A fresh temporary directory (removed by the OS tmp cleaner, not by tests).
std::string tempDir(const std::string& tag);
/// File-backed resident memory of this process (RssFile in /proc/self/status, kB), or -1.
int64_t rssFileKb();

}  // namespace gs::test
