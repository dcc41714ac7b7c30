// Which blocks one decode step reads under a selection budget: the
// always-read sinks and window, the candidates between them, and the top-k
// of the candidates by a policy's scores (kv_selection.h). Pure functions on
// absolute block indices (block j holds positions [j * B, (j + 1) * B)); no
// allocation.
#pragma once

#include <cstdint>
#include <span>

#include "kv/selection/kv_selection.h"

namespace kvforge {

// The shape of one step's choice; the same for every KV head.
//   [first, sink_end)         sinks: blocks holding positions < sinks
//   [sink_end, window_begin)  candidates: full blocks, `chosen` of them read
//   [window_begin, last]      the newest `window` positions and the query's block
struct BlockSelectionPlan {
  int32_t first = 0;
  int32_t sink_end = 0;
  int32_t window_begin = 0;
  int32_t last = 0;
  int32_t chosen = 0;

  [[nodiscard]] int32_t candidates() const { return window_begin - sink_end; }
  // False when the budget covers every candidate: the step reads every block.
  [[nodiscard]] bool selects() const { return candidates() > chosen; }
  // Blocks a head reads when selects().
  [[nodiscard]] int32_t blocks_read() const {
    return (sink_end - first) + chosen + (last + 1 - window_begin);
  }
  // Where the chosen candidates go in a head's list (complete_block_list).
  [[nodiscard]] int32_t chosen_offset() const { return sink_end - first; }
};

// For a query at query_pos whose block part starts at block first_block.
[[nodiscard]] BlockSelectionPlan plan_block_selection(const SelectionBudget& budget,
                                                      int32_t block_tokens, int32_t first_block,
                                                      int32_t query_pos);

// Longest list any step of a sequence of up to max_blocks blocks reads.
[[nodiscard]] int32_t max_blocks_read(const SelectionBudget& budget, int32_t block_tokens,
                                      int32_t max_blocks);

// The k = chosen.size() candidates with the highest scores (ties: the older
// block first), as absolute indices in ascending order; scores[i] belongs to
// block first_candidate + i (no NaN). order: scratch of scores.size().
void top_blocks(std::span<const float> scores, int32_t first_candidate, std::span<int32_t> order,
                std::span<int32_t> chosen);

// A head's list of plan.blocks_read() ascending entries: writes the sinks
// before and the window after the plan.chosen candidates that the caller
// wrote (ascending) at out + plan.chosen_offset().
void complete_block_list(const BlockSelectionPlan& plan, int32_t* out);

}  // namespace kvforge
