// gstick command-line entry point: subcommand dispatch and the one-line error contract.
#include <c10/util/Exception.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace {

/// Every failure is one stderr line "gstick: error: <message>"; usage errors exit 2, others 1.
int fail(const std::string& msg, int code) {
  std::string line = gs::firstLine(msg);
  std::fprintf(stderr, "gstick: error: %s\n", line.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("gstick: run, inspect and compress neural networks (ONNX in, ONNX out)", "gstick");
  app.set_version_flag("--version", std::string("gstick ") + GS_VERSION);
  app.require_subcommand(1);
  app.fallthrough(false);
  std::vector<gs::cli::Command> commands{gs::cli::addInfoCommand(app), gs::cli::addRunCommand(app),
                                         gs::cli::addTrainCommand(app), gs::cli::addEvalCommand(app)};
  commands.push_back(gs::cli::addOptimizeCommand(app));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help / --version
    return fail(e.what(), 2);
  }
  try {
    gs::initRuntime();
    for (auto& c : commands)
      if (c.app->parsed()) return c.action();
    return fail("no command given (try --help)", 2);
  } catch (const gs::Error& e) {
    return fail(e.what(), 1);
  } catch (const c10::Error& e) {
    return fail(e.what_without_backtrace(), 1);
  } catch (const std::exception& e) {
    return fail(e.what(), 1);
  }
}
