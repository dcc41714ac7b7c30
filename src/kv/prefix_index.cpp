#include "kv/prefix_index.h"

#include <algorithm>
#include <optional>

namespace kvforge {

double PrefixCacheStats::hit_rate() const {
  if (lookup_tokens == 0) return 0.0;
  return static_cast<double>(hit_tokens) / static_cast<double>(lookup_tokens);
}

PrefixIndex::PrefixIndex(BlockPool& pool)
    : pool_(pool),
      block_tokens_(pool.block_tokens()),
      tokens_(static_cast<size_t>(pool.n_blocks()) * static_cast<size_t>(pool.block_tokens())),
      namespace_of_(static_cast<size_t>(pool.n_blocks())),
      due_(static_cast<size_t>(pool.n_blocks()), -1) {
  KVF_CHECK(pool_.n_cached() == 0);  // one index per pool
  block_by_hash_.reserve(static_cast<size_t>(pool.n_blocks()));
}

PrefixIndex::~PrefixIndex() {
  clear();
}

std::vector<BlockId> PrefixIndex::peek(const CacheNamespace& ns, std::span<const int32_t> tokens,
                                       int32_t max_blocks,
                                       std::vector<BlockHash>* chain_hashes) const {
  const size_t full_blocks = tokens.size() / static_cast<size_t>(block_tokens_);
  const size_t limit = std::min(full_blocks, static_cast<size_t>(std::max(max_blocks, 0)));
  std::vector<BlockId> matched;
  if (chain_hashes) chain_hashes->clear();
  BlockHash parent_hash = kRootChainHash;
  std::optional<BlockId> parent;
  for (size_t i = 0; i < limit; ++i) {
    const std::span<const int32_t> block_tokens =
        tokens.subspan(i * static_cast<size_t>(block_tokens_), static_cast<size_t>(block_tokens_));
    const BlockHash hash = chain_block_hash(parent_hash, ns, block_tokens);
    const auto found = block_by_hash_.find(hash);
    if (found == block_by_hash_.end() || !holds_chain(found->second, ns, parent, block_tokens)) {
      break;
    }
    matched.push_back(found->second);
    if (chain_hashes) chain_hashes->push_back(hash);
    parent = found->second;
    parent_hash = hash;
  }
  return matched;
}

std::vector<BlockId> PrefixIndex::match(const CacheNamespace& ns, std::span<const int32_t> tokens,
                                        int32_t max_blocks, const HitFilter& usable) {
  std::vector<BlockHash> chain_hashes;
  std::vector<BlockId> matched = peek(ns, tokens, max_blocks, &chain_hashes);
  if (usable) {
    while (!matched.empty() &&
           !usable(static_cast<int32_t>(matched.size()), chain_hashes[matched.size() - 1])) {
      matched.pop_back();
    }
  }
  for (BlockId block : matched) pool_.add_ref(block);

  ++stats_.lookups;
  ++(matched.empty() ? stats_.misses : stats_.hits);
  stats_.lookup_tokens += static_cast<int64_t>(tokens.size());
  stats_.hit_tokens += static_cast<int64_t>(matched.size()) * block_tokens_;
  return matched;
}

void PrefixIndex::insert(const CacheNamespace& ns, std::span<const int32_t> tokens,
                         std::span<const BlockId> blocks, std::vector<BlockHash>* chain_hashes,
                         int32_t next_use_steps, std::vector<size_t>* recorded) {
  const size_t block_size = static_cast<size_t>(block_tokens_);
  KVF_CHECK(tokens.size() >= blocks.size() * block_size);

  BlockHash parent_hash = kRootChainHash;
  std::optional<BlockId> parent;
  std::optional<BlockId> deepest_existing;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::span<const int32_t> block_tokens = tokens.subspan(i * block_size, block_size);
    const BlockHash hash = chain_block_hash(parent_hash, ns, block_tokens);
    const auto found = block_by_hash_.find(hash);
    if (found != block_by_hash_.end()) {
      // Already cached: keep the existing block and continue below it. A hash
      // that names other content (a collision) ends the walk: nothing deeper
      // can be recorded without its parent.
      if (!holds_chain(found->second, ns, parent, block_tokens)) break;
      parent = found->second;
      deepest_existing = found->second;
    } else {
      const BlockId block = blocks[i];
      KVF_CHECK(!pool_.is_cached(block));  // a cached block belongs to exactly one chain
      std::copy(block_tokens.begin(), block_tokens.end(),
                tokens_.begin() +
                    static_cast<ptrdiff_t>(block.value) * static_cast<ptrdiff_t>(block_size));
      namespace_of_[static_cast<size_t>(block.value)] = ns;
      block_by_hash_.emplace(hash, block);
      pool_.cache(block, parent, hash);
      parent = block;
      if (recorded != nullptr) recorded->push_back(i);
    }
    if (next_use_steps >= 0) {
      int64_t& due = due_[static_cast<size_t>(parent->value)];
      if (due < 0) ++n_hinted_;
      due = clock_ + next_use_steps;
    }
    if (chain_hashes != nullptr) chain_hashes->push_back(hash);
    parent_hash = hash;
  }
  // The offered chain was just used: refresh the cached blocks it duplicates
  // (a no-op for those that are in use or now have a new, in-use child).
  if (deepest_existing) pool_.touch(*deepest_existing);
}

int32_t PrefixIndex::evict(int32_t n_blocks) {
  int32_t freed = 0;
  while (freed < n_blocks) {
    const std::optional<BlockId> victim = next_victim();
    if (!victim) break;
    if (evict_observer_) {
      const std::optional<BlockId> parent = pool_.cached_parent(*victim);
      evict_observer_(EvictedBlock{
          *victim, pool_.chain_hash(*victim), parent ? pool_.chain_hash(*parent) : kRootChainHash,
          namespace_of_[static_cast<size_t>(victim->value)], stored_tokens(*victim)});
    }
    forget(*victim);
    ++freed;
  }
  stats_.evicted_blocks += freed;
  return freed;
}

PrefixCacheStats PrefixIndex::stats() const {
  PrefixCacheStats stats = stats_;
  stats.cached_blocks = static_cast<int32_t>(block_by_hash_.size());
  return stats;
}

void PrefixIndex::clear() {
  // Leaves first: uncache() refuses a block that still has cached children.
  std::vector<BlockId> leaves;
  for (const auto& [hash, block] : block_by_hash_) {
    if (pool_.n_cached_children(block) == 0) leaves.push_back(block);
  }
  while (!leaves.empty()) {
    const BlockId leaf = leaves.back();
    leaves.pop_back();
    const std::optional<BlockId> parent = pool_.cached_parent(leaf);
    forget(leaf);
    if (parent && pool_.n_cached_children(*parent) == 0) leaves.push_back(*parent);
  }
  KVF_CHECK(block_by_hash_.empty());
}

void PrefixIndex::check_invariants() const {
  pool_.check_invariants();
  int32_t hinted = 0;
  for (size_t b = 0; b < due_.size(); ++b) {
    KVF_CHECK(due_[b] < 0 || pool_.is_cached(BlockId{static_cast<int32_t>(b)}));
    hinted += due_[b] >= 0 ? 1 : 0;
  }
  KVF_CHECK(hinted == n_hinted_);
  KVF_CHECK(static_cast<int32_t>(block_by_hash_.size()) == pool_.n_cached());
  for (const auto& [hash, block] : block_by_hash_) {
    KVF_CHECK(pool_.is_cached(block));
    KVF_CHECK(pool_.chain_hash(block) == hash);
    const CacheNamespace& ns = namespace_of_[static_cast<size_t>(block.value)];
    const std::optional<BlockId> parent = pool_.cached_parent(block);
    BlockHash parent_hash = kRootChainHash;
    if (parent) {
      KVF_CHECK(namespace_of_[static_cast<size_t>(parent->value)] == ns);
      parent_hash = pool_.chain_hash(*parent);
    }
    KVF_CHECK(chain_block_hash(parent_hash, ns, stored_tokens(block)) == hash);
  }
  KVF_CHECK(stats_.hits + stats_.misses == stats_.lookups);
  KVF_CHECK(stats_.hits >= 0 && stats_.misses >= 0 && stats_.evicted_blocks >= 0);
  KVF_CHECK(stats_.hit_tokens >= 0 && stats_.hit_tokens <= stats_.lookup_tokens);
}

bool PrefixIndex::holds_chain(BlockId block, const CacheNamespace& ns,
                              std::optional<BlockId> parent,
                              std::span<const int32_t> block_tokens) const {
  const std::span<const int32_t> stored = stored_tokens(block);
  return namespace_of_[static_cast<size_t>(block.value)] == ns &&
         pool_.cached_parent(block) == parent &&
         std::equal(stored.begin(), stored.end(), block_tokens.begin(), block_tokens.end());
}

std::span<const int32_t> PrefixIndex::stored_tokens(BlockId block) const {
  const size_t block_size = static_cast<size_t>(block_tokens_);
  return std::span<const int32_t>(tokens_).subspan(static_cast<size_t>(block.value) * block_size,
                                                   block_size);
}

// The least recently used idle leaf whose hint is absent or passed, else the
// hinted idle leaf needed furthest ahead. Without hints: the idle list's head.
std::optional<BlockId> PrefixIndex::next_victim() const {
  const std::optional<BlockId> head = pool_.least_recently_idle();
  if (!head || n_hinted_ == 0) return head;
  std::optional<BlockId> furthest;
  for (std::optional<BlockId> b = head; b; b = pool_.next_idle(*b)) {
    if (pool_.n_cached_children(*b) != 0) continue;  // evicting it would strand a child
    const int64_t due = due_[static_cast<size_t>(b->value)];
    if (due < clock_) return b;
    if (!furthest || due > due_[static_cast<size_t>(furthest->value)]) furthest = b;
  }
  return furthest;
}

void PrefixIndex::forget(BlockId block) {
  int64_t& due = due_[static_cast<size_t>(block.value)];
  if (due >= 0) --n_hinted_;
  due = -1;
  block_by_hash_.erase(pool_.chain_hash(block));
  pool_.uncache(block);
}

}  // namespace kvforge
