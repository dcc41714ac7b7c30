#include "kv/block_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "pool_test_util.h"

namespace kvforge {
namespace {

using testing::make_pool;

TEST(BlockPoolTest, BlockCountIsTheFloorOfBudgetOverBlockBytes) {
  BlockPoolLayout layout;
  layout.block_tokens = 16;
  layout.segment_bytes = {1000, 3000, 24};  // 4024 bytes per block
  auto exact = BlockPool::create(layout, 7 * 4024);
  ASSERT_TRUE(exact.ok()) << exact.status().to_string();
  EXPECT_EQ((*exact)->n_blocks(), 7);
  EXPECT_EQ((*exact)->bytes_per_block(), 4024u);
  EXPECT_EQ((*exact)->capacity_bytes(), 7u * 4024u);
  EXPECT_EQ((*exact)->block_tokens(), 16);
  EXPECT_EQ((*exact)->n_segments(), 3);
  EXPECT_EQ((*exact)->segment_bytes(1), 3000u);
  EXPECT_EQ((*exact)->n_free(), 7);

  auto one_short = BlockPool::create(layout, 8 * 4024 - 1);
  ASSERT_TRUE(one_short.ok());
  EXPECT_EQ((*one_short)->n_blocks(), 7);
}

TEST(BlockPoolTest, BudgetBelowOneBlockIsAnErrorThatSaysWhatABlockNeeds) {
  BlockPoolLayout layout;
  layout.block_tokens = 16;
  layout.segment_bytes = {1000, 3000, 24};
  auto pool = BlockPool::create(layout, 4023);
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(pool.status().message().find("needs 4024 bytes"), std::string::npos)
      << pool.status().message();
  EXPECT_NE(pool.status().message().find("4023"), std::string::npos);
}

TEST(BlockPoolTest, UnusableLayoutsAreRejected) {
  BlockPoolLayout no_tokens;
  no_tokens.block_tokens = 0;
  no_tokens.segment_bytes = {64};
  EXPECT_EQ(BlockPool::create(no_tokens, 1 << 20).status().code(), StatusCode::kInvalidArgument);

  BlockPoolLayout no_segments;
  EXPECT_EQ(BlockPool::create(no_segments, 1 << 20).status().code(), StatusCode::kInvalidArgument);

  BlockPoolLayout empty_segment;
  empty_segment.segment_bytes = {64, 0};
  EXPECT_EQ(BlockPool::create(empty_segment, 1 << 20).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(BlockPoolTest, AllocatesEveryBlockOnceThenReportsExhaustion) {
  auto pool = make_pool(5);
  std::set<int32_t> seen;
  for (int32_t i = 0; i < 5; ++i) {
    const std::optional<BlockId> block = pool->allocate();
    ASSERT_TRUE(block.has_value());
    EXPECT_GE(block->value, 0);
    EXPECT_LT(block->value, 5);
    EXPECT_TRUE(seen.insert(block->value).second) << "block handed out twice";
    EXPECT_EQ(pool->ref_count(*block), 1);
    EXPECT_EQ(pool->n_free(), 4 - i);
    pool->check_invariants();
  }
  EXPECT_FALSE(pool->allocate().has_value());
  EXPECT_FALSE(pool->allocate().has_value());  // asking again changes nothing
  pool->check_invariants();

  pool->release(BlockId{3});
  pool->check_invariants();
  EXPECT_EQ(pool->n_free(), 1);
  EXPECT_EQ(pool->ref_count(BlockId{3}), 0);
  const std::optional<BlockId> again = pool->allocate();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->value, 3);
  EXPECT_EQ(pool->ref_count(*again), 1);
  pool->check_invariants();
}

// The attention kernel reads a run of consecutive block ids as one array, so
// a sequence that takes over released blocks should get them in ascending
// runs again, not reversed.
TEST(BlockPoolTest, ReleasedBlocksComeBackInTheOrderTheyWereReleased) {
  auto pool = make_pool(8);
  std::vector<BlockId> first;
  for (int32_t i = 0; i < 6; ++i) first.push_back(*pool->allocate());
  for (int32_t i = 0; i < 6; ++i) EXPECT_EQ(first[static_cast<size_t>(i)].value, i);
  for (BlockId b : first) pool->release(b);  // a sequence's table order
  pool->check_invariants();

  // The never-used blocks 6 and 7 first, then 0..5 in release order.
  std::vector<int32_t> next;
  while (const std::optional<BlockId> b = pool->allocate()) next.push_back(b->value);
  EXPECT_EQ(next, (std::vector<int32_t>{6, 7, 0, 1, 2, 3, 4, 5}));
  pool->check_invariants();
}

TEST(BlockPoolTest, ABlockIsFreedOnlyWhenItsLastReferenceGoes) {
  auto pool = make_pool(2);
  const BlockId block = *pool->allocate();
  pool->add_ref(block);
  pool->add_ref(block);
  EXPECT_EQ(pool->ref_count(block), 3);
  pool->check_invariants();
  pool->release(block);
  pool->release(block);
  EXPECT_EQ(pool->ref_count(block), 1);
  EXPECT_EQ(pool->n_free(), 1);
  pool->check_invariants();
  pool->release(block);
  EXPECT_EQ(pool->ref_count(block), 0);
  EXPECT_EQ(pool->n_free(), 2);
  pool->check_invariants();
}

TEST(BlockPoolDeathTest, MisuseAborts) {
  auto pool = make_pool(2);
  EXPECT_DEATH(pool->release(BlockId{0}), "ref_count > 0");
  EXPECT_DEATH(pool->add_ref(BlockId{1}), "ref_count > 0");
  EXPECT_DEATH((void)pool->ref_count(BlockId{2}), "block.value < n_blocks_");
  EXPECT_DEATH((void)pool->segment_data(BlockId{0}, 2), "segment < n_segments");
}

TEST(BlockPoolTest, SegmentBytesAreAlignedDisjointAndWithinTheArena) {
  BlockPoolLayout layout;
  layout.block_tokens = 8;
  layout.segment_bytes = {96, 200, 64};  // 96 and 200 are not multiples of 64
  auto created = BlockPool::create(layout, 360 * 9 + 100);
  ASSERT_TRUE(created.ok());
  BlockPool& pool = **created;
  ASSERT_EQ(pool.n_blocks(), 9);

  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;  // [begin, end) of every (block, segment)
  for (int32_t seg = 0; seg < pool.n_segments(); ++seg) {
    const uint8_t* arena = pool.segment_data(BlockId{0}, seg);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(arena) % BlockPool::kArenaAlignment, 0u);
    for (int32_t b = 0; b < pool.n_blocks(); ++b) {
      const uint8_t* data = pool.segment_data(BlockId{b}, seg);
      EXPECT_EQ(data,
                arena + static_cast<size_t>(b) * layout.segment_bytes[static_cast<size_t>(seg)]);
      const auto begin = reinterpret_cast<uintptr_t>(data);
      ranges.emplace_back(begin, begin + layout.segment_bytes[static_cast<size_t>(seg)]);
    }
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    EXPECT_LE(ranges[i - 1].second, ranges[i].first) << "ranges overlap";
  }

  // Every byte is usable (a sanitizer build catches any that is not) and
  // keeps what was written: a pattern per (block, segment) survives the others.
  for (int32_t seg = 0; seg < pool.n_segments(); ++seg) {
    for (int32_t b = 0; b < pool.n_blocks(); ++b) {
      std::fill_n(pool.segment_data(BlockId{b}, seg), pool.segment_bytes(seg),
                  static_cast<uint8_t>(b * 3 + seg));
    }
  }
  const BlockPool& const_pool = pool;
  for (int32_t seg = 0; seg < pool.n_segments(); ++seg) {
    for (int32_t b = 0; b < pool.n_blocks(); ++b) {
      const uint8_t* data = const_pool.segment_data(BlockId{b}, seg);
      const size_t bytes = pool.segment_bytes(seg);
      EXPECT_EQ(std::count(data, data + bytes, static_cast<uint8_t>(b * 3 + seg)),
                static_cast<ptrdiff_t>(bytes));
    }
  }
}

}  // namespace
}  // namespace kvforge
