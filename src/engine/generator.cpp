#include "engine/generator.h"

#include <chrono>

#include <fmt/format.h>

#include "model/model.h"

namespace kvforge {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Result<GenerationStats> generate(Model& model, KvCache& kv, SeqId seq, int32_t capacity_tokens,
                                 std::span<const int32_t> prompt, const GenerationOptions& options,
                                 Sampler& sampler, const GenerationCallbacks& callbacks) {
  GenerationStats stats;
  if (prompt.empty()) return invalid_argument("the prompt is empty (it needs at least one token)");
  const int32_t start_pos = kv.n_tokens(seq);
  if (static_cast<int64_t>(start_pos) + static_cast<int64_t>(prompt.size()) > capacity_tokens) {
    return out_of_range(fmt::format(
        "the prompt has {} tokens but the context holds {} (raise -c/--ctx-size or shorten "
        "the prompt)",
        prompt.size() + static_cast<size_t>(start_pos), capacity_tokens));
  }
  const int32_t n_vocab = model.config().n_vocab;
  std::vector<float> logits(static_cast<size_t>(n_vocab));
  // History for repetition penalties: the prompt followed by generated tokens.
  std::vector<int32_t> history(prompt.begin(), prompt.end());
  const int32_t planned = options.n_predict < 0 ? capacity_tokens : options.n_predict;
  history.reserve(history.size() + static_cast<size_t>(planned));

  auto t0 = std::chrono::steady_clock::now();
  // A fresh sequence first takes over whatever prefix the cache already holds.
  const int32_t reused = start_pos == 0 ? kv.reuse_prefix(seq, prompt) : 0;
  const int32_t prompt_end = start_pos + static_cast<int32_t>(prompt.size());
  kv.begin_prompt(seq, prompt_end);
  KVF_RETURN_IF_ERROR(model.forward(prompt.subspan(static_cast<size_t>(reused)), start_pos + reused,
                                    kv, seq, LogitsFor::kLastToken, logits.data()));
  stats.kv_bytes_before_press = kv.sequence_bytes(seq);
  KVF_RETURN_IF_ERROR(kv.end_prompt(seq));
  stats.kv_bytes_after_press = kv.sequence_bytes(seq);
  stats.prompt_seconds = seconds_since(t0);
  stats.n_prompt_tokens = static_cast<int32_t>(prompt.size()) - reused;
  stats.n_reused_tokens = reused;

  int32_t pos = start_pos + static_cast<int32_t>(prompt.size());
  while (options.n_predict < 0 || stats.n_generated < options.n_predict) {
    const int32_t id = sampler.sample(logits, history);
    history.push_back(id);
    ++stats.n_generated;
    const bool keep_going = !callbacks.on_token || callbacks.on_token(id);
    const bool end = options.stop_at_end_of_generation && callbacks.is_end_of_generation &&
                     callbacks.is_end_of_generation(id);
    if (!keep_going || end) break;
    if (options.n_predict >= 0 && stats.n_generated >= options.n_predict) break;
    if (pos >= capacity_tokens) {
      stats.context_full = true;
      break;
    }
    const int32_t next[1] = {id};
    t0 = std::chrono::steady_clock::now();
    KVF_RETURN_IF_ERROR(model.forward(next, pos, kv, seq, LogitsFor::kLastToken, logits.data()));
    KVF_RETURN_IF_ERROR(kv.end_decode_step(seq));
    stats.decode_seconds += seconds_since(t0);
    ++stats.n_decode_steps;
    ++pos;
  }
  stats.kv_bytes_end = kv.sequence_bytes(seq);
  stats.n_positions_end = kv.n_tokens(seq);
  return stats;
}

}  // namespace kvforge
