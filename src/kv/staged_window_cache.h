// StagedWindowCache: the full-precision rows that make a prefix hit exact
// under a codec with a residual window (KIVI with r > 0).
//
// A query at position P reads the rows of the last blocks before P in f32
// (the read rule in paged_kv_cache.h). After a prefix hit of P tokens those
// rows must be the ones a cold run computed, and they cannot be rebuilt from
// the quantized blocks. So when a sequence is released, the paged cache keeps
// its staged rows here, keyed by the chain hashes (block_hash.h) of the block
// boundaries they can serve: a later prompt whose hit ends at one of those
// boundaries (the next turn of a conversation) reads them back.
//
// A window's rows are a pure function of its token chain (model, codec plan
// and salt are in the chain hash), so any window recorded for a chain hash
// serves every hit on that chain, whichever blocks hold it now. The cache
// holds at most capacity_bytes of rows and drops the least recently used
// window first.
//
// Thread-safety: none; the paged cache's owner serialises calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "kv/block_hash.h"

namespace kvforge {

// The f32 rows of positions [begin, begin + tokens.size()) of one sequence.
struct StagedWindow {
  int32_t begin = 0;
  std::vector<int32_t> tokens;  // the token id of every position held
  // Per layer, rows [position - begin][n_kv_heads][head_dim]; empty for
  // layers whose side is not staged.
  std::vector<std::vector<float>> keys;
  std::vector<std::vector<float>> values;

  [[nodiscard]] int32_t end() const { return begin + static_cast<int32_t>(tokens.size()); }
  [[nodiscard]] size_t bytes() const;
  // True when the window holds positions [first, last) with these token ids.
  [[nodiscard]] bool holds(std::span<const int32_t> prompt, int32_t first, int32_t last) const;
};

class StagedWindowCache {
 public:
  explicit StagedWindowCache(size_t capacity_bytes) : capacity_bytes_(capacity_bytes) {}

  // Records `window` for hits ending at each of `chain_ends` (chain hashes of
  // block boundaries inside it). Hashes already recorded keep their window
  // (same chain, same rows); a window that adds no hash, or is larger than
  // the whole capacity, is dropped. Evicts least recently used windows to
  // stay within the capacity.
  void insert(std::shared_ptr<const StagedWindow> window, std::span<const BlockHash> chain_ends);

  // The window recorded for a hit whose last block has this chain hash, or
  // null. A found window becomes the most recently used.
  [[nodiscard]] std::shared_ptr<const StagedWindow> find(const BlockHash& chain_end);

  [[nodiscard]] size_t bytes() const { return bytes_; }
  [[nodiscard]] size_t capacity_bytes() const { return capacity_bytes_; }
  [[nodiscard]] int32_t n_windows() const { return static_cast<int32_t>(lru_.size()); }
  void check_invariants() const;

 private:
  struct Entry {
    std::shared_ptr<const StagedWindow> window;
    std::vector<BlockHash> chain_ends;  // the map keys that name this window
  };
  using Lru = std::list<Entry>;  // most recently used first

  void evict_oldest();

  size_t capacity_bytes_;
  size_t bytes_ = 0;
  Lru lru_;
  std::unordered_map<BlockHash, Lru::iterator, BlockHashHasher> by_chain_end_;
};

}  // namespace kvforge
