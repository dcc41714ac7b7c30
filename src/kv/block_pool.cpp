#include "kv/block_pool.h"

#include <limits>
#include <new>
#include <utility>

#include <fmt/format.h>

namespace kvforge {
namespace {

std::string describe_segment_bytes(const std::vector<size_t>& segment_bytes) {
  std::string text;
  for (size_t l = 0; l < segment_bytes.size(); ++l) {
    if (l == 6 && segment_bytes.size() > 7) {
      text += fmt::format(", ... ({} segments)", segment_bytes.size());
      break;
    }
    text += fmt::format("{}{}", l == 0 ? "" : " + ", segment_bytes[l]);
  }
  return text;
}

}  // namespace

void BlockPool::ArenaDeleter::operator()(uint8_t* arena) const {
  ::operator delete[](arena, std::align_val_t{kArenaAlignment});
}

Result<std::unique_ptr<BlockPool>> BlockPool::create(const BlockPoolLayout& layout,
                                                     size_t budget_bytes) {
  if (layout.block_tokens < 1) {
    return invalid_argument(
        fmt::format("KV block size must be at least 1 token, got {}", layout.block_tokens));
  }
  if (layout.segment_bytes.empty()) {
    return invalid_argument("KV block layout has no segments");
  }
  size_t bytes_per_block = 0;
  for (size_t l = 0; l < layout.segment_bytes.size(); ++l) {
    const size_t bytes = layout.segment_bytes[l];
    if (bytes == 0)
      return invalid_argument(fmt::format("KV block layout: segment {} has 0 bytes", l));
    if (bytes > std::numeric_limits<size_t>::max() - bytes_per_block) {
      return invalid_argument("KV block layout: bytes per block overflow size_t");
    }
    bytes_per_block += bytes;
  }
  const size_t n_blocks = budget_bytes / bytes_per_block;
  if (n_blocks < 1) {
    return invalid_argument(fmt::format(
        "KV budget of {} bytes holds no block: one block of {} tokens needs {} bytes ({}); "
        "raise the budget to at least {} bytes or use smaller blocks",
        budget_bytes, layout.block_tokens, bytes_per_block,
        describe_segment_bytes(layout.segment_bytes), bytes_per_block));
  }
  if (n_blocks > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return invalid_argument(fmt::format(
        "KV budget of {} bytes gives {} blocks, more than a block id can name; use larger blocks "
        "or a smaller budget",
        budget_bytes, n_blocks));
  }

  std::vector<Arena> arenas;
  arenas.reserve(layout.segment_bytes.size());
  for (size_t l = 0; l < layout.segment_bytes.size(); ++l) {
    // n_blocks * segment_bytes <= budget_bytes: no overflow.
    const size_t arena_bytes = n_blocks * layout.segment_bytes[l];
    void* memory = ::operator new[](arena_bytes, std::align_val_t{kArenaAlignment}, std::nothrow);
    if (memory == nullptr) {
      return resource_exhausted(
          fmt::format("cannot allocate {} bytes for KV arena {}", arena_bytes, l));
    }
    arenas.emplace_back(static_cast<uint8_t*>(memory));
  }
  return std::unique_ptr<BlockPool>(
      new BlockPool(layout, static_cast<int32_t>(n_blocks), std::move(arenas)));
}

BlockPool::BlockPool(BlockPoolLayout layout, int32_t n_blocks, std::vector<Arena> arenas)
    : layout_(std::move(layout)), n_blocks_(n_blocks), arenas_(std::move(arenas)) {
  for (size_t bytes : layout_.segment_bytes) bytes_per_block_ += bytes;
  records_.resize(static_cast<size_t>(n_blocks_));
  // Ascending ids from the head: a fresh pool hands out blocks 0, 1, 2, ...
  for (int32_t b = 0; b < n_blocks_; ++b) push_back(free_list_, b);
}

BlockPool::~BlockPool() = default;

size_t BlockPool::segment_bytes(int32_t segment) const {
  KVF_CHECK(segment >= 0 && segment < n_segments());
  return layout_.segment_bytes[static_cast<size_t>(segment)];
}

uint8_t* BlockPool::segment_data(BlockId block, int32_t segment) {
  KVF_CHECK(block.value >= 0 && block.value < n_blocks_);
  const size_t bytes = segment_bytes(segment);
  return arenas_[static_cast<size_t>(segment)].get() + static_cast<size_t>(block.value) * bytes;
}

const uint8_t* BlockPool::segment_data(BlockId block, int32_t segment) const {
  return const_cast<BlockPool*>(this)->segment_data(block, segment);
}

std::optional<BlockId> BlockPool::allocate() {
  if (free_list_.size == 0) return std::nullopt;
  const int32_t index = free_list_.head;
  unlink(free_list_, index);
  records_[static_cast<size_t>(index)].ref_count = 1;
  return BlockId{index};
}

void BlockPool::add_ref(BlockId block) {
  BlockRecord& r = record(block);
  KVF_CHECK(r.ref_count > 0);  // a free block has no owner to share it
  const bool was_idle = is_idle(r);
  ++r.ref_count;
  if (was_idle) on_became_busy(block.value);
}

void BlockPool::release(BlockId block) {
  BlockRecord& r = record(block);
  KVF_CHECK(r.ref_count > 0);
  // The last reference of a cached block is the cache's: only uncache() drops it.
  KVF_CHECK(!r.cached || r.ref_count > 1);
  --r.ref_count;
  if (r.ref_count == 0) {
    // To the back: blocks released in a sequence's order come back out in
    // that order, so the next sequence again gets ascending runs of ids
    // (contiguous tiles, which the attention kernel streams as one run).
    // From the front, a released sequence's blocks were handed out in
    // descending order (docs/kv-storage.md).
    push_back(free_list_, block.value);
  } else if (is_idle(r)) {
    on_became_idle(block.value);
  }
}

int32_t BlockPool::ref_count(BlockId block) const {
  return record(block).ref_count;
}

void BlockPool::cache(BlockId block, std::optional<BlockId> parent, const BlockHash& chain_hash) {
  BlockRecord& r = record(block);
  KVF_CHECK(r.ref_count > 0);  // the caller's reference
  KVF_CHECK(!r.cached);
  if (parent) KVF_CHECK(record(*parent).cached && *parent != block);
  r.cached = true;
  r.cached_parent = parent ? parent->value : -1;
  r.chain_hash = chain_hash;
  ++r.ref_count;  // the cache's reference; the caller's keeps the block busy
  ++n_cached_;
  if (parent) {
    ++record(*parent).cached_children;
    on_became_busy_child_of(parent->value);
  }
}

void BlockPool::uncache(BlockId block) {
  BlockRecord& r = record(block);
  KVF_CHECK(r.cached);
  KVF_CHECK(r.cached_children == 0);  // leaves first: a chain never loses a middle block
  const bool was_idle = is_idle(r);
  if (was_idle) unlink(idle_list_, block.value);
  const int32_t parent = r.cached_parent;
  r.cached = false;
  r.cached_parent = -1;
  r.chain_hash = BlockHash{};
  --n_cached_;
  if (parent >= 0) {
    BlockRecord& p = records_[static_cast<size_t>(parent)];
    --p.cached_children;
    if (!was_idle) {
      // A busy child left: the parent may be idle now.
      --p.busy_children;
      if (is_idle(p)) on_became_idle(parent);
    }
  }
  release(block);  // the cache's reference
}

void BlockPool::touch(BlockId block) {
  // A busy block's ancestors are busy too, so the idle ones form the lower
  // end of the chain; moving them deepest first keeps parents behind children.
  int32_t index = block.value;
  while (index >= 0 && is_idle(record(BlockId{index}))) {
    unlink(idle_list_, index);
    push_back(idle_list_, index);
    index = records_[static_cast<size_t>(index)].cached_parent;
  }
}

bool BlockPool::is_cached(BlockId block) const {
  return record(block).cached;
}

bool BlockPool::is_idle_cached(BlockId block) const {
  return is_idle(record(block));
}

std::optional<BlockId> BlockPool::cached_parent(BlockId block) const {
  const BlockRecord& r = record(block);
  if (r.cached_parent < 0) return std::nullopt;
  return BlockId{r.cached_parent};
}

int32_t BlockPool::n_cached_children(BlockId block) const {
  return record(block).cached_children;
}

const BlockHash& BlockPool::chain_hash(BlockId block) const {
  const BlockRecord& r = record(block);
  KVF_CHECK(r.cached);
  return r.chain_hash;
}

std::optional<BlockId> BlockPool::least_recently_idle() const {
  if (idle_list_.size == 0) return std::nullopt;
  return BlockId{idle_list_.head};
}

std::optional<BlockId> BlockPool::next_idle(BlockId block) const {
  const BlockRecord& r = record(block);
  KVF_CHECK(r.list == ListKind::kIdle);
  if (r.next < 0) return std::nullopt;
  return BlockId{r.next};
}

BlockPool::BlockRecord& BlockPool::record(BlockId block) {
  KVF_CHECK(block.value >= 0 && block.value < n_blocks_);
  return records_[static_cast<size_t>(block.value)];
}

const BlockPool::BlockRecord& BlockPool::record(BlockId block) const {
  KVF_CHECK(block.value >= 0 && block.value < n_blocks_);
  return records_[static_cast<size_t>(block.value)];
}

bool BlockPool::is_idle(const BlockRecord& r) const {
  return r.cached && r.ref_count == 1 && r.busy_children == 0;
}

void BlockPool::on_became_busy(int32_t index) {
  unlink(idle_list_, index);
  const int32_t parent = records_[static_cast<size_t>(index)].cached_parent;
  if (parent >= 0) on_became_busy_child_of(parent);
}

void BlockPool::on_became_busy_child_of(int32_t parent) {
  // Walk up while the ancestors flip from idle to busy; a busy ancestor ends
  // the walk, so a chain held from its root costs O(1) per block.
  while (parent >= 0) {
    BlockRecord& p = records_[static_cast<size_t>(parent)];
    const bool was_idle = is_idle(p);
    ++p.busy_children;
    if (!was_idle) return;
    unlink(idle_list_, parent);
    parent = p.cached_parent;
  }
}

void BlockPool::on_became_idle(int32_t index) {
  // The block's idle children are already in the list, so appending it keeps
  // children ahead of parents; ancestors that become idle with it follow it.
  while (index >= 0) {
    push_back(idle_list_, index);
    const int32_t parent = records_[static_cast<size_t>(index)].cached_parent;
    if (parent < 0) return;
    BlockRecord& p = records_[static_cast<size_t>(parent)];
    --p.busy_children;
    if (!is_idle(p)) return;
    index = parent;
  }
}

void BlockPool::push_back(BlockList& list, int32_t index) {
  BlockRecord& r = records_[static_cast<size_t>(index)];
  KVF_CHECK(r.list == ListKind::kNone);
  r.list = list.kind;
  r.prev = list.tail;
  r.next = -1;
  if (list.tail >= 0) {
    records_[static_cast<size_t>(list.tail)].next = index;
  } else {
    list.head = index;
  }
  list.tail = index;
  ++list.size;
}

void BlockPool::unlink(BlockList& list, int32_t index) {
  BlockRecord& r = records_[static_cast<size_t>(index)];
  KVF_CHECK(r.list == list.kind);
  if (r.prev >= 0) {
    records_[static_cast<size_t>(r.prev)].next = r.next;
  } else {
    list.head = r.next;
  }
  if (r.next >= 0) {
    records_[static_cast<size_t>(r.next)].prev = r.prev;
  } else {
    list.tail = r.prev;
  }
  r.prev = -1;
  r.next = -1;
  r.list = ListKind::kNone;
  --list.size;
}

void BlockPool::check_list(const BlockList& list) const {
  int32_t count = 0;
  int32_t previous = -1;
  for (int32_t index = list.head; index >= 0; index = records_[static_cast<size_t>(index)].next) {
    KVF_CHECK(index < n_blocks_);
    KVF_CHECK(count < list.size);  // also rules out cycles
    const BlockRecord& r = records_[static_cast<size_t>(index)];
    KVF_CHECK(r.list == list.kind);
    KVF_CHECK(r.prev == previous);
    previous = index;
    ++count;
  }
  KVF_CHECK(count == list.size);
  KVF_CHECK(list.tail == previous);
}

void BlockPool::check_invariants() const {
  KVF_CHECK(static_cast<int32_t>(records_.size()) == n_blocks_);
  KVF_CHECK(static_cast<int32_t>(arenas_.size()) == n_segments());
  check_list(free_list_);
  check_list(idle_list_);

  std::vector<int32_t> cached_children(records_.size(), 0);
  std::vector<int32_t> busy_children(records_.size(), 0);
  int32_t n_free = 0;
  int32_t n_cached = 0;
  int32_t n_idle = 0;
  for (size_t b = 0; b < records_.size(); ++b) {
    const BlockRecord& r = records_[b];
    KVF_CHECK(r.ref_count >= 0);
    KVF_CHECK((r.ref_count == 0) == (r.list == ListKind::kFree));
    KVF_CHECK(is_idle(r) == (r.list == ListKind::kIdle));
    n_free += r.ref_count == 0 ? 1 : 0;
    n_idle += is_idle(r) ? 1 : 0;
    if (!r.cached) {
      KVF_CHECK(r.cached_parent == -1 && r.cached_children == 0 && r.busy_children == 0);
      continue;
    }
    ++n_cached;
    KVF_CHECK(r.ref_count >= 1);  // the cache's own reference
    if (r.cached_parent >= 0) {
      KVF_CHECK(r.cached_parent < n_blocks_ && r.cached_parent != static_cast<int32_t>(b));
      KVF_CHECK(records_[static_cast<size_t>(r.cached_parent)].cached);
      ++cached_children[static_cast<size_t>(r.cached_parent)];
      if (!is_idle(r)) ++busy_children[static_cast<size_t>(r.cached_parent)];
    }
  }
  KVF_CHECK(n_free == free_list_.size);
  KVF_CHECK(n_idle == idle_list_.size);
  KVF_CHECK(n_cached == n_cached_);
  for (size_t b = 0; b < records_.size(); ++b) {
    KVF_CHECK(records_[b].cached_children == cached_children[b]);
    KVF_CHECK(records_[b].busy_children == busy_children[b]);
  }

  // Idle children precede their parents in the idle list, so its head is a leaf.
  std::vector<int32_t> idle_position(records_.size(), -1);
  int32_t position = 0;
  for (int32_t index = idle_list_.head; index >= 0;
       index = records_[static_cast<size_t>(index)].next) {
    idle_position[static_cast<size_t>(index)] = position++;
  }
  for (int32_t index = idle_list_.head; index >= 0;
       index = records_[static_cast<size_t>(index)].next) {
    const int32_t parent = records_[static_cast<size_t>(index)].cached_parent;
    if (parent < 0) continue;
    // An idle block's parent is idle only if all its children are; either way,
    // when it is idle it comes later.
    const int32_t parent_position = idle_position[static_cast<size_t>(parent)];
    if (parent_position >= 0) {
      KVF_CHECK(parent_position > idle_position[static_cast<size_t>(index)]);
    }
  }
}

}  // namespace kvforge
