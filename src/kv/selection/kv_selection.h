// KvSelection: a query-aware selection policy — which of a sequence's
// stored blocks one decode step reads (docs/kv-compression.md, "Selection").
// Nothing is evicted: a block left out of one step may be read by the next.
//
// The cache is the mechanism: it keeps what the policy needs with every
// block (needs()), and on every decode step (a single-token attend call)
// of every layer and KV head it lists the candidate blocks — the full
// blocks of the block part outside the always-read sinks and window — asks
// the policy to score them for the step's query, and reads the
// ceil(tokens / B) best-scoring ones besides the sinks and the window.
// Prefill (several query tokens) reads everything. A policy only scores.
// Policies are immutable after construction and may be shared by caches and
// threads.
//
// Spec syntax (--select):
//   NAME:tokens=N[:key=value]...
// Keys every policy takes (SelectionBudget):
//   tokens=N   blocks read besides sinks and window: ceil(N / B)
//   window=W   newest positions always read (default 32; the query's own block always is)
//   sinks=S    first positions always read (default 4)
//   reuse=R    keep a head's choice for up to R further steps while the
//              cosine similarity of its query to the query that made the
//              choice stays above sim (default 0: choose every step)
//   sim=X      the similarity threshold of reuse, in [-1, 1] (default 0.9)
// Policies: quest (per-block key bounds; selection_registry.cpp lists them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvforge/status.h"

namespace kvforge {

struct SelectionBudget {
  int32_t tokens = 0;
  int32_t window = 32;
  int32_t sinks = 4;
  int32_t reuse = 0;
  double similarity = 0.9;

  // Blocks chosen per (layer, KV head) and step besides sinks and window.
  [[nodiscard]] int32_t chosen_blocks(int32_t block_tokens) const {
    return (tokens + block_tokens - 1) / block_tokens;
  }
};

// What a policy needs the cache to keep with every block.
struct SelectionNeeds {
  // Per (layer, KV head), the element-wise min and max of the block's keys
  // (key_bounds.h), over the keys as the attention reads them: decoded,
  // rotated back, and the f32 rows of a staged side.
  bool key_bounds = false;
};

// One KV head's decode query and the candidate blocks to score.
struct SelectionHead {
  const float* queries = nullptr;  // [group][head_dim], post-RoPE, unscaled
  int32_t group = 0;               // query heads of this KV head
  int32_t head_dim = 0;
  // Key bounds (needs().key_bounds): the bounds of pool block id b at
  // key_bounds + b * key_bounds_stride (key_bounds.h layout).
  const uint8_t* key_bounds = nullptr;
  size_t key_bounds_stride = 0;
  std::span<const int32_t> block_ids;  // the candidates' pool block ids
};

class KvSelection {
 public:
  virtual ~KvSelection() = default;
  KvSelection(const KvSelection&) = delete;
  KvSelection& operator=(const KvSelection&) = delete;

  // Canonical spec, which make_kv_selection accepts back.
  [[nodiscard]] virtual std::string name() const = 0;
  [[nodiscard]] virtual SelectionNeeds needs() const = 0;
  // scores[i] (scores.size() == head.block_ids.size()): how much candidate
  // i may matter to this query; higher is read first, never NaN. Called
  // from several threads at once (one per KV head).
  virtual void score(const SelectionHead& head, std::span<float> scores) const = 0;

  [[nodiscard]] const SelectionBudget& budget() const { return budget_; }

 protected:
  explicit KvSelection(const SelectionBudget& budget) : budget_(budget) {}

 private:
  SelectionBudget budget_;
};

// Builds a policy from its spec ("" and "none" are not specs: no selection
// is an empty pointer, see plan_kv_selection). kInvalidArgument with one
// line naming the problem and the valid choices: unknown policy or key, a
// missing or malformed value.
[[nodiscard]] Result<std::unique_ptr<KvSelection>> make_kv_selection(std::string_view spec);

// The policy names make_kv_selection knows.
[[nodiscard]] const std::vector<std::string>& kv_selection_names();

// --select: null for "" or "none", else make_kv_selection (errors prefixed
// with "--select").
[[nodiscard]] Result<std::shared_ptr<const KvSelection>> plan_kv_selection(std::string_view spec);

}  // namespace kvforge
