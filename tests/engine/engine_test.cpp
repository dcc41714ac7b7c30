// The public Engine: creation errors, model info, tokenizer round trip,
// requests completing from several threads, and destruction cancelling
// what is still queued.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "kvforge/engine.h"

namespace kvforge {
namespace {

EngineOptions stories(int32_t parallel = 2) {
  EngineOptions o;
  o.model_path = std::string(KVFORGE_SOURCE_DIR) + "/models/stories260K.gguf";
  o.n_threads = 2;
  o.parallel = parallel;
  o.n_batch = 64;
  return o;
}

TEST(EngineTest, BadOptionsAreErrorsNamingTheProblem) {
  EngineOptions missing = stories();
  missing.model_path = "/nonexistent/model.gguf";
  EXPECT_FALSE(Engine::create(missing).ok());
  EngineOptions parallel = stories(0);
  EXPECT_NE(Engine::create(parallel).status().message().find("parallel"), std::string::npos);
  EngineOptions codec = stories();
  codec.kv.codec = "int3";
  EXPECT_NE(Engine::create(codec).status().message().find("int3"), std::string::npos);
  EngineOptions press = stories();
  press.kv.press = "nope:ratio=0.5";
  EXPECT_NE(Engine::create(press).status().message().find("unknown press"), std::string::npos);
  EngineOptions memory = stories();
  memory.kv.memory = "lots";
  EXPECT_FALSE(Engine::create(memory).ok());
}

TEST(EngineTest, InfoTokenizerAndRequests) {
  auto made = Engine::create(stories(3));
  ASSERT_TRUE(made.ok()) << made.status().to_string();
  Engine& engine = **made;
  const ModelInfo& info = engine.info();
  EXPECT_EQ(info.architecture, "llama");
  EXPECT_EQ(info.n_ctx, 512);
  EXPECT_EQ(info.n_vocab, 512);
  EXPECT_EQ(info.bos_id, 1);
  EXPECT_GT(info.kv_bytes_per_token, 0);
  const std::vector<int32_t> ids = engine.tokenize("Once upon a time", true, false);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(engine.detokenize(ids, true), "Once upon a time");

  std::mutex m;
  std::condition_variable cv;
  int finished = 0;
  std::vector<std::vector<int32_t>> outputs(6);
  std::vector<std::thread> clients;
  for (int i = 0; i < 6; ++i) {
    clients.emplace_back([&, i] {
      RequestParams p;
      p.prompt = ids;
      p.max_tokens = 8 + i;
      p.sampling.temperature = 0;
      auto id = engine.submit(p, [&, i](const RequestEvent& e) {
        std::lock_guard lock(m);
        if (e.token >= 0) outputs[static_cast<size_t>(i)].push_back(e.token);
        if (e.finish != FinishReason::kNone) {
          EXPECT_EQ(e.usage.prompt_tokens, static_cast<int32_t>(ids.size()));
          ++finished;
          cv.notify_all();
        }
        return true;
      });
      EXPECT_TRUE(id.ok());
    });
  }
  for (auto& t : clients) t.join();
  std::unique_lock lock(m);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(120), [&] { return finished == 6; }));
  // Greedy: the longer outputs extend the shorter ones (or stopped at EOS).
  for (int i = 1; i < 6; ++i) {
    const auto& a = outputs[static_cast<size_t>(i - 1)];
    const auto& b = outputs[static_cast<size_t>(i)];
    ASSERT_LE(a.size(), b.size());
    EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin()));
  }
  const ServingStats st = engine.stats();
  EXPECT_EQ(st.finished, 6);
  EXPECT_GT(st.cache.blocks_total, 0);
  // Every admitted prompt counts, whether computed or taken from the cache.
  EXPECT_EQ(st.prompt_tokens, 6 * static_cast<int64_t>(ids.size()));
}

TEST(EngineTest, RequestPressSpecsAreCheckedAtSubmit) {
  EXPECT_TRUE(check_press_spec("").ok());
  EXPECT_TRUE(check_press_spec("snapkv:ratio=0.5").ok());
  const Status unknown = check_press_spec("nope:ratio=0.5");
  EXPECT_EQ(unknown.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("snapkv"), std::string::npos) << unknown.message();
  EXPECT_FALSE(check_press_spec("snapkv:ratio=2").ok());

  auto made = Engine::create(stories(1));
  ASSERT_TRUE(made.ok());
  RequestParams p;
  p.prompt = {1, 100, 200};
  p.max_tokens = 2;
  p.press = "nope";
  bool called = false;
  auto refused = (*made)->submit(p, [&](const RequestEvent&) { return called = true; });
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("unknown press"), std::string::npos);
  EXPECT_FALSE(called);
}

TEST(EngineTest, DestroyingTheEngineCancelsWhatIsLeft) {
  std::atomic<int> cancelled{0};
  {
    auto made = Engine::create(stories(1));
    ASSERT_TRUE(made.ok());
    for (int i = 0; i < 4; ++i) {
      RequestParams p;
      p.prompt = {1, 100, 200};
      p.max_tokens = 400;
      p.stop_at_end_of_generation = false;
      ASSERT_TRUE((*made)
                      ->submit(p,
                               [&](const RequestEvent& e) {
                                 if (e.finish == FinishReason::kCancelled) ++cancelled;
                                 return true;
                               })
                      .ok());
    }
  }
  EXPECT_GE(cancelled.load(), 3);
}

}  // namespace
}  // namespace kvforge
