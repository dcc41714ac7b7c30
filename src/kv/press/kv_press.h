// KvPress: a retention policy — which of a layer's cached rows each KV head
// keeps when the cache is pressed (docs/kv-compression.md).
//
// The cache is the mechanism: it captures the attention the press asks for,
// lists each head's candidate rows (every row before the block part's
// protected window, sinks excluded), calls choose() once per layer, and
// rewrites storage from the choice. A press only decides. Presses are
// immutable after construction and may be shared by sequences and threads.
//
// Spec syntax (--press, --press-layers):
//   NAME[:key=value]...
// Keys every press takes (PressBudget):
//   ratio=R     keep R of the positions held (0 < R <= 1), or
//   tokens=N    keep N rows per (layer, KV head); both count sinks and window
//   sinks=N     first positions always kept (default 4)
//   window=N    newest positions always kept (default 32)
//   every=N     during decode, press again every N generated tokens (0: prompt only)
//   max=N       during decode, press when a head holds more than N rows (0: off;
//               rows demoted by mikv do not count)
//   adaptive=1  head-adaptive budgets: the layer's rows go to the best-scoring
//               rows over all its heads, each head keeping at least floor x its share
//   floor=F     adaptive: the per-head floor as a fraction of the even share (default 0.2)
//   seed=N      random choices and tie-free noise (default 0)
// and the press's own keys (press_registry.cpp lists them).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvforge/status.h"

namespace kvforge {

struct PressBudget {
  double ratio = 0;      // > 0: fraction of positions kept
  int32_t tokens = 0;    // > 0: rows kept per (layer, KV head)
  int32_t sinks = 4;     // first positions always kept
  int32_t window = 32;   // newest positions always kept
  int32_t every = 0;     // decode: press every N steps
  int32_t max_rows = 0;  // decode: press when a head holds more
  bool adaptive = false;
  double floor = 0.2;
  uint64_t seed = 0;

  // Rows a head keeps when the sequence holds n_positions positions: the
  // budget, never below sinks + window.
  [[nodiscard]] int32_t rows_for(int32_t n_positions) const;
};

// What a press needs the cache to collect for it.
struct PressNeeds {
  // Sum of the attention probabilities of the last N prompt queries (-1: of
  // every prompt query; 0: none), per row.
  int32_t prompt_queries = 0;
  // Also of every decode query since the prompt (H2O).
  bool decode_queries = false;
  // With decode_queries: of the newest decode query only (TOVA): the sums
  // start from zero after every decode step and after the prompt's press.
  bool newest_query_only = false;
  bool keys = false;     // the candidates' keys (decoded, unrotated: as the model computed them)
  bool values = false;   // the candidates' values
  bool queries = false;  // the captured prompt queries themselves (post-RoPE)
};

// One KV head's candidates in one layer, rows in ascending position order.
struct PressCandidates {
  std::span<const int32_t> positions;
  // Summed probabilities of the captured queries (empty unless needed); a
  // row's attention from a query counts the query heads of the group
  // averaged.
  std::span<const float> attention;
  // Tokens each row stands for: 1, more for a merged row.
  std::span<const float> counts;
  std::span<const float> keys;    // [rows][head_dim] when needed
  std::span<const float> values;  // [rows][head_dim] when needed
};

struct PressLayer {
  int32_t layer = 0;
  int32_t n_layers = 0;
  int32_t head_dim = 0;
  int32_t n_heads = 0;      // query heads
  int32_t n_kv_heads = 0;   // = heads.size()
  int32_t n_positions = 0;  // positions the sequence holds
  // Query positions whose attention `attention` sums: [first, end).
  int32_t captured_first = 0;
  int32_t captured_end = 0;
  // Rows each head keeps among its candidates, on average over the layer's
  // heads (the budget minus what is protected anyway).
  int32_t rows = 0;
  std::span<const PressCandidates> heads;
  // [captured_end - captured_first][n_heads][head_dim] when needs().queries
  // (only the prompt queries, at most the capture window).
  std::span<const float> queries;
};

// What one head keeps. Indices are candidate rows; every candidate not
// named is dropped. keep and demote are ascending and disjoint; each merged
// group (>= 2 rows, disjoint from the rest) becomes one row whose key and
// value are the count-weighted means of its members, at its newest member's
// position, standing for the members' tokens together.
struct HeadChoice {
  std::vector<int32_t> keep;
  std::vector<int32_t> demote;  // kept in the press's demotion codec (MiKV)
  std::vector<std::vector<int32_t>> merged;

  void clear() {
    keep.clear();
    demote.clear();
    merged.clear();
  }
};

class KvPress {
 public:
  virtual ~KvPress() = default;
  KvPress(const KvPress&) = delete;
  KvPress& operator=(const KvPress&) = delete;

  // Canonical spec, which make_kv_press accepts back.
  [[nodiscard]] virtual std::string name() const = 0;
  [[nodiscard]] virtual PressNeeds needs() const = 0;
  // The codec of demoted rows ("int4", "kivi2:r=0", ...), empty if none.
  [[nodiscard]] virtual std::string demotion_codec() const { return {}; }
  // Chooses for every head of one layer; choices.size() == layer.n_kv_heads.
  virtual void choose(const PressLayer& layer, std::span<HeadChoice> choices) const = 0;

  [[nodiscard]] const PressBudget& budget() const { return budget_; }

 protected:
  explicit KvPress(const PressBudget& budget) : budget_(budget) {}

 private:
  PressBudget budget_;
};

// Builds a press from its spec. kInvalidArgument with one line naming the
// problem and the valid choices: unknown press or key, ratio outside (0, 1],
// a token budget below sinks + window, a malformed value.
[[nodiscard]] Result<std::unique_ptr<KvPress>> make_kv_press(std::string_view spec);

// The press names make_kv_press knows.
[[nodiscard]] const std::vector<std::string>& kv_press_names();

// Per-layer presses from --press and --press-layers (the same RANGE syntax
// as --kv-codec-layers; "none" turns pressing off for a range). Empty specs
// everywhere: no press. One entry per layer, null where the layer is not
// pressed.
[[nodiscard]] Result<std::vector<std::shared_ptr<const KvPress>>> plan_kv_presses(
    std::string_view press, std::string_view layers, int32_t n_layers);

}  // namespace kvforge
