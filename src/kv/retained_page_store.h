// RetainedPageStore: pages for the rows a press keeps, carved out of pool
// blocks (docs/kv-compression.md).
//
// A press keeps different rows, and different numbers of rows, per layer and
// KV head. Their tiles ("pages") cannot live in whole blocks without wasting
// the other heads' and layers' share of each block, so the store takes whole
// blocks from the BlockPool and hands out their segments' bytes as pages: a
// segment ("slot") of S bytes holds floor(S / T) pages of tile size T, for
// any T <= S. A block goes back to the pool as soon as none of its slots
// holds a live page, so the memory a press frees is the pool's again.
//
// Pages are reference counted (sequences forked after a press share them)
// and immutable once written by their first owner. Running out of blocks is
// an ordinary outcome: allocate() returns nullopt and the caller evicts
// prefix-cache blocks or reports the shortfall.
//
// The pool must outlive the store. Thread-safety: none (the scheduler thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "kv/block_pool.h"

namespace kvforge {

// One page: page `index` of the slot (block, segment).
struct PageRef {
  BlockId block;
  int32_t segment = 0;
  int32_t index = 0;
  auto operator<=>(const PageRef&) const = default;
};

class RetainedPageStore {
 public:
  explicit RetainedPageStore(BlockPool& pool);
  ~RetainedPageStore();  // every page must have been released
  RetainedPageStore(const RetainedPageStore&) = delete;
  RetainedPageStore& operator=(const RetainedPageStore&) = delete;

  // A page of `bytes` bytes (at most the largest segment) with one
  // reference, or nullopt when it would need a block and the pool has none
  // free.
  [[nodiscard]] std::optional<PageRef> allocate(size_t bytes);
  void add_ref(PageRef page);
  void release(PageRef page);
  [[nodiscard]] int32_t ref_count(PageRef page) const;

  [[nodiscard]] uint8_t* data(PageRef page);
  [[nodiscard]] const uint8_t* data(PageRef page) const;

  [[nodiscard]] int32_t n_blocks_held() const { return static_cast<int32_t>(blocks_.size()); }
  [[nodiscard]] int64_t n_live_pages() const { return live_pages_; }
  [[nodiscard]] bool holds_block(BlockId block) const { return blocks_.contains(block.value); }

  // KVF_CHECK-fails on any inconsistency between slots, pages and blocks.
  void check_invariants() const;

 private:
  struct Slot {
    size_t page_bytes = 0;      // 0: no page size assigned (all free)
    std::vector<int32_t> refs;  // per page index
    int32_t used = 0;           // pages with refs > 0
  };
  struct HeldBlock {
    int32_t used_slots = 0;   // slots with at least one live page
    std::vector<Slot> slots;  // one per segment
  };
  using SlotKey = std::pair<int32_t, int32_t>;  // block id, segment

  Slot& slot(PageRef page);
  const Slot& slot(PageRef page) const;
  [[nodiscard]] bool take_free_slot(size_t bytes, SlotKey& key);
  void hold_new_block(BlockId block);

  BlockPool& pool_;
  std::unordered_map<int32_t, HeldBlock> blocks_;  // by block id
  // Slots with some but not all pages live, by page size.
  std::map<size_t, std::set<SlotKey>> partial_;
  // Unassigned slots of held blocks, by segment size.
  std::map<size_t, std::set<SlotKey>> free_slots_;
  int64_t live_pages_ = 0;
};

}  // namespace kvforge
