// Perplexity of a model over a token stream, in the windowed form that
// llama.cpp's perplexity tool uses so numbers are comparable:
//
//   the stream is cut into consecutive windows of n_ctx tokens; each window
//   is evaluated from an empty cache (its first token replaced by BOS when
//   add_bos), and only the predictions of its second half are scored
//   (positions n_ctx/2 .. n_ctx-2 predict the next token), so every scored
//   token has at least n_ctx/2 tokens of context.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "kv/kv_cache.h"
#include "kvforge/status.h"

namespace kvforge {

class Model;

struct PerplexityOptions {
  int32_t n_ctx = 512;
  int32_t bos_id = -1;      // >= 0: replace each window's first token with it
  int32_t max_windows = 0;  // 0: all whole windows in the stream
};

struct PerplexityResult {
  int32_t n_windows = 0;
  int64_t n_scored = 0;
  double sum_nll = 0;     // nats
  double sum_nll_sq = 0;  // for the standard error
  [[nodiscard]] double mean_nll() const { return n_scored ? sum_nll / double(n_scored) : 0; }
  [[nodiscard]] double perplexity() const;
  // Standard error of the perplexity estimate (delta method over token NLLs).
  [[nodiscard]] double perplexity_stderr() const;
};

// Rows of logits the window evaluations compute per forward call. Perplexity
// and KL use the same value so that both run identical forward passes.
inline constexpr int32_t kEvalChunkTokens = 64;

// The number of whole windows of n_ctx tokens in a text of n_tokens, at most
// max_windows when > 0; kInvalidArgument (naming `what`) for n_ctx < 4 and
// for a text shorter than one window.
[[nodiscard]] Result<int32_t> count_eval_windows(int64_t n_tokens, int32_t n_ctx,
                                                 int32_t max_windows, const char* what);

// progress(window_done, n_windows, running) is called after every window.
using PerplexityProgress = std::function<void(int32_t, int32_t, const PerplexityResult&)>;

// `kv` must hold at least n_ctx positions for SeqId{0}; it is emptied between windows.
[[nodiscard]] Result<PerplexityResult> perplexity(Model& model, KvCache& kv,
                                                  std::span<const int32_t> tokens,
                                                  const PerplexityOptions& options,
                                                  const PerplexityProgress& progress = {});

}  // namespace kvforge
