#include "kv/staged_window_cache.h"

#include <algorithm>

#include "kvforge/status.h"

namespace kvforge {

size_t StagedWindow::bytes() const {
  size_t floats = 0;
  for (const auto* side : {&keys, &values}) {
    for (const std::vector<float>& rows : *side) floats += rows.size();
  }
  return floats * sizeof(float) + tokens.size() * sizeof(int32_t);
}

bool StagedWindow::holds(std::span<const int32_t> prompt, int32_t first, int32_t last) const {
  if (first < begin || last > end() || first > last || static_cast<size_t>(last) > prompt.size()) {
    return false;
  }
  const auto from = tokens.begin() + (first - begin);
  return std::equal(from, from + (last - first), prompt.begin() + first);
}

void StagedWindowCache::insert(std::shared_ptr<const StagedWindow> window,
                               std::span<const BlockHash> chain_ends) {
  const size_t size = window->bytes();
  if (size > capacity_bytes_) return;
  Entry entry{std::move(window), {}};
  for (const BlockHash& hash : chain_ends) {
    if (!by_chain_end_.contains(hash)) entry.chain_ends.push_back(hash);
  }
  if (entry.chain_ends.empty()) return;
  while (bytes_ + size > capacity_bytes_) evict_oldest();
  lru_.push_front(std::move(entry));
  for (const BlockHash& hash : lru_.front().chain_ends) by_chain_end_.emplace(hash, lru_.begin());
  bytes_ += size;
}

std::shared_ptr<const StagedWindow> StagedWindowCache::find(const BlockHash& chain_end) {
  const auto found = by_chain_end_.find(chain_end);
  if (found == by_chain_end_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, found->second);
  return found->second->window;
}

void StagedWindowCache::evict_oldest() {
  KVF_CHECK(!lru_.empty());
  const Entry& oldest = lru_.back();
  for (const BlockHash& hash : oldest.chain_ends) by_chain_end_.erase(hash);
  bytes_ -= oldest.window->bytes();
  lru_.pop_back();
}

void StagedWindowCache::check_invariants() const {
  size_t bytes = 0;
  size_t keys = 0;
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    KVF_CHECK(it->window != nullptr && !it->chain_ends.empty());
    bytes += it->window->bytes();
    keys += it->chain_ends.size();
    for (const BlockHash& hash : it->chain_ends) {
      const auto found = by_chain_end_.find(hash);
      KVF_CHECK(found != by_chain_end_.end() && found->second == it);
    }
  }
  KVF_CHECK(keys == by_chain_end_.size());
  KVF_CHECK(bytes == bytes_ && bytes_ <= capacity_bytes_);
}

}  // namespace kvforge
