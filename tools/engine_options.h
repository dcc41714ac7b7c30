// Command-line options for commands built on the public serving API
// (kvforge/engine.h): the model, thread, context and batch options and the
// KV cache's --kv-*/--press options, written into an EngineOptions. The
// same flags and meanings as add_model_options in common.h, without its
// internal headers.
#pragma once

#include <CLI/CLI.hpp>

#include "kvforge/engine.h"

namespace kvforge::cli {

void add_engine_options(CLI::App& app, EngineOptions& options);

}  // namespace kvforge::cli
