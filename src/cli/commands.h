// Registration of the gstick subcommands (each file owns its option table and action).
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace gs::cli {

/// A registered subcommand: its CLI11 app (for "was it parsed?") and the action to run after
/// parsing; the action returns the process exit code and throws gs::Error on failure.
struct Command {
  CLI::App* app;
  std::function<int()> action;
};

/// `gstick info MODEL.onnx [--json] [--batch B] [--seed S] [--input NAME=FILE.npy ...]`.
Command addInfoCommand(CLI::App& app);
/// `gstick run MODEL.onnx [--input NAME=FILE.npy ...] [--output-dir D] [--repeat N] ...`.
Command addRunCommand(CLI::App& app);
/// `gstick train --model NAME --data SPEC --epochs N -o OUT.onnx [...]`.
Command addTrainCommand(CLI::App& app);
/// `gstick eval MODEL.onnx --data SPEC [--batch B] [--dump-npy DIR]`.
Command addEvalCommand(CLI::App& app);
/// `gstick optimize MODEL.onnx -o OUT.onnx [--passes a,b,c] [--level N] [--no-verify]`.
Command addOptimizeCommand(CLI::App& app);

}  // namespace gs::cli
