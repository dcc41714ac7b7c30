// The private state of a PagedKvCache, shared by its implementation files
// (paged_kv_cache.cpp, paged_kv_cache_snapshot.cpp). Not part of the API.
#pragma once

#include <memory>
#include <vector>

#include "kv/paged_kv_cache.h"
#include "kv/press/kv_press.h"
#include "kv/retained_page_store.h"

namespace kvforge {

// A block table entry whose positions were pressed into retained rows.
inline constexpr BlockId kInvalidBlock{};

struct PagedKvCache::LayerCodecs {
  std::unique_ptr<KvCodec> key;
  std::unique_ptr<KvCodec> value;
  size_t key_tile_bytes = 0;
  size_t value_tile_bytes = 0;
  bool key_staged = false;
  bool value_staged = false;
};

// The codecs of rows a press demotes (MiKV), one pair per codec name: the
// codec parameters (block size, head_dim) are the same for every layer.
struct PagedKvCache::DemotionCodecs {
  std::unique_ptr<KvCodec> key;
  std::unique_ptr<KvCodec> value;
};

// The rows of one (layer, KV head) that a press kept (or demoted), in pages
// of up to block_tokens rows, in ascending position order.
struct RetainedRows {
  std::vector<PageRef> key_pages;
  std::vector<PageRef> value_pages;
  std::vector<const uint8_t*> key_tiles;  // the pages' bytes, for the kernel
  std::vector<const uint8_t*> value_tiles;
  std::vector<int32_t> positions;
  std::vector<float> counts;  // tokens each row stands for (> 1: merged)
  std::vector<float> bias;    // log(counts) when some row is merged, else empty

  [[nodiscard]] int32_t size() const { return static_cast<int32_t>(positions.size()); }
};

// A press's new list for one (layer, KV head) before it is written: the
// kept rows encoded into tiles in host memory (paged_kv_cache_press.cpp).
struct PagedKvCache::StagedRows {
  std::vector<std::vector<uint8_t>> key_tiles;
  std::vector<std::vector<uint8_t>> value_tiles;
  std::vector<int32_t> positions;
  std::vector<float> counts;
  std::vector<float> attention;  // captured attention carried over, per row
  // Retained lists: rows of the old retained and demoted lists together (the
  // old block part's first row in the attention order).
  int32_t old_rows = 0;
};

struct PagedKvCache::Sequence {
  std::vector<int32_t> tokens;     // one id per held position
  std::vector<BlockId> blocks;     // ceil(tokens / B) blocks
  int32_t staged_begin = 0;        // first position with staged rows (a block boundary)
  CacheNamespace cache_namespace;  // model, codec plan, salt: who may share its blocks
  // Per layer: f32 rows [position - staged_begin][n_kv_heads][head_dim] of the
  // staged sides (empty for layers whose sides are not staged).
  std::vector<std::vector<float>> staged_keys;
  std::vector<std::vector<float>> staged_values;

  // Retention (kv-compression.md). Positions before compressed_end (a block
  // boundary) live only in the retained and demoted rows; the block table's
  // entries before compressed_end / B are kInvalidBlock.
  int32_t compressed_end = 0;
  // Positions from here on hold reused KV that was not all recomputed
  // (relay): never offered to the prefix cache. INT32_MAX: all exact.
  int32_t approximate_from = INT32_MAX;
  // Each layer's press (null: keeps every row): the cache's plan, or the
  // sequence's own (set_press).
  std::vector<std::shared_ptr<const KvPress>> presses;
  std::vector<RetainedRows> retained;  // [layer * n_kv_heads + head]; empty until pressed
  std::vector<RetainedRows> demoted;   // likewise
  // Captured attention: query positions [capture_first, capture_end) add
  // their probabilities to attention[layer * n_kv_heads + head][row], rows
  // in the kernel's span order (retained, demoted, block part from
  // compressed_end). Empty vectors when nothing is captured.
  int32_t capture_first = 0;
  int32_t capture_end = 0;
  int32_t prompt_end = 0;  // of the prompt being prefilled (begin_prompt)
  std::vector<std::vector<float>> attention;
  // The captured prompt queries of each layer, [query][n_heads][head_dim],
  // for presses that need them.
  std::vector<std::vector<float>> captured_queries;
  int32_t decode_steps = 0;  // since the last press
};

}  // namespace kvforge
