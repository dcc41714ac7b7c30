#include "eval/kl_divergence.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "kernels/ops.h"
#include "model/model.h"

namespace kvforge {
namespace {

// Index of the largest logit, the lowest index among equal maxima.
int32_t argmax(const float* x, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

}  // namespace

KlToken compare_logits(const float* p, const float* q, int32_t n_vocab, int32_t target) {
  const double lse_p = kernels::log_sum_exp(p, n_vocab);
  const double lse_q = kernels::log_sum_exp(q, n_vocab);
  double kl = 0;
  for (int32_t i = 0; i < n_vocab; ++i) {
    const double log_p = static_cast<double>(p[i]) - lse_p;
    const double pi = std::exp(log_p);
    if (pi == 0) continue;  // 0 · log(0 / q) = 0
    kl += pi * (log_p - (static_cast<double>(q[i]) - lse_q));
  }
  KlToken t;
  t.kl = kl;
  t.nll_p = lse_p - p[target];
  t.nll_q = lse_q - q[target];
  t.top1_agree = argmax(p, n_vocab) == argmax(q, n_vocab);
  return t;
}

double percentile(std::span<double> values, double p) {
  if (values.empty()) return 0;
  // NaN (a codec that produced NaN logits) orders above every number.
  const auto less = [](double a, double b) { return a < b || (std::isnan(b) && !std::isnan(a)); };
  const double h = (static_cast<double>(values.size()) - 1) * std::clamp(p, 0.0, 100.0) / 100;
  const auto lo = static_cast<size_t>(std::floor(h));
  const auto mid = values.begin() + static_cast<std::ptrdiff_t>(lo);
  std::nth_element(values.begin(), mid, values.end(), less);
  const double x_lo = *mid;
  if (lo + 1 >= values.size() || h == static_cast<double>(lo)) return x_lo;
  // The next order statistic is the smallest value after position lo.
  const double x_hi = *std::min_element(mid + 1, values.end(), less);
  return x_lo + (h - static_cast<double>(lo)) * (x_hi - x_lo);
}

double KlResult::mean_kl() const {
  return n_scored() ? sum_kl / double(n_scored()) : 0;
}

double KlResult::mean_kl_stderr() const {
  const int64_t n = n_scored();
  if (n < 2) return 0;
  const double mean = mean_kl();
  const double var =
      std::max(0.0, (sum_kl_sq / double(n) - mean * mean) * double(n) / double(n - 1));
  return std::sqrt(var / double(n));
}

double KlResult::top1_agreement() const {
  return n_scored() ? double(n_top1_agree) / double(n_scored()) : 0;
}

double KlResult::kl_percentile(double p) const {
  std::vector<double> copy = token_kl;
  return percentile(copy, p);
}

double KlResult::context_bytes_per_token() const {
  return n_windows ? sum_context_bytes_per_token / n_windows : 0;
}

double KlResult::scored_bytes_per_token() const {
  return n_windows ? sum_scored_bytes_per_token / n_windows : 0;
}

namespace {

// The window loop shared by both forms of kl_divergence():
// reference_row(w, k) returns the reference's row of the k-th scored
// position of window w, after candidate row k was computed.
template <class ReferenceRow>
Result<KlResult> compare_windows(Model& model, KvCache& candidate, std::span<const int32_t> tokens,
                                 const KlOptions& o, int32_t n_windows,
                                 const ReferenceRow& reference_row, const KlProgress& progress) {
  const int32_t n_vocab = model.config().n_vocab;
  ScoredLogits cand(model, candidate, o.protocol, o.n_ctx);
  std::vector<int32_t> window(static_cast<size_t>(o.n_ctx));
  KlResult r;
  r.token_kl.reserve(static_cast<size_t>(n_windows) * static_cast<size_t>(cand.n_scored()));
  auto add_nll = [](PerplexityResult& pr, double nll) {
    pr.sum_nll += nll;
    pr.sum_nll_sq += nll * nll;
    ++pr.n_scored;
  };
  for (int32_t w = 0; w < n_windows; ++w) {
    std::copy_n(tokens.begin() + static_cast<int64_t>(w) * o.n_ctx, o.n_ctx, window.begin());
    if (o.bos_id >= 0) window[0] = o.bos_id;
    KVF_RETURN_IF_ERROR(cand.start(window));
    for (int32_t k = 0; k < cand.n_scored(); ++k) {
      KVF_ASSIGN_OR_RETURN(const float* q, cand.next());
      KVF_ASSIGN_OR_RETURN(const float* p, reference_row(w, k, window));
      const int32_t i = cand.first_scored() + k;
      const KlToken t = compare_logits(p, q, n_vocab, window[static_cast<size_t>(i + 1)]);
      r.sum_kl += t.kl;
      r.sum_kl_sq += t.kl * t.kl;
      r.token_kl.push_back(t.kl);
      r.n_top1_agree += t.top1_agree ? 1 : 0;
      add_nll(r.reference, t.nll_p);
      add_nll(r.candidate, t.nll_q);
    }
    r.sum_context_bytes_per_token += cand.context_bytes_per_token();
    r.sum_scored_bytes_per_token += cand.scored_bytes_per_token();
    r.n_windows = w + 1;
    r.reference.n_windows = r.candidate.n_windows = w + 1;
    if (progress) progress(w + 1, n_windows, r);
  }
  KVF_RETURN_IF_ERROR(candidate.truncate(SeqId{0}, 0));
  return r;
}

}  // namespace

Result<KlResult> kl_divergence(Model& model, KvCache& reference, KvCache& candidate,
                               std::span<const int32_t> tokens, const KlOptions& o,
                               const KlProgress& progress) {
  if (&reference == &candidate) {
    return invalid_argument("the reference and the candidate must be two different KV caches");
  }
  KVF_ASSIGN_OR_RETURN(const int32_t n_windows,
                       count_eval_windows(static_cast<int64_t>(tokens.size()), o.n_ctx,
                                          o.max_windows, "KL divergence"));
  ScoredLogits ref(model, reference, o.protocol, o.n_ctx);
  auto reference_row = [&](int32_t, int32_t k,
                           std::span<const int32_t> window) -> Result<const float*> {
    if (k == 0) KVF_RETURN_IF_ERROR(ref.start(window));
    return ref.next();
  };
  auto r = compare_windows(model, candidate, tokens, o, n_windows, reference_row, progress);
  if (!r.ok()) return r;
  KVF_RETURN_IF_ERROR(reference.truncate(SeqId{0}, 0));
  return r;
}

size_t reference_rows_bytes(int64_t n_tokens, int32_t n_vocab, const KlOptions& o) {
  if (o.n_ctx < 4) return 0;
  int64_t windows = n_tokens / o.n_ctx;
  if (o.max_windows > 0) windows = std::min<int64_t>(windows, o.max_windows);
  const int64_t rows = windows * (o.n_ctx - 1 - o.n_ctx / 2);
  return static_cast<size_t>(rows) * static_cast<size_t>(n_vocab) * sizeof(float);
}

Result<KlReferenceRows> record_reference(Model& model, KvCache& reference,
                                         std::span<const int32_t> tokens, const KlOptions& o) {
  KVF_ASSIGN_OR_RETURN(const int32_t n_windows,
                       count_eval_windows(static_cast<int64_t>(tokens.size()), o.n_ctx,
                                          o.max_windows, "KL divergence"));
  KlReferenceRows rows;
  rows.options = o;
  rows.n_windows = n_windows;
  rows.n_vocab = model.config().n_vocab;
  ScoredLogits ref(model, reference, o.protocol, o.n_ctx);
  rows.rows_per_window = ref.n_scored();
  const auto row_floats = static_cast<size_t>(rows.n_vocab);
  rows.logits.resize(static_cast<size_t>(n_windows) * static_cast<size_t>(rows.rows_per_window) *
                     row_floats);
  std::vector<int32_t> window(static_cast<size_t>(o.n_ctx));
  float* out = rows.logits.data();
  for (int32_t w = 0; w < n_windows; ++w) {
    std::copy_n(tokens.begin() + static_cast<int64_t>(w) * o.n_ctx, o.n_ctx, window.begin());
    if (o.bos_id >= 0) window[0] = o.bos_id;
    KVF_RETURN_IF_ERROR(ref.start(window));
    for (int32_t k = 0; k < rows.rows_per_window; ++k, out += row_floats) {
      KVF_ASSIGN_OR_RETURN(const float* p, ref.next());
      std::copy_n(p, row_floats, out);
    }
    rows.context_bytes_per_token += ref.context_bytes_per_token() / n_windows;
  }
  KVF_RETURN_IF_ERROR(reference.truncate(SeqId{0}, 0));
  return rows;
}

Result<KlResult> kl_divergence(Model& model, const KlReferenceRows& reference, KvCache& candidate,
                               std::span<const int32_t> tokens, const KlProgress& progress) {
  const KlOptions& o = reference.options;
  KVF_ASSIGN_OR_RETURN(const int32_t n_windows,
                       count_eval_windows(static_cast<int64_t>(tokens.size()), o.n_ctx,
                                          o.max_windows, "KL divergence"));
  if (n_windows != reference.n_windows || model.config().n_vocab != reference.n_vocab) {
    return invalid_argument("the recorded reference rows are of another text or model");
  }
  const auto row_floats = static_cast<size_t>(reference.n_vocab);
  auto reference_row = [&](int32_t w, int32_t k, std::span<const int32_t>) -> Result<const float*> {
    const size_t row = static_cast<size_t>(w) * static_cast<size_t>(reference.rows_per_window) +
                       static_cast<size_t>(k);
    return static_cast<const float*>(reference.logits.data() + row * row_floats);
  };
  return compare_windows(model, candidate, tokens, o, n_windows, reference_row, progress);
}

}  // namespace kvforge
