// ScoredLogits: one KV cache run over one evaluation window, handing out the
// logit rows of the window's scored positions in order. Two protocols:
//
//   kPrefill  the whole window is prefilled in chunks of kEvalChunkTokens,
//             exactly as perplexity() does (the codec-only protocol of
//             `kvforge eval kl`);
//   kDecode   the first half [0, n_ctx/2) is prefilled as a prompt between
//             the cache's begin_prompt/end_prompt hooks (so a press
//             compresses it), then positions n_ctx/2 .. n_ctx-2 are fed one
//             token per forward call, teacher-forced, each followed by
//             end_decode_step (decode-time presses and selection act).
//
// Either way the scored positions are n_ctx/2 .. n_ctx-2 (the prediction at
// position i is of token i + 1), so both protocols score the same tokens.
//
//   window:  [0 ........ n_ctx/2) [n_ctx/2 ........ n_ctx-2] [n_ctx-1]
//   kDecode:  prompt (pressed)     decode steps, scored       target only
//
// The run also measures the cache's footprint (KvCache::sequence_bytes per
// position held): after the context (decode: right after the prompt and its
// press; prefill: after the chunks computed so far, the whole window by the
// last scored position) and averaged over the scored steps.
//
// Ownership: holds references to the model and the cache, and one buffer of
// kEvalChunkTokens (prefill) or 1 (decode) rows of n_vocab logits, allocated
// in the constructor. Uses SeqId{0} of the cache; start() empties it.
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kv/kv_cache.h"
#include "kvforge/status.h"

namespace kvforge {

class Model;

enum class KlProtocol {
  kPrefill,  // whole windows prefilled in chunks, as perplexity()
  kDecode,   // first half a pressed prompt, second half teacher-forced decode steps
};

// "prefill" or "decode".
[[nodiscard]] const char* protocol_name(KlProtocol protocol);

class ScoredLogits {
 public:
  ScoredLogits(Model& model, KvCache& kv, KlProtocol protocol, int32_t n_ctx);
  ScoredLogits(const ScoredLogits&) = delete;
  ScoredLogits& operator=(const ScoredLogits&) = delete;

  [[nodiscard]] int32_t first_scored() const { return n_ctx_ / 2; }
  // Scored positions per window: n_ctx/2 .. n_ctx-2.
  [[nodiscard]] int32_t n_scored() const { return n_ctx_ - 1 - n_ctx_ / 2; }

  // Empties the cache and begins `window` (n_ctx tokens, which must stay
  // alive until the last next()). kDecode prefills and presses the prompt here.
  [[nodiscard]] Status start(std::span<const int32_t> window);
  // The logits (n_vocab floats) of the next scored position, first_scored()
  // first; valid until the following call. At most n_scored() calls per window.
  [[nodiscard]] Result<const float*> next();

  // KV bytes per position held, after the context (see above).
  [[nodiscard]] double context_bytes_per_token() const { return context_bytes_per_token_; }
  // The mean over the scored positions so far of this window of bytes per
  // position held after computing the position (prefill: the context value).
  [[nodiscard]] double scored_bytes_per_token() const;

 private:
  [[nodiscard]] double bytes_per_position() const;

  Model& model_;
  KvCache& kv_;
  KlProtocol protocol_;
  int32_t n_ctx_;
  int32_t n_vocab_;
  std::span<const int32_t> window_;
  std::vector<float> logits_;
  int32_t next_pos_ = 0;      // the next scored position
  int32_t computed_end_ = 0;  // kPrefill: positions [0, computed_end_) are in the cache
  int32_t chunk_start_ = 0;   // kPrefill: logits_ holds rows of [chunk_start_, computed_end_)
  double context_bytes_per_token_ = 0;
  double scored_bytes_sum_ = 0;  // kDecode: sum over the steps so far
  int32_t scored_steps_ = 0;
};

}  // namespace kvforge
