// expected: expected attention (Devoto, Jeblick, Jégou, arXiv 2510.00636;
// kvpress's ExpectedAttentionPress) — score each key by the attention that
// future queries are expected to give it, times its value's norm (what the
// row adds to the residual stream), and keep the best.
//
// Future queries of query head q are modelled as Gaussian, N(mu, diag(var)),
// with mean and per-channel variance taken over the captured queries of the
// last w prompt positions. For a Gaussian query, E[exp(q.k / sqrt(d))] =
// exp(mu.k / sqrt(d) + k^T diag(var) k / (2d)); these are normalized over the
// candidate rows (a softmax per query head), averaged over the KV head's
// query heads, and multiplied by ||v||.
//
// What we do not model (kept simple, documented in kv-compression.md):
//  - the paper takes pre-RoPE query statistics and averages RoPE's rotation
//    over the next n positions; we use the post-RoPE queries of the last w
//    positions as they are, which stand for queries a few positions later;
//  - a diagonal covariance instead of the full one;
//  - the softmax runs over the candidates (sinks and the window excluded),
//    and the scale is 1 / sqrt(head_dim), as kvpress.
// With no captured queries (a press before any prompt window) mu = var = 0
// and the score is the value norm alone.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "kv/press/press_factories.h"
#include "kv/press/press_scoring.h"

namespace kvforge::press {
namespace {

class ExpectedPress final : public ScoringPress {
 public:
  ExpectedPress(const PressBudget& budget, int32_t window, bool covariance, bool value_norm)
      : ScoringPress(budget), window_(window), covariance_(covariance), value_norm_(value_norm) {}
  [[nodiscard]] std::string name() const override {
    return fmt::format("expected{}:w={}:cov={}:vnorm={}", budget_suffix(budget()), window_,
                       covariance_ ? 1 : 0, value_norm_ ? 1 : 0);
  }
  [[nodiscard]] PressNeeds needs() const override {
    PressNeeds n;
    n.prompt_queries = window_;  // captures the window's queries
    n.queries = true;
    n.keys = true;
    n.values = value_norm_;
    return n;
  }

 protected:
  void score(const PressLayer& layer, std::vector<std::vector<float>>& scores) const override {
    const auto d = static_cast<size_t>(layer.head_dim);
    const auto n_heads = static_cast<size_t>(layer.n_heads);
    const size_t group = n_heads / static_cast<size_t>(layer.n_kv_heads);
    const size_t n_queries = layer.queries.size() / (n_heads * d);
    const double inv_sqrt_d = 1.0 / std::sqrt(static_cast<double>(d));
    std::vector<double> mean(d), var(d), z;
    for (size_t h = 0; h < layer.heads.size(); ++h) {
      const PressCandidates& c = layer.heads[h];
      const size_t rows = c.positions.size();
      std::vector<double> sum(rows, 0.0);
      for (size_t g = 0; g < group; ++g) {
        const size_t qh = h * group + g;
        // Mean and (population) variance per channel over the captured queries.
        std::fill(mean.begin(), mean.end(), 0.0);
        std::fill(var.begin(), var.end(), 0.0);
        for (size_t t = 0; t < n_queries; ++t) {
          const float* q = layer.queries.data() + (t * n_heads + qh) * d;
          for (size_t e = 0; e < d; ++e) mean[e] += q[e];
        }
        for (size_t e = 0; e < d && n_queries > 0; ++e) mean[e] /= static_cast<double>(n_queries);
        for (size_t t = 0; t < n_queries; ++t) {
          const float* q = layer.queries.data() + (t * n_heads + qh) * d;
          for (size_t e = 0; e < d; ++e) var[e] += (q[e] - mean[e]) * (q[e] - mean[e]);
        }
        for (size_t e = 0; e < d && n_queries > 0; ++e) var[e] /= static_cast<double>(n_queries);
        // Log of the expected unnormalized attention, then a softmax over rows.
        z.assign(rows, 0.0);
        double top = -INFINITY;
        for (size_t r = 0; r < rows; ++r) {
          const float* k = c.keys.data() + r * d;
          double dot = 0;
          double quad = 0;
          for (size_t e = 0; e < d; ++e) {
            dot += mean[e] * k[e];
            quad += var[e] * double(k[e]) * k[e];
          }
          z[r] = dot * inv_sqrt_d + (covariance_ ? quad / (2.0 * static_cast<double>(d)) : 0.0);
          top = std::max(top, z[r]);
        }
        double total = 0;
        for (double& x : z) total += (x = std::exp(x - top));
        for (size_t r = 0; r < rows; ++r) sum[r] += z[r] / total / static_cast<double>(group);
      }
      scores[h].resize(rows);
      for (size_t r = 0; r < rows; ++r) {
        double norm = 1;
        if (value_norm_) {
          double s = 0;
          for (size_t e = 0; e < d; ++e) s += double(c.values[r * d + e]) * c.values[r * d + e];
          norm = std::sqrt(s);
        }
        scores[h][r] = static_cast<float>(sum[r] * norm);
      }
    }
  }

 private:
  int32_t window_;
  bool covariance_;
  bool value_norm_;
};

}  // namespace

Result<std::unique_ptr<KvPress>> make_expected_press(const PressBudget& budget,
                                                     PressOptions& options) {
  KVF_ASSIGN_OR_RETURN(const int32_t window, options.take_count("w", 32, 1, 1 << 16));
  KVF_ASSIGN_OR_RETURN(const int32_t covariance, options.take_count("cov", 1, 0, 1));
  KVF_ASSIGN_OR_RETURN(const int32_t value_norm, options.take_count("vnorm", 1, 0, 1));
  KVF_RETURN_IF_ERROR(options.finish(fmt::format("{}, w, cov, vnorm", kBudgetKeys)));
  return std::unique_ptr<KvPress>(
      new ExpectedPress(budget, window, covariance == 1, value_norm == 1));
}

}  // namespace kvforge::press
