// PrefixIndex: the prefix cache. It remembers full KV blocks after their
// sequence is done with them, so that a later sequence whose prompt starts
// with the same tokens reuses them and only prefills the rest.
//
// Conceptually a radix tree at block granularity: one root per
// CacheNamespace (model fingerprint, codec, salt), each edge one full block of
// block_tokens token ids. It is stored flat: a hash map from chain hash
// (block_hash.h) to block, plus each cached block's tokens and namespace, so
// that a lookup of k blocks costs k hash probes, and every probe is verified
// against the stored tokens, namespace and parent, never trusted on the hash
// alone. The tree's links (parent, child counts) and the LRU order live in the
// pool's block records (block_pool.h).
//
// Ownership: the index holds one pool reference on each block it records.
// match() gives the caller one more reference per returned block; the caller
// releases it through the pool. A cached block's bytes must not change: a
// caller that wants to write into a shared block copies it first.
//
// Eviction frees cached blocks that nobody else references, least recently
// used first, deepest first: a block is evicted only after its cached children,
// so a cached chain is always a prefix of what was inserted. Workflow-aware
// (KVFlow, docs/relay.md): blocks inserted with a next-use hint (the agent
// that owns them runs again in that many workflow steps) are kept over
// unhinted ones, and among hinted leaves the one needed furthest ahead goes
// first; a hint whose step has passed counts as none.
//
// The pool must outlive the index, and a pool serves at most one index.
// Thread-safety: none; the scheduler thread owns pool and index.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "kv/block_hash.h"
#include "kv/block_pool.h"

namespace kvforge {

struct PrefixCacheStats {
  int64_t lookups = 0;        // match() calls
  int64_t hits = 0;           // lookups that matched at least one block
  int64_t misses = 0;         // lookups that matched none
  int64_t hit_tokens = 0;     // tokens served from the cache (matched blocks * block_tokens)
  int64_t lookup_tokens = 0;  // tokens offered to match() (its whole `tokens` span)
  int64_t evicted_blocks = 0;
  int32_t cached_blocks = 0;  // blocks in the index now
  // Fraction of offered tokens served from the cache; 0 before any lookup.
  [[nodiscard]] double hit_rate() const;
};

class PrefixIndex {
 public:
  explicit PrefixIndex(BlockPool& pool);  // block size from the pool
  ~PrefixIndex();                         // clear(): the pool outlives the index
  PrefixIndex(const PrefixIndex&) = delete;
  PrefixIndex& operator=(const PrefixIndex&) = delete;

  // Longest run of cached full blocks equal to tokens[0, k*B) under `ns`,
  // k <= max_blocks, and, if `usable` is given, with usable(k, chain hash of
  // block k - 1) true (the caller may need more than the blocks to serve a
  // hit). Each returned block gets one new reference owned by the caller.
  // Counts a lookup (a hit when k > 0); the matched blocks count as used when
  // the caller releases them.
  using HitFilter = std::function<bool(int32_t n_blocks, const BlockHash& chain_end)>;
  [[nodiscard]] std::vector<BlockId> match(const CacheNamespace& ns,
                                           std::span<const int32_t> tokens, int32_t max_blocks,
                                           const HitFilter& usable = nullptr);

  // The cached chain match() would start from, without taking references,
  // counting a lookup or applying a filter; chain_hashes (if given) gets
  // each returned block's chain hash. Valid until the index next changes.
  [[nodiscard]] std::vector<BlockId> peek(const CacheNamespace& ns, std::span<const int32_t> tokens,
                                          int32_t max_blocks,
                                          std::vector<BlockHash>* chain_hashes = nullptr) const;

  // The caller offers its full blocks: blocks[i] holds tokens[i*B, (i+1)*B)
  // after blocks[0..i). The index takes its own reference on each block it
  // newly records; where that chain is already cached by another block, the
  // existing one is kept and the offered block is not recorded (the caller
  // keeps its own reference). tokens may extend past the blocks (a partial
  // tail); that part is ignored. If given, chain_hashes receives the chain
  // hash of every block walked (all of them unless a hash collision ends the
  // walk early).
  // next_use_steps >= 0 hints every block of the chain (offered or already
  // cached) as needed again after that many advance_clock() calls. If
  // given, recorded receives the indices (into blocks) of the offered blocks
  // the index newly recorded.
  void insert(const CacheNamespace& ns, std::span<const int32_t> tokens,
              std::span<const BlockId> blocks, std::vector<BlockHash>* chain_hashes = nullptr,
              int32_t next_use_steps = -1, std::vector<size_t>* recorded = nullptr);
  // One workflow step done (a workflow request finished): hints count down.
  void advance_clock() { ++clock_; }

  // Called by evict() for each block just before it is freed (tiering
  // spills it to a lower tier); its bytes are still intact then.
  struct EvictedBlock {
    BlockId block;
    BlockHash chain_hash;
    BlockHash parent_hash;  // kRootChainHash for a chain's first block
    CacheNamespace cache_namespace;
    std::span<const int32_t> tokens;
  };
  void set_evict_observer(std::function<void(const EvictedBlock&)> observer) {
    evict_observer_ = std::move(observer);
  }

  // Frees min(n_blocks, n_evictable()) cached blocks back to the pool, least
  // recently used first (after the hints above), children before parents.
  // Returns the count freed.
  int32_t evict(int32_t n_blocks);
  // Cached blocks nobody but the index references and whose cached
  // descendants nobody references either: what evict() can free now.
  [[nodiscard]] int32_t n_evictable() const { return pool_.n_idle_cached(); }

  [[nodiscard]] PrefixCacheStats stats() const;
  void clear();  // drops every cached block (releases the index's references)
  void check_invariants() const;

 private:
  // What a probe must confirm beyond the hash: the exact tokens, namespace
  // and parent of the cached block.
  [[nodiscard]] bool holds_chain(BlockId block, const CacheNamespace& ns,
                                 std::optional<BlockId> parent,
                                 std::span<const int32_t> block_tokens) const;
  [[nodiscard]] std::span<const int32_t> stored_tokens(BlockId block) const;
  void forget(BlockId block);  // erase from the map and uncache; block must be a leaf
  [[nodiscard]] std::optional<BlockId> next_victim() const;

  BlockPool& pool_;
  int32_t block_tokens_;
  std::unordered_map<BlockHash, BlockId, BlockHashHasher> block_by_hash_;
  std::vector<int32_t> tokens_;               // [n_blocks, block_tokens], valid for cached blocks
  std::vector<CacheNamespace> namespace_of_;  // [n_blocks], valid for cached blocks
  std::vector<int64_t> due_;                  // [n_blocks]: clock of the next use, -1 none
  int32_t n_hinted_ = 0;                      // cached blocks with due_ >= 0
  int64_t clock_ = 0;
  PrefixCacheStats stats_;
  std::function<void(const EvictedBlock&)> evict_observer_;
};

}  // namespace kvforge
