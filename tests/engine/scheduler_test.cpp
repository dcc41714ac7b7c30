// The continuous-batching scheduler on a real model (stories260K): requests
// batched together produce what each produces alone, preemption under a
// small KV budget delays requests without changing them, cancellation and
// stopping free the sequence, and bad requests are refused at submit.
#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/stories_model.h"
#include "engine/generator.h"
#include "engine/scheduler.h"
#include "kv/kv_codec_plan.h"
#include "kv/paged_kv_cache.h"
#include "kv/press/kv_press.h"
#include "model/model.h"

namespace kvforge {
namespace {

constexpr int32_t kCtx = 256;

Model& sched_model() {
  return test_util::stories_model(2, 64);
}

std::unique_ptr<PagedKvCache> sched_cache(int32_t n_seq, size_t memory = 0,
                                          const std::string& codec = "f16",
                                          const std::string& press = "") {
  PagedKvCacheOptions o;
  if (!press.empty())
    o.layer_presses = *plan_kv_presses(press, "", sched_model().config().n_layers);
  o.layer_codecs = *plan_kv_codecs(codec, "", sched_model().config().n_layers);
  o.block_tokens = 16;
  o.n_ctx = kCtx;
  o.n_seq = n_seq;
  o.memory_bytes = memory;
  o.model_fingerprint = sched_model().fingerprint();
  auto cache = PagedKvCache::create(sched_model().kv_shape(), o);
  KVF_CHECK(cache.ok());
  return std::move(cache).value();
}

std::vector<int32_t> prompt_of(int32_t n, int32_t salt) {
  std::vector<int32_t> ids = {1};
  for (int32_t i = 1; i < n; ++i) ids.push_back(30 + (i * 13 + salt * 31) % 450);
  return ids;
}

SamplingParams greedy() {
  SamplingParams p;
  p.temperature = 0;
  return p;
}

// What one request generates alone, through generate() on a fresh cache.
std::vector<int32_t> alone(const std::vector<int32_t>& prompt, int32_t max_tokens,
                           const std::string& codec = "f16", const std::string& press = "") {
  auto kv = sched_cache(1, 0, codec, press);
  Sampler sampler(greedy(), sched_model().config().n_vocab);
  GenerationOptions o;
  o.n_predict = max_tokens;
  o.stop_at_end_of_generation = false;
  std::vector<int32_t> out;
  GenerationCallbacks cb;
  cb.on_token = [&](int32_t id) {
    out.push_back(id);
    return true;
  };
  KVF_CHECK(generate(sched_model(), *kv, SeqId{0}, kCtx, prompt, o, sampler, cb).ok());
  return out;
}

struct Collected {
  std::map<RequestId, std::vector<int32_t>> tokens;
  std::map<RequestId, RequestEvent> final_events;
};

SchedulerOptions options(int32_t running) {
  SchedulerOptions o;
  o.max_running = running;
  o.n_ctx = kCtx;
  o.max_batch_tokens = 48;  // prompts are prefilled in several chunks
  o.admission_reserve_tokens = 16;
  return o;
}

RequestSink collect_into(Collected& c) {
  return [&c](const RequestEvent& e) {
    if (e.token >= 0) c.tokens[e.id].push_back(e.token);
    if (e.finish != FinishReason::kNone) c.final_events[e.id] = e;
    return true;
  };
}

RequestParams request(const std::vector<int32_t>& prompt, int32_t max_tokens) {
  RequestParams p;
  p.prompt = prompt;
  p.max_tokens = max_tokens;
  p.sampling = greedy();
  p.stop_at_end_of_generation = false;
  return p;
}

void run_until_idle(Scheduler& s) {
  for (int i = 0; i < 100000 && s.step(); ++i) {
  }
}

class SchedulerCodecTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SchedulerCodecTest, BatchedRequestsGenerateWhatEachGeneratesAlone) {
  const std::string codec = GetParam();
  auto kv = sched_cache(4, 0, codec);
  Scheduler s(sched_model(), *kv, options(4));
  Collected c;
  std::vector<std::pair<RequestId, std::vector<int32_t>>> prompts;
  for (int32_t i = 0; i < 7; ++i) {
    const std::vector<int32_t> prompt = prompt_of(20 + 17 * i, i);
    auto id = s.submit(request(prompt, 24 + 3 * i), collect_into(c));
    ASSERT_TRUE(id.ok());
    prompts.emplace_back(*id, prompt);
  }
  run_until_idle(s);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& [id, prompt] = prompts[i];
    EXPECT_EQ(c.tokens[id], alone(prompt, 24 + 3 * static_cast<int32_t>(i), codec))
        << codec << " request " << i;
    EXPECT_EQ(c.final_events[id].finish, FinishReason::kLength);
    EXPECT_EQ(c.final_events[id].usage.generated_tokens, 24 + 3 * static_cast<int32_t>(i));
  }
  const ServingStats st = s.stats();
  EXPECT_EQ(st.finished, 7);
  EXPECT_EQ(st.running, 0);
  kv->check_invariants();
  EXPECT_EQ(kv->pool().n_free() + kv->prefix_stats().cached_blocks, kv->pool().n_blocks());
}

INSTANTIATE_TEST_SUITE_P(Codecs, SchedulerCodecTest, ::testing::Values("f16", "int4h", "kivi2"));

TEST(SchedulerTest, PreemptionUnderASmallBudgetDelaysButDoesNotChangeRequests) {
  // Room for about two sequences' worth of blocks with four running.
  auto probe = sched_cache(1);
  const size_t block = probe->pool().bytes_per_block();
  auto kv = sched_cache(4, block * 18);
  Scheduler s(sched_model(), *kv, options(4));
  Collected c;
  std::vector<std::pair<RequestId, std::vector<int32_t>>> prompts;
  for (int32_t i = 0; i < 6; ++i) {
    const std::vector<int32_t> prompt = prompt_of(60 + 5 * i, 10 + i);
    prompts.emplace_back(*s.submit(request(prompt, 60), collect_into(c)), prompt);
  }
  int steps = 0;
  while (s.step()) {
    if (++steps % 4 == 0) kv->check_invariants();
    ASSERT_LT(steps, 10000);
  }
  EXPECT_GT(s.stats().preemptions, 0);
  for (const auto& [id, prompt] : prompts) {
    EXPECT_EQ(c.tokens[id], alone(prompt, 60)) << "request " << id;
    EXPECT_EQ(c.final_events[id].finish, FinishReason::kLength);
  }
  EXPECT_EQ(kv->pool().n_free() + kv->prefix_stats().cached_blocks, kv->pool().n_blocks());
}

TEST(SchedulerTest, APerRequestPressAppliesToItsSequenceOnly) {
  const std::string press = "h2o:tokens=64:window=16:every=16";
  auto kv = sched_cache(2);
  Scheduler s(sched_model(), *kv, options(2));
  Collected c;
  const std::vector<int32_t> prompt = prompt_of(150, 3);
  RequestParams pressed = request(prompt, 40);
  pressed.press = press;
  const RequestId a = *s.submit(pressed, collect_into(c));
  const RequestId b = *s.submit(request(prompt, 40), collect_into(c));
  RequestParams bad = request(prompt, 4);
  bad.press = "h9o:ratio=0.5";
  EXPECT_EQ(s.submit(bad, nullptr).status().code(), StatusCode::kInvalidArgument);
  run_until_idle(s);
  EXPECT_EQ(c.tokens[a], alone(prompt, 40, "f16", press));
  EXPECT_EQ(c.tokens[b], alone(prompt, 40));
  EXPECT_NE(c.tokens[a], c.tokens[b]);  // the press changed something
  kv->check_invariants();
}

TEST(SchedulerTest, CancelAndStoppingFreeTheSequence) {
  auto kv = sched_cache(2);
  Scheduler s(sched_model(), *kv, options(2));
  Collected c;
  const RequestId a = *s.submit(request(prompt_of(40, 1), 200), collect_into(c));
  int32_t seen = 0;
  const RequestId b = *s.submit(request(prompt_of(30, 2), 200), [&](const RequestEvent& e) {
    if (e.finish != FinishReason::kNone) c.final_events[e.id] = e;
    return e.token < 0 || ++seen < 5;  // stop after 5 tokens
  });
  for (int i = 0; i < 6; ++i) s.step();
  s.cancel(a);
  s.cancel(12345);  // unknown: ignored
  run_until_idle(s);
  EXPECT_EQ(c.final_events[a].finish, FinishReason::kCancelled);
  EXPECT_EQ(c.final_events[b].finish, FinishReason::kStoppedByUser);
  EXPECT_EQ(c.final_events[b].usage.generated_tokens, 5);
  EXPECT_EQ(s.stats().cancelled, 1);
  EXPECT_EQ(kv->n_tokens(SeqId{0}), 0);
  EXPECT_EQ(kv->n_tokens(SeqId{1}), 0);
  kv->check_invariants();
}

TEST(SchedulerTest, BadRequestsAreRefusedAtSubmit) {
  auto kv = sched_cache(1);
  Scheduler s(sched_model(), *kv, options(1));
  EXPECT_EQ(s.submit(request({}, 5), nullptr).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.submit(request({1, 2}, 0), nullptr).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.submit(request(prompt_of(kCtx, 0), 5), nullptr).status().code(),
            StatusCode::kOutOfRange);
  EXPECT_EQ(s.submit(request({1, 99999}, 5), nullptr).status().code(),
            StatusCode::kInvalidArgument);
  RequestParams bad = request({1, 2}, 5);
  bad.sampling.top_p = 2;
  EXPECT_EQ(s.submit(bad, nullptr).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.stats().submitted, 0);
}

TEST(SchedulerTest, RequestsFromOtherThreadsAllComplete) {
  auto kv = sched_cache(3);
  Scheduler s(sched_model(), *kv, options(3));
  std::thread loop([&] { s.run(); });
  std::mutex m;
  std::map<RequestId, FinishReason> done;
  std::vector<std::thread> clients;
  std::atomic<int> finished{0};
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < 3; ++i) {
        auto id =
            s.submit(request(prompt_of(10 + 7 * i, t * 3 + i), 12), [&](const RequestEvent& e) {
              if (e.finish != FinishReason::kNone) {
                std::lock_guard lock(m);
                done[e.id] = e.finish;
                ++finished;
              }
              return true;
            });
        EXPECT_TRUE(id.ok());
      }
    });
  }
  for (auto& c : clients) c.join();
  for (int i = 0; i < 6000 && finished.load() < 12; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  s.stop();
  loop.join();
  EXPECT_EQ(finished.load(), 12);
  for (const auto& [id, reason] : done) EXPECT_EQ(reason, FinishReason::kLength);
  EXPECT_EQ(s.stats().time_to_first_token.total, 12);
}

}  // namespace
}  // namespace kvforge
