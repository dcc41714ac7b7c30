// PagedKvCache: query-aware selection — the key bounds kept with every
// block, and the blocks each KV head reads in a decode step
// (docs/kv-compression.md, "Selection").
#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "kv/hadamard.h"
#include "kv/paged_kv_cache.h"
#include "kv/paged_kv_cache_state.h"
#include "kv/selection/block_choice.h"
#include "kv/selection/key_bounds.h"
#include "util/thread_pool.h"

namespace kvforge {
namespace {

// Cosine similarity of two vectors; NaN (never "similar") when one is zero.
float cosine(const float* a, const float* b, int32_t n) {
  float ab = 0, aa = 0, bb = 0;
  for (int32_t i = 0; i < n; ++i) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

}  // namespace

Status PagedKvCache::check_press_with_selection(const KvPress* press,
                                                const KvSelection& selection) {
  if (press == nullptr || !press->needs().decode_queries) return Status();
  return invalid_argument(
      fmt::format("--select {} cannot be combined with press '{}': the press scores every decode "
                  "query's attention over every row, and a selecting step reads only some (use "
                  "another press, or no --select)",
                  selection.name(), press->name()));
}

std::string PagedKvCache::selection_plan() const {
  return selection_ ? selection_->name() : "none";
}

int32_t PagedKvCache::bounds_segment(LayerId layer, int32_t kv_head) const {
  return first_bounds_segment_ + layer.value * shape_.n_kv_heads + kv_head;
}

// The bounds of block j of `layer` over the keys the attention may read for
// it: the decoded tile rows (rotated back) where the block is encoded, and
// the staged f32 rows where the sequence still has them. Recomputed from
// scratch on every store into the block, so rows dropped by a rollback
// never linger, and every path (prefill, decode, prefix hit, restore)
// leaves the same bounds for the same rows.
void PagedKvCache::update_key_bounds(const Sequence& s, LayerId layer, int32_t block) {
  const LayerCodecs& c = layers_[static_cast<size_t>(layer.value)];
  const int32_t bt = block_tokens_;
  const int32_t d = shape_.head_dim;
  const int32_t heads = shape_.n_kv_heads;
  const auto held = static_cast<int32_t>(s.tokens.size());
  const int32_t n = std::min(bt, held - block * bt);
  KVF_CHECK(n > 0);
  const BlockId id = s.blocks[static_cast<size_t>(block)];
  float* rows = bounds_rows_.data();
  float* lo = rows + static_cast<size_t>(bt) * static_cast<size_t>(d);
  float* hi = lo + d;
  // A staged side encodes a block once it is full (store).
  const bool encoded = !c.key_staged || n == bt;
  const bool staged = c.key_staged && block * bt >= s.staged_begin;
  KVF_CHECK(encoded || staged);
  const int64_t stride = static_cast<int64_t>(heads) * d;
  for (int32_t h = 0; h < heads; ++h) {
    std::fill_n(lo, d, std::numeric_limits<float>::infinity());
    std::fill_n(hi, d, -std::numeric_limits<float>::infinity());
    if (encoded) {
      c.key->decode(tile(id, layer, false, h), n, rows);
      if (c.key->rotated()) {
        for (int32_t r = 0; r < n; ++r) hadamard_transform(rows + static_cast<size_t>(r) * d, d);
      }
      fold_key_rows(rows, d, n, d, lo, hi);
    }
    if (staged) {
      const float* src = s.staged_keys[static_cast<size_t>(layer.value)].data() +
                         (static_cast<int64_t>(block) * bt - s.staged_begin) * stride +
                         static_cast<int64_t>(h) * d;
      fold_key_rows(src, stride, n, d, lo, hi);
    }
    write_key_bounds(lo, hi, d, pool_->segment_data(id, bounds_segment(layer, h)));
  }
}

void PagedKvCache::forget_selection(Sequence& s) const {
  std::fill(s.chosen_age.begin(), s.chosen_age.end(), -1);
}

bool PagedKvCache::select_blocks(Sequence& s, LayerId layer, int32_t pos0, const float* q,
                                 ThreadPool& pool, PagedAttentionArgs& a) {
  const int32_t heads = shape_.n_kv_heads;
  const size_t base = static_cast<size_t>(layer.value) * static_cast<size_t>(heads);
  const SelectionBudget& budget = selection_->budget();
  const BlockSelectionPlan plan =
      plan_block_selection(budget, block_tokens_, s.compressed_end / block_tokens_, pos0);
  if (!plan.selects()) {
    std::fill_n(select_counts_.begin() + static_cast<std::ptrdiff_t>(base), heads, 0);
    return false;
  }
  KVF_CHECK(plan.blocks_read() <= max_read_);
  const int32_t group = shape_.n_heads / heads;
  const int32_t d = shape_.head_dim;
  const size_t query_floats = static_cast<size_t>(group) * static_cast<size_t>(d);
  const auto n = static_cast<size_t>(plan.candidates());
  const auto k = static_cast<size_t>(plan.chosen);
  const std::span<const int32_t> candidates(block_ids_.data() + plan.sink_end, n);
  const bool reuse = budget.reuse > 0;

  pool.parallel_for(heads, [&](int64_t task, int /*thread*/) {
    const auto h = static_cast<int32_t>(task);
    const size_t i = base + static_cast<size_t>(h);
    const float* query = q + static_cast<size_t>(h) * query_floats;
    int32_t* list = select_lists_.data() + i * static_cast<size_t>(max_read_);
    int32_t* chosen = list + plan.chosen_offset();
    int32_t* kept = reuse ? s.chosen_blocks.data() + i * k : nullptr;
    float* kept_query = reuse ? s.chosen_queries.data() + i * query_floats : nullptr;
    bool reused = false;
    if (reuse && s.chosen_age[i] >= 0 && s.chosen_age[i] < budget.reuse &&
        std::all_of(kept, kept + k,
                    [&](int32_t j) { return j >= plan.sink_end && j < plan.window_begin; }) &&
        cosine(query, kept_query, static_cast<int32_t>(query_floats)) > budget.similarity) {
      std::copy_n(kept, k, chosen);
      ++s.chosen_age[i];
      reused = true;
    }
    if (!reused) {
      SelectionHead head;
      head.queries = query;
      head.group = group;
      head.head_dim = d;
      if (bounds_bytes_ > 0) {
        head.key_bounds = segment_arenas_[static_cast<size_t>(bounds_segment(layer, h))];
        head.key_bounds_stride = bounds_bytes_;
      }
      head.block_ids = candidates;
      const std::span<float> scores(select_scores_.data() + static_cast<size_t>(h) * max_blocks_,
                                    n);
      selection_->score(head, scores);
      top_blocks(scores, plan.sink_end,
                 std::span<int32_t>(select_order_.data() + static_cast<size_t>(h) * max_blocks_, n),
                 std::span<int32_t>(chosen, k));
      if (reuse) {
        std::copy_n(chosen, k, kept);
        std::copy_n(query, query_floats, kept_query);
        s.chosen_age[i] = 0;
      }
    }
    complete_block_list(plan, list);
    select_counts_[i] = plan.blocks_read();
  });
  a.head_blocks = select_ptrs_.data() + base;
  a.head_block_counts = select_counts_.data() + base;
  return true;
}

std::span<const int32_t> PagedKvCache::selected_blocks(LayerId layer, int32_t kv_head) const {
  if (!selection_) return {};
  const size_t i = static_cast<size_t>(layer.value) * static_cast<size_t>(shape_.n_kv_heads) +
                   static_cast<size_t>(kv_head);
  return {select_ptrs_.at(i), static_cast<size_t>(select_counts_.at(i))};
}

bool PagedKvCache::key_bounds(SeqId seq, LayerId layer, int32_t kv_head, int32_t block,
                              std::vector<float>& lo, std::vector<float>& hi) const {
  const Sequence& s = sequence(seq);
  if (bounds_bytes_ == 0 || block < 0 || block >= static_cast<int32_t>(s.blocks.size()) ||
      s.blocks[static_cast<size_t>(block)] == kInvalidBlock) {
    return false;
  }
  const auto d = static_cast<size_t>(shape_.head_dim);
  lo.resize(d);
  hi.resize(d);
  read_key_bounds(
      pool_->segment_data(s.blocks[static_cast<size_t>(block)], bounds_segment(layer, kv_head)),
      shape_.head_dim, lo.data(), hi.data());
  return true;
}

}  // namespace kvforge
