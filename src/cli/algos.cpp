// `gstick algos [NAME] [--markdown]`: the algorithm registry as a list, one algorithm's config
// fields, or the Markdown section of docs/algorithms.md.
#include <cstdio>

#include "algo/registry.h"
#include "algo/registry_docs.h"
#include "cli/commands.h"

namespace gs::cli {

Command addAlgosCommand(CLI::App& app) {
  struct Opts {
    std::string name;
    bool markdown = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand(
      "algos", "List compression algorithms, or show one algorithm's config fields");
  cmd->add_option("name", o->name, "Algorithm whose config fields to show")->type_name("NAME");
  cmd->add_flag("--markdown", o->markdown,
                "Print the registry section of docs/algorithms.md (all algorithms, Markdown)");
  return {cmd, [o] {
            const AlgoRegistry& r = AlgoRegistry::global();
            std::string text = o->markdown         ? registryMarkdown(r)
                               : o->name.empty()   ? registryListText(r)
                                                   : algoFieldsText(r, o->name);
            std::fputs(text.c_str(), stdout);
            return 0;
          }};
}

}  // namespace gs::cli
