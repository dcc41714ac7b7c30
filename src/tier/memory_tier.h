// MemoryTier ("host:SIZE"): records in this process's memory, least
// recently used dropped first beyond SIZE bytes.
//
// The cheapest tier: a pool too small for the prefixes a server sees keeps
// the blocks it evicts here, at memory-copy speed. Also the reference backend the
// tier tests compare the others with. Lost when the process exits.
#pragma once

#include <cstddef>
#include <list>
#include <memory>
#include <unordered_map>

#include "tier/queued_tier.h"

namespace kvforge {

class MemoryTier final : public QueuedTier {
 public:
  MemoryTier(std::string name, size_t capacity_bytes, const QueuedTierOptions& options = {});
  ~MemoryTier() override;

  // The pool's overflow: written when the pool evicts a block.
  [[nodiscard]] TierWrites writes() const override { return TierWrites::kOnEvict; }

 protected:
  TierResult do_put(const TierKey& key, const TierRecord& record) override;
  TierResult do_get(const TierKey& key) override;
  TierResult do_contains(const TierKey& key) override;
  TierResult do_evict(const TierKey& key) override;
  void add_backend_stats(TierStats& stats) const override;

 private:
  struct Entry {
    TierKey key;
    TierRecord record;
  };
  using Lru = std::list<Entry>;  // most recently used first
  void erase(Lru::iterator it);

  const size_t capacity_bytes_;
  mutable std::mutex mutex_;
  Lru lru_;
  std::unordered_map<TierKey, Lru::iterator, TierKeyHasher> by_key_;
  size_t bytes_ = 0;
  int64_t evictions_ = 0;
};

}  // namespace kvforge
