// `gstick info MODEL.onnx`: inputs/outputs, op histogram, parameters, MACs (measured by one run).
#include <ATen/ATen.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/macs.h"
#include "runtime/executor.h"

namespace gs::cli {
namespace {

struct InfoOptions {
  std::string model;
  bool json = false;
  InputOptions inputs;
};

nlohmann::ordered_json shapeJson(const Shape& s) {
  if (!s) return nullptr;
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (const Dim& d : *s) {
    if (d.isStatic())
      a.push_back(d.value);
    else if (!d.symbol.empty())
      a.push_back(d.symbol);
    else
      a.push_back(nullptr);
  }
  return a;
}

std::string opKey(const Node& n) {
  return n.domain().empty() ? n.opType() : n.domain() + "." + n.opType();
}

int runInfo(const InfoOptions& o) {
  auto g = loadModel(o.model);
  std::map<std::string, int64_t> hist, macs;
  for (const auto& n : g->nodes()) ++hist[opKey(*n)];
  int64_t param_count = 0, param_bytes = 0;
  for (const Value* p : g->params()) {
    param_count += p->data().numel();
    param_bytes += static_cast<int64_t>(p->data().nbytes());
  }

  // MACs come from the shapes actually seen in one seeded run (symbolic dims = --batch).
  std::vector<at::Tensor> inputs = makeInputs(*g, o.inputs);
  Executor ex(*g);
  int64_t total_macs = 0;
  ex.setObserver(
      [&](const Node& n, const std::vector<at::Tensor>& in, const std::vector<at::Tensor>& out) {
        int64_t m = nodeMacs(n, in, out);
        if (m > 0) macs[opKey(n)] += m;
        total_macs += m;
      });
  ex.run(inputs);

  if (o.json) {
    nlohmann::ordered_json j;
    j["model"] = o.model;
    j["graph"] = g->name;
    j["opsets"] = g->opsets;
    auto io = [](const std::vector<Value*>& vs) {
      nlohmann::ordered_json a = nlohmann::ordered_json::array();
      for (const Value* v : vs)
        a.push_back({{"name", v->name()},
                     {"dtype", std::string(dtypeName(v->dtype()))},
                     {"shape", shapeJson(v->shape())}});
      return a;
    };
    j["inputs"] = io(g->inputs());
    j["outputs"] = io(g->outputs());
    j["nodes"] = g->numNodes();
    j["ops"] = hist;
    j["parameters"] = {
        {"count", param_count}, {"bytes", param_bytes}, {"tensors", g->params().size()}};
    j["macs"] = {{"total", total_macs}, {"by_op", macs}, {"batch", o.inputs.batch}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }

  std::cout << "model: " << o.model << " (graph '" << g->name << "', opset "
            << (g->opsets.count("") ? g->opsets.at("") : 0) << ")\n";
  auto printIo = [](const char* title, const std::vector<Value*>& vs) {
    std::cout << title << ":\n";
    for (const Value* v : vs)
      std::printf("  %-24s %s\n", v->name().c_str(), typeString(v->dtype(), v->shape()).c_str());
  };
  printIo("inputs", g->inputs());
  printIo("outputs", g->outputs());
  std::cout << "parameters: " << withCommas(param_count) << " (" << humanBytes(param_bytes)
            << ") in " << g->params().size() << " tensors\n";
  std::cout << "ops: " << g->numNodes() << " nodes\n";
  std::printf("  %-24s %7s %18s\n", "op", "count", "MACs");
  for (const auto& [op, count] : hist) {
    auto it = macs.find(op);
    std::printf("  %-24s %7lld %18s\n", op.c_str(), static_cast<long long>(count),
                it == macs.end() ? "-" : withCommas(it->second).c_str());
  }
  std::cout << "MACs (batch " << o.inputs.batch << "): " << withCommas(total_macs) << "\n";
  return 0;
}

}  // namespace

Command addInfoCommand(CLI::App& app) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand(
      "info",
      "Describe a model: inputs/outputs, op histogram, parameters and MACs (from one seeded run)");
  cmd->add_option("model", o->model, "ONNX model file")->required()->type_name("MODEL.onnx");
  cmd->add_flag("--json", o->json, "Print machine-readable JSON instead of text");
  addInputOptions(*cmd, o->inputs, true);
  return {cmd, [o] { return runInfo(*o); }};
}

}  // namespace gs::cli
