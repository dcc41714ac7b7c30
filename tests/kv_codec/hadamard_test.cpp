// hadamard_transform against the Sylvester matrix product, and its algebra:
// orthonormal (norm preserving) and its own inverse.
#include "kv/hadamard.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "hwy/targets.h"
#include "kernels/simd_targets.h"
#include "tile_data.h"

namespace kvforge {
namespace {

std::vector<float> random_vector(int32_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = normal(rng);
  return x;
}

double norm(const std::vector<float>& x) {
  double s = 0;
  for (float v : x) s += static_cast<double>(v) * v;
  return std::sqrt(s);
}

TEST(Hadamard, MatchesSylvesterMatrixProduct) {
  for (int32_t n = 1; n <= kMaxHadamardOrder; n *= 2) {
    std::vector<float> x = random_vector(n, static_cast<uint32_t>(n));
    const std::vector<double> expected = testing::naive_hadamard(x.data(), n);
    const double tolerance = 1e-6 * norm(x);
    hadamard_transform(x.data(), n);
    for (int32_t i = 0; i < n; ++i) {
      ASSERT_NEAR(x[static_cast<size_t>(i)], expected[static_cast<size_t>(i)], tolerance)
          << "n=" << n << " i=" << i;
    }
  }
}

TEST(Hadamard, FirstUnitVectorMapsToConstant) {
  std::vector<float> x(64, 0.0f);
  x[0] = 1.0f;
  hadamard_transform(x.data(), 64);
  for (float v : x) EXPECT_FLOAT_EQ(v, 0.125f);
}

TEST(Hadamard, PreservesNormAndIsSelfInverse) {
  for (int32_t n : {8, 64, 128, 256}) {
    const std::vector<float> original = random_vector(n, 7u + static_cast<uint32_t>(n));
    std::vector<float> x = original;
    hadamard_transform(x.data(), n);
    EXPECT_NEAR(norm(x), norm(original), 1e-6 * norm(original)) << "n=" << n;
    hadamard_transform(x.data(), n);
    for (int32_t i = 0; i < n; ++i) {
      ASSERT_NEAR(x[static_cast<size_t>(i)], original[static_cast<size_t>(i)],
                  1e-6 * norm(original))
          << "n=" << n << " i=" << i;
    }
  }
}

TEST(Hadamard, BitIdenticalOnEveryTarget) {
  // Encoded bytes of int4h must not depend on the machine that wrote them.
  const std::vector<float> original = random_vector(128, 99);
  hwy::SetSupportedTargetsForTest(0);
  std::vector<float> expected = original;
  hadamard_transform(expected.data(), 128);
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    std::vector<float> x = original;
    hadamard_transform(x.data(), 128);
    EXPECT_EQ(x, expected) << hwy::TargetName(target);
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(Hadamard, OrderIsAPowerOfTwoUpTo256) {
  EXPECT_TRUE(is_hadamard_order(1));
  EXPECT_TRUE(is_hadamard_order(128));
  EXPECT_TRUE(is_hadamard_order(256));
  EXPECT_FALSE(is_hadamard_order(0));
  EXPECT_FALSE(is_hadamard_order(96));
  EXPECT_FALSE(is_hadamard_order(512));
}

}  // namespace
}  // namespace kvforge
