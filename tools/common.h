// Pieces shared by the subcommands: the model options every command takes
// (-m, -t, -c, -b) and loading a model with its tokenizer.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "kv/kv_cache.h"
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
  // KV cache (kv/kv_cache_factory.h)
  std::string kv_codec = "f16";
  std::string kv_codec_layers;
  int32_t kv_block = 0;
  std::string kv_mem;  // "" : enough for the context
  std::string cache_salt;
  std::string press;           // --press
  std::string press_layers;    // --press-layers
  std::string select;          // --select
  bool repack_weights = true;  // off with --no-repack

  // Not an option: the evaluations turn it off (they never reuse prompts).
  bool prefix_sharing = true;
};

void add_model_options(CLI::App& app, ModelArgs& args);

struct LoadedModel {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  int32_t n_ctx = 0;
};

[[nodiscard]] Result<LoadedModel> load_model(const ModelArgs& args);

// Without --kv-mem, commands whose prompts may share prefixes (run) let the
// block pool grow to this fraction of available memory (at most 16 contexts'
// worth); the others keep exactly what their contexts need.
inline constexpr double kPrefixCacheMemoryFraction = 0.25;

// A KV cache of n_seq sequences of n_ctx positions as the KV options say;
// default_budget_fraction as in KvCacheOptions.
[[nodiscard]] Result<std::unique_ptr<KvCache>> make_kv_cache(const Model& model,
                                                             const ModelArgs& args, int32_t n_ctx,
                                                             int32_t n_seq = 1,
                                                             double default_budget_fraction = 0);
// The same with every KV option at its default except the codec.
[[nodiscard]] Result<std::unique_ptr<KvCache>> make_kv_cache(const Model& model, int32_t n_ctx,
                                                             const std::string& kv_codec);

// Reads a whole text file; kNotFound/kIoError with the path on failure.
[[nodiscard]] Result<std::string> read_text_file(const std::string& path);

// "1.23 MiB"
[[nodiscard]] std::string format_bytes(double bytes);

}  // namespace kvforge::cli
