// SamplingParams: how the next token is drawn from a step's logits. Plain
// data with documented ranges; the meanings and defaults follow llama.cpp's
// command line (docs/sampling.md). validate() checks the ranges.
#pragma once

#include <cstdint>

#include "kvforge/status.h"

namespace kvforge {

struct SamplingParams {
  // The seed value that asks for a fresh random seed (llama.cpp's
  // LLAMA_DEFAULT_SEED); Sampler::seed() reports the one actually drawn.
  static constexpr uint64_t kRandomSeed = 0xFFFFFFFF;

  // Divides the logits before the softmax; <= 0 selects the most likely token
  // (greedy) and skips every later stage. --temp
  float temperature = 0.8f;
  // Keep only the top_k most likely tokens; <= 0 keeps all. --top-k
  int32_t top_k = 40;
  // Nucleus sampling (Holtzman et al., 2019, "The Curious Case of Neural Text
  // Degeneration"): keep the smallest set of most likely tokens whose
  // probability sums to at least top_p; 1 keeps all. Range (0, 1]. --top-p
  float top_p = 0.95f;
  // Min-p sampling (Nguyen et al., 2024, "Turning Up the Heat: Min-p Sampling
  // for Creative and Coherent LLM Outputs"): drop tokens whose probability is
  // below min_p times the most likely token's; 0 keeps all. Range [0, 1].
  // --min-p
  float min_p = 0.05f;
  // Repetition penalty (Keskar et al., 2019, CTRL) as llama.cpp applies it: a
  // repeated token's logit is divided by it when positive and multiplied by it
  // otherwise; 1 disables. Must be > 0. --repeat-penalty
  float repeat_penalty = 1.0f;
  // How many of the most recent tokens the penalties look at; 0 disables the
  // penalties, -1 uses all the history passed to sample(). --repeat-last-n
  int32_t repeat_last_n = 64;
  // OpenAI's presence and frequency penalties: a token seen c times in the
  // window loses c * frequency_penalty + (c > 0) * presence_penalty from its
  // logit. Range [-2, 2]; negative values encourage repetition.
  // --presence-penalty, --frequency-penalty
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // Seed of the random generator; kRandomSeed draws one from the OS. --seed
  uint64_t seed = kRandomSeed;

  // Rejects values outside the ranges documented above, naming the option:
  // "top-p must be in (0, 1], got 1.5".
  [[nodiscard]] Status validate() const;
};

}  // namespace kvforge
