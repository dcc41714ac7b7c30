// pyramidkv: PyramidKV (Cai et al., arXiv 2406.02069) — SnapKV's pooled
// observation-window scores inside each layer, with layer budgets falling
// linearly from the bottom layer to the top one while their mean stays the
// budget. With A the rows a head keeps on average (the budget minus sinks
// and window) and n the candidates, the authors' schedule
// (KVCache-Factory, pyramidkv_utils.py; kvpress's PyramidKVPress) is
//   top = A / beta,  bottom = 2A - top,
//   and if bottom > n: bottom = n, top = 2A - n (the mean stays A),
//   layer l of L: bottom - l * (bottom - top) / (L - 1).
// We round the cumulative sums of that line rather than each layer's value,
// so the layers' rows add up to exactly L * A. Defaults as kvpress:
// beta = 20, kernel = 5; w = 32 as our snapkv (kvpress uses 64).
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "kv/press/press_factories.h"
#include "kv/press/press_scoring.h"
#include "kv/press/snapkv_scores.h"

namespace kvforge::press {
namespace {

// Rows layer `layer` of `n_layers` keeps per head when the mean is `average`
// and a head has `candidates` rows.
int32_t pyramid_rows(int32_t average, int32_t candidates, int32_t layer, int32_t n_layers,
                     double beta) {
  if (n_layers <= 1 || average >= candidates) return average;
  const double a = average;
  double top = a / beta;
  double bottom = 2 * a - top;
  if (bottom > candidates) {
    bottom = candidates;
    top = 2 * a - bottom;
  }
  const double step = (bottom - top) / (n_layers - 1);
  // Sum of the line's values over layers [0, l).
  const auto cumulative = [&](int32_t l) {
    return static_cast<int64_t>(std::llround(l * bottom - step * l * (l - 1) / 2.0));
  };
  return static_cast<int32_t>(cumulative(layer + 1) - cumulative(layer));
}

class PyramidKvPress final : public ScoringPress {
 public:
  PyramidKvPress(const PressBudget& budget, SnapKvParams params, double beta)
      : ScoringPress(budget), params_(params), beta_(beta) {}
  [[nodiscard]] std::string name() const override {
    return fmt::format("pyramidkv{}:w={}:kernel={}:pool={}:beta={}", budget_suffix(budget()),
                       params_.window, params_.kernel, params_.max_pool ? "max" : "avg", beta_);
  }
  [[nodiscard]] PressNeeds needs() const override {
    PressNeeds n;
    n.prompt_queries = params_.window;
    return n;
  }

 protected:
  void score(const PressLayer& layer, std::vector<std::vector<float>>& scores) const override {
    snapkv_scores(layer, params_, scores);
  }
  [[nodiscard]] int32_t layer_rows(const PressLayer& layer) const override {
    size_t candidates = 0;
    for (const PressCandidates& c : layer.heads)
      candidates = std::max(candidates, c.positions.size());
    return pyramid_rows(layer.rows, static_cast<int32_t>(candidates), layer.layer, layer.n_layers,
                        beta_);
  }

 private:
  SnapKvParams params_;
  double beta_;
};

}  // namespace

Result<std::unique_ptr<KvPress>> make_pyramidkv_press(const PressBudget& budget,
                                                      PressOptions& options) {
  KVF_ASSIGN_OR_RETURN(const SnapKvParams params, take_snapkv_params(options));
  KVF_ASSIGN_OR_RETURN(const double beta, options.take_number("beta", 20, 1, 1e6));
  KVF_RETURN_IF_ERROR(options.finish(fmt::format("{}, w, kernel, pool, beta", kBudgetKeys)));
  return std::unique_ptr<KvPress>(new PyramidKvPress(budget, params, beta));
}

}  // namespace kvforge::press
