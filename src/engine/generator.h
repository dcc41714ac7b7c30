// Text generation over token ids: prefill a prompt into a sequence's KV
// cache, then decode one token at a time with a Sampler until a stop
// condition. Tokenization and printing stay with the caller (the callback
// receives ids), so the same loop serves the CLI, the server and tests.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "engine/sampler.h"
#include "kv/kv_cache.h"
#include "kvforge/status.h"

namespace kvforge {

class Model;

struct GenerationOptions {
  int32_t n_predict = 128;  // tokens to generate; < 0: until end of generation or full context
  bool stop_at_end_of_generation = true;
};

struct GenerationStats {
  int32_t n_prompt_tokens = 0;  // prompt tokens computed (not taken from a prefix cache)
  int32_t n_reused_tokens = 0;  // prompt tokens whose KV came from the cache
  int32_t n_generated = 0;
  int32_t n_decode_steps = 0;  // single-token forward passes (n_generated - 1 or fewer)
  double prompt_seconds = 0;   // prefill forward pass
  double decode_seconds = 0;   // the decode forward passes
  bool context_full = false;   // stopped because the KV cache had no room left
  // KV bytes of the sequence (KvCache::sequence_bytes) after the prefill,
  // before and after the prompt was pressed, and at the end; positions held
  // at the end.
  size_t kv_bytes_before_press = 0;
  size_t kv_bytes_after_press = 0;
  size_t kv_bytes_end = 0;
  int32_t n_positions_end = 0;

  [[nodiscard]] double prompt_tokens_per_second() const {
    return prompt_seconds > 0 ? n_prompt_tokens / prompt_seconds : 0;
  }
  [[nodiscard]] double decode_tokens_per_second() const {
    return decode_seconds > 0 ? n_decode_steps / decode_seconds : 0;
  }
};

struct GenerationCallbacks {
  // Called with each generated token; return false to stop.
  std::function<bool(int32_t id)> on_token;
  // True for tokens that end generation (EOS, end-of-turn).
  std::function<bool(int32_t id)> is_end_of_generation;
};

// `capacity_tokens` is the most positions the sequence may hold; a prompt
// that does not fit is an error (kOutOfRange) that names both numbers.
[[nodiscard]] Result<GenerationStats> generate(Model& model, KvCache& kv, SeqId seq,
                                               int32_t capacity_tokens,
                                               std::span<const int32_t> prompt,
                                               const GenerationOptions& options, Sampler& sampler,
                                               const GenerationCallbacks& callbacks);

}  // namespace kvforge
