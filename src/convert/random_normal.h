// A seeded, platform-independent source of normally distributed numbers for
// synthetic weights.
//
// std::normal_distribution is not used because its output differs between
// standard libraries, and Box-Muller needs log/cos, whose last bits differ
// between math libraries. Instead: xoshiro256** (Blackman and Vigna) seeded
// through splitmix64, and the Irwin-Hall approximation of a standard normal:
// the sum of twelve uniform 16-bit integers, centred and divided by 2^16.
// Everything is integer arithmetic until one exact conversion, so a seed
// gives the same numbers on every compiler and machine. The tails stop at
// +-6 standard deviations, which is fine for weights.
#pragma once

#include <cstdint>
#include <string_view>

namespace kvforge::convert {

// splitmix64 step: advances `state` and returns a well-mixed 64-bit value.
[[nodiscard]] inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// FNV-1a, to derive an independent stream per tensor name.
[[nodiscard]] inline uint64_t fnv1a64(std::string_view text) {
  uint64_t hash = 0xCBF29CE484222325ull;
  for (char c : text) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001B3ull;
  }
  return hash;
}

class NormalGenerator {
 public:
  // Streams for different (seed, stream_name) pairs are independent, so each
  // tensor's values do not depend on which tensors came before it.
  NormalGenerator(uint64_t seed, std::string_view stream_name) {
    uint64_t mix = seed ^ fnv1a64(stream_name);
    for (uint64_t& word : state_) word = splitmix64(mix);
  }

  // xoshiro256**.
  [[nodiscard]] uint64_t next_u64() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Approximately N(0, 1): mean 0, variance 1 - 2^-32.
  [[nodiscard]] double next_standard_normal() {
    int64_t sum = 0;
    for (int word = 0; word < 3; ++word) {
      const uint64_t bits = next_u64();
      for (int part = 0; part < 4; ++part)
        sum += static_cast<int64_t>((bits >> (16 * part)) & 0xFFFF);
    }
    // Twelve uniforms on [0, 65535] have mean 12 * 32767.5 and variance
    // about 2^32; the difference below is an exact integer.
    return static_cast<double>(2 * sum - 786420) / 131072.0;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
};

}  // namespace kvforge::convert
