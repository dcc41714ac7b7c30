// BlockPool: the fixed set of KV blocks a cache stores keys and values in.
//
// A block holds KV for block_tokens consecutive positions of one sequence, in
// every layer. Its bytes are split into segments (the cache uses one per
// layer, side and KV head: one tile each). All blocks are allocated once, at
// create(), from a byte budget: one 64-byte aligned arena per segment, block b
// of segment s at arena_s + b * segment_bytes[s], so one segment of
// consecutive block ids is one contiguous run that the hardware prefetcher
// streams through. The pool owns the bytes and the per-block
// metadata (reference count, prefix-cache state, intrusive list links); what a
// block's bytes mean (codec, positions) is the caller's business.
//
// Ownership is by explicit reference counts on ids: allocate() hands out a
// block with one reference, add_ref()/release() share it, and the block returns
// to the free list when the count reaches zero. Running out of blocks is an
// ordinary outcome (allocate() returns nullopt), never an abort; misuse (an
// unknown id, releasing a free block) is a programmer error and aborts.
//
// Prefix-cache residency: a PrefixIndex may keep a block alive after its
// sequence is gone. A cached block carries one reference owned by the cache
// and a link to its cached parent (the block holding the preceding tokens).
// The pool tracks which cached blocks are idle, i.e. referenced by nobody but
// the cache and with no referenced cached descendant, in an intrusive list
// ordered by when they last became idle (or were touched). Every idle block's
// idle children come before it, so the list's head is always a leaf: evicting
// from the head frees the least recently used block and never strands a child.
// Keeping this here, next to the reference counts, makes every transition O(1)
// (amortised over the chain) without the pool calling back into the index.
// One PrefixIndex at most per pool.
//
// Thread-safety: none; one thread (the scheduler) owns the pool.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "kv/block_hash.h"
#include "kv/ids.h"
#include "kvforge/status.h"

namespace kvforge {

struct BlockId {
  int32_t value = -1;
  auto operator<=>(const BlockId&) const = default;
};

struct BlockPoolLayout {
  int32_t block_tokens = 16;
  std::vector<size_t> segment_bytes;  // bytes one block occupies in each segment
};

class BlockPool {
 public:
  static constexpr size_t kArenaAlignment = 64;

  // n_blocks = floor(budget_bytes / sum(segment_bytes)). kInvalidArgument when
  // the layout is unusable or the budget holds no block (the message says how
  // many bytes one block needs); kResourceExhausted when the arenas cannot be
  // allocated.
  [[nodiscard]] static Result<std::unique_ptr<BlockPool>> create(const BlockPoolLayout& layout,
                                                                 size_t budget_bytes);

  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;
  ~BlockPool();

  [[nodiscard]] int32_t block_tokens() const { return layout_.block_tokens; }
  [[nodiscard]] int32_t n_segments() const {
    return static_cast<int32_t>(layout_.segment_bytes.size());
  }
  [[nodiscard]] int32_t n_blocks() const { return n_blocks_; }
  [[nodiscard]] int32_t n_free() const { return free_list_.size; }
  [[nodiscard]] size_t segment_bytes(int32_t segment) const;
  [[nodiscard]] size_t bytes_per_block() const { return bytes_per_block_; }  // all segments
  [[nodiscard]] size_t capacity_bytes() const { return bytes_per_block_ * n_blocks_; }

  // The block's bytes in one segment: segment_bytes(segment) of them, at
  // segment_data(BlockId{0}, segment) + block * segment_bytes(segment).
  [[nodiscard]] uint8_t* segment_data(BlockId block, int32_t segment);
  [[nodiscard]] const uint8_t* segment_data(BlockId block, int32_t segment) const;

  // A free block with reference count 1, or nullopt when none is free (callers
  // then ask the prefix index to evict, or report the shortfall).
  [[nodiscard]] std::optional<BlockId> allocate();
  void add_ref(BlockId block);
  // The count reaches 0 -> back to the free list. The prefix cache's own
  // reference is dropped only through uncache().
  void release(BlockId block);
  [[nodiscard]] int32_t ref_count(BlockId block) const;

  // --- Prefix-cache residency, driven by PrefixIndex -----------------------

  // Records `block` (referenced by the caller, not yet cached) as cached under
  // `parent` (a cached block, or nullopt for the first block of a chain) and
  // takes the cache's reference on it.
  void cache(BlockId block, std::optional<BlockId> parent, const BlockHash& chain_hash);
  // Drops a cached block that has no cached children: it leaves the cache and
  // the cache's reference is released (to the free list if that was the last).
  void uncache(BlockId block);
  // Marks a cached block and its ancestors as just used: those of them that
  // are idle move to the tail of the idle list (parents behind children).
  void touch(BlockId block);

  [[nodiscard]] bool is_cached(BlockId block) const;
  [[nodiscard]] bool is_idle_cached(BlockId block) const;
  [[nodiscard]] std::optional<BlockId> cached_parent(BlockId block) const;
  [[nodiscard]] int32_t n_cached_children(BlockId block) const;
  [[nodiscard]] const BlockHash& chain_hash(BlockId block) const;
  // The least recently idle cached block (always a leaf), or nullopt.
  [[nodiscard]] std::optional<BlockId> least_recently_idle() const;
  // The idle cached block after `block` in that order (block must be idle).
  [[nodiscard]] std::optional<BlockId> next_idle(BlockId block) const;
  [[nodiscard]] int32_t n_idle_cached() const { return idle_list_.size; }
  [[nodiscard]] int32_t n_cached() const { return n_cached_; }

  // KVF_CHECK-fails (aborts) on any inconsistency. O(n_blocks).
  void check_invariants() const;

 private:
  // Which intrusive list a block's prev/next links belong to.
  enum class ListKind : uint8_t { kNone, kFree, kIdle };

  struct BlockRecord {
    int32_t ref_count = 0;
    int32_t prev = -1;
    int32_t next = -1;
    ListKind list = ListKind::kNone;
    bool cached = false;
    int32_t cached_parent = -1;
    int32_t cached_children = 0;
    int32_t busy_children = 0;  // cached children that are not idle
    BlockHash chain_hash;
  };

  struct BlockList {
    ListKind kind = ListKind::kNone;
    int32_t head = -1;
    int32_t tail = -1;
    int32_t size = 0;
  };

  struct ArenaDeleter {
    void operator()(uint8_t* arena) const;
  };
  using Arena = std::unique_ptr<uint8_t[], ArenaDeleter>;

  BlockPool(BlockPoolLayout layout, int32_t n_blocks, std::vector<Arena> arenas);

  BlockRecord& record(BlockId block);
  const BlockRecord& record(BlockId block) const;
  bool is_idle(const BlockRecord& r) const;

  void push_back(BlockList& list, int32_t index);
  void unlink(BlockList& list, int32_t index);

  // A cached block just went from idle to busy or back: update the idle list
  // and walk up the parents whose own state flips with it.
  void on_became_busy(int32_t index);
  void on_became_busy_child_of(int32_t parent);
  void on_became_idle(int32_t index);
  void check_list(const BlockList& list) const;

  BlockPoolLayout layout_;
  int32_t n_blocks_ = 0;
  size_t bytes_per_block_ = 0;
  std::vector<Arena> arenas_;  // one per segment
  std::vector<BlockRecord> records_;
  BlockList free_list_{ListKind::kFree};
  BlockList idle_list_{ListKind::kIdle};
  int32_t n_cached_ = 0;
};

}  // namespace kvforge
