#include "kernels/ops.h"

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace kvforge::kernels {
namespace {

TEST(RmsNorm, MatchesDefinition) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-3, 3);
  std::vector<float> x(97), w(97), y(97);
  for (auto& v : x) v = u(rng);
  for (auto& v : w) v = u(rng);
  double ss = 0;
  for (float v : x) ss += double(v) * v;
  const double inv = 1.0 / std::sqrt(ss / 97 + 1e-5);
  rms_norm(x.data(), w.data(), y.data(), 97, 1e-5f);
  for (int i = 0; i < 97; ++i) EXPECT_NEAR(y[i], x[i] * inv * w[i], 1e-5);
  // In place, without weights: the result has unit root-mean-square.
  rms_norm(x.data(), nullptr, x.data(), 97, 0.0f);
  double ms = 0;
  for (float v : x) ms += double(v) * v;
  EXPECT_NEAR(ms / 97, 1.0, 1e-5);
}

// RoPE is a rotation: it preserves each pair's norm, rotating by 0 is the
// identity, and the dot product of q at position m with k at position n
// depends only on m - n (the property RoPE is built for).
TEST(Rope, RotationProperties) {
  const int d = 16, half = 8;
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i) inv_freq[i] = float(std::pow(10000.0, -2.0 * i / d));
  std::mt19937 rng(2);
  std::normal_distribution<float> n01;
  std::vector<float> q(d), k(d);
  for (auto& v : q) v = n01(rng);
  for (auto& v : k) v = n01(rng);
  for (RopeLayout layout : {RopeLayout::kInterleaved, RopeLayout::kHalves}) {
    auto rotated_dot = [&](int pq, int pk) {
      std::vector<float> a = q, b = k, cs(d);
      rope_cos_sin(pq, inv_freq.data(), half, cs.data());
      rope_apply(a.data(), 1, d, d, layout, cs.data());
      rope_cos_sin(pk, inv_freq.data(), half, cs.data());
      rope_apply(b.data(), 1, d, d, layout, cs.data());
      double s = 0;
      for (int i = 0; i < d; ++i) s += double(a[i]) * b[i];
      return s;
    };
    EXPECT_NEAR(rotated_dot(5, 2), rotated_dot(103, 100), 1e-4);
    EXPECT_NEAR(
        rotated_dot(0, 0),
        [&] {
          double s = 0;
          for (int i = 0; i < d; ++i) s += double(q[i]) * k[i];
          return s;
        }(),
        1e-5);
  }
}

// Known values: pairing (0,1) for interleaved and (0, d/2) for halves.
TEST(Rope, PairingLayouts) {
  const float inv_freq[2] = {1.0f, 0.5f};  // angles pos*1, pos*0.5
  float cs[4];
  rope_cos_sin(1, inv_freq, 2, cs);
  const float c0 = std::cos(1.0f), s0 = std::sin(1.0f), c1 = std::cos(0.5f), s1 = std::sin(0.5f);
  float a[4] = {1, 2, 3, 4};
  rope_apply(a, 1, 4, 4, RopeLayout::kInterleaved, cs);
  EXPECT_NEAR(a[0], 1 * c0 - 2 * s0, 1e-6);
  EXPECT_NEAR(a[1], 1 * s0 + 2 * c0, 1e-6);
  EXPECT_NEAR(a[2], 3 * c1 - 4 * s1, 1e-6);
  EXPECT_NEAR(a[3], 3 * s1 + 4 * c1, 1e-6);
  float b[4] = {1, 2, 3, 4};
  rope_apply(b, 1, 4, 4, RopeLayout::kHalves, cs);
  EXPECT_NEAR(b[0], 1 * c0 - 3 * s0, 1e-6);
  EXPECT_NEAR(b[2], 1 * s0 + 3 * c0, 1e-6);
  EXPECT_NEAR(b[1], 2 * c1 - 4 * s1, 1e-6);
  EXPECT_NEAR(b[3], 2 * s1 + 4 * c1, 1e-6);
}

TEST(SwiGlu, MatchesDefinition) {
  const float g[3] = {-2.0f, 0.0f, 3.0f}, u[3] = {1.5f, 2.0f, -1.0f};
  float out[3];
  swiglu(g, u, out, 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(out[i], g[i] / (1 + std::exp(-double(g[i]))) * u[i], 1e-6);
  }
}

// Vector and scalar tail paths, on every SIMD target, over the range a
// gate takes (and beyond, where exp(-g) overflows): relative error within
// 8 ulp of silu(g) * u computed in double (Highway's exp is within 1 ulp;
// the divide, add and multiply add one rounding each), or 1e-36 absolute:
// below g = -88.7 exp(-g) overflows and the result is 0 instead of at most
// 1e-36 (g e^g for g < -88.7).
TEST(SwiGlu, WithinAFewUlpOnEveryTarget) {
  std::vector<float> g, u;
  for (float v = -120.0f; v <= 120.0f; v += 0.0137f) {
    g.push_back(v);
    u.push_back(1.0f + 0.25f * std::sin(v));
  }
  for (const int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    std::vector<float> out(g.size());
    swiglu(g.data(), u.data(), out.data(), static_cast<int64_t>(g.size()));
    for (size_t i = 0; i < g.size(); ++i) {
      const double exact = g[i] / (1.0 + std::exp(-double(g[i]))) * u[i];
      ASSERT_NEAR(out[i], exact, 8 * 0x1p-24 * std::fabs(exact) + 1e-36)
          << hwy::TargetName(target) << " g " << g[i];
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

// The first index of the largest value, by a plain scan.
int64_t reference_argmax(const std::vector<float>& x) {
  int64_t best = 0;
  for (size_t i = 1; i < x.size(); ++i) {
    if (x[i] > x[static_cast<size_t>(best)]) best = static_cast<int64_t>(i);
  }
  return best;
}

TEST(ArgmaxFinite, EqualsAScanAtEveryLengthAndPosition) {
  std::mt19937 rng(5);
  std::normal_distribution<float> n01;
  // Lengths around the kernel's 16 lanes and 1024-value blocks, and a
  // 128K-entry vocabulary.
  for (int64_t n : {1, 2, 15, 16, 17, 1023, 1024, 1025, 3000, 128256}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = n01(rng);
    EXPECT_EQ(argmax_finite(x.data(), n), reference_argmax(x)) << n;
    // The largest at the first, the last and a block boundary position.
    for (int64_t at : {int64_t{0}, n - 1, std::min<int64_t>(n - 1, 1024)}) {
      std::vector<float> y = x;
      y[static_cast<size_t>(at)] = 100.0f;
      EXPECT_EQ(argmax_finite(y.data(), n), at) << n << " " << at;
    }
  }
}

TEST(ArgmaxFinite, TiesGoToTheLowestIndex) {
  std::vector<float> x(5000, -3.0f);
  // Equal maxima in two lanes of one block, then in a later block.
  for (size_t at : {4000u, 1500u, 1037u, 1030u}) {
    x[at] = 7.5f;
    EXPECT_EQ(argmax_finite(x.data(), 5000), static_cast<int64_t>(at));
  }
  std::vector<float> all_equal(100, -2.0f);
  EXPECT_EQ(argmax_finite(all_equal.data(), 100), 0);
  // -0.0 and 0.0 compare equal: the first one wins whichever it is.
  std::vector<float> zeros = {-1.0f, -0.0f, 0.0f};
  EXPECT_EQ(argmax_finite(zeros.data(), 3), 1);
}

TEST(ArgmaxFinite, AnyNonFiniteValueGivesMinusOne) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(argmax_finite(nullptr, 0), -1);
  for (float bad : {kNaN, kInf, -kInf}) {
    // In a full vector of lanes and in a block's scalar tail.
    for (size_t at : {0u, 17u, 1023u, 2049u}) {
      std::vector<float> x(2050, 1.0f);
      x[at] = bad;
      EXPECT_EQ(argmax_finite(x.data(), 2050), -1) << bad << " at " << at;
    }
  }
  // Finite extremes are finite.
  std::vector<float> extremes = {std::numeric_limits<float>::lowest(),
                                 std::numeric_limits<float>::max()};
  EXPECT_EQ(argmax_finite(extremes.data(), 2), 1);
}

TEST(LogSumExp, StableForLargeValues) {
  const float x[3] = {1000.0f, 1000.0f, -1e30f};
  EXPECT_NEAR(log_sum_exp(x, 3), 1000.0 + std::log(2.0), 1e-9);
}

}  // namespace
}  // namespace kvforge::kernels
