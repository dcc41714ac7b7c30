// Multi-agent chains through the public Engine API (docs/relay.md):
// planner -> solver -> critic -> summariser, each prompt its own
// instructions plus the task and the earlier agents' outputs, several
// workflows at once. Runs the same chains with no KV reuse, with the prefix
// cache only, and with relay at each recompute ratio, and prints per mode
// the time to first token, end-to-end time, reuse ratio and how far greedy
// outputs agree with the run without reuse.
//
// Earlier outputs enter a prompt as their token ids (--splice tokens, the
// default, as a client that keeps token ids would send them) or as their
// text, tokenized again with the rest of the prompt (--splice text): text
// that does not tokenize back to the same ids (typical of random-weight
// models' outputs) leaves relay nothing to match.
//
//   kvforge_relay_chain -m MODEL --text FILE [--workflows 4] [--max-tokens 64]
//                       [--ratios 0,0.15,0.3,1] [-t THREADS] [--ctx N]
//                       [--splice tokens|text]
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "kvforge/engine.h"

namespace {

using kvforge::Engine;
using Clock = std::chrono::steady_clock;

constexpr const char* kRoles[] = {"planner", "solver", "critic", "summariser"};
constexpr const char* kInstructions[] = {
    "You are the planner. Read the story below and write a short plan of what a "
    "retelling must keep.",
    "You are the solver. Follow the plan and retell the story in a few sentences.",
    "You are the critic. Compare the retelling with the plan and say what is missing.",
    "You are the summariser. Combine the plan, the retelling and the critique into one "
    "final summary.",
};
constexpr const char* kSystem =
    "A team of writers works on children's stories. Each member does one job and "
    "answers briefly.\n";

struct AgentResult {
  std::vector<int32_t> output;
  kvforge::RequestUsage usage;
  double seconds = 0;  // submit to the final event
};

// One mode's run: results[workflow][agent].
using ChainResults = std::vector<std::vector<AgentResult>>;

struct Mode {
  std::string name;
  bool prefix = false;
  bool relay = false;
  double ratio = 0;
};

std::vector<std::string> story_tasks(const std::string& path, int32_t n, size_t chars) {
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  const std::string text = all.str();
  std::vector<std::string> tasks;
  size_t at = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (at + chars > text.size()) at = 0;
    tasks.push_back(text.substr(at, chars));
    at += chars * 3;
  }
  return tasks;
}

// The prompt of agent k: system text, its instructions, the task, and the
// earlier outputs in order, spliced as token ids or as text.
std::vector<int32_t> prompt_of(const Engine& engine, int32_t k, const std::string& task,
                               const std::vector<std::vector<int32_t>>& earlier, bool splice_text) {
  std::string head = kSystem;
  head += kInstructions[k];
  head += "\nStory: " + task + "\n";
  if (splice_text) {
    for (size_t j = 0; j < earlier.size(); ++j) {
      head += fmt::format("{} wrote: {}\n", kRoles[j], engine.detokenize(earlier[j], true));
    }
    return engine.tokenize(head + fmt::format("{}:", kRoles[k]), true, false);
  }
  std::vector<int32_t> p = engine.tokenize(head, true, false);
  auto append = [&](const std::string& text) {
    const std::vector<int32_t> ids = engine.tokenize(text, false, false);
    p.insert(p.end(), ids.begin(), ids.end());
  };
  for (size_t j = 0; j < earlier.size(); ++j) {
    append(fmt::format("{} wrote:", kRoles[j]));
    p.insert(p.end(), earlier[j].begin(), earlier[j].end());
    append("\n");
  }
  append(fmt::format("{}:", kRoles[k]));
  return p;
}

ChainResults run_chains(Engine& engine, const std::vector<std::string>& tasks, int32_t max_tokens,
                        bool splice_text) {
  const auto n = static_cast<int32_t>(tasks.size());
  ChainResults results(static_cast<size_t>(n), std::vector<AgentResult>(4));
  std::vector<std::vector<std::vector<int32_t>>> earlier(static_cast<size_t>(n));
  for (int32_t k = 0; k < 4; ++k) {
    // Agent k of every workflow at once.
    std::mutex mutex;
    std::condition_variable done_cv;
    int32_t done = 0;
    std::vector<Clock::time_point> started(static_cast<size_t>(n));
    for (int32_t w = 0; w < n; ++w) {
      kvforge::RequestParams p;
      p.prompt = prompt_of(engine, k, tasks[static_cast<size_t>(w)],
                           earlier[static_cast<size_t>(w)], splice_text);
      p.max_tokens = max_tokens;
      p.sampling.temperature = 0;
      p.stop_at_end_of_generation = false;
      p.workflow = fmt::format("workflow-{}", w);
      p.agent = kRoles[k];
      p.next_use_steps = -1;
      AgentResult* r = &results[static_cast<size_t>(w)][static_cast<size_t>(k)];
      started[static_cast<size_t>(w)] = Clock::now();
      const Clock::time_point t0 = started[static_cast<size_t>(w)];
      auto id = engine.submit(std::move(p), [&, r, t0](const kvforge::RequestEvent& e) {
        if (e.token >= 0) r->output.push_back(e.token);
        if (e.finish != kvforge::FinishReason::kNone) {
          r->usage = e.usage;
          r->seconds = std::chrono::duration<double>(Clock::now() - t0).count();
          std::lock_guard lock(mutex);
          ++done;
          done_cv.notify_all();
        }
        return true;
      });
      if (!id.ok()) {
        fmt::print(stderr, "error: {}\n", id.status().to_string());
        std::exit(1);
      }
    }
    std::unique_lock lock(mutex);
    done_cv.wait(lock, [&] { return done == n; });
    for (int32_t w = 0; w < n; ++w) {
      earlier[static_cast<size_t>(w)].push_back(
          results[static_cast<size_t>(w)][static_cast<size_t>(k)].output);
    }
  }
  return results;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Multi-agent chains with and without KV reuse (relay)"};
  std::string model, text;
  int32_t workflows = 4, max_tokens = 64, threads = 0, ctx = 0;
  size_t task_chars = 600;
  std::vector<double> ratios = {0.0, 0.15, 0.3, 1.0};
  app.add_option("-m,--model", model, "GGUF model")->required();
  app.add_option("--text", text, "text file the stories are cut from")->required();
  app.add_option("--workflows", workflows, "chains run at once")->check(CLI::Range(1, 64));
  app.add_option("--max-tokens", max_tokens, "tokens each agent writes")
      ->check(CLI::Range(1, 4096));
  app.add_option("--task-chars", task_chars, "characters of story per chain");
  app.add_option("--ratios", ratios, "relay recompute ratios")->delimiter(',');
  app.add_option("-t,--threads", threads, "threads (0: all cores)");
  app.add_option("--ctx", ctx, "context per sequence (0: the engine's default)");
  std::string splice = "tokens";
  app.add_option("--splice", splice, "earlier outputs enter prompts as token ids or as text")
      ->check(CLI::IsMember({"tokens", "text"}));
  CLI11_PARSE(app, argc, argv);
  if (!std::ifstream(text)) {
    fmt::print(stderr, "error: cannot read {}\n", text);
    return 1;
  }
  const std::vector<std::string> tasks = story_tasks(text, workflows, task_chars);

  std::vector<Mode> modes = {{"no reuse", false, false, 0}, {"prefix cache", true, false, 0}};
  for (double r : ratios) modes.push_back({fmt::format("relay r={:g}", r), true, true, r});

  fmt::print(
      "| mode | mean TTFT (s) | TTFT agents 2-4 (s) | chain end-to-end (s) | prompt tokens | "
      "reuse ratio | relay tokens | recomputed | greedy agreement | identical outputs |\n");
  fmt::print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  ChainResults reference;
  for (const Mode& m : modes) {
    kvforge::EngineOptions o;
    o.model_path = model;
    o.n_threads = threads;
    o.n_ctx = ctx;
    o.parallel = workflows;
    o.n_batch = std::max(256, workflows);
    o.kv.prefix_sharing = m.prefix;
    o.relay.memory = m.relay ? "256MiB" : "0";
    o.relay.recompute_ratio = m.ratio;
    auto engine = Engine::create(o);
    if (!engine.ok()) {
      fmt::print(stderr, "error: {}\n", engine.status().to_string());
      return 1;
    }
    const Clock::time_point t0 = Clock::now();
    ChainResults results = run_chains(**engine, tasks, max_tokens, splice == "text");
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    if (reference.empty()) reference = results;

    std::vector<double> ttft, ttft_later;
    int64_t prompt = 0, reused = 0, relay = 0, recomputed = 0, agree = 0, total = 0;
    int32_t identical = 0, outputs = 0;
    for (size_t w = 0; w < results.size(); ++w) {
      for (size_t k = 0; k < 4; ++k) {
        const AgentResult& r = results[w][k];
        ttft.push_back(r.usage.time_to_first_token);
        if (k > 0) ttft_later.push_back(r.usage.time_to_first_token);
        prompt += r.usage.prompt_tokens;
        reused += r.usage.reused_tokens;
        relay += r.usage.relay_tokens;
        recomputed += r.usage.relay_recomputed_tokens;
        const std::vector<int32_t>& want = reference[w][k].output;
        for (size_t i = 0; i < std::min(want.size(), r.output.size()); ++i) {
          agree += want[i] == r.output[i] ? 1 : 0;
        }
        total += static_cast<int64_t>(want.size());
        identical += want == r.output ? 1 : 0;
        ++outputs;
      }
    }
    const double reuse =
        prompt > 0 ? static_cast<double>(reused + relay - recomputed) / static_cast<double>(prompt)
                   : 0;
    fmt::print("| {} | {:.3f} | {:.3f} | {:.2f} | {} | {:.1f}% | {} | {} | {:.1f}% | {}/{} |\n",
               m.name, mean(ttft), mean(ttft_later), wall, prompt, 100 * reuse, relay, recomputed,
               total > 0 ? 100.0 * static_cast<double>(agree) / static_cast<double>(total) : 0,
               identical, outputs);
    std::fflush(stdout);
  }
  return 0;
}
