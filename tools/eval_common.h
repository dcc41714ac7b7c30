// Pieces shared by the `kvforge eval` subcommands (tools/cmd_eval*.cpp):
// each adds itself to the eval command, and all of them compare a cache
// under test (the KV options of the command line) with the f32 reference.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "common.h"

namespace kvforge::cli {

// The reference cache's codec; every other KV option at its default.
inline constexpr const char* kEvalReferenceCodec = "f32";

// The subcommand the user chose: each add_eval_* sets it from its callback.
using EvalChoice = std::shared_ptr<std::function<int()>>;

void add_eval_kl(CLI::App& eval, const EvalChoice& chosen);
void add_eval_passkey(CLI::App& eval, const EvalChoice& chosen);
void add_eval_matrix(CLI::App& eval, const EvalChoice& chosen);

// What compresses the cache beyond its codec: "snapkv:ratio=0.25",
// "layers 0-1:none,2-:h2o", ...; empty when nothing does ("none" counts as
// nothing). With a selection option (--select), one more line adds it here.
[[nodiscard]] std::string compression_label(const ModelArgs& m);
// "int8", "int8 layers 0-1:f16", with " + <compression_label>" when set.
[[nodiscard]] std::string codec_label(const ModelArgs& m);
[[nodiscard]] std::string kv_label(const ModelArgs& m);

// Caches for SeqId{0} of n_ctx positions without prefix sharing (an
// evaluation never reuses prompts): the reference, and the cache under test.
[[nodiscard]] Result<std::unique_ptr<KvCache>> make_reference_eval_cache(const Model& model,
                                                                         int32_t n_ctx);
[[nodiscard]] Result<std::unique_ptr<KvCache>> make_eval_cache(const Model& model,
                                                               const ModelArgs& args,
                                                               int32_t n_ctx);

// A progress bar on stderr: redrawn in place on a terminal, one line per
// update otherwise.
class ProgressBar {
 public:
  ProgressBar();
  // "[#####     ] done/total <unit>  <detail>"
  void update(int32_t done, int32_t total, const std::string& unit, const std::string& detail);
  // Ends the line on a terminal.
  void finish() const;

 private:
  bool tty_;
};

}  // namespace kvforge::cli
