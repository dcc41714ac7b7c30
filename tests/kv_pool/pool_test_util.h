// Helpers shared by the kv_pool tests: pools of a known block count.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <numeric>
#include <vector>

#include "kv/block_pool.h"

namespace kvforge::testing {

// A pool of exactly n_blocks blocks of block_tokens tokens over two small segments.
inline std::unique_ptr<BlockPool> make_pool(int32_t n_blocks, int32_t block_tokens = 4) {
  BlockPoolLayout layout;
  layout.block_tokens = block_tokens;
  layout.segment_bytes = {64, 128};
  const size_t block_bytes = 64 + 128;
  // Just under one more block: the floor must land on n_blocks.
  auto pool = BlockPool::create(layout, block_bytes * static_cast<size_t>(n_blocks + 1) - 1);
  EXPECT_TRUE(pool.ok()) << pool.status().to_string();
  EXPECT_EQ((*pool)->n_blocks(), n_blocks);
  return std::move(pool).value();
}

// tokens first, first + 1, ..., first + n - 1.
inline std::vector<int32_t> iota_tokens(int32_t n, int32_t first) {
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  std::iota(tokens.begin(), tokens.end(), first);
  return tokens;
}

}  // namespace kvforge::testing
