#include "kv/prefix_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "kv/block_hash.h"
#include "kv/block_pool.h"
#include "pool_test_util.h"

namespace kvforge {
namespace {

using testing::iota_tokens;
using testing::make_pool;

constexpr int32_t kBlockTokens = 4;

class PrefixIndexTest : public ::testing::Test {
 protected:
  void SetUp() override { reset(16); }

  void reset(int32_t n_blocks) {
    index_.reset();
    pool_ = make_pool(n_blocks, kBlockTokens);
    index_ = std::make_unique<PrefixIndex>(*pool_);
  }

  // What a sequence that computed `tokens` itself holds: one fresh block per
  // full block of tokens.
  std::vector<BlockId> compute(const std::vector<int32_t>& tokens) {
    std::vector<BlockId> blocks;
    for (size_t i = 0; i < tokens.size() / kBlockTokens; ++i) {
      const std::optional<BlockId> block = pool_->allocate();
      EXPECT_TRUE(block.has_value()) << "test pool too small";
      blocks.push_back(*block);
    }
    check();
    return blocks;
  }

  // A finished sequence: offers its blocks to the index, then drops its own
  // references (first block first, the order a block table is walked).
  void finish(const CacheNamespace& ns, const std::vector<int32_t>& tokens,
              const std::vector<BlockId>& blocks) {
    index_->insert(ns, tokens, blocks);
    check();
    release(blocks);
  }

  // A sequence that computes and finishes `tokens`; returns its blocks.
  std::vector<BlockId> cache_sequence(const CacheNamespace& ns,
                                      const std::vector<int32_t>& tokens) {
    std::vector<BlockId> blocks = compute(tokens);
    finish(ns, tokens, blocks);
    return blocks;
  }

  std::vector<BlockId> match(const CacheNamespace& ns, const std::vector<int32_t>& tokens,
                             int32_t max_blocks = 1 << 20) {
    std::vector<BlockId> blocks = index_->match(ns, tokens, max_blocks);
    check();
    return blocks;
  }

  void release(const std::vector<BlockId>& blocks) {
    for (BlockId block : blocks) {
      pool_->release(block);
      check();
    }
  }

  int32_t evict(int32_t n_blocks) {
    const int32_t freed = index_->evict(n_blocks);
    check();
    return freed;
  }

  void check() const { index_->check_invariants(); }

  std::unique_ptr<BlockPool> pool_;
  std::unique_ptr<PrefixIndex> index_;
  const CacheNamespace ns_ = make_cache_namespace(7, "f16", "");
};

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// insert() names the offered blocks it recorded: not those whose chain was
// cached already (the existing blocks are kept).
TEST_F(PrefixIndexTest, InsertReportsTheBlocksItRecorded) {
  const std::vector<int32_t> tokens = iota_tokens(8, 100);
  (void)cache_sequence(ns_, tokens);
  const std::vector<int32_t> longer = concat(tokens, iota_tokens(8, 300));
  const std::vector<BlockId> blocks = compute(longer);
  std::vector<size_t> recorded;
  index_->insert(ns_, longer, blocks, nullptr, -1, &recorded);
  check();
  EXPECT_EQ(recorded, (std::vector<size_t>{2, 3}));
  for (const size_t i : {size_t{0}, size_t{1}}) EXPECT_FALSE(pool_->is_cached(blocks[i]));
  release(blocks);
}

TEST_F(PrefixIndexTest, MatchReturnsTheLongestCachedRunOfFullBlocks) {
  const std::vector<int32_t> tokens = iota_tokens(12, 100);
  const std::vector<BlockId> cached = compute(tokens);
  index_->insert(ns_, tokens, cached);
  check();
  for (BlockId block : cached) EXPECT_EQ(pool_->ref_count(block), 2);  // caller + index
  release(cached);
  for (BlockId block : cached) EXPECT_EQ(pool_->ref_count(block), 1);  // index only
  EXPECT_EQ(index_->stats().cached_blocks, 3);

  const std::vector<BlockId> all = match(ns_, tokens);
  EXPECT_EQ(all, cached);
  for (BlockId block : cached) EXPECT_EQ(pool_->ref_count(block), 2);
  release(all);

  // Diverges inside the third block: two blocks match.
  std::vector<int32_t> diverging = tokens;
  diverging[9] = 999;
  const std::vector<BlockId> two = match(ns_, diverging);
  EXPECT_EQ(two, std::vector<BlockId>(cached.begin(), cached.begin() + 2));
  EXPECT_EQ(pool_->ref_count(cached[2]), 1);
  release(two);

  // Longer than what is cached: only the cached blocks.
  const std::vector<BlockId> longer = match(ns_, concat(tokens, iota_tokens(9, 500)));
  EXPECT_EQ(longer, cached);
  release(longer);

  // max_blocks caps the run.
  const std::vector<BlockId> one = match(ns_, tokens, 1);
  EXPECT_EQ(one, std::vector<BlockId>{cached[0]});
  release(one);
  EXPECT_TRUE(match(ns_, tokens, 0).empty());
  for (BlockId block : cached) EXPECT_EQ(pool_->ref_count(block), 1);
}

TEST_F(PrefixIndexTest, HitFilterShortensTheMatchToAUsableEnd) {
  const std::vector<int32_t> tokens = iota_tokens(16, 300);
  const std::vector<BlockId> cached = cache_sequence(ns_, tokens);
  // The filter sees every candidate end from the longest down, with the
  // chain hash of its last block; the first it accepts is the hit.
  std::vector<int32_t> asked;
  std::vector<BlockHash> hashes;
  const std::vector<BlockId> two =
      index_->match(ns_, tokens, 4, [&](int32_t n_blocks, const BlockHash& chain_end) {
        asked.push_back(n_blocks);
        hashes.push_back(chain_end);
        return n_blocks == 2;
      });
  check();
  EXPECT_EQ(two, std::vector<BlockId>(cached.begin(), cached.begin() + 2));
  EXPECT_EQ(asked, (std::vector<int32_t>{4, 3, 2}));
  BlockHash expected = kRootChainHash;
  for (int32_t b = 0; b < 2; ++b) {
    expected = chain_block_hash(
        expected, ns_, std::span<const int32_t>(tokens).subspan(b * kBlockTokens, kBlockTokens));
  }
  EXPECT_EQ(hashes.back(), expected);
  EXPECT_EQ(pool_->ref_count(cached[2]), 1);  // not handed out
  EXPECT_EQ(index_->stats().hit_tokens, 2 * kBlockTokens);
  release(two);

  // A filter that accepts nothing: a miss, no references taken.
  EXPECT_TRUE(
      index_->match(ns_, tokens, 4, [](int32_t, const BlockHash&) { return false; }).empty());
  EXPECT_EQ(index_->stats().misses, 1);
  for (BlockId block : cached) EXPECT_EQ(pool_->ref_count(block), 1);
}

TEST_F(PrefixIndexTest, PartialBlockTailsAreNeverMatched) {
  // 11 tokens: two full blocks and a 3-token tail, which the index ignores.
  const std::vector<int32_t> tokens = iota_tokens(11, 0);
  const std::vector<BlockId> blocks = compute(tokens);
  ASSERT_EQ(blocks.size(), 2u);
  finish(ns_, tokens, blocks);
  EXPECT_EQ(index_->stats().cached_blocks, 2);

  std::vector<BlockId> same = match(ns_, tokens);
  EXPECT_EQ(same.size(), 2u);
  release(same);
  // Twelve tokens agreeing with the first eleven: still two.
  std::vector<BlockId> extended = match(ns_, iota_tokens(12, 0));
  EXPECT_EQ(extended.size(), 2u);
  release(extended);
  // Seven tokens hold only one full block.
  std::vector<BlockId> seven = match(ns_, iota_tokens(7, 0));
  EXPECT_EQ(seven, std::vector<BlockId>{blocks[0]});
  release(seven);
  EXPECT_TRUE(match(ns_, iota_tokens(3, 0)).empty());
}

TEST_F(PrefixIndexTest, TokensMustMatchExactlyNotJustInLength) {
  const std::vector<int32_t> tokens = iota_tokens(8, 10);
  const std::vector<BlockId> blocks = cache_sequence(ns_, tokens);

  std::vector<int32_t> second_block_differs = tokens;
  second_block_differs[5] = 0;
  std::vector<BlockId> one = match(ns_, second_block_differs);
  EXPECT_EQ(one, std::vector<BlockId>{blocks[0]});
  release(one);

  std::vector<int32_t> first_block_differs = tokens;
  first_block_differs[0] = 11;
  EXPECT_TRUE(match(ns_, first_block_differs).empty());

  // The same blocks' tokens in another order are other content.
  std::vector<int32_t> swapped = tokens;
  std::swap(swapped[0], swapped[1]);
  EXPECT_TRUE(match(ns_, swapped).empty());
}

TEST_F(PrefixIndexTest, DifferentSaltsCodecsAndModelsNeverShare) {
  const CacheNamespace tenant_a = make_cache_namespace(7, "f16", "tenant-a");
  const std::vector<CacheNamespace> others = {make_cache_namespace(7, "f16", "tenant-b"),
                                              make_cache_namespace(7, "q8", "tenant-a"),
                                              make_cache_namespace(8, "f16", "tenant-a"), ns_};
  const std::vector<int32_t> tokens = iota_tokens(8, 40);
  const std::vector<BlockId> a_blocks = cache_sequence(tenant_a, tokens);
  for (const CacheNamespace& other : others) EXPECT_TRUE(match(other, tokens).empty());

  // Each namespace caches its own copy of the same tokens.
  const std::vector<BlockId> b_blocks = cache_sequence(others[0], tokens);
  EXPECT_EQ(index_->stats().cached_blocks, 4);
  std::vector<BlockId> from_a = match(tenant_a, tokens);
  std::vector<BlockId> from_b = match(others[0], tokens);
  EXPECT_EQ(from_a, a_blocks);
  EXPECT_EQ(from_b, b_blocks);
  release(from_a);
  release(from_b);
}

TEST_F(PrefixIndexTest, DuplicateInsertKeepsTheExistingBlock) {
  const std::vector<int32_t> tokens = iota_tokens(8, 0);
  const std::vector<BlockId> first = compute(tokens);
  index_->insert(ns_, tokens, first);  // still held by its sequence
  check();

  // A second sequence computed the same tokens itself.
  const std::vector<BlockId> second = compute(tokens);
  index_->insert(ns_, tokens, second);
  check();
  for (BlockId block : second) EXPECT_EQ(pool_->ref_count(block), 1);  // not recorded
  for (BlockId block : first) EXPECT_EQ(pool_->ref_count(block), 2);
  EXPECT_EQ(index_->stats().cached_blocks, 2);
  // Offering the cached blocks themselves again changes nothing either.
  index_->insert(ns_, tokens, first);
  check();
  for (BlockId block : first) EXPECT_EQ(pool_->ref_count(block), 2);
  release(second);
  for (BlockId block : second) EXPECT_EQ(pool_->ref_count(block), 0);

  // A third computed a longer prompt with the same start: only its new block
  // is recorded, below the existing chain.
  const std::vector<int32_t> longer = iota_tokens(12, 0);
  const std::vector<BlockId> third = compute(longer);
  finish(ns_, longer, third);
  EXPECT_EQ(index_->stats().cached_blocks, 3);
  EXPECT_EQ(pool_->ref_count(third[0]), 0);
  EXPECT_EQ(pool_->ref_count(third[2]), 1);
  std::vector<BlockId> matched = match(ns_, longer);
  EXPECT_EQ(matched, (std::vector<BlockId>{first[0], first[1], third[2]}));
  release(matched);
  release(first);
}

TEST_F(PrefixIndexTest, EvictsTheLeastRecentlyUsedBlockFirst) {
  const std::vector<int32_t> a = iota_tokens(4, 0);
  const std::vector<int32_t> b = iota_tokens(4, 100);
  const std::vector<int32_t> c = iota_tokens(4, 200);
  const BlockId block_a = cache_sequence(ns_, a)[0];
  const BlockId block_b = cache_sequence(ns_, b)[0];
  const BlockId block_c = cache_sequence(ns_, c)[0];
  release(match(ns_, a));  // a used again: b is now the oldest
  EXPECT_EQ(index_->n_evictable(), 3);

  const int32_t free_before = pool_->n_free();
  EXPECT_EQ(evict(1), 1);
  EXPECT_FALSE(pool_->is_cached(block_b));
  EXPECT_EQ(pool_->ref_count(block_b), 0);
  EXPECT_EQ(pool_->n_free(), free_before + 1);
  EXPECT_TRUE(pool_->is_cached(block_a));
  EXPECT_TRUE(pool_->is_cached(block_c));

  EXPECT_EQ(evict(1), 1);
  EXPECT_FALSE(pool_->is_cached(block_c));
  EXPECT_TRUE(pool_->is_cached(block_a));
  EXPECT_EQ(evict(1), 1);
  EXPECT_FALSE(pool_->is_cached(block_a));
  EXPECT_EQ(pool_->n_free(), pool_->n_blocks());
}

TEST_F(PrefixIndexTest, EvictsChildrenBeforeTheirParents) {
  // Released first block first, so the pool sees parents let go before
  // children; the chain still goes deepest block first.
  const std::vector<int32_t> chain_tokens = iota_tokens(12, 0);
  const std::vector<BlockId> chain = cache_sequence(ns_, chain_tokens);
  const BlockId later = cache_sequence(ns_, iota_tokens(4, 300))[0];

  for (int32_t depth = 2; depth >= 0; --depth) {
    EXPECT_EQ(evict(1), 1);
    for (int32_t d = 0; d < 3; ++d) {
      EXPECT_EQ(pool_->is_cached(chain[static_cast<size_t>(d)]), d < depth)
          << "after evicting depth " << depth << ", block at depth " << d;
    }
    EXPECT_TRUE(pool_->is_cached(later));
  }
  EXPECT_EQ(evict(1), 1);
  EXPECT_FALSE(pool_->is_cached(later));
}

TEST_F(PrefixIndexTest, WorkflowHintsKeepBlocksNeededSoonest) {
  // KVFlow order: unhinted chains first (LRU), then the hinted chain needed
  // furthest ahead, deepest block first; a passed hint counts as none.
  auto cache_hinted = [&](const std::vector<int32_t>& tokens, int32_t next_use) {
    std::vector<BlockId> blocks = compute(tokens);
    index_->insert(ns_, tokens, blocks, nullptr, next_use);
    check();
    release(blocks);
    return blocks;
  };
  const std::vector<BlockId> soon = cache_hinted(iota_tokens(8, 0), 1);
  const std::vector<BlockId> later = cache_hinted(iota_tokens(8, 100), 4);
  const std::vector<BlockId> plain = cache_hinted(iota_tokens(4, 200), -1);
  release(match(ns_, iota_tokens(4, 200)));  // the unhinted block is the newest
  auto cached = [&](const std::vector<BlockId>& blocks) {
    int32_t n = 0;
    for (BlockId b : blocks) n += pool_->is_cached(b) ? 1 : 0;
    return n;
  };
  EXPECT_EQ(evict(1), 1);
  EXPECT_EQ(cached(plain), 0);
  EXPECT_EQ(cached(later), 2);
  EXPECT_EQ(evict(1), 1);  // the one needed in 4 steps, its deeper block
  EXPECT_FALSE(pool_->is_cached(later[1]));
  EXPECT_TRUE(pool_->is_cached(later[0]));
  EXPECT_EQ(cached(soon), 2);
  // Two steps later the first hint has passed: that chain goes first now.
  index_->advance_clock();
  index_->advance_clock();
  EXPECT_EQ(evict(2), 2);
  EXPECT_EQ(cached(soon), 0);
  EXPECT_TRUE(pool_->is_cached(later[0]));
  // Re-inserting a cached chain with a hint refreshes its hint.
  index_->insert(ns_, iota_tokens(4, 100), std::vector<BlockId>{later[0]}, nullptr, 1);
  check();
  const std::vector<BlockId> fresh = cache_sequence(ns_, iota_tokens(4, 300));
  EXPECT_EQ(evict(1), 1);
  EXPECT_FALSE(pool_->is_cached(fresh[0]));
  EXPECT_TRUE(pool_->is_cached(later[0]));
}

TEST_F(PrefixIndexTest, SharedParentOutlivesBothBranches) {
  const std::vector<int32_t> root = iota_tokens(4, 0);
  const std::vector<BlockId> left = cache_sequence(ns_, concat(root, iota_tokens(4, 10)));
  const std::vector<BlockId> right = cache_sequence(ns_, concat(root, iota_tokens(4, 20)));
  EXPECT_EQ(pool_->ref_count(right[0]), 0);  // duplicate of left[0], not recorded
  EXPECT_EQ(index_->n_evictable(), 3);

  EXPECT_EQ(evict(1), 1);
  EXPECT_FALSE(pool_->is_cached(left[1]));
  EXPECT_EQ(evict(1), 1);
  EXPECT_FALSE(pool_->is_cached(right[1]));
  EXPECT_TRUE(pool_->is_cached(left[0]));
  EXPECT_EQ(evict(1), 1);
  EXPECT_FALSE(pool_->is_cached(left[0]));
}

TEST_F(PrefixIndexTest, AParentUsedAloneLaterIsNewerThanOlderChains) {
  // root -> child idle first, `other` second; then the root alone is matched
  // and released: exact LRU takes child, other, root in that order.
  const std::vector<int32_t> two_blocks = iota_tokens(8, 0);
  const std::vector<BlockId> chain = cache_sequence(ns_, two_blocks);
  const BlockId other = cache_sequence(ns_, iota_tokens(4, 50))[0];
  release(match(ns_, two_blocks, 1));

  EXPECT_EQ(evict(1), 1);
  EXPECT_FALSE(pool_->is_cached(chain[1]));
  EXPECT_EQ(evict(1), 1);
  EXPECT_FALSE(pool_->is_cached(other));
  EXPECT_TRUE(pool_->is_cached(chain[0]));
}

TEST_F(PrefixIndexTest, ReinsertingADuplicateChainRefreshesIt) {
  const std::vector<int32_t> a = iota_tokens(8, 0);
  const std::vector<BlockId> a_blocks = cache_sequence(ns_, a);
  const BlockId b_block = cache_sequence(ns_, iota_tokens(4, 50))[0];
  cache_sequence(ns_, a);  // recomputed by someone who did not match it

  EXPECT_EQ(evict(1), 1);
  EXPECT_FALSE(pool_->is_cached(b_block));
  EXPECT_TRUE(pool_->is_cached(a_blocks[1]));
}

TEST_F(PrefixIndexTest, NeverEvictsABlockSomeoneStillReferences) {
  const std::vector<int32_t> tokens = iota_tokens(8, 0);
  const std::vector<BlockId> cached = cache_sequence(ns_, tokens);
  const std::vector<BlockId> held = match(ns_, tokens);
  EXPECT_EQ(index_->n_evictable(), 0);
  EXPECT_EQ(evict(5), 0);
  EXPECT_EQ(index_->stats().cached_blocks, 2);
  release(held);
  EXPECT_EQ(index_->n_evictable(), 2);

  // Holding only the leaf pins its parent too (leaves first).
  pool_->add_ref(cached[1]);
  check();
  EXPECT_EQ(index_->n_evictable(), 0);
  EXPECT_EQ(evict(5), 0);
  release({cached[1]});

  // A sequence holding its own copy of the first block and a recorded second
  // block pins the cached first block, which nobody references directly.
  EXPECT_EQ(evict(1), 1);  // drops cached[1]
  const std::vector<BlockId> own = compute(tokens);
  index_->insert(ns_, tokens, own);
  check();
  EXPECT_EQ(pool_->ref_count(cached[0]), 1);
  EXPECT_EQ(pool_->ref_count(own[1]), 2);
  EXPECT_FALSE(pool_->is_idle_cached(cached[0]));
  EXPECT_EQ(index_->n_evictable(), 0);
  EXPECT_EQ(evict(3), 0);
  release(own);
  EXPECT_TRUE(pool_->is_idle_cached(cached[0]));
  EXPECT_TRUE(pool_->is_idle_cached(own[1]));
  EXPECT_EQ(index_->n_evictable(), 2);
  EXPECT_EQ(evict(1), 1);
  EXPECT_FALSE(pool_->is_cached(own[1]));
  EXPECT_TRUE(pool_->is_cached(cached[0]));
}

TEST_F(PrefixIndexTest, EvictsExactlyTheShortfall) {
  reset(6);
  for (int32_t i = 0; i < 5; ++i) cache_sequence(ns_, iota_tokens(4, 10 * i));
  EXPECT_EQ(index_->n_evictable(), 5);
  EXPECT_EQ(pool_->n_free(), 1);

  // A sequence needs three blocks: one is free, so it evicts two.
  std::vector<BlockId> seq = {*pool_->allocate()};
  EXPECT_FALSE(pool_->allocate().has_value());
  EXPECT_EQ(evict(2), 2);
  EXPECT_EQ(pool_->n_free(), 2);
  EXPECT_EQ(index_->n_evictable(), 3);
  EXPECT_EQ(index_->stats().cached_blocks, 3);
  seq.push_back(*pool_->allocate());
  seq.push_back(*pool_->allocate());
  EXPECT_EQ(pool_->n_free(), 0);

  EXPECT_EQ(evict(10), 3);  // asks for more than there is: all that can go
  EXPECT_EQ(evict(1), 0);
  EXPECT_EQ(evict(0), 0);
  EXPECT_EQ(index_->stats().evicted_blocks, 5);
  release(seq);
  EXPECT_EQ(pool_->n_free(), 6);
}

TEST_F(PrefixIndexTest, StatsCountLookupsHitsAndTokens) {
  EXPECT_EQ(index_->stats().hit_rate(), 0.0);
  cache_sequence(ns_, iota_tokens(8, 0));

  release(match(ns_, iota_tokens(10, 0)));  // hit: 8 of 10 tokens
  release(match(ns_, iota_tokens(6, 50)));  // miss: 0 of 6
  release(match(ns_, iota_tokens(4, 0)));   // hit: 4 of 4
  const PrefixCacheStats stats = index_->stats();
  EXPECT_EQ(stats.lookups, 3);
  EXPECT_EQ(stats.hits, 2);
  EXPECT_EQ(stats.misses, 1);
  EXPECT_EQ(stats.hit_tokens, 12);
  EXPECT_EQ(stats.lookup_tokens, 20);
  EXPECT_DOUBLE_EQ(stats.hit_rate(), 0.6);
  EXPECT_EQ(stats.cached_blocks, 2);
  EXPECT_EQ(stats.evicted_blocks, 0);
  EXPECT_EQ(evict(1), 1);
  EXPECT_EQ(index_->stats().evicted_blocks, 1);
  EXPECT_EQ(index_->stats().cached_blocks, 1);
}

TEST_F(PrefixIndexTest, ClearDropsEveryCachedBlockButNotTheCallersReferences) {
  const std::vector<int32_t> tokens = iota_tokens(12, 0);
  cache_sequence(ns_, tokens);
  cache_sequence(ns_, concat(iota_tokens(4, 0), iota_tokens(8, 90)));
  const std::vector<BlockId> held = match(ns_, tokens, 2);
  EXPECT_EQ(index_->stats().cached_blocks, 5);

  index_->clear();
  check();
  EXPECT_EQ(index_->stats().cached_blocks, 0);
  EXPECT_EQ(index_->n_evictable(), 0);
  for (BlockId block : held) EXPECT_EQ(pool_->ref_count(block), 1);
  EXPECT_EQ(pool_->n_free(), pool_->n_blocks() - 2);
  EXPECT_TRUE(match(ns_, tokens).empty());
  release(held);
  EXPECT_EQ(pool_->n_free(), pool_->n_blocks());
}

TEST_F(PrefixIndexTest, DestroyingTheIndexReturnsItsBlocks) {
  cache_sequence(ns_, iota_tokens(12, 0));
  EXPECT_EQ(pool_->n_free(), pool_->n_blocks() - 3);
  index_.reset();
  pool_->check_invariants();
  EXPECT_EQ(pool_->n_free(), pool_->n_blocks());
}

TEST_F(PrefixIndexTest, RunningOutOfBlocksIsRecoverableByEviction) {
  reset(4);
  cache_sequence(ns_, iota_tokens(16, 0));
  EXPECT_EQ(pool_->n_free(), 0);
  EXPECT_FALSE(pool_->allocate().has_value());
  check();
  EXPECT_EQ(evict(1), 1);
  const std::optional<BlockId> block = pool_->allocate();
  ASSERT_TRUE(block.has_value());
  // The survivors are still a usable prefix.
  std::vector<BlockId> prefix = match(ns_, iota_tokens(16, 0));
  EXPECT_EQ(prefix.size(), 3u);
  release(prefix);
  release({*block});
}

TEST_F(PrefixIndexTest, LookupCostsOneProbePerBlockEvenForLongChains) {
  // Not a timing test: a chain as long as the pool matches fully, and a
  // mismatch in its last block still matches everything before it.
  reset(512);
  const std::vector<int32_t> tokens = iota_tokens(512 * kBlockTokens, 0);
  cache_sequence(ns_, tokens);
  std::vector<int32_t> last_differs = tokens;
  last_differs.back() = -1;
  std::vector<BlockId> matched = index_->match(ns_, last_differs, 1 << 20);
  EXPECT_EQ(matched.size(), 511u);
  release(matched);
  EXPECT_EQ(index_->evict(1 << 20), 512);
  check();
}

TEST_F(PrefixIndexTest, ReleasingTheIndexsOwnReferenceThroughThePoolAborts) {
  const BlockId block = cache_sequence(ns_, iota_tokens(4, 0))[0];
  EXPECT_DEATH(pool_->release(block), "cached");
}

}  // namespace
}  // namespace kvforge
