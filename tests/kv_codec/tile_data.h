// Test tiles for the KV codecs: random and adversarial row sets.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvforge::testing {

enum class TileKind {
  kGaussian,  // N(0, 1)
  kOutliers,  // N(0, 1), two channels × 40 and a few ±1000 spikes
  kConstant,  // every row one constant (different per row), so channels vary
  kZero,      // all zeros
  kExtremes,  // ±65504 mixed with small values and zeros (the f16 range's edges)
  kTiny,      // N(0, 1e-6): scales in the f16 subnormal range
};

inline constexpr TileKind kAllTileKinds[] = {TileKind::kGaussian, TileKind::kOutliers,
                                             TileKind::kConstant, TileKind::kZero,
                                             TileKind::kExtremes, TileKind::kTiny};

[[nodiscard]] std::string tile_kind_name(TileKind kind);

// rows × head_dim floats, row-major, deterministic for a seed.
[[nodiscard]] std::vector<float> make_tile(TileKind kind, int32_t rows, int32_t head_dim,
                                           uint32_t seed);

// y = H x with the Sylvester matrix (H_n)_{ij} = (-1)^popcount(i & j) / sqrt(n),
// as a direct O(n^2) product in double.
[[nodiscard]] std::vector<double> naive_hadamard(const float* x, int32_t n);
[[nodiscard]] std::vector<double> naive_hadamard(const double* x, int32_t n);

}  // namespace kvforge::testing
