// Helpers for end-to-end tests of the `gstick` binary: run it, capture output, check error lines.
#pragma once
#include "gs_paths.h"  // GS_SOURCE_DIR / GS_TEST_DIR / GS_CLI_PATH (generated)
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "support/file_util.h"
#include "test_util.h"

namespace gs::test {

struct CmdResult {
  int code = -1;
  std::string out, err;
};

/// Runs `gstick <args>` (GS_CLI_PATH) capturing exit code, stdout and stderr.
inline CmdResult gstick(const std::string& args) {
  std::string dir = tempDir("cli");
  std::string cmd =
      std::string("'") + GS_CLI_PATH + "' " + args + " >" + dir + "/out 2>" + dir + "/err";
  int st = std::system(cmd.c_str());
  CmdResult r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = readFile(dir + "/out");
  r.err = readFile(dir + "/err");
  return r;
}

/// The documented error contract: exit `code` and exactly one stderr line "gstick: error: ..."
/// containing `needle`.
inline void expectOneErrorLine(const CmdResult& r, int code, const std::string& needle) {
  EXPECT_EQ(r.code, code) << r.err;
  EXPECT_EQ(r.err.rfind("gstick: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
}

}  // namespace gs::test
