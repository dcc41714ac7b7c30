// The attention kernel over several spans (docs/kv-compression.md): pages of
// retained rows with their own codec and per-row bias, a second pages span in
// another codec, the block part starting after pressed blocks, per-head block
// selection, and the attention probabilities the kernel hands back. The
// expectation is computed independently: every row a query should see is
// encoded and decoded by a fresh codec instance, and softmax attention over
// all of them is taken in double.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kv/hadamard.h"
#include "kv/kv_codec.h"
#include "kv/paged_attention.h"
#include "util/thread_pool.h"

namespace kvforge {
namespace {

constexpr int32_t kD = 64;
constexpr int32_t kB = 16;
constexpr int32_t kKvHeads = 2;
constexpr int32_t kGroup = 4;
constexpr int32_t kHeads = kKvHeads * kGroup;
constexpr float kScale = 0.125f;

std::unique_ptr<KvCodec> codec(const std::string& spec, KvSide side) {
  auto made = make_kv_codec(spec, side, KvCodecParams{kB, kD});
  EXPECT_TRUE(made.ok()) << made.status().to_string();
  return std::move(made).value();
}

// Encodes n rows (d floats each) into a tile; a codec that only encodes whole
// tiles gets the last row repeated, which leaves its grids unchanged.
void encode_tile(const KvCodec& c, const float* rows, int32_t n, uint8_t* tile) {
  std::vector<float> padded(static_cast<size_t>(kB) * kD);
  std::copy_n(rows, static_cast<size_t>(n) * kD, padded.begin());
  for (int32_t r = n; r < kB; ++r) {
    std::copy_n(rows + static_cast<size_t>(n - 1) * kD, kD, padded.begin() + r * kD);
  }
  c.encode(padded.data(), kD, 0, c.token_granular() ? n : kB, tile);
}

// What the kernel reads back for a row: decoded and rotated back.
std::vector<float> read_back(const KvCodec& c, const uint8_t* tile, int32_t n) {
  std::vector<float> rows(static_cast<size_t>(n) * kD);
  c.decode(tile, n, rows.data());
  if (c.rotated()) {
    for (int32_t r = 0; r < n; ++r) hadamard_transform(rows.data() + r * kD, kD);
  }
  return rows;
}

std::vector<float> random_rows(std::mt19937& rng, int32_t n) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> rows(static_cast<size_t>(n) * kD);
  for (float& x : rows) x = normal(rng);
  return rows;
}

// One span's rows for one KV head as the reference sees them.
struct HeadRows {
  std::vector<float> keys;    // [n][kD], as read back
  std::vector<float> values;  // [n][kD]
  std::vector<float> bias;    // [n]
};

// Pages of one span: tiles per head, and their read-back rows.
struct PagesSpan {
  std::unique_ptr<KvCodec> key_codec, value_codec;
  std::vector<std::vector<std::vector<uint8_t>>> key_tiles, value_tiles;  // [head][page]
  std::vector<std::vector<const uint8_t*>> key_ptrs, value_ptrs;
  std::vector<const uint8_t*const*> key_tables, value_tables;
  std::vector<int32_t> rows;
  std::vector<std::vector<float>> bias;
  std::vector<const float*> bias_ptrs;
  std::vector<HeadRows> expected;
  PagedPages pages;

  PagesSpan(std::mt19937& rng, const std::string& k, const std::string& v,
            std::vector<int32_t> head_rows, bool with_bias)
      : key_codec(codec(k, KvSide::kKey)),
        value_codec(codec(v, KvSide::kValue)),
        rows(std::move(head_rows)) {
    key_tiles.resize(kKvHeads);
    value_tiles.resize(kKvHeads);
    key_ptrs.resize(kKvHeads);
    value_ptrs.resize(kKvHeads);
    bias.resize(kKvHeads);
    expected.resize(kKvHeads);
    std::uniform_real_distribution<float> log_count(0.0f, 2.0f);
    for (int32_t h = 0; h < kKvHeads; ++h) {
      const int32_t n = rows[static_cast<size_t>(h)];
      const std::vector<float> keys = random_rows(rng, n);
      const std::vector<float> values = random_rows(rng, n);
      for (int32_t first = 0; first < n; first += kB) {
        const int32_t count = std::min(kB, n - first);
        key_tiles[h].emplace_back(key_codec->tile_bytes());
        value_tiles[h].emplace_back(value_codec->tile_bytes());
        encode_tile(*key_codec, keys.data() + first * kD, count, key_tiles[h].back().data());
        encode_tile(*value_codec, values.data() + first * kD, count, value_tiles[h].back().data());
        const std::vector<float> k_back = read_back(*key_codec, key_tiles[h].back().data(), count);
        const std::vector<float> v_back =
            read_back(*value_codec, value_tiles[h].back().data(), count);
        expected[h].keys.insert(expected[h].keys.end(), k_back.begin(), k_back.end());
        expected[h].values.insert(expected[h].values.end(), v_back.begin(), v_back.end());
      }
      for (auto& t : key_tiles[h]) key_ptrs[h].push_back(t.data());
      for (auto& t : value_tiles[h]) value_ptrs[h].push_back(t.data());
      for (int32_t r = 0; r < n; ++r) bias[h].push_back(with_bias ? log_count(rng) : 0.0f);
      expected[h].bias = bias[h];
      key_tables.push_back(key_ptrs[h].data());
      value_tables.push_back(value_ptrs[h].data());
      bias_ptrs.push_back(bias[h].data());
    }
    pages.keys = PagedSide{
        key_codec.get(), nullptr, key_tables.data(), key_codec->tile_bytes(), false, 0, nullptr};
    pages.values = PagedSide{value_codec.get(),
                             nullptr,
                             value_tables.data(),
                             value_codec->tile_bytes(),
                             false,
                             0,
                             nullptr};
    pages.head_rows = rows.data();
    pages.head_bias = with_bias ? bias_ptrs.data() : nullptr;
  }
};

// The block part: a table of n_blocks absolute blocks whose first `pressed`
// entries are gone, the others at scattered ids in per-head arenas.
struct BlockPart {
  std::unique_ptr<KvCodec> key_codec, value_codec;
  std::vector<std::vector<uint8_t>> key_arena, value_arena;  // per head
  std::vector<const uint8_t*> key_heads, value_heads;
  std::vector<int32_t> ids;
  std::vector<HeadRows> rows;  // every position from pressed * kB on, per head

  BlockPart(std::mt19937& rng, const std::string& k, const std::string& v, int32_t n_blocks,
            int32_t pressed, int32_t n_positions)
      : key_codec(codec(k, KvSide::kKey)), value_codec(codec(v, KvSide::kValue)) {
    const int32_t arena_blocks = 2 * n_blocks;
    key_arena.assign(kKvHeads, std::vector<uint8_t>(arena_blocks * key_codec->tile_bytes()));
    value_arena.assign(kKvHeads, std::vector<uint8_t>(arena_blocks * value_codec->tile_bytes()));
    // Ids: runs of consecutive ids and jumps back and forth, all distinct.
    for (int32_t j = 0; j < n_blocks; ++j) {
      const int32_t k = j - pressed;
      ids.push_back(j < pressed ? -1 : (k % 3 == 2 ? k / 3 : n_blocks / 2 + k));
    }
    rows.resize(kKvHeads);
    for (int32_t h = 0; h < kKvHeads; ++h) {
      key_heads.push_back(key_arena[h].data());
      value_heads.push_back(value_arena[h].data());
      for (int32_t j = pressed; j < n_blocks; ++j) {
        const int32_t count = std::min(kB, n_positions - j * kB);
        if (count <= 0) break;
        const std::vector<float> keys = random_rows(rng, count);
        const std::vector<float> values = random_rows(rng, count);
        uint8_t* kt = key_arena[h].data() + ids[j] * key_codec->tile_bytes();
        uint8_t* vt = value_arena[h].data() + ids[j] * value_codec->tile_bytes();
        encode_tile(*key_codec, keys.data(), count, kt);
        encode_tile(*value_codec, values.data(), count, vt);
        const std::vector<float> kb = read_back(*key_codec, kt, count);
        const std::vector<float> vb = read_back(*value_codec, vt, count);
        rows[h].keys.insert(rows[h].keys.end(), kb.begin(), kb.end());
        rows[h].values.insert(rows[h].values.end(), vb.begin(), vb.end());
      }
      rows[h].bias.assign(rows[h].keys.size() / kD, 0.0f);
    }
  }

  PagedSide keys() const {
    return PagedSide{key_codec.get(), key_heads.data(), nullptr, key_codec->tile_bytes(), false, 0,
                     nullptr};
  }
  PagedSide values() const {
    return PagedSide{value_codec.get(),
                     value_heads.data(),
                     nullptr,
                     value_codec->tile_bytes(),
                     false,
                     0,
                     nullptr};
  }
};

// The query with which a span's keys are scored: q * kScale, rounded to
// int16 steps of max|x| / 32767 for int8 keys (paged_attention.h).
std::vector<float> span_query(const float* q, const std::string& key_codec) {
  std::vector<float> x(q, q + kD);
  float amax = 0.0f;
  for (float& e : x) {
    e *= kScale;
    amax = std::max(amax, std::fabs(e));
  }
  if (key_codec == "int8") {
    const float inverse = amax > 0.0f ? 32767.0f / amax : 0.0f;
    for (float& e : x) e = std::nearbyint(e * inverse) * (amax / 32767.0f);
  }
  return x;
}

// Softmax attention in double of one query head over `rows` (concatenated
// spans), span i scored with query qs[i] (already scaled); probabilities
// returned through p.
std::vector<double> attend(const std::vector<std::vector<float>>& qs,
                           const std::vector<const HeadRows*>& spans,
                           const std::vector<std::vector<int32_t>>& take, std::vector<double>& p) {
  std::vector<double> s;
  std::vector<const float*> v;
  for (size_t i = 0; i < spans.size(); ++i) {
    const float* q = qs[i].data();
    for (int32_t r : take[i]) {
      double dot = 0;
      for (int32_t e = 0; e < kD; ++e) dot += double(q[e]) * spans[i]->keys[r * kD + e];
      s.push_back(dot + spans[i]->bias[static_cast<size_t>(r)]);
      v.push_back(spans[i]->values.data() + r * kD);
    }
  }
  const double m = *std::max_element(s.begin(), s.end());
  double z = 0;
  for (double& x : s) z += (x = std::exp(x - m));
  std::vector<double> out(kD, 0.0);
  p.assign(s.size(), 0.0);
  for (size_t j = 0; j < s.size(); ++j) {
    p[j] = s[j] / z;
    for (int32_t e = 0; e < kD; ++e) out[e] += p[j] * v[j][e];
  }
  return out;
}

std::vector<int32_t> all_rows(int32_t n) {
  std::vector<int32_t> r(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) r[static_cast<size_t>(i)] = i;
  return r;
}

struct SpanCase {
  std::string retained_key, retained_value;
  // "" : no second span. (int8 keys are scored with an int16-rounded
  // query, which span_query models; int4 and int4h keys with an
  // int8-rounded one, which this reference does not model; the attention
  // test covers them. KIVI keys are scored with their folded query rounded
  // to int8 likewise: cases with KIVI keys are held to a looser bound, and
  // the attention test checks those scores exactly.)
  std::string demoted;
  std::string block_key, block_value;
  bool bias = true;
  bool select = false;
};

class PagedAttentionSpansTest : public ::testing::TestWithParam<SpanCase> {};

TEST_P(PagedAttentionSpansTest, MatchesAttentionOverAllSpansWithCapturedProbabilities) {
  const SpanCase& c = GetParam();
  std::mt19937 rng(7);
  constexpr int32_t kBlocks = 9;
  constexpr int32_t kPressed = 3;
  constexpr int32_t kPositions = kBlocks * kB - 5;  // the last block is partial
  constexpr int32_t kTokens = 3;                    // queries at the last 3 positions
  PagesSpan retained(rng, c.retained_key, c.retained_value, {37, 5}, c.bias);
  std::unique_ptr<PagesSpan> demoted;
  if (!c.demoted.empty())
    demoted =
        std::make_unique<PagesSpan>(rng, c.demoted, c.demoted, std::vector<int32_t>{16, 21}, false);
  BlockPart blocks(rng, c.block_key, c.block_value, kBlocks, kPressed, kPositions);

  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(kTokens) * kHeads * kD);
  for (float& x : q) x = normal(rng);
  std::vector<float> out(q.size(), 0.0f);

  std::vector<PagedPages> spans = {retained.pages};
  if (demoted) spans.push_back(demoted->pages);
  PagedAttentionArgs a;
  a.q = q.data();
  a.out = out.data();
  a.n_tokens = kTokens;
  a.first_pos = kPositions - kTokens;
  a.n_heads = kHeads;
  a.n_kv_heads = kKvHeads;
  a.head_dim = kD;
  a.scale = kScale;
  a.block_tokens = kB;
  a.block_ids = blocks.ids;
  a.first_block = kPressed;
  a.keys = blocks.keys();
  a.values = blocks.values();
  a.pages = spans;
  // Selection: head 0 reads blocks 3, 5, 7 and the last two; head 1 all but 4 and 6.
  const std::vector<std::vector<int32_t>> chosen = {{3, 5, 7, 8}, {3, 5, 7, 8}};
  std::vector<const int32_t*> chosen_ptrs = {chosen[0].data(), chosen[1].data()};
  std::vector<int32_t> chosen_counts = {4, 4};
  if (c.select) {
    a.head_blocks = chosen_ptrs.data();
    a.head_block_counts = chosen_counts.data();
  }
  ThreadPool pool(2);
  constexpr int32_t kMaxRows = 512;
  std::vector<std::vector<float>> sums(2, std::vector<float>(kKvHeads * kMaxRows, 0.0f));
  std::vector<std::vector<float>> scratch(2, std::vector<float>(kPagedMaxGroup * kMaxRows));
  std::vector<float*> sum_ptrs = {sums[0].data(), sums[1].data()};
  std::vector<float*> scratch_ptrs = {scratch[0].data(), scratch[1].data()};
  ScoreCapture capture;
  capture.first_pos = a.first_pos + 1;  // the last two queries only
  capture.end_pos = a.first_pos + kTokens;
  capture.max_rows = kMaxRows;
  capture.thread_sums = sum_ptrs.data();
  capture.row_scratch = scratch_ptrs.data();
  a.capture = &capture;
  paged_attention(a, pool);

  for (int32_t h = 0; h < kKvHeads; ++h) {
    std::vector<double> expected_sums;
    const bool rounded_keys = c.retained_key.starts_with("kivi") || c.demoted.starts_with("kivi") ||
                              c.block_key.starts_with("kivi");
    for (int32_t t = 0; t < kTokens; ++t) {
      const int32_t pos = a.first_pos + t;
      std::vector<const HeadRows*> rows = {&retained.expected[h]};
      std::vector<std::vector<int32_t>> take = {all_rows(retained.rows[h])};
      if (demoted) {
        rows.push_back(&demoted->expected[h]);
        take.push_back(all_rows(demoted->rows[h]));
      }
      // Block part rows visible to this query, in table order.
      std::vector<int32_t> block_rows;
      for (int32_t j = kPressed; j * kB <= pos; ++j) {
        if (c.select && std::find(chosen[h].begin(), chosen[h].end(), j) == chosen[h].end()) {
          continue;
        }
        for (int32_t r = 0; r < kB && j * kB + r <= pos; ++r) {
          block_rows.push_back((j - kPressed) * kB + r);
        }
      }
      rows.push_back(&blocks.rows[h]);
      take.push_back(block_rows);
      std::vector<double> mean_p;
      for (int32_t g = 0; g < kGroup; ++g) {
        const int32_t head = h * kGroup + g;
        const float* qh = q.data() + (static_cast<size_t>(t) * kHeads + head) * kD;
        std::vector<double> p;
        std::vector<std::vector<float>> qs = {span_query(qh, c.retained_key)};
        if (demoted) qs.push_back(span_query(qh, c.demoted));
        qs.push_back(span_query(qh, c.block_key));
        const std::vector<double> want = attend(qs, rows, take, p);
        const float* got = out.data() + (static_cast<size_t>(t) * kHeads + head) * kD;
        for (int32_t e = 0; e < kD; ++e) {
          ASSERT_NEAR(got[e], want[e], rounded_keys ? 3e-2 : 2e-5)
              << "token " << t << " head " << head << " elem " << e;
        }
        mean_p.resize(p.size(), 0.0);
        for (size_t j = 0; j < p.size(); ++j) mean_p[j] += p[j] / kGroup;
      }
      if (pos < capture.first_pos) continue;
      // Rows in span order: the queries see the same rows except the block
      // part's newest, so the shorter list is a prefix of the longer.
      if (expected_sums.size() < mean_p.size()) expected_sums.resize(mean_p.size(), 0.0);
      for (size_t j = 0; j < mean_p.size(); ++j) expected_sums[j] += mean_p[j];
    }
    for (size_t j = 0; j < expected_sums.size(); ++j) {
      const float got = sums[0][h * kMaxRows + j] + sums[1][h * kMaxRows + j];
      ASSERT_NEAR(got, expected_sums[j], rounded_keys ? 3e-2 : 1e-5)
          << "head " << h << " row " << j;
    }
    for (size_t j = expected_sums.size(); j < kMaxRows; ++j) {
      ASSERT_EQ(sums[0][h * kMaxRows + j] + sums[1][h * kMaxRows + j], 0.0f);
    }
  }
}

std::string span_case_name(const ::testing::TestParamInfo<SpanCase>& info) {
  const SpanCase& c = info.param;
  std::string name = c.retained_key + "_" + c.retained_value + "_" +
                     (c.demoted.empty() ? "nodemote" : c.demoted) + "_" + c.block_key + "_" +
                     c.block_value + (c.bias ? "_bias" : "") + (c.select ? "_select" : "");
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(
    Spans, PagedAttentionSpansTest,
    ::testing::Values(SpanCase{"f32", "f32", "", "f32", "f32", false, false},
                      SpanCase{"f16", "f16", "", "f16", "f16", true, false},
                      SpanCase{"f16", "f16", "int8", "f16", "f16", true, false},
                      SpanCase{"int8", "int8", "int8", "int8", "int8", true, true},
                      SpanCase{"bf16", "int4h", "f32", "f16", "int4", true, false},
                      SpanCase{"kivi4:r=0", "kivi4:r=0", "", "kivi2:r=0", "kivi2:r=0", true, true},
                      SpanCase{"f16", "f16", "", "int8", "int4", false, true}),
    span_case_name);

}  // namespace
}  // namespace kvforge
