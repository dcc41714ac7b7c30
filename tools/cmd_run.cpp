// kvforge run: generate text from a prompt, streaming it as it is produced.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "command.h"
#include "common.h"
#include "engine/generator.h"
#include "engine/sampler.h"
#include "kv/paged_kv_cache.h"

namespace kvforge::cli {
namespace {

struct RunArgs {
  ModelArgs model;
  std::string prompt;
  std::string prompt_file;
  std::string prompts_file;
  std::string prompt_cache;
  int32_t n_predict = 128;
  bool ignore_eos = false;
  bool no_display_prompt = false;
  SamplingParams sampling;
};

// The prompts of a --prompts file: one per line, empty lines skipped.
std::vector<std::string> split_prompts(const std::string& text) {
  std::vector<std::string> prompts;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) prompts.push_back(std::move(line));
    begin = end + 1;
  }
  return prompts;
}

// "prefix cache: 2 of 3 lookups hit, 512 of 700 prompt tokens reused (73.1%), 40 blocks cached,
// 0 evicted[, 1 f32 window of 4.5 MiB kept for exact hits]"
std::string describe_prefix_cache(const PagedKvCache& cache) {
  const PrefixCacheStats s = cache.prefix_stats();
  std::string text = fmt::format(
      "prefix cache: {} of {} lookups hit, {} of {} prompt tokens reused ({:.1f}%), {} blocks "
      "cached, {} evicted",
      s.hits, s.lookups, s.hit_tokens, s.lookup_tokens, 100.0 * s.hit_rate(), s.cached_blocks,
      s.evicted_blocks);
  if (const StagedWindowCache* windows = cache.staged_windows()) {
    text += fmt::format(", {} f32 window{} of {} kept for exact hits", windows->n_windows(),
                        windows->n_windows() == 1 ? "" : "s",
                        format_bytes(static_cast<double>(windows->bytes())));
  }
  return text;
}

int run(const RunArgs& a) {
  const int sources =
      int(!a.prompt.empty()) + int(!a.prompt_file.empty()) + int(!a.prompts_file.empty());
  if (sources > 1) return fail("give one of -p, -f and --prompts");
  if (!a.prompts_file.empty() && !a.prompt_cache.empty()) {
    return fail("--prompt-cache keeps one prompt's KV; it cannot be combined with --prompts");
  }
  if (auto s = a.sampling.validate(); !s.ok()) return fail(s.message());
  std::vector<std::string> prompts = {a.prompt};
  if (!a.prompt_file.empty() || !a.prompts_file.empty()) {
    auto text = read_text_file(a.prompt_file.empty() ? a.prompts_file : a.prompt_file);
    if (!text.ok()) return fail(text.status().message());
    prompts = a.prompt_file.empty() ? split_prompts(*text) : std::vector<std::string>{*text};
    if (prompts.empty()) return fail(fmt::format("{} holds no prompt", a.prompts_file));
  }
  auto loaded = load_model(a.model);
  if (!loaded.ok()) return fail(loaded.status().to_string());
  Model& model = *loaded->model;
  const Tokenizer& tok = *loaded->tokenizer;

  std::vector<std::vector<int32_t>> prompt_ids;
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int32_t> ids = tok.encode(prompts[i], /*add_special=*/true, /*parse_special=*/true);
    const std::string which = prompts.size() > 1 ? fmt::format("prompt {}", i + 1) : "the prompt";
    if (ids.empty())
      return fail(fmt::format("{} tokenized to nothing; give a prompt with -p", which));
    if (static_cast<int64_t>(ids.size()) > loaded->n_ctx) {
      return fail(
          fmt::format("{} has {} tokens but the context holds {} (raise -c/--ctx-size or shorten "
                      "the prompt)",
                      which, ids.size(), loaded->n_ctx));
    }
    prompt_ids.push_back(std::move(ids));
  }
  auto kv = make_kv_cache(model, a.model, loaded->n_ctx, 1, kPrefixCacheMemoryFraction);
  if (!kv.ok()) return fail(kv.status().message());
  auto* paged = dynamic_cast<PagedKvCache*>(kv->get());
  int32_t cached = 0;  // prompt tokens whose KV the prompt cache file supplies
  if (!a.prompt_cache.empty() && paged != nullptr && std::filesystem::exists(a.prompt_cache)) {
    const std::vector<int32_t>& ids = prompt_ids.front();
    if (auto s = paged->restore(SeqId{0}, a.prompt_cache); !s.ok()) return fail(s.message());
    const std::span<const int32_t> saved = paged->tokens(SeqId{0});
    const auto common = static_cast<int32_t>(
        std::mismatch(saved.begin(), saved.end(), ids.begin(), ids.end()).first - saved.begin());
    // Keep the matching prefix, but always compute the prompt's last token.
    cached = std::min(common, static_cast<int32_t>(ids.size()) - 1);
    if (!paged->truncate(SeqId{0}, cached).ok()) {
      cached = 0;  // the codec cannot roll back that far: recompute everything
      (void)paged->truncate(SeqId{0}, 0);
    }
    std::fprintf(stderr, "prompt cache: %d of %zu prompt tokens taken from %s\n", cached,
                 ids.size(), a.prompt_cache.c_str());
  }

  Sampler sampler(a.sampling, model.config().n_vocab);
  GenerationOptions options;
  options.n_predict = a.n_predict;
  options.stop_at_end_of_generation = !a.ignore_eos;
  GenerationCallbacks callbacks;
  callbacks.on_token = [&](int32_t id) {
    if (!tok.is_end_of_generation(id)) {
      const std::string piece = tok.token_to_piece(id);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    return true;
  };
  callbacks.is_end_of_generation = [&](int32_t id) { return tok.is_end_of_generation(id); };

  // Prompts run one after another in sequence 0; releasing it leaves its full
  // blocks in the prefix cache, where a later prompt that starts the same way
  // finds them.
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (i > 0) (*kv)->release(SeqId{0});
    if (!a.no_display_prompt) {
      std::fputs(prompts[i].c_str(), stdout);
      std::fflush(stdout);
    }
    auto stats =
        generate(model, **kv, SeqId{0}, loaded->n_ctx,
                 std::span<const int32_t>(prompt_ids[i]).subspan(static_cast<size_t>(cached)),
                 options, sampler, callbacks);
    std::fputs("\n", stdout);
    if (!stats.ok()) return fail(stats.status().message());
    if (!a.prompt_cache.empty()) {
      if (paged == nullptr) return fail("--prompt-cache needs the paged KV cache");
      if (auto s = paged->save(SeqId{0}, a.prompt_cache); !s.ok()) return fail(s.message());
    }
    std::fprintf(stderr,
                 "\nprompt: %d tokens, %.1f tok/s, %d reused | decode: %d tokens, %.1f tok/s | KV "
                 "cache: %s (%s/token, %s) | threads: %d | seed: %llu\n",
                 stats->n_prompt_tokens, stats->prompt_tokens_per_second(), stats->n_reused_tokens,
                 stats->n_generated, stats->decode_tokens_per_second(),
                 format_bytes(double((*kv)->bytes_used())).c_str(),
                 format_bytes(double((*kv)->bytes_per_token())).c_str(),
                 paged != nullptr ? paged->codec_plan().c_str() : a.model.kv_codec.c_str(),
                 model.n_threads(), static_cast<unsigned long long>(sampler.seed()));
    if (!a.model.press.empty() || !a.model.press_layers.empty()) {
      // Bytes per position the sequence's KV takes: after the prefill, once
      // the prompt was pressed, and at the end.
      const auto prompt_positions = static_cast<double>(prompt_ids[i].size());
      std::fprintf(
          stderr,
          "press: KV per position %s before, %s after the prompt press, %s at the end "
          "(%d positions) | %s\n",
          format_bytes(double(stats->kv_bytes_before_press) / prompt_positions).c_str(),
          format_bytes(double(stats->kv_bytes_after_press) / prompt_positions).c_str(),
          format_bytes(double(stats->kv_bytes_end) / std::max(1, stats->n_positions_end)).c_str(),
          stats->n_positions_end,
          paged != nullptr ? paged->press_plan().c_str() : a.model.press.c_str());
    }
    if (stats->context_full)
      std::fprintf(stderr, "stopped: the context (-c %d) is full\n", loaded->n_ctx);
  }
  if (paged != nullptr && paged->prefix_sharing_enabled() && prompts.size() > 1) {
    std::fprintf(stderr, "%s\n", describe_prefix_cache(*paged).c_str());
  }
  return 0;
}

KVFORGE_REGISTER_COMMAND(
    run_command, "run", "Generate text from a prompt", [](CLI::App& app) -> std::function<int()> {
      auto a = std::make_shared<RunArgs>();
      add_model_options(app, a->model);
      app.add_option("-p,--prompt", a->prompt, "Prompt text");
      app.add_option("-f,--file", a->prompt_file, "Read the prompt from a file");
      app.add_option("--prompts", a->prompts_file,
                     "Run every line of a file as a prompt, one after another on one KV cache "
                     "(prompts that start alike reuse each other's KV through the prefix cache)");
      app.add_option("--prompt-cache", a->prompt_cache,
                     "KV of the prompt is loaded from this file when it exists (its matching "
                     "prefix is not recomputed) and saved to it afterwards");
      app.add_option("-n,--n-predict", a->n_predict, "Tokens to generate (-1: until end)")
          ->check(CLI::Range(-1, 1 << 24));
      app.add_flag("--ignore-eos", a->ignore_eos, "Keep generating past end-of-generation tokens");
      app.add_flag("--no-display-prompt", a->no_display_prompt, "Do not echo the prompt");
      app.add_option("--temp", a->sampling.temperature, "Temperature (0: greedy)");
      app.add_option("--top-k", a->sampling.top_k, "Top-k (0: off)");
      app.add_option("--top-p", a->sampling.top_p, "Top-p (1: off)");
      app.add_option("--min-p", a->sampling.min_p, "Min-p (0: off)");
      app.add_option("--repeat-penalty", a->sampling.repeat_penalty, "Repetition penalty (1: off)");
      app.add_option("--repeat-last-n", a->sampling.repeat_last_n, "Tokens the penalty looks at");
      app.add_option("--presence-penalty", a->sampling.presence_penalty, "Presence penalty");
      app.add_option("--frequency-penalty", a->sampling.frequency_penalty, "Frequency penalty");
      app.add_option("-s,--seed", a->sampling.seed, "Random seed");
      return [a] { return run(*a); };
    });

}  // namespace
}  // namespace kvforge::cli
