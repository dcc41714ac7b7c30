// Selection policies without a cache: spec parsing and its errors, the
// choice of blocks (plan, top-k, lists) against brute-force references, and
// the key bounds (outward f16 rounding, the SIMD scores) against a double
// reference and the upper-bound property they exist for.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kv/selection/block_choice.h"
#include "kv/selection/key_bounds.h"
#include "kv/selection/kv_selection.h"
#include "util/fp16.h"

namespace kvforge {
namespace {

TEST(SelectionSpec, CanonicalNamesRoundTrip) {
  for (const std::string spec :
       {"quest:tokens=64", "quest:tokens=100:window=0:sinks=0", "quest:tokens=8:reuse=4:sim=0.75",
        " quest:sinks=16:tokens=4096:window=64 "}) {
    auto made = make_kv_selection(spec);
    ASSERT_TRUE(made.ok()) << spec << ": " << made.status().to_string();
    auto again = make_kv_selection((*made)->name());
    ASSERT_TRUE(again.ok()) << (*made)->name();
    EXPECT_EQ((*again)->name(), (*made)->name());
    EXPECT_TRUE((*made)->needs().key_bounds);
  }
  auto made = make_kv_selection("quest:tokens=100:window=0:reuse=3");
  ASSERT_TRUE(made.ok());
  EXPECT_EQ((*made)->name(), "quest:tokens=100:window=0:sinks=4:reuse=3:sim=0.9");
  EXPECT_EQ((*made)->budget().chosen_blocks(16), 7);  // 100 tokens: 7 blocks of 16
  EXPECT_EQ(kv_selection_names(), std::vector<std::string>{"quest"});
}

TEST(SelectionSpec, BadSpecsAreOneLineErrorsNamingTheChoices) {
  const std::pair<std::string, std::string> cases[] = {
      {"topk:tokens=5", "valid selections: quest"},
      {"quest", "tokens=N is required"},
      {"quest:tokens=0", "tokens=0 must be an integer in [1,"},
      {"quest:tokens=12x", "tokens=12x must be an integer"},
      {"quest:tokens=64:window=-1", "window=-1 must be an integer in [0,"},
      {"quest:tokens=64:colour=red",
       "unknown key 'colour' (valid: tokens, window, sinks, reuse, sim)"},
      {"quest:tokens=64:sim=0.5", "sim=X only applies with reuse=R"},
      {"quest:tokens=64:reuse=2:sim=1.5", "sim=1.5 must be a number in [-1, 1]"},
      {"quest:tokens", "'tokens' is not key=value"},
      {"quest:tokens=4:tokens=8", "tokens given twice"},
  };
  for (const auto& [spec, expected] : cases) {
    auto made = make_kv_selection(spec);
    ASSERT_FALSE(made.ok()) << spec;
    EXPECT_EQ(made.status().code(), StatusCode::kInvalidArgument) << spec;
    EXPECT_NE(made.status().message().find(expected), std::string::npos)
        << spec << ": " << made.status().message();
    EXPECT_EQ(made.status().message().find('\n'), std::string::npos);
  }
  auto planned = plan_kv_selection("quest:tokens=0");
  ASSERT_FALSE(planned.ok());
  EXPECT_NE(planned.status().to_string().find("--select"), std::string::npos);
  for (const std::string none : {"", "none", " none "}) {
    auto off = plan_kv_selection(none);
    ASSERT_TRUE(off.ok());
    EXPECT_EQ(*off, nullptr);
  }
}

SelectionBudget budget_of(int32_t tokens, int32_t window, int32_t sinks) {
  SelectionBudget b;
  b.tokens = tokens;
  b.window = window;
  b.sinks = sinks;
  return b;
}

TEST(BlockChoice, PlansCoverSinksWindowAndTheQueryBlock) {
  // 16-token blocks, query at 1000 (block 62).
  BlockSelectionPlan p = plan_block_selection(budget_of(64, 32, 4), 16, 0, 1000);
  EXPECT_EQ(p.first, 0);
  EXPECT_EQ(p.sink_end, 1);
  EXPECT_EQ(p.window_begin, 60);  // positions 969..1000 start in block 60
  EXPECT_EQ(p.last, 62);
  EXPECT_EQ(p.chosen, 4);
  EXPECT_EQ(p.candidates(), 59);
  EXPECT_TRUE(p.selects());
  EXPECT_EQ(p.blocks_read(), 1 + 4 + 3);
  // Pressed up to block 10: the sinks live in retained rows, not blocks.
  p = plan_block_selection(budget_of(64, 32, 4), 16, 10, 1000);
  EXPECT_EQ(p.sink_end, 10);
  EXPECT_EQ(p.blocks_read(), 0 + 4 + 3);
  // No window and no sinks: only the query's own block is forced.
  p = plan_block_selection(budget_of(16, 0, 0), 16, 0, 31);
  EXPECT_EQ(p.sink_end, 0);
  EXPECT_EQ(p.window_begin, 1);
  EXPECT_EQ(p.blocks_read(), 2);
  EXPECT_FALSE(p.selects());  // one candidate, one chosen: everything is read
  // Sinks and window covering everything.
  p = plan_block_selection(budget_of(16, 4096, 4096), 16, 0, 500);
  EXPECT_EQ(p.candidates(), 0);
  EXPECT_FALSE(p.selects());
  // The longest list is bounded by max_blocks_read for every query position.
  for (int32_t window : {0, 1, 15, 16, 17, 40}) {
    const SelectionBudget b = budget_of(50, window, 20);
    for (int32_t pos = 0; pos < 700; ++pos) {
      const BlockSelectionPlan q = plan_block_selection(b, 16, 0, pos);
      if (q.selects()) {
        EXPECT_LE(q.blocks_read(), max_blocks_read(b, 16, 44)) << pos;
      }
    }
  }
}

TEST(BlockChoice, TopBlocksMatchASortByScoreThenAge) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    const auto n = static_cast<int32_t>(1 + rng() % 80);
    const auto k = static_cast<int32_t>(rng() % (n + 1));
    std::vector<float> scores(static_cast<size_t>(n));
    // Few distinct values, so that ties are common.
    for (float& s : scores) s = static_cast<float>(rng() % 7) - 3.0f;
    if (trial % 5 == 0) scores[0] = std::numeric_limits<float>::infinity();
    const int32_t first = static_cast<int32_t>(rng() % 100);
    std::vector<int32_t> order(static_cast<size_t>(n)), chosen(static_cast<size_t>(k));
    top_blocks(scores, first, order, chosen);

    std::vector<int32_t> ranking(static_cast<size_t>(n));
    std::iota(ranking.begin(), ranking.end(), 0);
    std::stable_sort(ranking.begin(), ranking.end(),
                     [&](int32_t a, int32_t b) { return scores[a] > scores[b]; });
    std::vector<int32_t> expected;
    for (int32_t i = 0; i < k; ++i) expected.push_back(first + ranking[static_cast<size_t>(i)]);
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(chosen, expected) << "trial " << trial;
  }
}

TEST(BlockChoice, ListsAreAscendingWithForcedBlocksAroundTheChosen) {
  const BlockSelectionPlan p = plan_block_selection(budget_of(48, 40, 20), 16, 0, 700);
  ASSERT_TRUE(p.selects());
  std::vector<int32_t> list(static_cast<size_t>(p.blocks_read()));
  const int32_t chosen[] = {5, 9, 30};
  std::copy(std::begin(chosen), std::end(chosen), list.begin() + p.chosen_offset());
  complete_block_list(p, list.data());
  const std::vector<int32_t> expected = {0, 1, 5, 9, 30, 41, 42, 43};
  EXPECT_EQ(list, expected);
}

// Outward rounding: the halves hold every value, and are the tightest halves that do.
TEST(KeyBounds, HalvesAreRoundedOutwardAndTight) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  constexpr int32_t kD = 64;
  for (int trial = 0; trial < 500; ++trial) {
    std::vector<float> rows(static_cast<size_t>(5 * kD));
    for (float& x : rows) x = normal(rng) * (trial % 3 == 0 ? 1e-5f : 1.0f);
    std::vector<float> lo(kD, std::numeric_limits<float>::infinity());
    std::vector<float> hi(kD, -std::numeric_limits<float>::infinity());
    fold_key_rows(rows.data(), kD, 5, kD, lo.data(), hi.data());
    std::vector<uint8_t> stored(key_bounds_bytes(kD));
    write_key_bounds(lo.data(), hi.data(), kD, stored.data());
    std::vector<float> lo_back(kD), hi_back(kD);
    read_key_bounds(stored.data(), kD, lo_back.data(), hi_back.data());
    for (int32_t c = 0; c < kD; ++c) {
      for (int32_t r = 0; r < 5; ++r) {
        ASSERT_LE(lo_back[c], rows[static_cast<size_t>(r * kD + c)]);
        ASSERT_GE(hi_back[c], rows[static_cast<size_t>(r * kD + c)]);
      }
      // The next half inward would not hold the extreme any more.
      uint16_t h_lo, h_hi;
      std::memcpy(&h_lo, stored.data() + 2 * c, 2);
      std::memcpy(&h_hi, stored.data() + 2 * (kD + c), 2);
      if (lo_back[c] != lo[c]) {
        const uint16_t inward = (h_lo & 0x8000u) ? h_lo - 1 : h_lo + 1;
        if ((h_lo & 0x7fffu) != 0) {
          EXPECT_GT(fp16_to_fp32(inward), lo[c]);
        }
      }
      if (hi_back[c] != hi[c]) {
        const uint16_t inward = (h_hi & 0x8000u) ? h_hi + 1 : h_hi - 1;
        if ((h_hi & 0x7fffu) != 0) {
          EXPECT_LT(fp16_to_fp32(inward), hi[c]);
        }
      }
    }
  }
  // Beyond the f16 range: infinite bounds, and a score of +inf, never NaN.
  float lo[2] = {-1e6f, 0.5f}, hi[2] = {1e6f, 0.5f};
  std::vector<uint8_t> stored(key_bounds_bytes(2));
  write_key_bounds(lo, hi, 2, stored.data());
  float lo_back[2], hi_back[2];
  read_key_bounds(stored.data(), 2, lo_back, hi_back);
  EXPECT_EQ(lo_back[0], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(hi_back[0], std::numeric_limits<float>::infinity());
  const float q[2] = {0.0f, 1.0f};  // 0 x inf
  const int32_t id = 0;
  float score = 0;
  key_bound_scores(q, 1, 2, stored.data(), stored.size(), std::span<const int32_t>(&id, 1), &score);
  EXPECT_EQ(score, std::numeric_limits<float>::infinity());
}

// The SIMD scores against a double reference, and the bound against the
// best true score of the block's keys.
TEST(KeyBounds, ScoresMatchAReferenceAndBoundEveryKey) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const int32_t d : {8, 40, 64, 128}) {
    for (const int32_t group : {1, 3, 4, 16}) {
      constexpr int32_t kBlocks = 12;
      constexpr int32_t kRows = 16;
      const size_t stride = key_bounds_bytes(d) + 8;  // arena stride larger than the bounds
      std::vector<uint8_t> arena(stride * kBlocks);
      std::vector<std::vector<float>> keys(kBlocks);
      for (int32_t b = 0; b < kBlocks; ++b) {
        keys[b].resize(static_cast<size_t>(kRows * d));
        for (float& x : keys[b]) x = normal(rng);
        std::vector<float> lo(d, std::numeric_limits<float>::infinity());
        std::vector<float> hi(d, -std::numeric_limits<float>::infinity());
        fold_key_rows(keys[b].data(), d, kRows, d, lo.data(), hi.data());
        write_key_bounds(lo.data(), hi.data(), d, arena.data() + b * stride);
      }
      std::vector<float> q(static_cast<size_t>(group * d));
      for (float& x : q) x = normal(rng);
      const std::vector<int32_t> ids = {7, 0, 3, 3, 11, 5};
      std::vector<float> scores(ids.size());
      key_bound_scores(q.data(), group, d, arena.data(), stride, ids, scores.data());
      for (size_t i = 0; i < ids.size(); ++i) {
        std::vector<float> lo(d), hi(d);
        read_key_bounds(arena.data() + ids[i] * stride, d, lo.data(), hi.data());
        double want = -1e300, scale = 0, best_key = -1e300;
        for (int32_t g = 0; g < group; ++g) {
          double s = 0;
          for (int32_t c = 0; c < d; ++c) {
            const double x = q[static_cast<size_t>(g * d + c)];
            s += std::max(x * lo[c], x * hi[c]);
            scale += std::abs(x) * std::max(std::abs(lo[c]), std::abs(hi[c]));
          }
          want = std::max(want, s);
          for (int32_t r = 0; r < kRows; ++r) {
            double dot = 0;
            for (int32_t c = 0; c < d; ++c) {
              dot += double(q[static_cast<size_t>(g * d + c)]) *
                     keys[ids[i]][static_cast<size_t>(r * d + c)];
            }
            best_key = std::max(best_key, dot);
          }
        }
        EXPECT_NEAR(scores[i], want, 1e-6 * scale) << d << "/" << group << "/" << i;
        EXPECT_GE(scores[i], best_key - 1e-6 * scale) << d << "/" << group << "/" << i;
      }
    }
  }
}

}  // namespace
}  // namespace kvforge
