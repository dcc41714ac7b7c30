#include "kv/selection/block_choice.h"

#include <algorithm>

#include "kvforge/status.h"

namespace kvforge {

BlockSelectionPlan plan_block_selection(const SelectionBudget& budget, int32_t block_tokens,
                                        int32_t first_block, int32_t query_pos) {
  KVF_CHECK(block_tokens > 0 && first_block >= 0 &&
            static_cast<int64_t>(first_block) * block_tokens <= query_pos);
  BlockSelectionPlan p;
  p.first = first_block;
  p.last = query_pos / block_tokens;
  const int64_t sink_blocks =
      (static_cast<int64_t>(budget.sinks) + block_tokens - 1) / block_tokens;
  p.sink_end = static_cast<int32_t>(std::clamp<int64_t>(sink_blocks, p.first, p.last));
  const int64_t oldest_in_window = std::max<int64_t>(0, int64_t{query_pos} + 1 - budget.window);
  p.window_begin = static_cast<int32_t>(
      std::clamp<int64_t>(oldest_in_window / block_tokens, p.sink_end, p.last));
  p.chosen = budget.chosen_blocks(block_tokens);
  return p;
}

int32_t max_blocks_read(const SelectionBudget& budget, int32_t block_tokens, int32_t max_blocks) {
  const int64_t sinks = (static_cast<int64_t>(budget.sinks) + block_tokens - 1) / block_tokens;
  // The window's positions may straddle one more block than they fill.
  const int64_t window = static_cast<int64_t>(budget.window) / block_tokens + 2;
  return static_cast<int32_t>(
      std::min<int64_t>(max_blocks, sinks + budget.chosen_blocks(block_tokens) + window));
}

void top_blocks(std::span<const float> scores, int32_t first_candidate, std::span<int32_t> order,
                std::span<int32_t> chosen) {
  const auto n = static_cast<int32_t>(scores.size());
  const auto k = static_cast<int32_t>(chosen.size());
  KVF_CHECK(k <= n && order.size() >= scores.size());
  for (int32_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  const auto better = [&](int32_t a, int32_t b) {
    const float sa = scores[static_cast<size_t>(a)];
    const float sb = scores[static_cast<size_t>(b)];
    return sa > sb || (sa == sb && a < b);
  };
  std::nth_element(order.begin(), order.begin() + k, order.begin() + n, better);
  std::sort(order.begin(), order.begin() + k);
  for (int32_t i = 0; i < k; ++i) {
    chosen[static_cast<size_t>(i)] = first_candidate + order[static_cast<size_t>(i)];
  }
}

void complete_block_list(const BlockSelectionPlan& plan, int32_t* out) {
  for (int32_t j = plan.first; j < plan.sink_end; ++j) out[j - plan.first] = j;
  int32_t n = plan.chosen_offset() + plan.chosen;
  for (int32_t j = plan.window_begin; j <= plan.last; ++j) out[n++] = j;
}

}  // namespace kvforge
