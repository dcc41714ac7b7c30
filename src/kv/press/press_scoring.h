// Building blocks the presses share: deterministic top-k over scored rows,
// head-adaptive allocation of a layer's rows, and a base class for presses
// that score every candidate and keep the best. Internal to src/kv/press.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kv/press/kv_press.h"
#include "kv/press/press_options.h"

namespace kvforge::press {

// The indices of the k highest scores, ascending. Ties go to the lower index
// (the older row), and NaN scores count as lowest, so the choice is the same
// on every machine.
[[nodiscard]] std::vector<int32_t> top_rows(std::span<const float> scores, int32_t k);

// Head-adaptive budgets: `total` rows over all heads, each head first getting
// its best min(floor_rows, its rows), the rest going to the best remaining
// rows of any head (ties: lower head, then lower row). keep[h] ascending.
void adaptive_top_rows(std::span<const std::vector<float>> scores, int64_t total,
                       int32_t floor_rows, std::vector<std::vector<int32_t>>& keep);

// A press that scores every candidate row of every head (higher: keep) and
// keeps the best layer_rows() per head, or, with adaptive=1, the best of the
// layer's heads together.
class ScoringPress : public KvPress {
 public:
  void choose(const PressLayer& layer, std::span<HeadChoice> choices) const override;

 protected:
  explicit ScoringPress(const PressBudget& budget) : KvPress(budget) {}
  // scores[h] gets one score per candidate row of head h.
  virtual void score(const PressLayer& layer, std::vector<std::vector<float>>& scores) const = 0;
  // Rows each head keeps on average in this layer (PyramidKV changes it per layer).
  [[nodiscard]] virtual int32_t layer_rows(const PressLayer& layer) const { return layer.rows; }
};

// The options every press takes (kv_press.h), read from `options`.
[[nodiscard]] Result<PressBudget> take_budget(PressOptions& options);
// "ratio=0.25:sinks=4:window=32" for name(): the budget's keys that differ
// from their defaults, in a fixed order.
[[nodiscard]] std::string budget_suffix(const PressBudget& budget);

// The keys take_budget reads, for error messages.
inline constexpr std::string_view kBudgetKeys =
    "ratio, tokens, sinks, window, every, max, adaptive, floor, seed";

}  // namespace kvforge::press
