// Relay through the scheduler: the store finds quoted runs of earlier
// outputs anywhere in a prompt and evicts workflow-aware; a later agent's
// prompt that quotes an earlier agent's output reuses its KV, and with every
// quoted token recomputed generates exactly what a cold prefill generates.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "engine/relay_store.h"
#include "engine/scheduler.h"
#include "kv/kv_codec_plan.h"
#include "kv/paged_kv_cache.h"
#include "model/model.h"
#include "util/fp16.h"

namespace kvforge {
namespace {

// --- The store alone --------------------------------------------------------

constexpr int32_t kLayers = 2;
constexpr int32_t kDim = 4;

std::vector<int32_t> run_of(int32_t n, int32_t first) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = first + i;
  return v;
}

// Half-float KV whose value encodes (layer, token, element, side).
std::vector<uint16_t> kv_of(int32_t n, float side) {
  std::vector<uint16_t> out;
  for (int32_t l = 0; l < kLayers; ++l) {
    for (int32_t t = 0; t < n; ++t) {
      for (int32_t e = 0; e < kDim; ++e) {
        out.push_back(fp32_to_fp16(side + static_cast<float>(l * 1000 + t * 4 + e) / 8));
      }
    }
  }
  return out;
}

bool add(RelayStore& s, std::string_view workflow, int32_t pos0, std::vector<int32_t> tokens,
         int32_t next_use = -1) {
  const auto n = static_cast<int32_t>(tokens.size());
  return s.add(workflow, "agent", pos0, std::move(tokens), kv_of(n, 0), kv_of(n, 0.5f), next_use);
}

RelayStoreOptions store_options(int32_t min_tokens, size_t max_bytes = 1 << 20) {
  RelayStoreOptions o;
  o.min_tokens = min_tokens;
  o.max_bytes = max_bytes;
  return o;
}

TEST(RelayStoreTest, FindsQuotedRunsAnywhereLongestFirst) {
  RelayStore s(kLayers, kDim, store_options(4));
  ASSERT_TRUE(add(s, "w", 100, run_of(20, 500)));  // tokens 500..519
  ASSERT_TRUE(add(s, "w", 50, run_of(10, 900)));   // tokens 900..909
  ASSERT_FALSE(add(s, "w", 0, run_of(3, 700)));    // shorter than a window
  // prompt: 7 others, 500..511, 3 others, 903..909, 2 others
  std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6, 7};
  for (int32_t t : run_of(12, 500)) prompt.push_back(t);
  prompt.insert(prompt.end(), {8, 9, 10});
  for (int32_t t : run_of(7, 903)) prompt.push_back(t);
  prompt.insert(prompt.end(), {11, 12});
  const auto matches = s.find("w", prompt, 0, static_cast<int32_t>(prompt.size()));
  ASSERT_EQ(matches.size(), 2u);
  EXPECT_EQ(matches[0].prompt_begin, 7);
  EXPECT_EQ(matches[0].length, 12);
  EXPECT_EQ(matches[0].output_begin, 0);
  EXPECT_EQ(matches[1].prompt_begin, 22);
  EXPECT_EQ(matches[1].length, 7);
  EXPECT_EQ(matches[1].output_begin, 3);
  // The search range is respected, and another workflow sees nothing.
  EXPECT_TRUE(s.find("w", prompt, 0, 10).empty());
  const auto clipped = s.find("w", prompt, 9, 19);
  ASSERT_EQ(clipped.size(), 1u);
  EXPECT_EQ(clipped[0].prompt_begin, 9);
  EXPECT_EQ(clipped[0].length, 10);
  EXPECT_EQ(clipped[0].output_begin, 2);
  EXPECT_TRUE(s.find("other", prompt, 0, static_cast<int32_t>(prompt.size())).empty());
}

TEST(RelayStoreTest, LoadsTheHalfFloatsOfTheMatchAndTheirPositions) {
  RelayStore s(kLayers, kDim, store_options(4));
  ASSERT_TRUE(add(s, "w", 100, run_of(20, 500)));
  const std::vector<int32_t> prompt = run_of(8, 505);
  const auto m = s.find("w", prompt, 0, 8);
  ASSERT_EQ(m.size(), 1u);
  std::vector<float> k(8 * kDim), v(8 * kDim);
  EXPECT_EQ(s.load(m[0], 1, k.data(), v.data()), 105);
  for (int32_t t = 0; t < 8; ++t) {
    for (int32_t e = 0; e < kDim; ++e) {
      const float want = static_cast<float>(1000 + (t + 5) * 4 + e) / 8;
      EXPECT_EQ(k[static_cast<size_t>(t * kDim + e)], fp16_to_fp32(fp32_to_fp16(want)));
      EXPECT_EQ(v[static_cast<size_t>(t * kDim + e)], fp16_to_fp32(fp32_to_fp16(0.5f + want)));
    }
  }
}

TEST(RelayStoreTest, EvictsUnhintedFirstThenTheFurthestNextUse) {
  // Each output of 8 tokens takes 8*4 + 2*2*8*4*2 = 288 bytes; room for 3.
  RelayStore s(kLayers, kDim, store_options(4, 3 * 288));
  ASSERT_TRUE(add(s, "w", 0, run_of(8, 100), /*next_use=*/1));
  ASSERT_TRUE(add(s, "w", 0, run_of(8, 200), /*next_use=*/5));
  ASSERT_TRUE(add(s, "w", 0, run_of(8, 300)));  // no hint
  auto present = [&](int32_t first) { return !s.find("w", run_of(8, first), 0, 8).empty(); };
  ASSERT_TRUE(add(s, "w", 0, run_of(8, 400)));  // evicts the unhinted one
  EXPECT_EQ(s.stats().evicted, 1);
  EXPECT_FALSE(present(300));
  ASSERT_TRUE(add(s, "w", 0, run_of(8, 500), 2));  // the unhinted 400 goes
  EXPECT_FALSE(present(400));
  ASSERT_TRUE(add(s, "w", 0, run_of(8, 600), 3));  // then the one due in 5 steps
  EXPECT_FALSE(present(200));
  EXPECT_TRUE(present(100));
  EXPECT_TRUE(present(500));
  EXPECT_TRUE(present(600));
  // Once a hinted output's next use has passed it counts as unhinted.
  for (int i = 0; i < 2; ++i) s.tick();
  ASSERT_TRUE(add(s, "w", 0, run_of(8, 700), 9));
  EXPECT_FALSE(present(100));
  EXPECT_EQ(s.stats().outputs, 3);
  EXPECT_EQ(s.stats().bytes, 3 * 288);
}

// --- Through the scheduler on stories260K ----------------------------------

constexpr int32_t kCtx = 256;

Model& model() {
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

std::unique_ptr<PagedKvCache> cache(const std::string& codec = "f16") {
  PagedKvCacheOptions o;
  o.layer_codecs = *plan_kv_codecs(codec, "", model().config().n_layers);
  o.block_tokens = 16;
  o.n_ctx = kCtx;
  o.n_seq = 2;
  o.model_fingerprint = model().fingerprint();
  return std::move(PagedKvCache::create(model().kv_shape(), o)).value();
}

std::vector<int32_t> words(int32_t n, int32_t salt) {
  std::vector<int32_t> v;
  for (int32_t i = 0; i < n; ++i) v.push_back(30 + (i * 13 + salt * 31) % 450);
  return v;
}

struct Outcome {
  std::vector<int32_t> tokens;
  RequestUsage usage;
};

// Runs one request to the end.
Outcome run(Scheduler& s, std::vector<int32_t> prompt, int32_t max_tokens,
            const std::string& workflow) {
  RequestParams p;
  p.prompt = std::move(prompt);
  p.max_tokens = max_tokens;
  p.sampling.temperature = 0;
  p.stop_at_end_of_generation = false;
  p.workflow = workflow;
  p.agent = "agent";
  Outcome out;
  bool done = false;
  auto id = s.submit(std::move(p), [&](const RequestEvent& e) {
    if (e.token >= 0) out.tokens.push_back(e.token);
    if (e.finish != FinishReason::kNone) {
      out.usage = e.usage;
      done = true;
    }
    return true;
  });
  KVF_CHECK(id.ok());
  while (!done) s.step();
  return out;
}

SchedulerOptions relay_options(double ratio) {
  SchedulerOptions o;
  o.max_running = 2;
  o.n_ctx = kCtx;
  o.relay_memory_bytes = 64 << 20;
  o.relay_min_tokens = 8;
  o.relay_recompute_ratio = ratio;
  return o;
}

// Agent A writes; agent B's prompt is its own instructions, A's output, and
// a question.
struct Chain {
  std::vector<int32_t> a_prompt = [] {
    auto v = words(30, 1);
    v.insert(v.begin(), 1);
    return v;
  }();
  std::vector<int32_t> b_prompt(const std::vector<int32_t>& a_output) const {
    std::vector<int32_t> v = {1};
    for (int32_t t : words(21, 2)) v.push_back(t);
    v.insert(v.end(), a_output.begin(), a_output.end());
    for (int32_t t : words(9, 3)) v.push_back(t);
    return v;
  }
};

TEST(RelaySchedulerTest, QuotedOutputRecomputedFullyGeneratesTheColdResult) {
  Chain chain;
  auto kv = cache();
  Scheduler s(model(), *kv, relay_options(1.0));
  const Outcome a = run(s, chain.a_prompt, 48, "w");
  ASSERT_EQ(a.tokens.size(), 48u);
  EXPECT_EQ(s.stats().relay.outputs, 1);
  // The output the sequence holds: all generated tokens but the last.
  const std::vector<int32_t> quoted(a.tokens.begin(), a.tokens.end() - 1);
  const Outcome b = run(s, chain.b_prompt(quoted), 24, "w");
  EXPECT_EQ(b.usage.relay_tokens, 47);
  EXPECT_EQ(b.usage.relay_recomputed_tokens, 47);

  auto cold_kv = cache();
  SchedulerOptions cold_options = relay_options(1.0);
  cold_options.relay_memory_bytes = 0;
  Scheduler cold(model(), *cold_kv, cold_options);
  const Outcome want = run(cold, chain.b_prompt(quoted), 24, "w");
  EXPECT_EQ(want.usage.relay_tokens, 0);
  EXPECT_EQ(b.tokens, want.tokens);
  kv->check_invariants();
}

TEST(RelaySchedulerTest, PartialRecomputationReusesTheRestAndStaysInItsWorkflow) {
  Chain chain;
  auto kv = cache();
  Scheduler s(model(), *kv, relay_options(0.25));
  const Outcome a = run(s, chain.a_prompt, 48, "w");
  const std::vector<int32_t> quoted(a.tokens.begin(), a.tokens.end() - 1);
  const Outcome b = run(s, chain.b_prompt(quoted), 16, "w");
  EXPECT_EQ(b.usage.relay_tokens, 47);
  // ceil(0.25 * n) per chunk of the model's batch (64 tokens: one chunk).
  EXPECT_EQ(b.usage.relay_recomputed_tokens, 12);
  EXPECT_EQ(b.usage.computed_tokens, 1 + 21 + 9 + 12);
  EXPECT_EQ(b.tokens.size(), 16u);
  // Another workflow never sees w's outputs.
  const Outcome other = run(s, chain.b_prompt(quoted), 4, "v");
  EXPECT_EQ(other.usage.relay_tokens, 0);
  const ServingStats stats = s.stats();
  EXPECT_EQ(stats.relay_tokens, 47);
  EXPECT_EQ(stats.relay.matches, 1);
  kv->check_invariants();
}

TEST(RelaySchedulerTest, CachesThatCannotRewriteRowsPrefillNormally) {
  Chain chain;
  auto kv = cache("kivi2");
  Scheduler s(model(), *kv, relay_options(0.25));
  const Outcome a = run(s, chain.a_prompt, 40, "w");
  const std::vector<int32_t> quoted(a.tokens.begin(), a.tokens.end() - 1);
  const Outcome b = run(s, chain.b_prompt(quoted), 8, "w");
  EXPECT_EQ(b.usage.relay_tokens, 0);
  EXPECT_EQ(b.tokens.size(), 8u);
  kv->check_invariants();
}

}  // namespace
}  // namespace kvforge
