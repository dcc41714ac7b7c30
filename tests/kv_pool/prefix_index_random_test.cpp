// Random operations on a pool and its prefix index, checked step by step
// against a reference model that keeps cached chains in a std::map keyed by
// their full token prefix and recomputes, from scratch, which blocks are idle
// and which one LRU eviction must take.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "kv/block_hash.h"
#include "kv/block_pool.h"
#include "kv/prefix_index.h"
#include "pool_test_util.h"

namespace kvforge {
namespace {

constexpr int32_t kRandomTestBlockTokens = 4;
constexpr int32_t kPoolBlocks = 40;

// A chain: the namespace's index and every token up to the end of its block.
using ChainKey = std::pair<int, std::vector<int32_t>>;

class ReferenceModel {
 public:
  explicit ReferenceModel(int32_t n_blocks) : refs_(static_cast<size_t>(n_blocks), 0) {}

  int32_t& refs(BlockId block) { return refs_[static_cast<size_t>(block.value)]; }
  int32_t refs(BlockId block) const { return refs_[static_cast<size_t>(block.value)]; }
  int32_t n_free() const { return static_cast<int32_t>(std::count(refs_.begin(), refs_.end(), 0)); }
  int32_t n_cached() const { return static_cast<int32_t>(chains_.size()); }
  bool is_cached(BlockId block) const {
    return std::any_of(chains_.begin(), chains_.end(),
                       [&](const auto& entry) { return entry.second.block == block; });
  }
  int32_t n_idle() const {
    return static_cast<int32_t>(std::count_if(chains_.begin(), chains_.end(),
                                              [](const auto& entry) { return entry.second.idle; }));
  }

  std::vector<BlockId> match(int ns, const std::vector<int32_t>& tokens, int32_t max_blocks) {
    std::vector<BlockId> matched;
    const size_t limit =
        std::min(tokens.size() / kRandomTestBlockTokens, static_cast<size_t>(max_blocks));
    for (size_t i = 0; i < limit; ++i) {
      const auto found = chains_.find(key(ns, tokens, i + 1));
      if (found == chains_.end()) break;
      matched.push_back(found->second.block);
    }
    for (BlockId block : matched) ++refs(block);
    update_idle();
    return matched;
  }

  void insert(int ns, const std::vector<int32_t>& tokens, const std::vector<BlockId>& blocks) {
    std::optional<ChainKey> deepest_existing;
    for (size_t i = 0; i < blocks.size(); ++i) {
      ChainKey chain = key(ns, tokens, i + 1);
      if (chains_.count(chain)) {
        deepest_existing = chain;
      } else {
        chains_[chain] = Node{blocks[i]};
        ++refs(blocks[i]);
      }
    }
    update_idle();
    // The duplicated part of the chain counts as used: idle blocks on it are
    // refreshed, deepest first.
    for (std::optional<ChainKey> chain = deepest_existing; chain; chain = parent(*chain)) {
      Node& node = chains_.at(*chain);
      if (!node.idle) break;
      node.idle_since = ++clock_;
    }
  }

  void release(BlockId block) {
    --refs(block);
    update_idle();
  }

  // The block one LRU eviction must take: the idle leaf idle the longest.
  std::optional<ChainKey> eviction_victim() const {
    std::set<ChainKey> parents;
    for (const auto& [chain, node] : chains_) {
      if (auto p = parent(chain)) parents.insert(*p);
    }
    std::optional<ChainKey> victim;
    int64_t oldest = 0;
    for (const auto& [chain, node] : chains_) {
      if (!node.idle || parents.count(chain)) continue;
      if (!victim || node.idle_since < oldest) {
        victim = chain;
        oldest = node.idle_since;
      }
    }
    return victim;
  }

  int32_t evict(int32_t n_blocks) {
    int32_t freed = 0;
    while (freed < n_blocks) {
      const std::optional<ChainKey> victim = eviction_victim();
      if (!victim) break;
      --refs(chains_.at(*victim).block);
      chains_.erase(*victim);
      update_idle();
      ++freed;
    }
    return freed;
  }

  void clear() {
    for (const auto& [chain, node] : chains_) --refs(node.block);
    chains_.clear();
  }

 private:
  struct Node {
    BlockId block;
    bool idle = false;
    int64_t idle_since = 0;  // when it last became idle or was refreshed
  };

  static ChainKey key(int ns, const std::vector<int32_t>& tokens, size_t n_blocks) {
    return {ns, std::vector<int32_t>(tokens.begin(),
                                     tokens.begin() + n_blocks * kRandomTestBlockTokens)};
  }
  static std::optional<ChainKey> parent(const ChainKey& chain) {
    if (chain.second.size() <= kRandomTestBlockTokens) return std::nullopt;
    return ChainKey{chain.first, std::vector<int32_t>(chain.second.begin(),
                                                      chain.second.end() - kRandomTestBlockTokens)};
  }

  // Idle: only the index references the block and every cached descendant.
  // Recomputed from the definition, deepest chains first; blocks that turn
  // idle now are stamped deepest first.
  void update_idle() {
    std::vector<std::pair<const ChainKey*, Node*>> deepest_first;
    for (auto& [chain, node] : chains_) deepest_first.emplace_back(&chain, &node);
    std::stable_sort(deepest_first.begin(), deepest_first.end(), [](const auto& a, const auto& b) {
      return a.first->second.size() > b.first->second.size();
    });
    std::set<ChainKey> has_busy_child;
    for (auto [chain, node] : deepest_first) {
      const bool idle = refs(node->block) == 1 && !has_busy_child.count(*chain);
      if (!idle) {
        if (auto p = parent(*chain)) has_busy_child.insert(*p);
      }
      if (idle && !node->idle) node->idle_since = ++clock_;
      node->idle = idle;
    }
  }

  std::vector<int32_t> refs_;
  std::map<ChainKey, Node> chains_;
  int64_t clock_ = 0;
};

struct LiveSequence {
  int ns = 0;
  std::vector<int32_t> tokens;
  std::vector<BlockId> blocks;  // ceil(tokens / B) blocks, the last maybe partial
};

class RandomPrefixCacheTest : public ::testing::Test {
 protected:
  RandomPrefixCacheTest()
      : pool_(testing::make_pool(kPoolBlocks, kRandomTestBlockTokens)),
        index_(std::make_unique<PrefixIndex>(*pool_)),
        model_(kPoolBlocks),
        namespaces_{make_cache_namespace(1, "f16", ""), make_cache_namespace(1, "f16", "tenant"),
                    make_cache_namespace(1, "q8", "")} {
    for (auto& base : base_prompts_) {
      base.resize(24);
      for (int32_t& token : base) token = uniform(0, 50);
    }
  }

  // Inclusive. Plain modulo of the engine's output, which the standard fixes,
  // so the sequence of operations is the same with every standard library.
  int32_t uniform(int32_t lo, int32_t hi) {
    return lo + static_cast<int32_t>(rng_() % static_cast<uint32_t>(hi - lo + 1));
  }

  // Prompts that share prefixes often (a few common starts) and collide on
  // short blocks now and then (a tiny alphabet for the rest).
  std::vector<int32_t> random_prompt() {
    const auto& base = base_prompts_[static_cast<size_t>(uniform(0, 3))];
    std::vector<int32_t> tokens(base.begin(), base.begin() + uniform(0, 24));
    const int32_t n_tail = uniform(tokens.empty() ? 1 : 0, 12);
    for (int32_t i = 0; i < n_tail; ++i) tokens.push_back(uniform(0, 2));
    return tokens;
  }

  void compare_with_model() {
    index_->check_invariants();
    ASSERT_EQ(pool_->n_free(), model_.n_free());
    for (int32_t b = 0; b < kPoolBlocks; ++b) {
      const BlockId block{b};
      ASSERT_EQ(pool_->ref_count(block), model_.refs(block)) << "block " << b;
      ASSERT_EQ(pool_->is_cached(block), model_.is_cached(block)) << "block " << b;
    }
    ASSERT_EQ(index_->stats().cached_blocks, model_.n_cached());
    ASSERT_EQ(index_->n_evictable(), model_.n_idle());
  }

  void release_block(BlockId block) {
    pool_->release(block);
    model_.release(block);
    compare_with_model();
  }

  void release_sequence(LiveSequence& seq) {
    if (uniform(0, 1) == 0) std::reverse(seq.blocks.begin(), seq.blocks.end());
    for (BlockId block : seq.blocks) release_block(block);
    seq.blocks.clear();
  }

  void offer(const LiveSequence& seq) {
    const std::vector<BlockId> full(
        seq.blocks.begin(), seq.blocks.begin() + seq.tokens.size() / kRandomTestBlockTokens);
    index_->insert(namespaces_[static_cast<size_t>(seq.ns)], seq.tokens, full);
    model_.insert(seq.ns, seq.tokens, full);
    compare_with_model();
  }

  void evict(int32_t n_blocks) {
    const int32_t expected = std::min(n_blocks, model_.n_idle());
    ASSERT_EQ(index_->evict(n_blocks), expected);
    ASSERT_EQ(model_.evict(n_blocks), expected);
    evicted_ += expected;
    compare_with_model();
  }

  // Matches the cached prefix (leaving at least one token to compute, as a
  // prefill must), then allocates the rest, evicting exactly the shortfall.
  // Returns false, holding nothing, when the pool cannot make room.
  bool start(LiveSequence& seq) {
    const auto& ns = namespaces_[static_cast<size_t>(seq.ns)];
    const int32_t max_blocks =
        static_cast<int32_t>((seq.tokens.size() - 1) / kRandomTestBlockTokens);
    seq.blocks = index_->match(ns, seq.tokens, max_blocks);
    const std::vector<BlockId> expected = model_.match(seq.ns, seq.tokens, max_blocks);
    EXPECT_EQ(seq.blocks, expected);
    lookups_ += 1;
    lookup_tokens_ += static_cast<int64_t>(seq.tokens.size());
    hits_ += seq.blocks.empty() ? 0 : 1;
    hit_tokens_ += static_cast<int64_t>(seq.blocks.size()) * kRandomTestBlockTokens;
    compare_with_model();

    const size_t needed = (seq.tokens.size() + kRandomTestBlockTokens - 1) / kRandomTestBlockTokens;
    while (seq.blocks.size() < needed) {
      std::optional<BlockId> block = pool_->allocate();
      if (!block) {
        evict(static_cast<int32_t>(needed - seq.blocks.size()));
        block = pool_->allocate();
      }
      if (!block) {
        ++failed_starts_;
        release_sequence(seq);
        return false;
      }
      EXPECT_EQ(model_.refs(*block), 0) << "allocated a block that is in use";
      model_.refs(*block) = 1;
      seq.blocks.push_back(*block);
      compare_with_model();
    }
    return true;
  }

  std::unique_ptr<BlockPool> pool_;
  std::unique_ptr<PrefixIndex> index_;
  ReferenceModel model_;
  std::vector<CacheNamespace> namespaces_;
  std::vector<int32_t> base_prompts_[4];
  std::mt19937 rng_{20261129};
  int64_t lookups_ = 0, hits_ = 0, lookup_tokens_ = 0, hit_tokens_ = 0, evicted_ = 0;
  int32_t failed_starts_ = 0;
};

TEST_F(RandomPrefixCacheTest, MatchesTheReferenceModelStepByStep) {
  std::vector<LiveSequence> live;
  for (int step = 0; step < 4000; ++step) {
    const int32_t op = uniform(0, 99);
    if (op < 30) {
      if (live.size() >= 6) continue;
      LiveSequence seq{uniform(0, 2), random_prompt(), {}};
      if (start(seq)) live.push_back(std::move(seq));
    } else if (op < 55 && !live.empty()) {  // finish: offer the blocks, let go
      const size_t i = static_cast<size_t>(uniform(0, static_cast<int32_t>(live.size()) - 1));
      offer(live[i]);
      release_sequence(live[i]);
      live.erase(live.begin() + static_cast<ptrdiff_t>(i));
    } else if (op < 65 && !live.empty()) {  // a finished prefill offers its blocks early
      offer(live[static_cast<size_t>(uniform(0, static_cast<int32_t>(live.size()) - 1))]);
    } else if (op < 72 && !live.empty()) {  // aborted: let go without offering
      const size_t i = static_cast<size_t>(uniform(0, static_cast<int32_t>(live.size()) - 1));
      release_sequence(live[i]);
      live.erase(live.begin() + static_cast<ptrdiff_t>(i));
    } else if (op < 84) {
      evict(uniform(0, 6));
    } else if (op < 99) {  // a probe: match, then drop the blocks again
      LiveSequence probe{uniform(0, 2), random_prompt(), {}};
      if (!start(probe)) continue;
      release_sequence(probe);
    } else {
      index_->clear();
      model_.clear();
      compare_with_model();
    }
    if (::testing::Test::HasFatalFailure()) return;
  }

  const PrefixCacheStats stats = index_->stats();
  EXPECT_EQ(stats.lookups, lookups_);
  EXPECT_EQ(stats.hits, hits_);
  EXPECT_EQ(stats.misses, lookups_ - hits_);
  EXPECT_EQ(stats.lookup_tokens, lookup_tokens_);
  EXPECT_EQ(stats.hit_tokens, hit_tokens_);
  EXPECT_EQ(stats.evicted_blocks, evicted_);
  // The run exercised what it claims to: reuse, eviction and exhaustion.
  EXPECT_GT(hits_, 200);
  EXPECT_GT(evicted_, 1000);
  EXPECT_GT(failed_starts_, 0);

  for (LiveSequence& seq : live) release_sequence(seq);
  index_->clear();
  model_.clear();
  compare_with_model();
  EXPECT_EQ(pool_->n_free(), kPoolBlocks);
}

}  // namespace
}  // namespace kvforge
