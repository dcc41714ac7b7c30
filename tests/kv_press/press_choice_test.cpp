// What each press keeps, on constructed inputs with a known answer.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include <fmt/format.h>
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

TEST(PressChoiceTest, TovaKeepsTheRowsTheLastQueryAttendsToAveragedOverHeads) {
  // Head 0's query attends to row 7, head 1's to row 13; both a little to
  // row 2. Averaged over heads, rows 7 and 13 lead, then row 2: every head
  // keeps those three, though head 0 alone would not keep row 13.
  Layer l(2, 20, 3);
  l.attention[0][7] = 5.0f;
  l.attention[1][13] = 5.0f;
  l.attention[0][2] = 1.0f;
  l.attention[1][2] = 1.5f;
  const auto choices = l.choose(*press("tova:ratio=0.5"));
  EXPECT_EQ(choices[0].keep, (std::vector<int32_t>{2, 7, 13}));
  EXPECT_EQ(choices[1].keep, (std::vector<int32_t>{2, 7, 13}));
  // A token receiving all of the last query's attention survives any budget.
  Layer one(3, 30, 1);
  for (auto& a : one.attention) std::fill(a.begin(), a.end(), 0.0f);
  one.attention[1][21] = 1.0f;
  for (const HeadChoice& c : one.choose(*press("tova:ratio=0.1"))) {
    EXPECT_EQ(c.keep, std::vector<int32_t>{21});
  }
  // The prompt's last query; decode queries (only the newest) when it runs
  // again during decode.
  EXPECT_EQ(press("tova:ratio=0.5")->needs().prompt_queries, 1);
  EXPECT_FALSE(press("tova:ratio=0.5")->needs().decode_queries);
  const PressNeeds decode = press("tova:tokens=64:max=64")->needs();
  EXPECT_TRUE(decode.decode_queries);
  EXPECT_TRUE(decode.newest_query_only);
}

// PyramidKV's schedule, computed here from the authors' formula: the top
// layer keeps A / beta, the bottom 2A - A / beta (clamped to the candidates,
// the top raised to keep the mean), linear in between.
std::vector<double> pyramid_schedule(double average, double candidates, int32_t layers,
                                     double beta) {
  double top = average / beta;
  double bottom = 2 * average - top;
  if (bottom > candidates) {
    bottom = candidates;
    top = 2 * average - candidates;
  }
  std::vector<double> rows;
  for (int32_t l = 0; l < layers; ++l) rows.push_back(bottom - l * (bottom - top) / (layers - 1));
  return rows;
}

TEST(PressChoiceTest, PyramidKvLayerBudgetsFallLinearlyAndAverageToTheBudget) {
  for (const auto& [average, beta] :
       {std::pair{20, 20.0}, std::pair{60, 20.0}, std::pair{33, 4.0}, std::pair{7, 1.0}}) {
    constexpr int32_t kLayers = 5;
    constexpr int32_t kCandidates = 100;
    const std::vector<double> want = pyramid_schedule(average, kCandidates, kLayers, beta);
    int32_t total = 0;
    std::vector<int32_t> previous;
    for (int32_t layer = 0; layer < kLayers; ++layer) {
      Layer l(2, kCandidates, average);
      l.layer.layer = layer;
      l.layer.n_layers = kLayers;
      for (int32_t r = 0; r < kCandidates; ++r) {
        l.attention[0][r] = static_cast<float>((r * 37) % 101);  // a fixed ranking
        l.attention[1][r] = static_cast<float>((r * 53) % 101);
      }
      const auto choices =
          l.choose(*press(fmt::format("pyramidkv:ratio=0.5:kernel=1:beta={}", beta)));
      const auto kept = static_cast<int32_t>(choices[0].keep.size());
      EXPECT_EQ(choices[1].keep.size(), choices[0].keep.size());
      EXPECT_LE(std::abs(kept - want[static_cast<size_t>(layer)]), 0.5)
          << "average " << average << " beta " << beta << " layer " << layer;
      // Higher layers keep subsets of what lower layers keep (same scores).
      if (!previous.empty()) {
        EXPECT_TRUE(std::includes(previous.begin(), previous.end(), choices[0].keep.begin(),
                                  choices[0].keep.end()));
      }
      previous = choices[0].keep;
      total += kept;
    }
    EXPECT_EQ(total, kLayers * average) << "average " << average << " beta " << beta;
  }
  // At or above the candidates every layer keeps everything.
  Layer l(1, 10, 12);
  EXPECT_EQ(l.choose(*press("pyramidkv:ratio=0.5"))[0].keep.size(), 10u);
}

TEST(PressChoiceTest, ExpectedAttentionWeighsTheQueriesStatisticsAndTheValueNorm) {
  // One KV head, two query heads, four captured queries.
  Layer l(1, 2, 1);
  const int32_t n_heads = l.layer.n_heads;
  std::vector<float> queries(static_cast<size_t>(4 * n_heads * kHeadDim), 0.0f);
  for (int32_t t = 0; t < 4; ++t) {
    for (int32_t h = 0; h < n_heads; ++h)
      queries[static_cast<size_t>((t * n_heads + h) * kHeadDim)] = 2.0f;
  }
  l.layer.queries = queries;
  // mu = (2, 0, 0, 0), var = 0, scale 1/sqrt(4): row 0's key gives a logit
  // of 1, row 1's of 0, so row 0 is e times as expected as row 1. Times the
  // value norms: row 0 with |v| = 1 beats |v| = 2.6 (e > 2.6) and loses to
  // |v| = 2.8.
  l.keys[0] = {1, 0, 0, 0, 0, 0, 0, 0};
  l.values[0] = {1, 0, 0, 0, 2.6f, 0, 0, 0};
  EXPECT_EQ(l.choose(*press("expected:ratio=0.5"))[0].keep, std::vector<int32_t>{0});
  l.values[0][4] = 2.8f;
  EXPECT_EQ(l.choose(*press("expected:ratio=0.5"))[0].keep, std::vector<int32_t>{1});
  // Without the value norm the logits alone decide.
  EXPECT_EQ(l.choose(*press("expected:ratio=0.5:vnorm=0"))[0].keep, std::vector<int32_t>{0});

  // The variance term: queries (0, +-2, 0, 0) have mean 0 and variance 4 in
  // channel 1, so a key large in channel 1 is expected to get attention
  // exp(4 * 3^2 / (2 * 4)) = e^4.5 while (0.5, ...) gets e^(4 * 0.25 / 8).
  Layer v(1, 6, 1);
  std::vector<float> spread(static_cast<size_t>(4 * n_heads * kHeadDim), 0.0f);
  for (int32_t t = 0; t < 4; ++t) {
    for (int32_t h = 0; h < n_heads; ++h) {
      spread[static_cast<size_t>((t * n_heads + h) * kHeadDim + 1)] = t % 2 == 0 ? 2.0f : -2.0f;
    }
  }
  v.layer.queries = spread;
  for (int32_t e = 0; e < kHeadDim; ++e) v.keys[0][static_cast<size_t>(4 * kHeadDim + e)] = 0.0f;
  v.keys[0][4 * kHeadDim + 1] = 3.0f;
  EXPECT_EQ(v.choose(*press("expected:ratio=0.5"))[0].keep, std::vector<int32_t>{4});
  // Without the covariance every logit is 0: the tie goes to the oldest row.
  EXPECT_EQ(v.choose(*press("expected:ratio=0.5:cov=0"))[0].keep, std::vector<int32_t>{0});
  // The mean and the variance terms weighed: queries (2, +-2, 0, 0) give
  // key (1.2, 0, 0, 0) the logit 2 * 1.2 / 2 = 1.2 and key (0, 1.5, 0, 0)
  // the logit 4 * 1.5^2 / 8 = 1.125 (half the variance term, as a Gaussian
  // moment gives): the first wins.
  Layer both(1, 2, 1);
  std::vector<float> mixed = spread;
  for (int32_t t = 0; t < 4; ++t) {
    for (int32_t h = 0; h < n_heads; ++h)
      mixed[static_cast<size_t>((t * n_heads + h) * kHeadDim)] = 2.0f;
  }
  both.layer.queries = mixed;
  both.keys[0] = {1.2f, 0, 0, 0, 0, 1.5f, 0, 0};
  EXPECT_EQ(both.choose(*press("expected:ratio=0.5:vnorm=0"))[0].keep, std::vector<int32_t>{0});
  both.keys[0][5] = 1.6f;  // 4 * 1.6^2 / 8 = 1.28
  EXPECT_EQ(both.choose(*press("expected:ratio=0.5:vnorm=0"))[0].keep, std::vector<int32_t>{1});
  // No captured queries: the value norm alone.
  v.layer.queries = {};
  v.values[0][3 * kHeadDim] = 5.0f;
  EXPECT_EQ(v.choose(*press("expected:ratio=0.5"))[0].keep, std::vector<int32_t>{3});
}

TEST(PressChoiceTest, MergeGroupsNearDuplicateKeysWithTheKeptRowsAndDropsTheRest) {
  // h2o keeps rows 1, 2, 4 and 6 (the attended ones); the others are
  // merged into their most similar kept row when the cosine similarity
  // reaches sim, else dropped.
  Layer l(1, 8, 4);
  for (int32_t r : {1, 2, 4, 6}) l.attention[0][static_cast<size_t>(r)] = 1.0f;
  l.keys[0] = {
      1, 0.1f, 0,    0,  // 0: cos 0.995 with row 1
      1, 0,    0,    0,  // 1 (kept)
      0, 0,    0,    1,  // 2 (kept)
      0, 0.1f, 1,    0,  // 3: cos 0.995 with row 6, in another chunk of 4
      0, 1,    0,    0,  // 4 (kept)
      0, 2,    0.1f, 0,  // 5: cos 0.99875 with row 4 (its norm does not matter)
      0, 0,    1,    0,  // 6 (kept)
      0, 0.2f, 1,    0,  // 7: cos 0.981 with row 6, 0.196 with row 4
  };
  using Groups = std::vector<std::vector<int32_t>>;
  const auto merged = l.choose(*press("merge:ratio=0.5:scorer=h2o"));
  EXPECT_EQ(merged[0].keep, std::vector<int32_t>{2});
  EXPECT_EQ(merged[0].merged, (Groups{{0, 1}, {4, 5}, {3, 6, 7}}));
  EXPECT_TRUE(merged[0].demote.empty());
  // Only within chunks: row 3 is alone with rows 1 and 2, unlike it.
  const auto chunked = l.choose(*press("merge:ratio=0.5:scorer=h2o:chunk=4"));
  EXPECT_EQ(chunked[0].merged, (Groups{{0, 1}, {4, 5}, {6, 7}}));
  // A higher threshold merges only the nearest pair.
  const auto strict = l.choose(*press("merge:ratio=0.5:scorer=h2o:sim=0.997"));
  EXPECT_EQ(strict[0].keep, (std::vector<int32_t>{1, 2, 6}));
  EXPECT_EQ(strict[0].merged, (Groups{{4, 5}}));
  // Distinct keys are never merged: orthogonal rows stay apart at sim=0.5.
  Layer distinct(1, 4, 2);
  distinct.attention[0][0] = distinct.attention[0][1] = 1.0f;
  distinct.keys[0] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
  const auto apart = distinct.choose(*press("merge:ratio=0.5:scorer=h2o:sim=0.5"));
  EXPECT_EQ(apart[0].keep, (std::vector<int32_t>{0, 1}));
  EXPECT_TRUE(apart[0].merged.empty());
}

TEST(PressChoiceTest, MikvDemotesWhatItsScorerWouldEvict) {
  Layer l(2, 10, 3);
  l.attention[0][2] = l.attention[0][5] = l.attention[0][9] = 1.0f;
  l.attention[1][0] = l.attention[1][1] = l.attention[1][8] = 1.0f;
  const auto mikv = press("mikv:ratio=0.5");
  EXPECT_EQ(mikv->demotion_codec(), "int4");
  EXPECT_EQ(press("mikv:ratio=0.5:low=int8")->demotion_codec(), "int8");
  const auto choices = l.choose(*mikv);
  EXPECT_EQ(choices[0].keep, (std::vector<int32_t>{2, 5, 9}));
  EXPECT_EQ(choices[0].demote, (std::vector<int32_t>{0, 1, 3, 4, 6, 7, 8}));
  EXPECT_EQ(choices[1].keep, (std::vector<int32_t>{0, 1, 8}));
  EXPECT_EQ(choices[1].demote, (std::vector<int32_t>{2, 3, 4, 5, 6, 7, 9}));
  // Any scorer: streaming keeps the newest.
  const auto streaming = l.choose(*press("mikv:ratio=0.5:scorer=streaming"));
  EXPECT_EQ(streaming[0].keep, (std::vector<int32_t>{7, 8, 9}));
  EXPECT_EQ(streaming[0].demote.size(), 7u);
}

TEST(PressChoiceTest, NewPressesTakeHeadAdaptiveBudgetsOrRefuseThem) {
  // Head 0 scores above head 1 everywhere: with adaptive=1 it gets more rows.
  Layer l(2, 10, 4);
  for (int32_t r = 0; r < 10; ++r) {
    l.attention[0][r] = 1.0f + static_cast<float>(r);
    l.attention[1][r] = 0.1f * static_cast<float>(r);
    l.values[0][static_cast<size_t>(r * kHeadDim)] = 5.0f;  // expected: larger value norms
  }
  for (const char* spec :
       {"pyramidkv:ratio=0.5:adaptive=1:floor=0.5:kernel=1",
        "expected:ratio=0.5:adaptive=1:floor=0.5", "mikv:ratio=0.5:adaptive=1:floor=0.5",
        "merge:ratio=0.5:adaptive=1:floor=0.5:scorer=h2o"}) {
    l.layer.n_layers = 1;  // pyramidkv: one layer keeps the mean
    const auto choices = l.choose(*press(spec));
    const size_t rows0 = choices[0].keep.size() + choices[0].merged.size();
    const size_t rows1 = choices[1].keep.size() + choices[1].merged.size();
    EXPECT_EQ(rows0 + rows1, 8u) << spec;
    EXPECT_GT(rows0, rows1) << spec;
  }
  for (const char* spec : {"tova:ratio=0.5:adaptive=1", "merge:ratio=0.5:adaptive=1:scorer=tova",
                           "mikv:ratio=0.5:adaptive=1:scorer=streaming"}) {
    const auto made = make_kv_press(spec);
    ASSERT_FALSE(made.ok()) << spec;
    EXPECT_NE(made.status().message().find("adaptive=1"), std::string::npos)
        << made.status().message();
  }
}

}  // namespace
}  // namespace kvforge
