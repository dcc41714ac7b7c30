// The private state of a PagedKvCache, shared by its implementation files
// (paged_kv_cache.cpp, paged_kv_cache_snapshot.cpp). Not part of the API.
#pragma once

#include <memory>
#include <vector>

#include "kv/paged_kv_cache.h"

namespace kvforge {

struct PagedKvCache::LayerCodecs {
  std::unique_ptr<KvCodec> key;
  std::unique_ptr<KvCodec> value;
  size_t key_tile_bytes = 0;
  size_t value_tile_bytes = 0;
  bool key_staged = false;
  bool value_staged = false;
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
};

}  // namespace kvforge
