#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "kernels/ops.h"
#include "model/model.h"

namespace kvforge {

double PerplexityResult::perplexity() const {
  return std::exp(mean_nll());
}

double PerplexityResult::perplexity_stderr() const {
  if (n_scored < 2) return 0;
  const double n = double(n_scored);
  const double mean = sum_nll / n;
  const double var = std::max(0.0, (sum_nll_sq / n - mean * mean) * n / (n - 1));
  return std::exp(mean) * std::sqrt(var / n);
}

Result<int32_t> count_eval_windows(int64_t n_tokens, int32_t n_ctx, int32_t max_windows,
                                   const char* what) {
  if (n_ctx < 4) {
    return invalid_argument(fmt::format("{} needs a context of at least 4 tokens", what));
  }
  const int64_t whole = n_tokens / n_ctx;
  if (whole == 0) {
    return invalid_argument(fmt::format(
        "the text has {} tokens, fewer than one window of {} (lower -c or give more text)",
        n_tokens, n_ctx));
  }
  return static_cast<int32_t>(max_windows > 0 ? std::min<int64_t>(whole, max_windows) : whole);
}

Result<PerplexityResult> perplexity(Model& model, KvCache& kv, std::span<const int32_t> tokens,
                                    const PerplexityOptions& o,
                                    const PerplexityProgress& progress) {
  KVF_ASSIGN_OR_RETURN(const int32_t n_windows,
                       count_eval_windows(static_cast<int64_t>(tokens.size()), o.n_ctx,
                                          o.max_windows, "perplexity"));
  const int32_t n_vocab = model.config().n_vocab;
  const int32_t chunk = kEvalChunkTokens;
  std::vector<float> logits(static_cast<size_t>(chunk) * n_vocab);
  std::vector<int32_t> window(static_cast<size_t>(o.n_ctx));
  const int32_t first_scored = o.n_ctx / 2;

  PerplexityResult r;
  for (int32_t w = 0; w < n_windows; ++w) {
    std::copy_n(tokens.begin() + static_cast<int64_t>(w) * o.n_ctx, o.n_ctx, window.begin());
    if (o.bos_id >= 0) window[0] = o.bos_id;
    KVF_RETURN_IF_ERROR(kv.truncate(SeqId{0}, 0));
    for (int32_t start = 0; start < o.n_ctx; start += chunk) {
      const int32_t n = std::min(chunk, o.n_ctx - start);
      const bool needs_logits = start + n > first_scored;
      KVF_RETURN_IF_ERROR(model.forward(
          std::span<const int32_t>(window.data() + start, static_cast<size_t>(n)), start, kv,
          SeqId{0}, needs_logits ? LogitsFor::kAllTokens : LogitsFor::kNone, logits.data()));
      if (!needs_logits) continue;
      for (int32_t i = std::max(start, first_scored); i < start + n && i + 1 < o.n_ctx; ++i) {
        const float* row = logits.data() + static_cast<size_t>(i - start) * n_vocab;
        const double nll =
            kernels::log_sum_exp(row, n_vocab) - row[window[static_cast<size_t>(i + 1)]];
        r.sum_nll += nll;
        r.sum_nll_sq += nll * nll;
        ++r.n_scored;
      }
    }
    r.n_windows = w + 1;
    if (progress) progress(w + 1, n_windows, r);
  }
  KVF_RETURN_IF_ERROR(kv.truncate(SeqId{0}, 0));
  return r;
}

}  // namespace kvforge
