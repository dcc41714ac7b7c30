// Pieces shared by the subcommands: the model options every command takes
// (-m, -t, -c, -b) and loading a model with its tokenizer.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "kv/contiguous_kv_cache.h"
#include "kvforge/status.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace kvforge::cli {

using tokenizer::Tokenizer;

struct ModelArgs {
  std::string model_path;
  int32_t n_threads = 0;  // 0: all cores
  int32_t n_ctx = 0;      // 0: the model's trained context, at most 4096
  int32_t n_batch = 256;
  std::string kv_type = "f16";
};

void add_model_options(CLI::App& app, ModelArgs& args);

struct LoadedModel {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  int32_t n_ctx = 0;
};

[[nodiscard]] Result<LoadedModel> load_model(const ModelArgs& args);

// A single-sequence KV cache of args.n_ctx positions in the chosen element type.
[[nodiscard]] Result<std::unique_ptr<KvCache>> make_kv_cache(const Model& model, int32_t n_ctx,
                                                             const std::string& kv_type);

// Reads a whole text file; kNotFound/kIoError with the path on failure.
[[nodiscard]] Result<std::string> read_text_file(const std::string& path);

// "1.23 MiB"
[[nodiscard]] std::string format_bytes(double bytes);

}  // namespace kvforge::cli
