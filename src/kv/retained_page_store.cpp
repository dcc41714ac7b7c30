#include "kv/retained_page_store.h"

#include <algorithm>

#include "kvforge/status.h"

namespace kvforge {

RetainedPageStore::RetainedPageStore(BlockPool& pool) : pool_(pool) {}

RetainedPageStore::~RetainedPageStore() {
  KVF_CHECK(live_pages_ == 0 && blocks_.empty());
}

RetainedPageStore::Slot& RetainedPageStore::slot(PageRef page) {
  auto it = blocks_.find(page.block.value);
  KVF_CHECK(it != blocks_.end());
  KVF_CHECK(page.segment >= 0 && page.segment < static_cast<int32_t>(it->second.slots.size()));
  return it->second.slots[static_cast<size_t>(page.segment)];
}

const RetainedPageStore::Slot& RetainedPageStore::slot(PageRef page) const {
  return const_cast<RetainedPageStore*>(this)->slot(page);
}

void RetainedPageStore::hold_new_block(BlockId block) {
  HeldBlock held;
  held.slots.resize(static_cast<size_t>(pool_.n_segments()));
  for (int32_t s = 0; s < pool_.n_segments(); ++s) {
    free_slots_[pool_.segment_bytes(s)].insert({block.value, s});
  }
  blocks_.emplace(block.value, std::move(held));
}

// The free slot whose size wastes the least for pages of `bytes` (the
// smallest slot that holds one).
bool RetainedPageStore::take_free_slot(size_t bytes, SlotKey& key) {
  for (auto it = free_slots_.lower_bound(bytes); it != free_slots_.end(); ++it) {
    if (it->second.empty()) continue;
    key = *it->second.begin();
    it->second.erase(it->second.begin());
    return true;
  }
  return false;
}

std::optional<PageRef> RetainedPageStore::allocate(size_t bytes) {
  KVF_CHECK(bytes > 0);
  SlotKey key;
  auto partial = partial_.find(bytes);
  if (partial != partial_.end() && !partial->second.empty()) {
    key = *partial->second.begin();
  } else {
    if (!take_free_slot(bytes, key)) {
      const std::optional<BlockId> block = pool_.allocate();
      if (!block) return std::nullopt;
      hold_new_block(*block);
      if (!take_free_slot(bytes, key)) {
        KVF_CHECK(false);  // the caller asked for more than the largest segment
      }
    }
    HeldBlock& held = blocks_.at(key.first);
    Slot& fresh = held.slots[static_cast<size_t>(key.second)];
    fresh.page_bytes = bytes;
    fresh.refs.assign(pool_.segment_bytes(key.second) / bytes, 0);
    fresh.used = 0;
    ++held.used_slots;
    partial_[bytes].insert(key);
  }
  Slot& s = blocks_.at(key.first).slots[static_cast<size_t>(key.second)];
  const auto free_page = std::find(s.refs.begin(), s.refs.end(), 0);
  KVF_CHECK(free_page != s.refs.end());
  *free_page = 1;
  ++s.used;
  ++live_pages_;
  if (s.used == static_cast<int32_t>(s.refs.size())) partial_[bytes].erase(key);
  return PageRef{BlockId{key.first}, key.second, static_cast<int32_t>(free_page - s.refs.begin())};
}

void RetainedPageStore::add_ref(PageRef page) {
  Slot& s = slot(page);
  KVF_CHECK(page.index >= 0 && page.index < static_cast<int32_t>(s.refs.size()));
  KVF_CHECK(s.refs[static_cast<size_t>(page.index)] > 0);
  ++s.refs[static_cast<size_t>(page.index)];
}

int32_t RetainedPageStore::ref_count(PageRef page) const {
  const Slot& s = slot(page);
  KVF_CHECK(page.index >= 0 && page.index < static_cast<int32_t>(s.refs.size()));
  return s.refs[static_cast<size_t>(page.index)];
}

void RetainedPageStore::release(PageRef page) {
  HeldBlock& held = blocks_.at(page.block.value);
  Slot& s = slot(page);
  KVF_CHECK(page.index >= 0 && page.index < static_cast<int32_t>(s.refs.size()));
  int32_t& refs = s.refs[static_cast<size_t>(page.index)];
  KVF_CHECK(refs > 0);
  if (--refs > 0) return;
  --live_pages_;
  const SlotKey key{page.block.value, page.segment};
  const bool was_full = s.used == static_cast<int32_t>(s.refs.size());
  --s.used;
  if (s.used > 0) {
    if (was_full) partial_[s.page_bytes].insert(key);
    return;
  }
  // The slot is empty: it takes any page size again.
  partial_[s.page_bytes].erase(key);
  s.page_bytes = 0;
  s.refs.clear();
  free_slots_[pool_.segment_bytes(page.segment)].insert(key);
  if (--held.used_slots > 0) return;
  // No slot of the block holds a page: back to the pool.
  for (int32_t seg = 0; seg < pool_.n_segments(); ++seg) {
    free_slots_[pool_.segment_bytes(seg)].erase({page.block.value, seg});
  }
  blocks_.erase(page.block.value);
  pool_.release(page.block);
}

uint8_t* RetainedPageStore::data(PageRef page) {
  const Slot& s = slot(page);
  KVF_CHECK(page.index >= 0 && page.index < static_cast<int32_t>(s.refs.size()));
  return pool_.segment_data(page.block, page.segment) +
         static_cast<size_t>(page.index) * s.page_bytes;
}

const uint8_t* RetainedPageStore::data(PageRef page) const {
  return const_cast<RetainedPageStore*>(this)->data(page);
}

void RetainedPageStore::check_invariants() const {
  int64_t live = 0;
  size_t free_count = 0;
  size_t partial_count = 0;
  for (const auto& [id, held] : blocks_) {
    KVF_CHECK(pool_.ref_count(BlockId{id}) >= 1);
    KVF_CHECK(held.used_slots > 0);
    int32_t used_slots = 0;
    for (size_t seg = 0; seg < held.slots.size(); ++seg) {
      const Slot& s = held.slots[seg];
      const SlotKey key{id, static_cast<int32_t>(seg)};
      const size_t seg_bytes = pool_.segment_bytes(static_cast<int32_t>(seg));
      if (s.page_bytes == 0) {
        KVF_CHECK(s.refs.empty() && s.used == 0);
        KVF_CHECK(free_slots_.at(seg_bytes).contains(key));
        ++free_count;
        continue;
      }
      ++used_slots;
      KVF_CHECK(s.page_bytes <= seg_bytes && s.refs.size() == seg_bytes / s.page_bytes);
      const auto used = static_cast<int32_t>(
          std::count_if(s.refs.begin(), s.refs.end(), [](int32_t r) { return r > 0; }));
      KVF_CHECK(used == s.used && used > 0);
      for (int32_t r : s.refs) KVF_CHECK(r >= 0);
      live += used;
      const auto it = partial_.find(s.page_bytes);
      const bool listed = it != partial_.end() && it->second.contains(key);
      KVF_CHECK(listed == (used < static_cast<int32_t>(s.refs.size())));
      if (listed) ++partial_count;
    }
    KVF_CHECK(used_slots == held.used_slots);
  }
  KVF_CHECK(live == live_pages_);
  size_t listed_free = 0;
  for (const auto& [bytes, keys] : free_slots_) listed_free += keys.size();
  KVF_CHECK(listed_free == free_count);
  size_t listed_partial = 0;
  for (const auto& [bytes, keys] : partial_) listed_partial += keys.size();
  KVF_CHECK(listed_partial == partial_count);
}

}  // namespace kvforge
