// A merged row in the attention kernel: a retained row with score bias
// log(c) attends exactly as c identical rows do (the cache stores a merge
// press's groups that way, paged_kv_cache_press.cpp). Both layouts run
// through paged_attention; outputs and captured probabilities must agree.
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kv/kv_codec.h"
#include "kv/paged_attention.h"
#include "util/thread_pool.h"

namespace kvforge {
namespace {

constexpr int32_t kMergeD = 32;
constexpr int32_t kMergeB = 16;
constexpr int32_t kMergeKvHeads = 2;
constexpr int32_t kMergeGroup = 2;
constexpr int32_t kMergeHeads = kMergeKvHeads * kMergeGroup;
constexpr int32_t kMergeMaxRows = 64;

// Retained pages of f32 rows (at most one page per head) plus a block part
// of one block, attended by one query at the block's last position.
struct MergeRun {
  std::vector<float> out;
  std::vector<float> probabilities;  // [kv head][row], span order
};

MergeRun run_attention(const std::vector<std::vector<float>>& page_keys,
                       const std::vector<std::vector<float>>& page_values,
                       const std::vector<std::vector<float>>* bias,
                       const std::vector<float>& block_keys, const std::vector<float>& block_values,
                       const std::vector<float>& q) {
  auto made = make_kv_codec("f32", KvSide::kKey, KvCodecParams{kMergeB, kMergeD});
  auto made_v = make_kv_codec("f32", KvSide::kValue, KvCodecParams{kMergeB, kMergeD});
  KVF_CHECK(made.ok() && made_v.ok());
  const KvCodec& kc = **made;
  const KvCodec& vc = **made_v;
  // Pages: one tile per head.
  std::vector<std::vector<uint8_t>> key_tiles, value_tiles;
  std::vector<const uint8_t*> key_ptrs, value_ptrs;
  std::vector<const uint8_t*const*> key_tables, value_tables;
  std::vector<int32_t> rows;
  std::vector<const float*> bias_ptrs;
  for (int32_t h = 0; h < kMergeKvHeads; ++h) {
    const auto n = static_cast<int32_t>(page_keys[h].size() / kMergeD);
    key_tiles.emplace_back(kc.tile_bytes());
    value_tiles.emplace_back(vc.tile_bytes());
    kc.encode(page_keys[h].data(), kMergeD, 0, n, key_tiles.back().data());
    vc.encode(page_values[h].data(), kMergeD, 0, n, value_tiles.back().data());
    rows.push_back(n);
    if (bias != nullptr) bias_ptrs.push_back((*bias)[h].data());
  }
  for (int32_t h = 0; h < kMergeKvHeads; ++h) {
    key_ptrs.push_back(key_tiles[h].data());
    value_ptrs.push_back(value_tiles[h].data());
  }
  for (int32_t h = 0; h < kMergeKvHeads; ++h) {
    key_tables.push_back(&key_ptrs[h]);
    value_tables.push_back(&value_ptrs[h]);
  }
  PagedPages pages;
  pages.keys = PagedSide{&kc, nullptr, key_tables.data(), kc.tile_bytes(), false, 0, nullptr};
  pages.values = PagedSide{&vc, nullptr, value_tables.data(), vc.tile_bytes(), false, 0, nullptr};
  pages.head_rows = rows.data();
  pages.head_bias = bias != nullptr ? bias_ptrs.data() : nullptr;
  // The block part: block id 0 in per-head arenas.
  std::vector<std::vector<uint8_t>> key_arena, value_arena;
  std::vector<const uint8_t*> key_heads, value_heads;
  for (int32_t h = 0; h < kMergeKvHeads; ++h) {
    key_arena.emplace_back(kc.tile_bytes());
    value_arena.emplace_back(vc.tile_bytes());
    kc.encode(block_keys.data() + h * kMergeB * kMergeD, kMergeD, 0, kMergeB,
              key_arena.back().data());
    vc.encode(block_values.data() + h * kMergeB * kMergeD, kMergeD, 0, kMergeB,
              value_arena.back().data());
  }
  for (int32_t h = 0; h < kMergeKvHeads; ++h) {
    key_heads.push_back(key_arena[h].data());
    value_heads.push_back(value_arena[h].data());
  }
  const std::vector<int32_t> ids = {0};
  const std::vector<PagedPages> spans = {pages};

  MergeRun run;
  run.out.assign(q.size(), 0.0f);
  PagedAttentionArgs a;
  a.q = q.data();
  a.out = run.out.data();
  a.n_tokens = 1;
  a.first_pos = kMergeB - 1;
  a.n_heads = kMergeHeads;
  a.n_kv_heads = kMergeKvHeads;
  a.head_dim = kMergeD;
  a.scale = 1.0f / std::sqrt(static_cast<float>(kMergeD));
  a.block_tokens = kMergeB;
  a.block_ids = ids;
  a.keys = PagedSide{&kc, key_heads.data(), nullptr, kc.tile_bytes(), false, 0, nullptr};
  a.values = PagedSide{&vc, value_heads.data(), nullptr, vc.tile_bytes(), false, 0, nullptr};
  a.pages = spans;
  ThreadPool pool(2);
  std::vector<std::vector<float>> sums(2, std::vector<float>(kMergeKvHeads * kMergeMaxRows, 0.0f));
  std::vector<std::vector<float>> scratch(2, std::vector<float>(kPagedMaxGroup * kMergeMaxRows));
  std::vector<float*> sum_ptrs = {sums[0].data(), sums[1].data()};
  std::vector<float*> scratch_ptrs = {scratch[0].data(), scratch[1].data()};
  ScoreCapture capture;
  capture.first_pos = 0;
  capture.end_pos = kMergeB;
  capture.max_rows = kMergeMaxRows;
  capture.thread_sums = sum_ptrs.data();
  capture.row_scratch = scratch_ptrs.data();
  a.capture = &capture;
  paged_attention(a, pool);
  run.probabilities.resize(sums[0].size());
  for (size_t i = 0; i < sums[0].size(); ++i) run.probabilities[i] = sums[0][i] + sums[1][i];
  return run;
}

TEST(PressMergeAttentionTest, ARowWithBiasLogCountAttendsAsThatManyIdenticalRows) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto random_rows = [&](int32_t n) {
    std::vector<float> rows(static_cast<size_t>(n) * kMergeD);
    for (float& x : rows) x = normal(rng);
    return rows;
  };
  constexpr int32_t kDistinct = 5;  // rows 0..4 distinct; row 2 stands for 3 tokens
  constexpr float kCount = 3.0f;
  std::vector<std::vector<float>> keys, values, dup_keys, dup_values, bias;
  for (int32_t h = 0; h < kMergeKvHeads; ++h) {
    keys.push_back(random_rows(kDistinct));
    values.push_back(random_rows(kDistinct));
    // The same rows with row 2 repeated twice more at the end.
    dup_keys.push_back(keys[h]);
    dup_values.push_back(values[h]);
    for (int32_t copy = 1; copy < static_cast<int32_t>(kCount); ++copy) {
      dup_keys[h].insert(dup_keys[h].end(), keys[h].begin() + 2 * kMergeD,
                         keys[h].begin() + 3 * kMergeD);
      dup_values[h].insert(dup_values[h].end(), values[h].begin() + 2 * kMergeD,
                           values[h].begin() + 3 * kMergeD);
    }
    bias.emplace_back(kDistinct, 0.0f);
    bias[h][2] = std::log(kCount);
  }
  const std::vector<float> block_keys = random_rows(kMergeKvHeads * kMergeB);
  const std::vector<float> block_values = random_rows(kMergeKvHeads * kMergeB);
  // Queries leaning toward row 2's key, so that its weight matters.
  std::vector<float> q = random_rows(kMergeHeads);
  for (int32_t head = 0; head < kMergeHeads; ++head) {
    const int32_t h = head / kMergeGroup;
    for (int32_t e = 0; e < kMergeD; ++e) q[head * kMergeD + e] += keys[h][2 * kMergeD + e];
  }

  const MergeRun merged = run_attention(keys, values, &bias, block_keys, block_values, q);
  const MergeRun copies = run_attention(dup_keys, dup_values, nullptr, block_keys, block_values, q);
  const MergeRun single = run_attention(keys, values, nullptr, block_keys, block_values, q);
  double moved = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    EXPECT_NEAR(merged.out[i], copies.out[i], 1e-5) << i;
    moved = std::max(moved, std::abs(double(merged.out[i]) - single.out[i]));
  }
  EXPECT_GT(moved, 1e-2);  // the bias matters: one unbiased row attends differently

  // Captured probabilities, span order: the merged row has what its copies
  // had together; every other row the same.
  for (int32_t h = 0; h < kMergeKvHeads; ++h) {
    const float* m = merged.probabilities.data() + h * kMergeMaxRows;
    const float* c = copies.probabilities.data() + h * kMergeMaxRows;
    const int32_t extra = static_cast<int32_t>(kCount) - 1;
    EXPECT_NEAR(m[2], c[2] + c[kDistinct] + (extra > 1 ? c[kDistinct + 1] : 0.0f), 1e-6);
    for (int32_t r : {0, 1, 3, 4}) EXPECT_NEAR(m[r], c[r], 1e-6) << h << "/" << r;
    for (int32_t r = 0; r < kMergeB; ++r) {
      EXPECT_NEAR(m[kDistinct + r], c[kDistinct + extra + r], 1e-6) << h << "/block " << r;
    }
  }
}

}  // namespace
}  // namespace kvforge
