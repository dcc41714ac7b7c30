// Engine: the public entry point for serving — a model, its tokenizer, a KV
// cache and a continuous-batching scheduler running on its own thread.
//
//   auto engine = kvforge::Engine::create({.model_path = "model.gguf", .parallel = 8});
//   auto ids = (*engine)->tokenize("Once upon a time", true, false);
//   (*engine)->submit({.prompt = ids, .max_tokens = 64}, [](const RequestEvent& e) {
//     ...  // one event per token, then a final one with usage
//     return true;  // false stops the request
//   });
//
// Requests from any thread are batched together (docs/serving.md); a
// request's output does not depend on what else runs beside it. Events are
// delivered on the engine's scheduler thread: a sink must be quick (calling
// submit or cancel from it is allowed; they only queue work for a later
// step).
//
// Ownership: the Engine owns everything it creates; destroying it stops the
// scheduler thread, cancelling requests still queued or running (their sinks
// get FinishReason::kCancelled). Thread-safety: every method may be called
// from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvforge/generation.h"
#include "kvforge/status.h"

namespace kvforge {

// The KV cache (docs/kv-cache.md, docs/kv-compression.md): the same choices
// as the command line's --kv-* and --press/--select options.
struct KvCacheConfig {
  std::string codec = "f16";  // --kv-codec
  std::string codec_layers;   // --kv-codec-layers
  int32_t block_tokens = 0;   // --kv-block (0: the default for the codec)
  std::string memory;         // --kv-mem ("512MiB"); empty: what the sequences need
  std::string cache_salt;     // default salt of every sequence
  std::string press;          // --press
  std::string press_layers;   // --press-layers
  bool prefix_sharing = true;
  // Tiers below the pool (docs/tiers.md), fastest first: "host:SIZE",
  // "disk:DIR:SIZE", "redis://HOST:PORT", "redis-cluster://HOST:PORT,...".
  // Prefix blocks are written to every tier and loaded from the first that
  // has them.
  std::vector<std::string> tiers;
  // "auto": load when the cost model expects loading to beat recomputing;
  // "always"; "never" (write only).
  std::string tier_load = "auto";
};

// Multi-agent relay (docs/relay.md): outputs of requests that name a
// workflow keep their KV, and later prompts of the workflow that quote them
// reuse it with a share of the tokens recomputed.
struct RelayConfig {
  std::string memory = "256MiB";  // bytes of outputs kept; "0" or "": relay off
  int32_t min_tokens = 16;        // shortest quoted run reused, >= 4
  double recompute_ratio = 0.15;  // share of a run's tokens recomputed, [0, 1]
};

struct EngineOptions {
  std::string model_path;  // GGUF file
  int32_t n_threads = 0;   // 0: all cores
  int32_t n_ctx = 0;       // positions per sequence; 0: the model's, at most 4096
  int32_t n_batch = 256;   // tokens per forward step
  // Q4_0 weights repacked at load for the matmul kernels (same memory and
  // results, faster batched products); false reads the file's blocks.
  bool repack_weights = true;
  int32_t parallel = 4;  // sequences served at once
  KvCacheConfig kv;
  RelayConfig relay;
};

struct ModelInfo {
  std::string path;
  std::string name;           // general.name, or the architecture
  std::string architecture;   // general.architecture
  std::string chat_template;  // tokenizer.chat_template, empty if the file has none
  int32_t n_ctx = 0;          // positions per sequence in this engine
  int32_t n_ctx_train = 0;
  int32_t n_vocab = 0;
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  uint64_t n_params = 0;
  uint64_t fingerprint = 0;  // identifies the weights (KV is never shared across them)
  int32_t bos_id = -1;       // -1: none
  int32_t eos_id = -1;
  std::string kv_description;  // the cache's configuration as it runs
  int64_t kv_bytes_per_token = 0;
};

class Engine {
 public:
  // Loads the model and tokenizer, builds the cache and starts the scheduler
  // thread. Errors name the file or the option at fault.
  [[nodiscard]] static Result<std::unique_ptr<Engine>> create(const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  [[nodiscard]] const ModelInfo& info() const;

  // The tokenizer (tokenizer.h's rules): add_special puts BOS/EOS as the
  // model asks; parse_special turns "<s>"-like text into control tokens.
  [[nodiscard]] std::vector<int32_t> tokenize(std::string_view text, bool add_special,
                                              bool parse_special) const;
  [[nodiscard]] std::string token_to_piece(int32_t id) const;
  [[nodiscard]] std::string detokenize(std::span<const int32_t> ids, bool skip_special) const;
  [[nodiscard]] bool is_end_of_generation(int32_t id) const;

  // Queues a request (see Scheduler in docs/serving.md). Invalid parameters
  // (including a press spec that check_press_spec refuses) are refused here
  // (kInvalidArgument, kOutOfRange), and then no event is ever sent.
  [[nodiscard]] Result<RequestId> submit(RequestParams params, RequestSink sink);
  void cancel(RequestId id);

  [[nodiscard]] ServingStats stats() const;

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Checks a retention press spec (--press syntax, docs/kv-compression.md)
// without building a cache: kInvalidArgument with one line naming the
// problem, for an unknown press the valid names. Empty means no press.
[[nodiscard]] Status check_press_spec(std::string_view spec);

}  // namespace kvforge
