#include "kv/block_hash.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace kvforge {
namespace {

const std::vector<int32_t> kTokens = {1, 2, 3, 4};

TEST(BlockHashTest, EqualInputsGiveEqualHashes) {
  const CacheNamespace ns = make_cache_namespace(42, "f16", "tenant-a");
  EXPECT_EQ(make_cache_namespace(42, "f16", "tenant-a"), ns);
  const BlockHash first = chain_block_hash(kRootChainHash, ns, kTokens);
  EXPECT_EQ(chain_block_hash(kRootChainHash, ns, std::vector<int32_t>(kTokens)), first);
  EXPECT_EQ(chain_block_hash(first, ns, kTokens), chain_block_hash(first, ns, kTokens));
  EXPECT_NE(first, BlockHash{});
}

TEST(BlockHashTest, TokensAndTheirOrderChangeTheHash) {
  const CacheNamespace ns = make_cache_namespace(42, "f16", "");
  const BlockHash base = chain_block_hash(kRootChainHash, ns, kTokens);
  EXPECT_NE(chain_block_hash(kRootChainHash, ns, std::vector<int32_t>{1, 2, 3, 5}), base);
  EXPECT_NE(chain_block_hash(kRootChainHash, ns, std::vector<int32_t>{2, 1, 3, 4}), base);
  EXPECT_NE(chain_block_hash(kRootChainHash, ns, std::vector<int32_t>{1, 2, 3}), base);
  EXPECT_NE(chain_block_hash(kRootChainHash, ns, std::vector<int32_t>{1, 2, 3, 4, 0}), base);
}

TEST(BlockHashTest, TheParentChainChangesTheHash) {
  const CacheNamespace ns = make_cache_namespace(42, "f16", "");
  const BlockHash parent_a = chain_block_hash(kRootChainHash, ns, std::vector<int32_t>{7, 7, 7, 7});
  const BlockHash parent_b = chain_block_hash(kRootChainHash, ns, std::vector<int32_t>{7, 7, 7, 8});
  EXPECT_NE(chain_block_hash(parent_a, ns, kTokens), chain_block_hash(parent_b, ns, kTokens));
  EXPECT_NE(chain_block_hash(parent_a, ns, kTokens), chain_block_hash(kRootChainHash, ns, kTokens));
}

TEST(BlockHashTest, ModelCodecAndSaltEachSeparateNamespaces) {
  const CacheNamespace base = make_cache_namespace(42, "f16", "a");
  const std::vector<CacheNamespace> others = {
      make_cache_namespace(43, "f16", "a"),  // another model
      make_cache_namespace(42, "q8", "a"),   // another codec
      make_cache_namespace(42, "f16", "b"),  // another tenant
      make_cache_namespace(42, "f16", ""),   // no salt
  };
  const BlockHash base_hash = chain_block_hash(kRootChainHash, base, kTokens);
  for (const CacheNamespace& other : others) {
    EXPECT_NE(other, base);
    EXPECT_NE(chain_block_hash(kRootChainHash, other, kTokens), base_hash);
  }
}

TEST(BlockHashTest, CodecAndSaltBoundariesAreNotAmbiguous) {
  EXPECT_NE(make_cache_namespace(1, "ab", "c"), make_cache_namespace(1, "a", "bc"));
  EXPECT_NE(make_cache_namespace(1, "", "x"), make_cache_namespace(1, "x", ""));
}

}  // namespace
}  // namespace kvforge
