// Time to first token for a long shared prefix, by where its KV is
// (docs/tiers.md), through the public Engine API:
//
//   absent  the first request of an engine: the whole prompt is prefilled
//   pool    a second request on that engine: the prefix is in its pool
//   tier    a request on a second engine (a restart, or another instance)
//           whose pool is cold and whose tiers hold what the first wrote
//
// Each request is the shared prefix plus its own short suffix. The second
// engine first serves an unrelated prompt of the same length, as a running
// server would have, so that its cost model has measured the prefill rate;
// the report shows what the model decided and its estimates next to the
// measured times.
//
//   kvforge_tier_ttft -m MODEL --tier SPEC [--tier SPEC...] --text FILE
//                     [--prefix-tokens 4096] [--load auto|always|never] [-t N]
//                     [--kv-mem SIZE]
//
// The tiers must not hold this prefix yet (a new directory, a new Redis key
// prefix): bench/tier_ttft.sh sets that up.
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "kvforge/engine.h"

namespace {

using kvforge::Engine;

struct Outcome {
  std::vector<int32_t> tokens;
  kvforge::RequestUsage usage;
};

Outcome run_one(Engine& engine, std::vector<int32_t> prompt, int32_t max_tokens) {
  kvforge::RequestParams p;
  p.prompt = std::move(prompt);
  p.max_tokens = max_tokens;
  p.sampling.temperature = 0;
  p.stop_at_end_of_generation = false;
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  Outcome out;
  auto id = engine.submit(p, [&](const kvforge::RequestEvent& e) {
    std::lock_guard lock(m);
    if (e.token >= 0) out.tokens.push_back(e.token);
    if (e.finish != kvforge::FinishReason::kNone) {
      out.usage = e.usage;
      done = true;
      cv.notify_all();
    }
    return true;
  });
  if (!id.ok()) {
    fmt::print(stderr, "submit: {}\n", id.status().to_string());
    std::exit(1);
  }
  std::unique_lock lock(m);
  cv.wait(lock, [&] { return done; });
  return out;
}

// Waits until the tiers have written everything queued (write-behind).
void wait_for_writes(const Engine& engine) {
  for (int i = 0; i < 6000; ++i) {
    int64_t queued = 0;
    for (const kvforge::TierUsage& t : engine.stats().tiering.tiers) queued += t.queued;
    if (queued == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::vector<int32_t> text_tokens(const Engine& engine, const std::string& path, size_t offset,
                                 int32_t n) {
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  std::string text = all.str();
  std::vector<int32_t> ids;
  while (static_cast<int32_t>(ids.size()) < n && !text.empty()) {
    ids = engine.tokenize(text.substr(offset % text.size()) + text, true, false);
    text += text;
  }
  ids.resize(static_cast<size_t>(n));
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("TTFT of a long shared prefix: absent, in the pool, on a tier");
  kvforge::EngineOptions o;
  std::string text_path;
  int32_t prefix_tokens = 4096;
  app.add_option("-m,--model", o.model_path, "GGUF model")->required();
  app.add_option("--tier", o.kv.tiers, "Tier spec (repeatable), as --kv-tier")->required();
  app.add_option("--text", text_path, "Text the prompts are cut from")->required();
  app.add_option("--prefix-tokens", prefix_tokens, "Shared prefix length")->capture_default_str();
  app.add_option("--load", o.kv.tier_load, "auto, always or never")->capture_default_str();
  app.add_option("-t,--threads", o.n_threads, "Threads (0: all cores)");
  app.add_option("--kv-mem", o.kv.memory,
                 "KV pool budget (default: the engine's); one context makes the second engine "
                 "load into blocks its warm-up used, as in a busy server");
  CLI11_PARSE(app, argc, argv);
  o.parallel = 1;
  o.n_batch = 512;
  o.n_ctx = prefix_tokens + 64;
  o.relay.memory = "0";

  auto suffix = [](int32_t k) {
    std::vector<int32_t> s;
    for (int32_t i = 0; i < 8; ++i) s.push_back(300 + 17 * k + i);
    return s;
  };
  std::vector<int32_t> prefix;
  auto with = [&](int32_t k) {
    std::vector<int32_t> p = prefix;
    const std::vector<int32_t> s = suffix(k);
    p.insert(p.end(), s.begin(), s.end());
    return p;
  };

  fmt::print("model {}, tiers:", o.model_path);
  for (const std::string& t : o.kv.tiers) fmt::print(" {}", t);
  fmt::print(", load {}, prefix {} tokens\n\n", o.kv.tier_load, prefix_tokens);
  fmt::print(
      "| prefix KV | TTFT (s) | tokens reused | decision | est. load (s) | load (s) | "
      "est. recompute (s) |\n|---|---:|---:|---|---:|---:|---:|\n");

  std::vector<int32_t> reference;
  {
    auto first = Engine::create(o);
    if (!first.ok()) {
      fmt::print(stderr, "{}\n", first.status().to_string());
      return 1;
    }
    Engine& a = **first;
    prefix = text_tokens(a, text_path, 0, prefix_tokens);
    const Outcome cold = run_one(a, with(0), 8);
    fmt::print("| absent | {:.3f} | {} | | | | |\n", cold.usage.time_to_first_token,
               cold.usage.reused_tokens);
    const Outcome pool = run_one(a, with(1), 8);
    reference = pool.tokens;
    fmt::print("| pool | {:.3f} | {} | | | | |\n", pool.usage.time_to_first_token,
               pool.usage.reused_tokens);
    wait_for_writes(a);
  }
  auto second = Engine::create(o);
  if (!second.ok()) {
    fmt::print(stderr, "{}\n", second.status().to_string());
    return 1;
  }
  Engine& b = **second;
  // An unrelated prompt of the same length: the prefill rate is measured.
  (void)run_one(b, text_tokens(b, text_path, 7919, prefix_tokens + 8), 1);
  const kvforge::TieringStats before = b.stats().tiering;
  const Outcome tier = run_one(b, with(1), 8);
  const kvforge::TieringStats t = b.stats().tiering;
  const bool loaded = t.decided_load > before.decided_load;
  fmt::print("| tier ({}) | {:.3f} | {} | {} | {:.3f} | {:.3f} | {:.3f} |\n", o.kv.tiers.front(),
             tier.usage.time_to_first_token, tier.usage.reused_tokens,
             loaded ? "load" : "recompute",
             t.estimated_load_seconds - before.estimated_load_seconds,
             t.actual_load_seconds - before.actual_load_seconds,
             t.estimated_recompute_seconds - before.estimated_recompute_seconds);
  fmt::print(
      "\nblocks loaded {}, refused {}, gave up waiting {}; greedy output {} the pool "
      "run's\n",
      t.blocks_loaded - before.blocks_loaded, t.records_refused,
      t.gave_up_waiting - before.gave_up_waiting,
      tier.tokens == reference ? "equals" : "DIFFERS FROM");
  for (const kvforge::TierUsage& u : t.tiers) {
    fmt::print("tier {}: hits {}, misses {}, errors {}, read one block {:.2f} ms\n", u.name, u.hits,
               u.misses, u.get_errors, u.seconds_per_record * 1e3);
  }
  return tier.tokens == reference ? 0 : 2;
}
