#include <cstdio>

#include "command.h"

namespace kvforge::cli {
namespace {

KVFORGE_REGISTER_COMMAND(version_command, "version", "Print the version and commit",
                         [](CLI::App&) -> std::function<int()> {
                           return [] {
                             std::printf("kvforge %s (commit %s)\n", KVFORGE_VERSION,
                                         KVFORGE_GIT_COMMIT);
                             return 0;
                           };
                         });

}  // namespace
}  // namespace kvforge::cli
