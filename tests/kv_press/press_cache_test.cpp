// Presses inside the paged cache on a real model (stories260K): a budget at or
// above the context changes nothing, kept rows are the rows that were there,
// freed memory goes back to the pool, prefix sharing still serves the full
// prompt, and random press/fork/truncate/release traffic keeps every
// invariant and leaks no block.
#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kv/kv_codec.h"
#include "kv/kv_codec_plan.h"
#include "kv/paged_kv_cache.h"
#include "model/model.h"
#include "util/thread_pool.h"

namespace kvforge {
namespace {

constexpr int32_t kCtx = 256;

Model& press_model() {
  static std::unique_ptr<Model> m = [] {
    ModelOptions o;
    o.n_threads = 2;
    o.max_batch = 64;
    auto loaded = Model::load(std::string(KVFORGE_SOURCE_DIR) + "/models/stories260K.gguf", o);
    KVF_CHECK(loaded.ok());
    return std::move(loaded).value();
  }();
  return *m;
}

std::vector<int32_t> text_tokens(int32_t n, int32_t salt) {
  std::vector<int32_t> ids = {1};
  for (int32_t i = 1; i < n; ++i) ids.push_back(50 + (i * 29 + salt * 7) % 400);
  return ids;
}

std::unique_ptr<PagedKvCache> press_cache(const std::string& press,
                                          const std::string& codec = "f16", int32_t n_seq = 2,
                                          bool sharing = true, int32_t block = 16,
                                          const std::string& press_layers = "") {
  const int32_t layers = press_model().config().n_layers;
  PagedKvCacheOptions o;
  o.layer_codecs = *plan_kv_codecs(codec, "", layers);
  o.block_tokens = block;
  o.n_ctx = kCtx;
  o.n_seq = n_seq;
  o.prefix_sharing = sharing;
  o.model_fingerprint = press_model().fingerprint();
  if (!press.empty() || !press_layers.empty()) {
    auto plan = plan_kv_presses(press, press_layers, layers);
    KVF_CHECK(plan.ok());
    o.layer_presses = *plan;
  }
  auto cache = PagedKvCache::create(press_model().kv_shape(), o);
  KVF_CHECK(cache.ok());
  return std::move(cache).value();
}

// Prefills `prompt` into seq (with the prompt hooks), then feeds `decode`
// one token at a time (with the decode hook); returns the logits of the
// prompt's last token followed by each decode step's.
std::vector<float> prompt_then_decode(PagedKvCache& kv, SeqId seq,
                                      const std::vector<int32_t>& prompt,
                                      const std::vector<int32_t>& decode) {
  const auto v = static_cast<size_t>(press_model().config().n_vocab);
  std::vector<float> logits((1 + decode.size()) * v);
  const int32_t start = kv.n_tokens(seq);
  kv.begin_prompt(seq, start + static_cast<int32_t>(prompt.size()));
  KVF_CHECK(
      press_model().forward(prompt, start, kv, seq, LogitsFor::kLastToken, logits.data()).ok());
  const Status pressed = kv.end_prompt(seq);
  EXPECT_TRUE(pressed.ok()) << pressed.to_string();
  for (size_t i = 0; i < decode.size(); ++i) {
    const int32_t next[1] = {decode[i]};
    KVF_CHECK(press_model()
                  .forward(next, kv.n_tokens(seq), kv, seq, LogitsFor::kLastToken,
                           logits.data() + (i + 1) * v)
                  .ok());
    KVF_CHECK(kv.end_decode_step(seq).ok());
  }
  kv.check_invariants();
  return logits;
}

TEST(PressCacheTest, ABudgetAtOrAboveTheContextReproducesTheUncompressedLogitsExactly) {
  const std::vector<int32_t> prompt = text_tokens(150, 1);
  const std::vector<int32_t> decode = text_tokens(30, 2);
  auto plain = press_cache("");
  const std::vector<float> want = prompt_then_decode(*plain, SeqId{0}, prompt, decode);
  for (const std::string& name : kv_press_names()) {
    for (const std::string budget : {":ratio=1:every=4", ":tokens=256:max=256"}) {
      auto kv = press_cache(name + budget);
      const std::vector<float> got = prompt_then_decode(*kv, SeqId{0}, prompt, decode);
      ASSERT_EQ(got, want) << name << budget;
      EXPECT_EQ(kv->compressed_end(SeqId{0}), 0) << name << budget;
    }
  }
}

// Rows as the attention reads them, keyed by position.
std::map<int32_t, std::pair<std::vector<float>, std::vector<float>>> rows_by_position(
    const PagedKvCache& kv, SeqId seq, LayerId layer, int32_t head) {
  std::vector<int32_t> positions;
  std::vector<float> keys, values;
  kv.read_rows(seq, layer, head, positions, keys, values);
  const auto d = static_cast<size_t>(press_model().config().head_dim);
  std::map<int32_t, std::pair<std::vector<float>, std::vector<float>>> rows;
  for (size_t r = 0; r < positions.size(); ++r) {
    rows[positions[r]] = {std::vector<float>(keys.begin() + r * d, keys.begin() + (r + 1) * d),
                          std::vector<float>(values.begin() + r * d, values.begin() + (r + 1) * d)};
  }
  return rows;
}

class PressCodecTest : public ::testing::TestWithParam<std::string> {};

// streaming:tokens=64 keeps sinks (4), and the newest rows up to 64 per head;
// what it keeps reads back exactly as before the press.
TEST_P(PressCodecTest, KeptRowsReadBackAsTheyWereAndTheBudgetHolds) {
  const std::string codec = GetParam();
  const bool kivi = codec.starts_with("kivi");
  auto kv = press_cache("streaming:tokens=64:window=32", codec, 2, false, kivi ? 32 : 16);
  const SeqId seq{0};
  const std::vector<int32_t> prompt = text_tokens(200, 3);
  const int32_t layers = press_model().config().n_layers;
  const int32_t heads = press_model().config().n_kv_heads;
  kv->begin_prompt(seq, 200);
  std::vector<float> logits(static_cast<size_t>(press_model().config().n_vocab));
  ASSERT_TRUE(
      press_model().forward(prompt, 0, *kv, seq, LogitsFor::kLastToken, logits.data()).ok());
  std::vector<std::map<int32_t, std::pair<std::vector<float>, std::vector<float>>>> before;
  for (int32_t l = 0; l < layers; ++l) {
    for (int32_t h = 0; h < heads; ++h) before.push_back(rows_by_position(*kv, seq, LayerId{l}, h));
  }
  const int32_t free_before = kv->pool().n_free();
  ASSERT_TRUE(kv->end_prompt(seq).ok());
  kv->check_invariants();
  const int32_t boundary = kv->compressed_end(seq);
  EXPECT_GT(boundary, 0);
  EXPECT_GT(kv->pool().n_free(), free_before);  // the memory is back in the pool
  for (int32_t l = 0; l < layers; ++l) {
    for (int32_t h = 0; h < heads; ++h) {
      // KIVI keeps its residual window in blocks (kv-compression.md), which
      // can hold more than the budget.
      EXPECT_EQ(kv->rows_held(seq, LayerId{l}, h), std::max(64, 4 + 200 - boundary))
          << l << "/" << h;
      const std::span<const int32_t> kept = kv->retained_positions(seq, LayerId{l}, h);
      const auto newest = static_cast<int32_t>(kept.size()) - 4;
      // Sinks, then the newest rows before the boundary.
      for (int32_t i = 0; i < 4; ++i) EXPECT_EQ(kept[static_cast<size_t>(i)], i);
      for (int32_t i = 0; i < newest; ++i) {
        EXPECT_EQ(kept[static_cast<size_t>(4 + i)], boundary - newest + i);
      }
      const auto after = rows_by_position(*kv, seq, LayerId{l}, h);
      const auto& was = before[static_cast<size_t>(l * heads + h)];
      for (const auto& [pos, row] : after) {
        ASSERT_TRUE(was.contains(pos));
        if (kivi && pos < boundary) continue;  // KIVI keys are re-quantized per page
        EXPECT_EQ(row.first, was.at(pos).first) << codec << " layer " << l << " pos " << pos;
        EXPECT_EQ(row.second, was.at(pos).second) << codec << " layer " << l << " pos " << pos;
      }
    }
  }
  // Decoding further works and keeps the invariants; truncating into the
  // pressed part is refused, to 0 frees everything.
  const std::vector<float> more =
      prompt_then_decode(*kv, seq, text_tokens(3, 4), text_tokens(20, 5));
  for (float x : more) ASSERT_TRUE(std::isfinite(x));
  EXPECT_EQ(kv->truncate(seq, boundary - 1).code(), StatusCode::kUnsupported);
  ASSERT_TRUE(kv->truncate(seq, 0).ok());
  kv->check_invariants();
  EXPECT_EQ(kv->pool().n_free(), kv->pool().n_blocks());
}

INSTANTIATE_TEST_SUITE_P(Codecs, PressCodecTest,
                         ::testing::Values("f32", "f16", "bf16", "int8", "int4", "int4h",
                                           "k=int8,v=int4h", "kivi2:r=0", "kivi4"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

TEST(PressCacheTest, ThePromptStaysInThePrefixCacheInFullForm) {
  auto kv = press_cache("snapkv:ratio=0.25");
  const std::vector<int32_t> prompt = text_tokens(180, 6);
  prompt_then_decode(*kv, SeqId{0}, prompt, {});
  ASSERT_GT(kv->compressed_end(SeqId{0}), 0);
  // Another sequence with the same prompt hits the full blocks before the
  // pressed boundary and computes what a cold, uncompressed run computes.
  const int32_t boundary = kv->compressed_end(SeqId{0});
  const int32_t hit = kv->reuse_prefix(SeqId{1}, prompt);
  EXPECT_EQ(hit, boundary);
  const auto rest = static_cast<size_t>(hit);
  std::vector<float> got(static_cast<size_t>(press_model().config().n_vocab));
  ASSERT_TRUE(press_model()
                  .forward(std::span(prompt).subspan(rest), hit, *kv, SeqId{1},
                           LogitsFor::kLastToken, got.data())
                  .ok());
  auto cold = press_cache("");
  std::vector<float> want(got.size());
  ASSERT_TRUE(
      press_model()
          .forward(std::span(prompt).first(rest), 0, *cold, SeqId{0}, LogitsFor::kNone, nullptr)
          .ok());
  ASSERT_TRUE(press_model()
                  .forward(std::span(prompt).subspan(rest), hit, *cold, SeqId{0},
                           LogitsFor::kLastToken, want.data())
                  .ok());
  EXPECT_EQ(got, want);
  kv->check_invariants();
}

TEST(PressCacheTest, RaggedBudgetsFreeMemoryByRowsNotByTheLargestHead) {
  // Layer 0 keeps every row, the others 40 per head: the pages follow the
  // rows kept, not the largest head times the number of heads.
  auto kv = press_cache("", "f16", 1, false, 16, "1-:streaming:tokens=40:window=16");
  prompt_then_decode(*kv, SeqId{0}, text_tokens(250, 7), {});
  const int32_t layers = press_model().config().n_layers;
  const int32_t heads = press_model().config().n_kv_heads;
  int64_t pages = 0;
  int32_t largest = 0;
  for (int32_t l = 0; l < layers; ++l) {
    for (int32_t h = 0; h < heads; ++h) {
      const auto n = static_cast<int32_t>(kv->retained_positions(SeqId{0}, LayerId{l}, h).size());
      // Layer 0: every row before the boundary; the others: 40 minus the
      // block part's rows.
      const int32_t boundary = kv->compressed_end(SeqId{0});
      EXPECT_EQ(n, l == 0 ? boundary : 40 - (250 - boundary)) << l;
      pages += (n + 15) / 16;
      largest = std::max(largest, (n + 15) / 16);
    }
  }
  // Pool blocks in use: the block part's plus the page store's; one block
  // has a slot for a tile of every (layer, side, head).
  const int32_t block_part = (kv->n_tokens(SeqId{0}) - kv->compressed_end(SeqId{0}) + 15) / 16;
  const int32_t slots_per_block = 2 * layers * heads;
  const int32_t used = kv->pool().n_blocks() - kv->pool().n_free();
  EXPECT_LE(used, block_part + (2 * pages + slots_per_block - 1) / slots_per_block);
  EXPECT_LT(used, block_part + largest / 2);
  EXPECT_EQ(kv->sequence_bytes(SeqId{0}),
            static_cast<size_t>(block_part) * kv->pool().bytes_per_block() +
                static_cast<size_t>(pages) * 2 * kv->key_codec(LayerId{0}).tile_bytes());
}

TEST(PressCacheTest, AdaptiveBudgetsKeepDifferentRowCountsPerHead) {
  auto kv = press_cache("h2o:ratio=0.25:adaptive=1:floor=0.1", "f16", 1, false);
  prompt_then_decode(*kv, SeqId{0}, text_tokens(250, 7), {});
  const int32_t heads = press_model().config().n_kv_heads;
  for (int32_t l = 0; l < press_model().config().n_layers; ++l) {
    std::set<size_t> counts;
    size_t total = 0;
    for (int32_t h = 0; h < heads; ++h) {
      const size_t n = kv->retained_positions(SeqId{0}, LayerId{l}, h).size();
      counts.insert(n);
      total += n;
    }
    EXPECT_GT(counts.size(), 1u) << "layer " << l;
    // The layer's rows add up to the even budget (ratio of 250, minus the
    // block part's rows) over its heads.
    const int32_t block_rows = 250 - kv->compressed_end(SeqId{0});
    EXPECT_EQ(total, static_cast<size_t>(heads) * static_cast<size_t>(63 - block_rows))
        << "layer " << l;
  }
}

TEST(PressCacheTest, APressedSequenceCannotBeSavedYet) {
  auto kv = press_cache("streaming:tokens=48:window=16");
  prompt_then_decode(*kv, SeqId{0}, text_tokens(120, 8), {});
  ASSERT_GT(kv->compressed_end(SeqId{0}), 0);
  const Status saved = kv->save(SeqId{0}, ::testing::TempDir() + "/pressed.kvsnap");
  EXPECT_EQ(saved.code(), StatusCode::kUnsupported);
}

// Random traffic: prompts and decode steps with presses, forks, truncations
// and releases on three sequences; invariants after every step, and every
// block back in the pool at the end.
TEST(PressCacheTest, RandomPressForkTruncateReleaseKeepsInvariantsAndLeaksNothing) {
  for (const std::string spec :
       {"h2o:tokens=64:window=16:every=8", "snapkv:ratio=0.4:window=16",
        "streaming:tokens=48:window=16:max=64", "tova:tokens=48:window=16:max=48",
        "pyramidkv:ratio=0.4:window=16:w=8", "expected:tokens=64:window=16:every=8",
        "merge:tokens=48:window=16:every=8:scorer=h2o:sim=0.5",
        "mikv:tokens=48:window=16:every=8:low=int4h"}) {
    auto kv = press_cache(spec, "int8", 3, true);
    std::mt19937 rng(5);
    const auto v = static_cast<size_t>(press_model().config().n_vocab);
    std::vector<float> logits(v);
    for (int step = 0; step < 60; ++step) {
      const SeqId seq{static_cast<int32_t>(rng() % 3)};
      const int32_t held = kv->n_tokens(seq);
      switch (rng() % 6) {
        case 0: {  // a prompt
          const auto n = static_cast<int32_t>(20 + rng() % 60);
          if (held + n + 10 >= kCtx) break;
          const std::vector<int32_t> ids = text_tokens(n, static_cast<int32_t>(rng() % 4));
          if (held == 0) (void)kv->reuse_prefix(seq, ids);
          const int32_t from = kv->n_tokens(seq);
          kv->begin_prompt(seq, held + n);
          ASSERT_TRUE(press_model()
                          .forward(std::span(ids).subspan(static_cast<size_t>(from - held)), from,
                                   *kv, seq, LogitsFor::kLastToken, logits.data())
                          .ok());
          ASSERT_TRUE(kv->end_prompt(seq).ok());
          break;
        }
        case 1:
        case 2: {  // decode steps
          if (held == 0) break;
          for (int i = 0; i < 10 && kv->n_tokens(seq) < kCtx; ++i) {
            const int32_t next[1] = {static_cast<int32_t>(60 + rng() % 300)};
            ASSERT_TRUE(press_model()
                            .forward(next, kv->n_tokens(seq), *kv, seq, LogitsFor::kLastToken,
                                     logits.data())
                            .ok());
            ASSERT_TRUE(kv->end_decode_step(seq).ok());
          }
          break;
        }
        case 3: {  // fork into an empty sequence
          const SeqId dst{static_cast<int32_t>((seq.value + 1) % 3)};
          if (kv->n_tokens(dst) == 0) {
            ASSERT_TRUE(kv->fork(seq, dst).ok());
          }
          break;
        }
        case 4: {  // truncate: into the pressed part is refused
          const int32_t to = held == 0 ? 0 : static_cast<int32_t>(rng() % (held + 1));
          const Status s = kv->truncate(seq, to);
          if (to > 0 && to < kv->compressed_end(seq)) {
            EXPECT_EQ(s.code(), StatusCode::kUnsupported);
          }
          break;
        }
        default:
          kv->release(seq);
      }
      kv->check_invariants();
    }
    for (int32_t s = 0; s < 3; ++s) kv->release(SeqId{s});
    kv->check_invariants();
    EXPECT_EQ(kv->pool().n_free() + kv->prefix_stats().cached_blocks, kv->pool().n_blocks())
        << spec;
  }
}

// MiKV keeps every position: the rows its scorer (h2o) would evict are
// demoted to int4 instead, read back as int4 round trips of what they were,
// and take memory between the uncompressed and the evicting cache's.
TEST(PressCacheTest, MikvDemotesTheRowsItsScorerEvictsAndKeepsThemAll) {
  const SeqId seq{0};
  constexpr int32_t kPrompt = 200;
  constexpr int32_t kBudget = 50;  // ratio 0.25 of 200, sinks included
  const std::vector<int32_t> prompt = text_tokens(kPrompt, 7);
  const int32_t layers = press_model().config().n_layers;
  const int32_t heads = press_model().config().n_kv_heads;
  const int32_t d = press_model().config().head_dim;
  auto full = press_cache("", "f16", 1, false);
  prompt_then_decode(*full, seq, prompt, {});
  auto evicting = press_cache("h2o:ratio=0.25", "f16", 1, false);
  prompt_then_decode(*evicting, seq, prompt, {});

  // Room for two contexts: while pressing, the new pages (full-precision
  // and demoted ones) are written before the pressed blocks are given back.
  auto kv = press_cache("mikv:ratio=0.25:every=16", "f16", 2, false);
  kv->begin_prompt(seq, kPrompt);
  std::vector<float> logits(static_cast<size_t>(press_model().config().n_vocab));
  ASSERT_TRUE(
      press_model().forward(prompt, 0, *kv, seq, LogitsFor::kLastToken, logits.data()).ok());
  std::vector<std::map<int32_t, std::pair<std::vector<float>, std::vector<float>>>> before;
  for (int32_t l = 0; l < layers; ++l) {
    for (int32_t h = 0; h < heads; ++h) before.push_back(rows_by_position(*kv, seq, LayerId{l}, h));
  }
  const Status pressed = kv->end_prompt(seq);
  ASSERT_TRUE(pressed.ok()) << pressed.to_string();
  kv->check_invariants();
  const int32_t boundary = kv->compressed_end(seq);
  ASSERT_GT(boundary, 0);
  ASSERT_EQ(boundary, evicting->compressed_end(seq));

  auto int4_key = make_kv_codec("int4", KvSide::kKey, KvCodecParams{16, d});
  auto int4_value = make_kv_codec("int4", KvSide::kValue, KvCodecParams{16, d});
  ASSERT_TRUE(int4_key.ok() && int4_value.ok());
  // The int4 round trip of one row, by a fresh codec.
  auto round_trip = [&](const KvCodec& codec, const std::vector<float>& row) {
    std::vector<uint8_t> tile(codec.tile_bytes());
    codec.encode(row.data(), d, 0, 1, tile.data());
    std::vector<float> out(static_cast<size_t>(16 * d));
    codec.decode(tile.data(), 1, out.data());
    out.resize(static_cast<size_t>(d));
    return out;
  };
  int64_t demoted_rows = 0, changed = 0;
  std::vector<std::map<int32_t, std::pair<std::vector<float>, std::vector<float>>>> after_prompt;
  std::vector<std::set<int32_t>> kept_after_prompt;
  for (int32_t l = 0; l < layers; ++l) {
    for (int32_t h = 0; h < heads; ++h) {
      // Every position is still held; the full-precision ones are those
      // h2o keeps, within the same budget.
      EXPECT_EQ(kv->rows_held(seq, LayerId{l}, h), kPrompt) << l << "/" << h;
      const std::span<const int32_t> kept = kv->retained_positions(seq, LayerId{l}, h);
      const std::span<const int32_t> h2o_kept = evicting->retained_positions(seq, LayerId{l}, h);
      EXPECT_TRUE(std::equal(kept.begin(), kept.end(), h2o_kept.begin(), h2o_kept.end()))
          << l << "/" << h;
      EXPECT_EQ(static_cast<int32_t>(kept.size()), kBudget - (kPrompt - boundary));
      const auto after = rows_by_position(*kv, seq, LayerId{l}, h);
      after_prompt.push_back(after);
      kept_after_prompt.emplace_back(kept.begin(), kept.end());
      const auto& was = before[static_cast<size_t>(l * heads + h)];
      ASSERT_EQ(after.size(), was.size());
      for (const auto& [pos, row] : after) {
        const auto& old = was.at(pos);
        const bool full_precision =
            pos >= boundary || std::find(kept.begin(), kept.end(), pos) != kept.end();
        if (full_precision) {
          EXPECT_EQ(row.first, old.first) << l << "/" << h << " pos " << pos;
          EXPECT_EQ(row.second, old.second) << l << "/" << h << " pos " << pos;
          continue;
        }
        ++demoted_rows;
        const std::vector<float> key = round_trip(**int4_key, old.first);
        const std::vector<float> value = round_trip(**int4_value, old.second);
        for (int32_t e = 0; e < d; ++e) {
          ASSERT_NEAR(row.first[e], key[e], 1e-5) << l << "/" << h << " pos " << pos;
          ASSERT_NEAR(row.second[e], value[e], 1e-5) << l << "/" << h << " pos " << pos;
        }
        changed += row.first != old.first ? 1 : 0;
      }
    }
  }
  EXPECT_EQ(demoted_rows, static_cast<int64_t>(layers) * heads * (kPrompt - kBudget));
  EXPECT_GT(changed, demoted_rows / 2);  // really stored in 4 bits
  // Memory between evicting and keeping everything in f16.
  EXPECT_LT(kv->sequence_bytes(seq), full->sequence_bytes(seq));
  EXPECT_GT(kv->sequence_bytes(seq), evicting->sequence_bytes(seq));

  // Decoding presses again every 16 steps: rows demoted before read back
  // exactly as they were (re-encoding int4 rows is exact), and every
  // position is still held.
  for (const int32_t token : text_tokens(40, 9)) {
    const int32_t next[1] = {token};
    ASSERT_TRUE(
        press_model()
            .forward(next, kv->n_tokens(seq), *kv, seq, LogitsFor::kLastToken, logits.data())
            .ok());
    ASSERT_TRUE(kv->end_decode_step(seq).ok());
    for (float x : logits) ASSERT_TRUE(std::isfinite(x));
  }
  kv->check_invariants();
  ASSERT_GT(kv->compressed_end(seq), boundary);
  for (int32_t l = 0; l < layers; ++l) {
    for (int32_t h = 0; h < heads; ++h) {
      EXPECT_EQ(kv->rows_held(seq, LayerId{l}, h), kPrompt + 40);
      const auto now = rows_by_position(*kv, seq, LayerId{l}, h);
      const auto& was_kept = kept_after_prompt[static_cast<size_t>(l * heads + h)];
      for (const auto& [pos, row] : after_prompt[static_cast<size_t>(l * heads + h)]) {
        if (pos >= boundary || was_kept.contains(pos)) continue;  // not demoted then
        EXPECT_EQ(now.at(pos), row) << l << "/" << h << " pos " << pos;
      }
    }
  }
}

// Records the attention each choose() is given; keeps the first rows.
class RecordingPress final : public KvPress {
 public:
  RecordingPress(const PressBudget& budget, bool newest) : KvPress(budget), newest_(newest) {}
  [[nodiscard]] std::string name() const override { return "recording"; }
  [[nodiscard]] PressNeeds needs() const override {
    PressNeeds n;
    n.prompt_queries = 1;
    n.decode_queries = true;
    n.newest_query_only = newest_;
    return n;
  }
  void choose(const PressLayer& layer, std::span<HeadChoice> choices) const override {
    for (size_t h = 0; h < choices.size(); ++h) {
      double sum = 0;
      for (float a : layer.heads[h].attention) sum += a;
      sums.push_back(sum);
      for (int32_t r = 0;
           r < layer.rows && r < static_cast<int32_t>(layer.heads[h].positions.size()); ++r) {
        choices[h].keep.push_back(r);
      }
    }
  }
  mutable std::vector<double> sums;  // per call and head, in call order

 private:
  bool newest_;
};

// newest_query_only (TOVA): a decode-time press sees the attention of the
// newest query alone (at most 1 per head over its candidates), not the sum
// since the prompt.
TEST(PressCacheTest, ADecodePressOfTheNewestQuerySeesOnlyThatQuerysAttention) {
  std::vector<double> largest;
  for (const bool newest : {true, false}) {
    PressBudget budget;
    budget.tokens = 48;
    budget.window = 16;
    budget.max_rows = 48;
    auto press = std::make_shared<RecordingPress>(budget, newest);
    const int32_t layers = press_model().config().n_layers;
    PagedKvCacheOptions o;
    o.layer_codecs = *plan_kv_codecs("f32", "", layers);
    o.block_tokens = 16;
    o.n_ctx = kCtx;
    o.n_seq = 1;
    o.prefix_sharing = false;
    o.model_fingerprint = press_model().fingerprint();
    o.layer_presses.assign(static_cast<size_t>(layers), press);
    auto kv = PagedKvCache::create(press_model().kv_shape(), o);
    ASSERT_TRUE(kv.ok());
    prompt_then_decode(**kv, SeqId{0}, text_tokens(40, 3), text_tokens(60, 4));
    // The prompt's press (40 positions, under the budget) does not run; the
    // decode presses do.
    ASSERT_FALSE(press->sums.empty());
    largest.push_back(*std::max_element(press->sums.begin(), press->sums.end()));
  }
  EXPECT_GT(largest[0], 0.0);
  EXPECT_LE(largest[0], 1.0 + 1e-5);
  EXPECT_GT(largest[1], 2 * largest[0]);
}

// Merges the candidates in groups of 2, 3, 2, 3, ... (the last ones kept).
class GroupingPress final : public KvPress {
 public:
  explicit GroupingPress(const PressBudget& budget) : KvPress(budget) {}
  [[nodiscard]] std::string name() const override { return "grouping"; }
  [[nodiscard]] PressNeeds needs() const override { return {}; }
  void choose(const PressLayer& layer, std::span<HeadChoice> choices) const override {
    for (size_t h = 0; h < choices.size(); ++h) {
      const auto n = static_cast<int32_t>(layer.heads[h].positions.size());
      int32_t r = 0;
      for (int32_t size = 2; r + size <= n; size = 5 - size) {
        std::vector<int32_t>& group = choices[h].merged.emplace_back();
        for (int32_t i = 0; i < size; ++i) group.push_back(r++);
      }
      for (; r < n; ++r) choices[h].keep.push_back(r);
    }
  }
};

// The cache's side of merging: a group becomes one row, the mean of its
// members' keys and values at the newest member's position, and the
// attention gives it the weight of its members together (score bias
// log(count)), checked against softmax attention computed here in double
// over the rows the cache holds.
TEST(PressCacheTest, MergedGroupsAreCentroidsAttendedWithTheirTokensWeight) {
  PressBudget budget;
  budget.tokens = 48;
  budget.window = 16;
  const int32_t layers = press_model().config().n_layers;
  PagedKvCacheOptions o;
  o.layer_codecs = *plan_kv_codecs("f32", "", layers);
  o.block_tokens = 16;
  o.n_ctx = kCtx;
  o.n_seq = 2;
  o.prefix_sharing = false;
  o.model_fingerprint = press_model().fingerprint();
  o.layer_presses.assign(static_cast<size_t>(layers), std::make_shared<GroupingPress>(budget));
  auto made = PagedKvCache::create(press_model().kv_shape(), o);
  ASSERT_TRUE(made.ok());
  PagedKvCache& kv = **made;
  const SeqId seq{0};
  constexpr int32_t kHeld = 100;
  kv.begin_prompt(seq, kHeld);
  std::vector<float> logits(static_cast<size_t>(press_model().config().n_vocab));
  ASSERT_TRUE(press_model()
                  .forward(text_tokens(kHeld, 5), 0, kv, seq, LogitsFor::kLastToken, logits.data())
                  .ok());
  const LayerId layer{1};
  const int32_t heads = press_model().config().n_kv_heads;
  const int32_t n_heads = press_model().config().n_heads;
  const int32_t d = press_model().config().head_dim;
  std::vector<std::map<int32_t, std::pair<std::vector<float>, std::vector<float>>>> before;
  for (int32_t h = 0; h < heads; ++h) before.push_back(rows_by_position(kv, seq, layer, h));
  ASSERT_TRUE(kv.end_prompt(seq).ok());
  kv.check_invariants();
  const int32_t boundary = kv.compressed_end(seq);
  ASSERT_EQ(boundary, 80);  // 100 - window 16, down to a block boundary

  // Candidates are positions 4..79: groups {4,5}, {6,7,8}, {9,10}, ...
  std::vector<std::vector<int32_t>> groups;
  int32_t next = 4;
  for (int32_t size = 2; next + size <= boundary; size = 5 - size) {
    groups.emplace_back();
    for (int32_t i = 0; i < size; ++i) groups.back().push_back(next++);
  }
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(n_heads * d));
  for (float& x : q) x = normal(rng);
  std::vector<float> out(q.size());
  ThreadPool pool(2);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  kv.attend(seq, layer, kHeld - 1, 1, q.data(), scale, out.data(), pool);

  for (int32_t h = 0; h < heads; ++h) {
    std::vector<int32_t> positions;
    std::vector<float> keys, values;
    kv.read_rows(seq, layer, h, positions, keys, values);
    // Rows: sinks 0..3, one per group, the kept candidates, then the block part.
    std::vector<float> count(positions.size(), 1.0f);
    const auto& was = before[static_cast<size_t>(h)];
    for (const std::vector<int32_t>& group : groups) {
      const auto at = std::find(positions.begin(), positions.end(), group.back());
      ASSERT_NE(at, positions.end()) << "group ending at " << group.back();
      const auto row = static_cast<size_t>(at - positions.begin());
      count[row] = static_cast<float>(group.size());
      for (int32_t e = 0; e < d; ++e) {
        double k = 0, v = 0;
        for (int32_t p : group) {
          k += was.at(p).first[static_cast<size_t>(e)];
          v += was.at(p).second[static_cast<size_t>(e)];
        }
        EXPECT_NEAR(keys[row * d + e], k / group.size(), 1e-5);
        EXPECT_NEAR(values[row * d + e], v / group.size(), 1e-5);
      }
    }
    EXPECT_EQ(positions.size(), 4 + groups.size() + (boundary - next) + (kHeld - boundary));
    for (int32_t g = 0; g < n_heads / heads; ++g) {
      const int32_t head = h * (n_heads / heads) + g;
      const float* qh = q.data() + static_cast<size_t>(head) * d;
      std::vector<double> score(positions.size());
      for (size_t r = 0; r < positions.size(); ++r) {
        double dot = 0;
        for (int32_t e = 0; e < d; ++e) dot += double(qh[e]) * keys[r * d + e];
        score[r] = dot * scale + std::log(double(count[r]));
      }
      const double top = *std::max_element(score.begin(), score.end());
      double total = 0;
      for (double& x : score) total += (x = std::exp(x - top));
      for (int32_t e = 0; e < d; ++e) {
        double want = 0;
        for (size_t r = 0; r < positions.size(); ++r) want += score[r] / total * values[r * d + e];
        EXPECT_NEAR(out[static_cast<size_t>(head) * d + e], want, 1e-5) << head << "/" << e;
      }
    }
  }
}

}  // namespace
}  // namespace kvforge
