// Fidelity of a KV cache against a reference cache: the model runs the same
// windows of a token stream twice, once with each cache, and every scored
// position compares the two next-token distributions.
//
// Windows and scored positions are exactly those of perplexity()
// (eval/perplexity.h): consecutive windows of n_ctx tokens, each from an
// empty cache with its first token replaced by BOS when bos_id >= 0, and the
// predictions at positions n_ctx/2 .. n_ctx-2 scored. The two perplexities
// reported are therefore the ones `kvforge ppl` gives for each cache.
//
// Per scored position, with P the reference and Q the candidate
// distribution (softmax of the logit rows, computed in double):
//   KL(P || Q) = sum_i P_i (log P_i - log Q_i)   in nats
//   top-1 agreement: argmax of both rows is the same token (lowest id on ties)
//   NLL of the true next token under P and under Q.
//
// Memory is O(chunk × n_vocab) for the logits plus one double per scored
// token (kept for the percentiles), whatever the length of the stream.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "eval/perplexity.h"
#include "kv/kv_cache.h"
#include "kvforge/status.h"

namespace kvforge {

class Model;

struct KlOptions {
  int32_t n_ctx = 512;
  int32_t bos_id = -1;      // >= 0: replace each window's first token with it
  int32_t max_windows = 0;  // 0: all whole windows in the stream
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

  [[nodiscard]] int64_t n_scored() const { return reference.n_scored; }
  [[nodiscard]] double mean_kl() const;
  [[nodiscard]] double mean_kl_stderr() const;
  // Fraction in [0, 1] of scored positions whose top-1 tokens agree.
  [[nodiscard]] double top1_agreement() const;
  // Percentile p in [0, 100] of token_kl (see percentile()).
  [[nodiscard]] double kl_percentile(double p) const;
};

// progress(window_done, n_windows, running) is called after every window.
using KlProgress = std::function<void(int32_t, int32_t, const KlResult&)>;

// `reference` and `candidate` must be two distinct caches, each holding at
// least n_ctx positions for SeqId{0}; both are emptied between windows.
[[nodiscard]] Result<KlResult> kl_divergence(Model& model, KvCache& reference, KvCache& candidate,
                                             std::span<const int32_t> tokens,
                                             const KlOptions& options,
                                             const KlProgress& progress = {});

}  // namespace kvforge
