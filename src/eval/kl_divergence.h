// Fidelity of a KV cache against a reference cache: the model runs the same
// windows of a token stream twice, once with each cache, and every scored
// position compares the two next-token distributions.
//
// Windows: consecutive windows of n_ctx tokens, each from an empty cache
// with its first token replaced by BOS when bos_id >= 0; the predictions at
// positions n_ctx/2 .. n_ctx-2 are scored. How a window is fed to the model
// is the protocol (eval/scored_logits.h): kPrefill, the default, runs exactly
// the forward passes of perplexity(), so the two perplexities reported are
// the ones `kvforge ppl` gives for each cache; kDecode prefills the first
// half as a prompt (a press compresses it) and decodes the second half one
// teacher-forced token at a time. Both caches run the same protocol.
//
// Per scored position, with P the reference and Q the candidate
// distribution (softmax of the logit rows, computed in double):
//   KL(P || Q) = sum_i P_i (log P_i - log Q_i)   in nats
//   top-1 agreement: argmax of both rows is the same token (lowest id on ties)
//   NLL of the true next token under P and under Q.
//
// Memory is O(chunk × n_vocab) for the logits plus one double per scored
// token (kept for the percentiles), whatever the length of the stream;
// record_reference() keeps the reference's scored rows instead (n_scored ×
// n_vocab floats) so that several candidates are compared with one
// reference run.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "eval/perplexity.h"
#include "eval/scored_logits.h"
#include "kv/kv_cache.h"
#include "kvforge/status.h"

namespace kvforge {

class Model;

struct KlOptions {
  int32_t n_ctx = 512;
  int32_t bos_id = -1;      // >= 0: replace each window's first token with it
  int32_t max_windows = 0;  // 0: all whole windows in the stream
  KlProtocol protocol = KlProtocol::kPrefill;
};

// The comparison of two logit rows (one scored position).
struct KlToken {
  double kl = 0;     // KL(P || Q), nats
  double nll_p = 0;  // -log P(target)
  double nll_q = 0;  // -log Q(target)
  bool top1_agree = false;
};

// Compares one reference row `p` with one candidate row `q` of n_vocab logits;
// `target` is the true next token. NLLs are computed as in perplexity():
// log_sum_exp(row) - row[target].
[[nodiscard]] KlToken compare_logits(const float* p, const float* q, int32_t n_vocab,
                                     int32_t target);

// The p-th percentile (p in [0, 100]) of `values` by linear interpolation
// between closest ranks: with the values sorted ascending as x[0..n-1] and
// h = (n - 1) p / 100, it is x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h]).
// (NumPy's default.) 0 for an empty input. `values` is reordered.
[[nodiscard]] double percentile(std::span<double> values, double p);

struct KlResult {
  int32_t n_windows = 0;
  int64_t n_top1_agree = 0;
  double sum_kl = 0;
  double sum_kl_sq = 0;          // for the standard error of the mean
  PerplexityResult reference;    // NLL sums under P
  PerplexityResult candidate;    // NLL sums under Q
  std::vector<double> token_kl;  // KL per scored position, in stream order
  // The candidate's KV bytes per position held (ScoredLogits), summed over
  // windows: after the context, and the mean over each window's scored steps.
  double sum_context_bytes_per_token = 0;
  double sum_scored_bytes_per_token = 0;

  [[nodiscard]] int64_t n_scored() const { return reference.n_scored; }
  [[nodiscard]] double mean_kl() const;
  [[nodiscard]] double mean_kl_stderr() const;
  // Fraction in [0, 1] of scored positions whose top-1 tokens agree.
  [[nodiscard]] double top1_agreement() const;
  // Percentile p in [0, 100] of token_kl (see percentile()).
  [[nodiscard]] double kl_percentile(double p) const;
  // Means over the windows of the candidate's bytes per position.
  [[nodiscard]] double context_bytes_per_token() const;
  [[nodiscard]] double scored_bytes_per_token() const;
};

// progress(window_done, n_windows, running) is called after every window.
using KlProgress = std::function<void(int32_t, int32_t, const KlResult&)>;

// `reference` and `candidate` must be two distinct caches, each holding at
// least n_ctx positions for SeqId{0}; both are emptied between windows.
[[nodiscard]] Result<KlResult> kl_divergence(Model& model, KvCache& reference, KvCache& candidate,
                                             std::span<const int32_t> tokens,
                                             const KlOptions& options,
                                             const KlProgress& progress = {});

// The reference side's scored logit rows of every window, recorded once.
struct KlReferenceRows {
  KlOptions options;
  int32_t n_windows = 0;
  int32_t n_vocab = 0;
  int32_t rows_per_window = 0;
  std::vector<float> logits;  // [n_windows][rows_per_window][n_vocab]
  // The reference's KV bytes per position after the context, mean over windows.
  double context_bytes_per_token = 0;
};

// Bytes record_reference() keeps for these options and stream length (0 if
// the text holds no window).
[[nodiscard]] size_t reference_rows_bytes(int64_t n_tokens, int32_t n_vocab,
                                          const KlOptions& options);

// Runs `reference` over the windows once and keeps its scored rows.
[[nodiscard]] Result<KlReferenceRows> record_reference(Model& model, KvCache& reference,
                                                       std::span<const int32_t> tokens,
                                                       const KlOptions& options);

// The same as kl_divergence() with the reference's rows recorded earlier
// (from the same tokens; the options are the recorded ones). The result is
// identical to running the reference alongside.
[[nodiscard]] Result<KlResult> kl_divergence(Model& model, const KlReferenceRows& reference,
                                             KvCache& candidate, std::span<const int32_t> tokens,
                                             const KlProgress& progress = {});

}  // namespace kvforge
