// Subcommands of the `kvforge` command line. Each tools/cmd_<name>.cpp defines
// one subcommand and registers it with KVFORGE_REGISTER_COMMAND; main.cpp
// builds the CLI11 app from the registry. A command's run function returns
// the process exit code and prints its own one-line error message.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace kvforge::cli {

struct Command {
  std::string name;
  std::string description;
  // Adds options to `sub`; returns the function to run after parsing.
  std::function<std::function<int()>(CLI::App& sub)> setup;
};

std::vector<Command>& command_registry();

struct CommandRegistrar {
  explicit CommandRegistrar(Command c) { command_registry().push_back(std::move(c)); }
};

// Prints "kvforge: <message>" to stderr and returns exit code 1.
int fail(const std::string& message);

}  // namespace kvforge::cli

#define KVFORGE_REGISTER_COMMAND(var, ...)      \
  static ::kvforge::cli::CommandRegistrar var { \
    ::kvforge::cli::Command {                   \
      __VA_ARGS__                               \
    }                                           \
  }
