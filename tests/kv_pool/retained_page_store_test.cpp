// RetainedPageStore: pages carved from pool blocks. Checked against a model of
// what must hold: pages never overlap, their bytes survive other pages'
// traffic, a block goes back to the pool exactly when its last page goes,
// and running out of blocks is a nullopt, not an abort.
#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kv/block_pool.h"
#include "kv/retained_page_store.h"

namespace kvforge {
namespace {

// Segments of 96 and 256 bytes: pages of 32 bytes fit 3 and 8 to a slot.
std::unique_ptr<BlockPool> make_page_pool(int32_t n_blocks) {
  BlockPoolLayout layout;
  layout.block_tokens = 4;
  layout.segment_bytes = {96, 256, 256};
  auto pool = BlockPool::create(layout, (96 + 256 + 256) * static_cast<size_t>(n_blocks));
  EXPECT_TRUE(pool.ok());
  return std::move(pool).value();
}

TEST(RetainedPageStoreTest, PagesFillSlotsAndBlocksReturnWithTheirLastPage) {
  auto pool = make_page_pool(4);
  RetainedPageStore store(*pool);
  std::vector<PageRef> pages;
  // 96 + 256 + 256 bytes hold 3 + 8 + 8 pages of 32 bytes: one block.
  for (int i = 0; i < 19; ++i) {
    auto page = store.allocate(32);
    ASSERT_TRUE(page.has_value());
    pages.push_back(*page);
  }
  EXPECT_EQ(store.n_blocks_held(), 1);
  EXPECT_EQ(pool->n_free(), 3);
  // The smallest slot that fits goes first (the 96-byte one).
  EXPECT_EQ(pages[0].segment, 0);
  auto twentieth = store.allocate(32);
  ASSERT_TRUE(twentieth.has_value());
  EXPECT_EQ(store.n_blocks_held(), 2);
  store.check_invariants();
  store.release(*twentieth);
  EXPECT_EQ(store.n_blocks_held(), 1);
  EXPECT_EQ(pool->n_free(), 3);
  for (size_t i = 0; i + 1 < pages.size(); ++i) store.release(pages[i]);
  EXPECT_EQ(store.n_blocks_held(), 1);  // one page still lives in it
  store.release(pages.back());
  EXPECT_EQ(store.n_blocks_held(), 0);
  EXPECT_EQ(pool->n_free(), 4);
  store.check_invariants();
}

TEST(RetainedPageStoreTest, PagesLargerThanASegmentUseTheLargerSegments) {
  auto pool = make_page_pool(2);
  RetainedPageStore store(*pool);
  auto big = store.allocate(200);  // fits only the 256-byte segments
  ASSERT_TRUE(big.has_value());
  EXPECT_NE(big->segment, 0);
  auto small = store.allocate(96);  // the free 96-byte slot of the same block
  ASSERT_TRUE(small.has_value());
  EXPECT_EQ(small->segment, 0);
  EXPECT_EQ(small->block, big->block);
  store.release(*big);
  store.release(*small);
  EXPECT_EQ(pool->n_free(), 2);
}

TEST(RetainedPageStoreTest, RunningOutOfBlocksIsAnOrdinaryOutcome) {
  auto pool = make_page_pool(1);
  RetainedPageStore store(*pool);
  std::vector<PageRef> pages;
  for (int i = 0; i < 2; ++i) pages.push_back(*store.allocate(256));
  EXPECT_FALSE(store.allocate(256).has_value());
  auto fits = store.allocate(96);  // the 96-byte slot is still free
  ASSERT_TRUE(fits.has_value());
  pages.push_back(*fits);
  for (PageRef p : pages) store.release(p);
  EXPECT_EQ(pool->n_free(), 1);
}

TEST(RetainedPageStoreTest, SharedPagesLiveUntilTheirLastReference) {
  auto pool = make_page_pool(1);
  RetainedPageStore store(*pool);
  const PageRef page = *store.allocate(64);
  store.add_ref(page);
  EXPECT_EQ(store.ref_count(page), 2);
  store.release(page);
  EXPECT_EQ(store.n_live_pages(), 1);
  store.release(page);
  EXPECT_EQ(store.n_live_pages(), 0);
  EXPECT_EQ(pool->n_free(), 1);
}

// Random traffic of several page sizes: each live page keeps the bytes
// written into it, no two live pages overlap, and in the end every block is
// back in the pool.
TEST(RetainedPageStoreTest, RandomTrafficKeepsContentsAndGivesEveryBlockBack) {
  auto pool = make_page_pool(12);
  RetainedPageStore store(*pool);
  std::mt19937 rng(11);
  const size_t sizes[] = {24, 32, 96, 128, 200, 256};
  struct Live {
    PageRef page;
    size_t bytes;
    uint8_t fill;
  };
  std::vector<Live> live;
  for (int step = 0; step < 4000; ++step) {
    const bool allocate = live.empty() || rng() % 100 < 55;
    if (allocate) {
      const size_t bytes = sizes[rng() % std::size(sizes)];
      auto page = store.allocate(bytes);
      if (!page) {
        EXPECT_EQ(pool->n_free(), 0);
        continue;
      }
      const auto fill = static_cast<uint8_t>(rng());
      std::memset(store.data(*page), fill, bytes);
      live.push_back({*page, bytes, fill});
    } else {
      const size_t i = rng() % live.size();
      store.release(live[i].page);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    }
    if (step % 97 == 0) {
      store.check_invariants();
      std::vector<std::pair<const uint8_t*, const uint8_t*>> ranges;
      for (const Live& l : live) {
        const uint8_t* p = store.data(l.page);
        for (size_t b = 0; b < l.bytes; ++b) ASSERT_EQ(p[b], l.fill);
        ranges.emplace_back(p, p + l.bytes);
      }
      std::sort(ranges.begin(), ranges.end());
      for (size_t i = 1; i < ranges.size(); ++i) ASSERT_LE(ranges[i - 1].second, ranges[i].first);
    }
  }
  for (const Live& l : live) store.release(l.page);
  store.check_invariants();
  EXPECT_EQ(store.n_blocks_held(), 0);
  EXPECT_EQ(pool->n_free(), pool->n_blocks());
}

}  // namespace
}  // namespace kvforge
