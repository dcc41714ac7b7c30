#include "engine/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <random>

#include <fmt/format.h>

#include "kernels/ops.h"

namespace kvforge {
namespace {

// The published limit of OpenAI's presence and frequency penalties.
constexpr float kMaxAbsOpenAiPenalty = 2.0f;

// splitmix64 (Steele, Lea and Flood, "Fast Splittable Pseudorandom Number
// Generators", 2014): spreads one 64-bit seed over xoshiro's 256-bit state so
// that nearby seeds give unrelated streams and the state is never all zero.
uint64_t splitmix64_next(uint64_t& state) {
  state += 0x9E3779B97F4A7C15ull;
  uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Strict total order on candidates: higher logit first, lower id on ties.
// Because no two candidates compare equal, partial_sort and sort produce the
// same sequence with every standard library, which keeps draws reproducible.
struct MoreLikely {
  template <class C>
  bool operator()(const C& a, const C& b) const {
    if (a.logit != b.logit) return a.logit > b.logit;
    return a.id < b.id;
  }
};

}  // namespace

Status SamplingParams::validate() const {
  if (!std::isfinite(temperature)) {
    return invalid_argument(
        fmt::format("temperature must be a finite number (<= 0 for greedy), got {}", temperature));
  }
  if (!(top_p > 0.0f && top_p <= 1.0f)) {
    return invalid_argument(fmt::format("top-p must be in (0, 1], got {}", top_p));
  }
  if (!(min_p >= 0.0f && min_p <= 1.0f)) {
    return invalid_argument(fmt::format("min-p must be in [0, 1], got {}", min_p));
  }
  if (!(repeat_penalty > 0.0f && std::isfinite(repeat_penalty))) {
    return invalid_argument(fmt::format(
        "repeat-penalty must be a finite number > 0 (1 disables it), got {}", repeat_penalty));
  }
  if (repeat_last_n < -1) {
    return invalid_argument(fmt::format(
        "repeat-last-n must be >= -1 (0 disables, -1 uses all history), got {}", repeat_last_n));
  }
  if (!(std::fabs(presence_penalty) <= kMaxAbsOpenAiPenalty)) {
    return invalid_argument(
        fmt::format("presence-penalty must be in [-2, 2], got {}", presence_penalty));
  }
  if (!(std::fabs(frequency_penalty) <= kMaxAbsOpenAiPenalty)) {
    return invalid_argument(
        fmt::format("frequency-penalty must be in [-2, 2], got {}", frequency_penalty));
  }
  return Status();
}

Sampler::Sampler(const SamplingParams& params, int32_t n_vocab)
    : params_(params),
      n_vocab_(n_vocab),
      candidates_(static_cast<size_t>(n_vocab)),
      token_counts_(static_cast<size_t>(n_vocab), 0),
      counted_tokens_(static_cast<size_t>(n_vocab), 0) {
  KVF_CHECK(n_vocab > 0);
  KVF_CHECK(params.validate().ok());
  reseed(params.seed);
}

void Sampler::reseed(uint64_t seed) {
  if (seed == SamplingParams::kRandomSeed) {
    std::random_device device;
    seed = (static_cast<uint64_t>(device()) << 32) | device();
    // Reporting kRandomSeed back would not reproduce this run.
    if (seed == SamplingParams::kRandomSeed) seed = 0;
  }
  seed_ = seed;
  uint64_t mix = seed;
  for (uint64_t& word : rng_state_) word = splitmix64_next(mix);
}

uint64_t Sampler::next_random() {
  uint64_t* s = rng_state_;
  const uint64_t result = std::rotl(s[1] * 5, 7) * 9;
  const uint64_t shifted = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= shifted;
  s[3] = std::rotl(s[3], 45);
  return result;
}

double Sampler::next_uniform() {
  // 53 random bits fill a double's mantissa exactly: uniform on a 2^-53 grid.
  return static_cast<double>(next_random() >> 11) * 0x1.0p-53;
}

int32_t Sampler::argmax_lowest_id(std::span<const float> logits) {
  int32_t best = 0;
  for (int32_t id = 1; id < static_cast<int32_t>(logits.size()); ++id) {
    if (logits[id] > logits[best]) best = id;  // strict: ties keep the lower id
  }
  return best;
}

void Sampler::apply_penalties(std::span<float> logits, std::span<const int32_t> recent_tokens) {
  apply_repetition_penalties(logits, recent_tokens);
  replace_non_finite(logits);
}

void Sampler::apply_repetition_penalties(std::span<float> logits,
                                         std::span<const int32_t> recent_tokens) {
  KVF_CHECK(logits.size() == static_cast<size_t>(n_vocab_));
  const bool penalties_active = params_.repeat_last_n != 0 && (params_.repeat_penalty != 1.0f ||
                                                               params_.presence_penalty != 0.0f ||
                                                               params_.frequency_penalty != 0.0f);
  if (penalties_active) {
    size_t window = recent_tokens.size();
    if (params_.repeat_last_n > 0) {
      window = std::min(window, static_cast<size_t>(params_.repeat_last_n));
    }
    // Count each id in the window once per occurrence; counted_tokens_ lists
    // the distinct ids so the work and the reset are O(window), not O(n_vocab).
    int32_t n_counted = 0;
    for (int32_t token : recent_tokens.last(window)) {
      KVF_CHECK(token >= 0 && token < n_vocab_);
      if (token_counts_[token]++ == 0) counted_tokens_[n_counted++] = token;
    }
    for (int32_t i = 0; i < n_counted; ++i) {
      const int32_t token = counted_tokens_[i];
      const int32_t count = token_counts_[token];
      float logit = logits[token];
      // Dividing a negative logit would raise it, so llama.cpp (and CTRL's
      // intent) multiply those instead: both push the token down.
      logit = logit > 0.0f ? logit / params_.repeat_penalty : logit * params_.repeat_penalty;
      logit -= static_cast<float>(count) * params_.frequency_penalty + params_.presence_penalty;
      logits[token] = logit;
      token_counts_[token] = 0;
    }
  }
}

void Sampler::replace_non_finite(std::span<float> logits) {
  // After the penalties, because a penalty below 1 can overflow a large logit.
  // NaN must never be drawn; +inf would make every softmax weight NaN.
  for (float& logit : logits) {
    if (std::isnan(logit)) {
      logit = -std::numeric_limits<float>::infinity();
    } else if (logit == std::numeric_limits<float>::infinity()) {
      logit = std::numeric_limits<float>::max();
    }
  }
}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> recent_tokens) {
  const int32_t top_k = params_.top_k <= 0 ? n_vocab_ : std::min(params_.top_k, n_vocab_);
  if (params_.temperature <= 0.0f || top_k == 1) {
    // Greedy: one vectorized pass where every logit is finite (then
    // replace_non_finite would change nothing), the careful one otherwise.
    apply_repetition_penalties(logits, recent_tokens);
    const int64_t best = kernels::argmax_finite(logits.data(), static_cast<int64_t>(logits.size()));
    if (best >= 0) return static_cast<int32_t>(best);
    replace_non_finite(logits);
    return argmax_lowest_id(logits);
  }
  apply_penalties(logits, recent_tokens);

  for (int32_t id = 0; id < n_vocab_; ++id) candidates_[id] = {id, logits[id], 0.0f};
  auto first = candidates_.begin();
  int32_t n_kept = n_vocab_;
  bool sorted = false;
  if (top_k < n_vocab_) {
    std::partial_sort(first, first + top_k, candidates_.end(), MoreLikely{});
    n_kept = top_k;
    sorted = true;
  }
  // Only top-p needs the full order; otherwise the candidates stay in id
  // order, which is just as deterministic and saves an O(n log n) sort.
  if (params_.top_p < 1.0f && !sorted) {
    std::sort(first, first + n_kept, MoreLikely{});
    sorted = true;
  }

  float max_logit = candidates_[0].logit;
  if (!sorted) {
    for (int32_t i = 1; i < n_kept; ++i) max_logit = std::max(max_logit, candidates_[i].logit);
  }
  if (max_logit == -std::numeric_limits<float>::infinity()) return argmax_lowest_id(logits);

  // Temperature and softmax in one step: weight = exp((logit - max) / T) is
  // softmax(logits / T) up to the common factor 1 / sum, with the best token
  // at weight 1. Subtracting in double keeps (logit - max) from overflowing.
  const double temperature = params_.temperature;
  double total_weight = 0.0;
  for (int32_t i = 0; i < n_kept; ++i) {
    Candidate& c = candidates_[i];
    c.weight = static_cast<float>(
        std::exp((static_cast<double>(c.logit) - static_cast<double>(max_logit)) / temperature));
    total_weight += c.weight;
  }

  if (params_.top_p < 1.0f) {
    // Smallest prefix (most likely first) whose probability reaches top_p.
    const double target = static_cast<double>(params_.top_p) * total_weight;
    double cumulative = 0.0;
    for (int32_t i = 0; i < n_kept; ++i) {
      cumulative += candidates_[i].weight;
      if (cumulative >= target) {
        n_kept = i + 1;
        break;
      }
    }
  }

  if (params_.min_p > 0.0f) {
    // Weights are already relative to the most likely token (weight 1), so
    // p >= min_p * p_max is weight >= min_p; that token always survives.
    int32_t n_survivors = 0;
    for (int32_t i = 0; i < n_kept; ++i) {
      if (candidates_[i].weight >= params_.min_p) candidates_[n_survivors++] = candidates_[i];
    }
    n_kept = n_survivors;
  }

  // Inverse-CDF draw over the survivors, summed in the same order as the
  // threshold walk so that the last cumulative value equals the total.
  double kept_weight = 0.0;
  for (int32_t i = 0; i < n_kept; ++i) kept_weight += candidates_[i].weight;
  const double threshold = next_uniform() * kept_weight;
  double cumulative = 0.0;
  int32_t last_positive = candidates_[0].id;
  for (int32_t i = 0; i < n_kept; ++i) {
    const Candidate& c = candidates_[i];
    if (c.weight <= 0.0f) continue;  // underflowed: probability zero
    cumulative += c.weight;
    if (cumulative > threshold) return c.id;
    last_positive = c.id;
  }
  return last_positive;  // only reachable through rounding; keeps a valid token
}

}  // namespace kvforge
