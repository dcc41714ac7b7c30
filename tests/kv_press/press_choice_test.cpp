// What each press keeps, on constructed inputs with a known answer.
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kv/press/kv_press.h"

namespace kvforge {
namespace {

constexpr int32_t kHeadDim = 4;

// A layer of n_heads KV heads with n candidates each at positions 10, 11, ...
struct Layer {
  std::vector<std::vector<int32_t>> positions;
  std::vector<std::vector<float>> attention, counts, keys, values;
  std::vector<PressCandidates> heads;
  PressLayer layer;

  Layer(int32_t n_heads, int32_t n, int32_t rows) {
    positions.resize(n_heads);
    attention.resize(n_heads);
    counts.resize(n_heads);
    keys.resize(n_heads);
    values.resize(n_heads);
    for (int32_t h = 0; h < n_heads; ++h) {
      for (int32_t r = 0; r < n; ++r) positions[h].push_back(10 + r);
      attention[h].assign(n, 0.01f);
      counts[h].assign(n, 1.0f);
      keys[h].assign(static_cast<size_t>(n) * kHeadDim, 0.5f);
      values[h].assign(static_cast<size_t>(n) * kHeadDim, 0.5f);
    }
    layer.head_dim = kHeadDim;
    layer.n_heads = n_heads * 2;
    layer.n_kv_heads = n_heads;
    layer.n_layers = 4;
    layer.n_positions = 10 + n + 40;
    layer.captured_first = 0;
    layer.captured_end = layer.n_positions;
    layer.rows = rows;
  }
  std::vector<HeadChoice> choose(const KvPress& press) {
    heads.clear();
    for (size_t h = 0; h < positions.size(); ++h) {
      heads.push_back({positions[h], attention[h], counts[h], keys[h], values[h]});
    }
    layer.heads = heads;
    std::vector<HeadChoice> choices(positions.size());
    press.choose(layer, choices);
    return choices;
  }
};

std::unique_ptr<KvPress> press(std::string_view spec) {
  auto made = make_kv_press(spec);
  EXPECT_TRUE(made.ok()) << made.status().to_string();
  return std::move(made).value();
}

bool contains(const std::vector<int32_t>& v, int32_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

TEST(PressChoiceTest, ARowReceivingAllAttentionSurvivesAttentionPresses) {
  for (const char* spec : {"snapkv:ratio=0.5", "h2o:ratio=0.5", "h2o:ratio=0.5:norm=1",
                           "snapkv:ratio=0.5:pool=max", "snapkv:ratio=0.5:adaptive=1"}) {
    // SnapKV's pooling spreads a hit over its kernel's 5 rows: a budget of
    // 5 keeps the hit whatever the rounding between the pooled neighbours.
    Layer l(2, 20, 5);
    l.attention[0][7] = 5.0f;
    l.attention[1][13] = 5.0f;
    const auto choices = l.choose(*press(spec));
    EXPECT_TRUE(contains(choices[0].keep, 7)) << spec;
    EXPECT_TRUE(contains(choices[1].keep, 13)) << spec;
    EXPECT_EQ(choices[0].keep.size(), 5u) << spec;
  }
}

TEST(PressChoiceTest, SnapKvPoolingKeepsTheNeighboursOfAHit) {
  Layer l(1, 20, 3);
  l.attention[0][9] = 1.0f;
  const auto choices = l.choose(*press("snapkv:ratio=0.5:kernel=3"));
  EXPECT_EQ(choices[0].keep, (std::vector<int32_t>{8, 9, 10}));
  // Without pooling (kernel 1) a second, weaker hit wins over the neighbours.
  l.attention[0][2] = 0.5f;
  const auto unpooled = l.choose(*press("snapkv:ratio=0.5:kernel=1"));
  EXPECT_EQ(unpooled[0].keep, (std::vector<int32_t>{0, 2, 9}));  // row 0: the oldest of the ties
}

TEST(PressChoiceTest, H2oNormalizationRemovesTheBiasTowardOldRows) {
  // Every query gives each row it can see the same attention: older rows have
  // larger sums. Normalized by the queries that could see them, all rows are
  // equal and ties keep the oldest; unnormalized, the oldest win anyway. Make
  // the newest row slightly more attended per query: only norm=1 sees it.
  Layer l(1, 10, 1);
  l.layer.captured_first = 0;
  l.layer.captured_end = 30;
  for (int32_t r = 0; r < 10; ++r) l.attention[0][r] = static_cast<float>(30 - (10 + r)) * 0.1f;
  l.attention[0][9] = static_cast<float>(30 - 19) * 0.11f;
  EXPECT_EQ(l.choose(*press("h2o:ratio=0.5"))[0].keep, std::vector<int32_t>{0});
  EXPECT_EQ(l.choose(*press("h2o:ratio=0.5:norm=1"))[0].keep, std::vector<int32_t>{9});
}

TEST(PressChoiceTest, KnormDropsTheLargestNormKey) {
  Layer l(2, 6, 5);
  for (float& x : std::span(l.keys[0]).subspan(3 * kHeadDim, kHeadDim)) x = 3.0f;
  for (float& x : std::span(l.keys[1]).subspan(0, kHeadDim)) x = -3.0f;
  const auto choices = l.choose(*press("knorm:ratio=0.5"));
  EXPECT_EQ(choices[0].keep, (std::vector<int32_t>{0, 1, 2, 4, 5}));
  EXPECT_EQ(choices[1].keep, (std::vector<int32_t>{1, 2, 3, 4, 5}));
}

TEST(PressChoiceTest, StreamingKeepsTheNewestRows) {
  Layer l(2, 12, 4);
  l.attention[0][0] = 9.0f;  // attention does not matter
  for (const HeadChoice& c : l.choose(*press("streaming:tokens=40"))) {
    EXPECT_EQ(c.keep, (std::vector<int32_t>{8, 9, 10, 11}));
  }
}

TEST(PressChoiceTest, TiesGoToTheOlderRow) {
  Layer l(1, 8, 3);  // every score equal
  EXPECT_EQ(l.choose(*press("h2o:ratio=0.5"))[0].keep, (std::vector<int32_t>{0, 1, 2}));
  // NaN ranks lowest, never above a number.
  l.attention[0][0] = std::nanf("");
  EXPECT_EQ(l.choose(*press("h2o:ratio=0.5"))[0].keep, (std::vector<int32_t>{1, 2, 3}));
}

TEST(PressChoiceTest, RandomIsSeededAndKeepsTheBudget) {
  Layer l(2, 50, 10);
  const auto a = l.choose(*press("random:ratio=0.5:seed=1"));
  const auto b = l.choose(*press("random:ratio=0.5:seed=1"));
  const auto c = l.choose(*press("random:ratio=0.5:seed=2"));
  EXPECT_EQ(a[0].keep, b[0].keep);
  EXPECT_NE(a[0].keep, c[0].keep);
  EXPECT_NE(a[0].keep, a[1].keep);  // heads draw differently
  EXPECT_EQ(a[0].keep.size(), 10u);
  EXPECT_TRUE(std::is_sorted(a[0].keep.begin(), a[0].keep.end()));
}

TEST(PressChoiceTest, AdaptiveBudgetsGoWhereTheScoresAreWithAFloorPerHead) {
  Layer l(2, 10, 4);  // 8 rows for the layer
  for (int32_t r = 0; r < 10; ++r) {
    l.attention[0][r] = 1.0f + static_cast<float>(r);  // head 0 scores above head 1 everywhere
    l.attention[1][r] = 0.1f * static_cast<float>(r);
  }
  const auto adaptive = l.choose(*press("h2o:ratio=0.5:adaptive=1:floor=0.5"));
  // Floor: 2 rows each (their best), then the 4 best remaining all from head 0.
  EXPECT_EQ(adaptive[1].keep, (std::vector<int32_t>{8, 9}));
  EXPECT_EQ(adaptive[0].keep, (std::vector<int32_t>{4, 5, 6, 7, 8, 9}));
  const auto even = l.choose(*press("h2o:ratio=0.5"));
  EXPECT_EQ(even[0].keep.size(), 4u);
  EXPECT_EQ(even[1].keep.size(), 4u);
}

}  // namespace
}  // namespace kvforge
