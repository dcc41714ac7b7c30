#include "tier/memory_tier.h"

#include <fmt/format.h>

namespace kvforge {

MemoryTier::MemoryTier(std::string name, size_t capacity_bytes, const QueuedTierOptions& options)
    : QueuedTier(std::move(name), options), capacity_bytes_(capacity_bytes) {}

MemoryTier::~MemoryTier() {
  stop();
}

void MemoryTier::erase(Lru::iterator it) {
  bytes_ -= it->record->size();
  by_key_.erase(it->key);
  lru_.erase(it);
}

TierResult MemoryTier::do_put(const TierKey& key, const TierRecord& record) {
  if (record == nullptr || record->size() > capacity_bytes_) {
    return {TierOutcome::kRejected, nullptr,
            fmt::format("{}: a record of {} bytes exceeds the capacity", name(),
                        record ? record->size() : 0),
            0};
  }
  std::lock_guard lock(mutex_);
  if (auto found = by_key_.find(key); found != by_key_.end()) erase(found->second);
  while (bytes_ + record->size() > capacity_bytes_) {
    erase(std::prev(lru_.end()));
    ++evictions_;
  }
  lru_.push_front(Entry{key, record});
  by_key_.emplace(key, lru_.begin());
  bytes_ += record->size();
  return {TierOutcome::kOk, nullptr, {}, 0};
}

TierResult MemoryTier::do_get(const TierKey& key) {
  std::lock_guard lock(mutex_);
  const auto found = by_key_.find(key);
  if (found == by_key_.end()) return {TierOutcome::kMiss, nullptr, {}, 0};
  lru_.splice(lru_.begin(), lru_, found->second);
  return {TierOutcome::kOk, found->second->record, {}, 0};
}

TierResult MemoryTier::do_contains(const TierKey& key) {
  std::lock_guard lock(mutex_);
  return {by_key_.contains(key) ? TierOutcome::kOk : TierOutcome::kMiss, nullptr, {}, 0};
}

TierResult MemoryTier::do_evict(const TierKey& key) {
  std::lock_guard lock(mutex_);
  const auto found = by_key_.find(key);
  if (found == by_key_.end()) return {TierOutcome::kMiss, nullptr, {}, 0};
  erase(found->second);
  return {TierOutcome::kOk, nullptr, {}, 0};
}

void MemoryTier::add_backend_stats(TierStats& stats) const {
  std::lock_guard lock(mutex_);
  stats.stored_records = static_cast<int64_t>(lru_.size());
  stats.stored_bytes = static_cast<int64_t>(bytes_);
  stats.capacity_bytes = static_cast<int64_t>(capacity_bytes_);
  stats.evictions = evictions_;
}

}  // namespace kvforge
