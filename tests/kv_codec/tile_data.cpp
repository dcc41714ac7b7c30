#include "tile_data.h"

#include <bit>
#include <cmath>
#include <random>

namespace kvforge::testing {

std::string tile_kind_name(TileKind kind) {
  switch (kind) {
    case TileKind::kGaussian:
      return "gaussian";
    case TileKind::kOutliers:
      return "outliers";
    case TileKind::kConstant:
      return "constant";
    case TileKind::kZero:
      return "zero";
    case TileKind::kExtremes:
      return "extremes";
    case TileKind::kTiny:
      return "tiny";
  }
  return "?";
}

std::vector<float> make_tile(TileKind kind, int32_t rows, int32_t head_dim, uint32_t seed) {
  std::vector<float> x(static_cast<size_t>(rows) * static_cast<size_t>(head_dim));
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> pick(0, 3);
  for (int32_t r = 0; r < rows; ++r) {
    for (int32_t c = 0; c < head_dim; ++c) {
      float& v = x[static_cast<size_t>(r) * head_dim + c];
      switch (kind) {
        case TileKind::kGaussian:
          v = normal(rng);
          break;
        case TileKind::kOutliers:
          v = normal(rng);
          if (c == 1 || c == head_dim / 2 + 3) v *= 40.0f;
          if ((r * 7 + c * 13) % 97 == 0) v = (r % 2 ? 1000.0f : -1000.0f);
          break;
        case TileKind::kConstant:
          v = 3.14159f * static_cast<float>(r + 1) - 20.0f;
          break;
        case TileKind::kZero:
          v = 0.0f;
          break;
        case TileKind::kExtremes: {
          const int p = pick(rng);
          v = p == 0 ? 65504.0f : p == 1 ? -65504.0f : p == 2 ? normal(rng) : 0.0f;
          break;
        }
        case TileKind::kTiny:
          v = 1e-6f * normal(rng);
          break;
      }
    }
  }
  return x;
}

template <class T>
std::vector<double> naive_hadamard_impl(const T* x, int32_t n) {
  std::vector<double> y(static_cast<size_t>(n), 0.0);
  const double norm = 1.0 / std::sqrt(static_cast<double>(n));
  for (int32_t i = 0; i < n; ++i) {
    double sum = 0;
    for (int32_t j = 0; j < n; ++j) {
      const bool negative = std::popcount(static_cast<uint32_t>(i & j)) % 2 == 1;
      sum += negative ? -static_cast<double>(x[j]) : static_cast<double>(x[j]);
    }
    y[static_cast<size_t>(i)] = sum * norm;
  }
  return y;
}

std::vector<double> naive_hadamard(const float* x, int32_t n) {
  return naive_hadamard_impl(x, n);
}
std::vector<double> naive_hadamard(const double* x, int32_t n) {
  return naive_hadamard_impl(x, n);
}

}  // namespace kvforge::testing
