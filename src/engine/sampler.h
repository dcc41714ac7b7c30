// Token sampler: turns one step's logits into the next token id.
//
// SamplingParams is a plain struct whose defaults and meanings follow the
// llama.cpp command line (docs/sampling.md lists the flags). Sampler applies a
// fixed chain to the logits of one step:
//
//   penalties -> (greedy if temperature <= 0) -> top-k -> temperature
//             -> softmax -> top-p -> min-p -> draw
//
// and draws with its own xoshiro256** generator, so a given seed and the same
// logits give the same tokens with every compiler and standard library (ties
// between equal logits are always broken towards the lower id).
//
// Ownership: a Sampler owns scratch buffers sized for n_vocab tokens, allocated
// in the constructor; sample() allocates nothing. It does not keep the token
// history: the caller passes the recent tokens on every call.
// Thread-safety: none; use one Sampler per sequence.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kvforge/sampling.h"
#include "kvforge/status.h"

namespace kvforge {

class Sampler {
 public:
  // params must pass validate() (checked: invalid params abort); n_vocab > 0.
  Sampler(const SamplingParams& params, int32_t n_vocab);

  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;
  Sampler(Sampler&&) = default;
  Sampler& operator=(Sampler&&) = default;

  // Picks the next token. logits holds n_vocab values and is overwritten with
  // the penalized logits; NaN counts as -inf. recent_tokens is the history,
  // oldest first (only its last repeat_last_n entries are read); every id must
  // be in [0, n_vocab). If no logit is finite, returns the lowest id.
  [[nodiscard]] int32_t sample(std::span<float> logits, std::span<const int32_t> recent_tokens);

  // The first stage of sample() on its own: replaces NaN by -inf and applies
  // the repetition, presence and frequency penalties in place.
  void apply_penalties(std::span<float> logits, std::span<const int32_t> recent_tokens);

  // Restarts the random sequence; kRandomSeed draws a fresh seed.
  void reseed(uint64_t seed);

  // The seed in use (the drawn one when kRandomSeed was asked for).
  [[nodiscard]] uint64_t seed() const { return seed_; }
  [[nodiscard]] const SamplingParams& params() const { return params_; }
  [[nodiscard]] int32_t n_vocab() const { return n_vocab_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float weight;  // exp((logit - max_logit) / temperature), 1 for the best
  };

  // xoshiro256** (Blackman and Vigna, "Scrambled Linear Pseudorandom Number
  // Generators", 2018); state filled from the seed by splitmix64.
  [[nodiscard]] uint64_t next_random();
  // Uniform in [0, 1) from the top 53 bits.
  [[nodiscard]] double next_uniform();

  [[nodiscard]] static int32_t argmax_lowest_id(std::span<const float> logits);
  // The two parts of apply_penalties.
  void apply_repetition_penalties(std::span<float> logits, std::span<const int32_t> recent_tokens);
  static void replace_non_finite(std::span<float> logits);

  SamplingParams params_;
  int32_t n_vocab_;
  uint64_t seed_ = 0;
  uint64_t rng_state_[4] = {};

  // Scratch, n_vocab entries each, reused by every sample() call.
  std::vector<Candidate> candidates_;
  std::vector<int32_t> token_counts_;    // occurrences in the penalty window
  std::vector<int32_t> counted_tokens_;  // distinct ids whose count is non-zero
};

}  // namespace kvforge
