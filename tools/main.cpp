// kvforge: the command line front end. Subcommands live in tools/cmd_*.cpp.
#include <cstdio>
#include <functional>
#include <memory>

#include "command.h"
#include "kernels/simd_target_select.h"

namespace kvforge::cli {

std::vector<Command>& command_registry() {
  static std::vector<Command> registry;
  return registry;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "kvforge: %s\n", message.c_str());
  return 1;
}

}  // namespace kvforge::cli

int main(int argc, char** argv) {
  using kvforge::cli::command_registry;
  // KVFORGE_SIMD_TARGET=avx2 (or any target name this CPU supports) makes
  // every command run the kernels of that SIMD target, for benchmarks.
  if (const kvforge::Status s = kvforge::kernels::restrict_simd_targets_from_env(); !s.ok()) {
    std::fprintf(stderr, "kvforge: %s\n", s.message().c_str());
    return 2;
  }
  CLI::App app{"kvforge: LLM inference with a composable KV cache"};
  app.set_version_flag("--version", std::string("kvforge ") + KVFORGE_VERSION);
  app.require_subcommand(1);
  std::function<int()> chosen;
  for (auto& cmd : command_registry()) {
    CLI::App* sub = app.add_subcommand(cmd.name, cmd.description);
    auto run = std::make_shared<std::function<int()>>();
    *run = cmd.setup(*sub);
    sub->callback([run, &chosen] { chosen = *run; });
  }
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    std::string names;
    for (const auto& cmd : command_registry()) {
      known = known || cmd.name == argv[1];
      names += (names.empty() ? "" : ", ") + cmd.name;
    }
    if (!known) {
      std::fprintf(stderr, "kvforge: unknown command '%s' (commands: %s; see --help)\n", argv[1],
                   names.c_str());
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return chosen ? chosen() : 1;
}
