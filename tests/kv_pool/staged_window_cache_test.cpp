#include "kv/staged_window_cache.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace kvforge {
namespace {

// A window of `n` positions from `begin`, one layer, `floats_per_row` key
// floats per position; token ids begin, begin + 1, ...
std::shared_ptr<StagedWindow> window(int32_t begin, int32_t n, size_t floats_per_row = 4) {
  auto w = std::make_shared<StagedWindow>();
  w->begin = begin;
  for (int32_t i = 0; i < n; ++i) w->tokens.push_back(begin + i);
  w->keys.assign(1, std::vector<float>(static_cast<size_t>(n) * floats_per_row, 1.0f));
  w->values.assign(1, {});
  return w;
}

BlockHash hash(uint64_t i) {
  return BlockHash{i, ~i};
}

TEST(StagedWindow, BytesCountRowsAndTokens) {
  const auto w = window(16, 8, 4);
  EXPECT_EQ(w->bytes(), 8 * 4 * sizeof(float) + 8 * sizeof(int32_t));
  EXPECT_EQ(w->end(), 24);
}

TEST(StagedWindow, HoldsChecksRangeAndTokens) {
  const auto w = window(16, 8);
  std::vector<int32_t> prompt(30);
  for (int32_t i = 0; i < 30; ++i) prompt[static_cast<size_t>(i)] = i;
  EXPECT_TRUE(w->holds(prompt, 16, 24));
  EXPECT_TRUE(w->holds(prompt, 20, 24));
  EXPECT_FALSE(w->holds(prompt, 15, 24));  // starts before the window
  EXPECT_FALSE(w->holds(prompt, 16, 25));  // ends after it
  EXPECT_FALSE(w->holds(std::span<const int32_t>(prompt).first(20), 16, 24));  // prompt too short
  prompt[18] = -1;
  EXPECT_FALSE(w->holds(prompt, 16, 24));  // another token there
  EXPECT_TRUE(w->holds(prompt, 20, 24));
}

TEST(StagedWindowCache, FindsAWindowByEveryChainEndItWasRecordedFor) {
  StagedWindowCache cache(1 << 20);
  const auto w = window(0, 8);
  cache.insert(w, std::vector<BlockHash>{hash(1), hash(2)});
  cache.check_invariants();
  EXPECT_EQ(cache.find(hash(1)), w);
  EXPECT_EQ(cache.find(hash(2)), w);
  EXPECT_EQ(cache.find(hash(3)), nullptr);
  EXPECT_EQ(cache.n_windows(), 1);
  EXPECT_EQ(cache.bytes(), w->bytes());

  // A second window for an already recorded end keeps the first for that end.
  const auto other = window(0, 8);
  cache.insert(other, std::vector<BlockHash>{hash(2), hash(4)});
  cache.check_invariants();
  EXPECT_EQ(cache.find(hash(2)), w);
  EXPECT_EQ(cache.find(hash(4)), other);
  // One that adds no end is dropped.
  cache.insert(window(0, 8), std::vector<BlockHash>{hash(1)});
  EXPECT_EQ(cache.n_windows(), 2);
  cache.check_invariants();
}

TEST(StagedWindowCache, EvictsLeastRecentlyUsedToStayWithinCapacity) {
  const size_t one = window(0, 8)->bytes();
  StagedWindowCache cache(2 * one);
  cache.insert(window(0, 8), std::vector<BlockHash>{hash(1)});
  cache.insert(window(0, 8), std::vector<BlockHash>{hash(2)});
  ASSERT_NE(cache.find(hash(1)), nullptr);  // 2 is now the least recently used
  cache.insert(window(0, 8), std::vector<BlockHash>{hash(3)});
  cache.check_invariants();
  EXPECT_EQ(cache.n_windows(), 2);
  EXPECT_EQ(cache.bytes(), 2 * one);
  EXPECT_NE(cache.find(hash(1)), nullptr);
  EXPECT_EQ(cache.find(hash(2)), nullptr);
  EXPECT_NE(cache.find(hash(3)), nullptr);

  // Larger than the whole capacity: not kept, nothing evicted for it.
  cache.insert(window(0, 64), std::vector<BlockHash>{hash(5)});
  EXPECT_EQ(cache.find(hash(5)), nullptr);
  EXPECT_EQ(cache.n_windows(), 2);
  cache.check_invariants();
}

}  // namespace
}  // namespace kvforge
