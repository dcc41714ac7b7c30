// quantize_row / dequantize_row round trips on random data, with the error
// bound of each format derived from its definition (see each test).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/quant.h"
#include "util/fp16.h"
#include "util/tensor_type.h"

namespace kvforge::kernels {
namespace {

constexpr int64_t kN = 256 * 24;

// Blocks of different magnitudes and shapes: gaussian, all-positive,
// all-negative, constant, zero, and one huge outlier.
std::vector<float> random_row(uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(kN);
  for (int64_t i = 0; i < kN; ++i) {
    const int64_t group = i / 256;
    const float scale = std::ldexp(1.0f, static_cast<int>(group % 7) - 3);
    float v = normal(rng) * scale;
    switch (group % 6) {
      case 1:
        v = std::fabs(v);
        break;
      case 2:
        v = -std::fabs(v) - 0.5f * scale;
        break;
      case 3:
        v = 0.75f * scale;
        break;
      case 4:
        v = 0.0f;
        break;
      default:
        break;
    }
    x[static_cast<size_t>(i)] = v;
  }
  x[100] = 40.0f;  // outlier inside one block
  return x;
}

struct RoundTrip {
  std::vector<float> x, y;
  std::vector<uint8_t> bytes;
};

RoundTrip round_trip(TensorType type, uint32_t seed) {
  RoundTrip rt;
  rt.x = random_row(seed);
  rt.bytes.resize(tensor_row_bytes(type, kN));
  rt.y.resize(kN);
  quantize_row(type, rt.x.data(), rt.bytes.data(), kN);
  dequantize_row(type, rt.bytes.data(), rt.y.data(), kN);
  return rt;
}

float half_at(const std::vector<uint8_t>& bytes, size_t offset) {
  uint16_t h;
  std::memcpy(&h, bytes.data() + offset, 2);
  return fp16_to_fp32(h);
}

float abs_max(const float* x, int n) {
  float m = 0.0f;
  for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

// Slack for f32 arithmetic in the quantizer and decoder.
float slack(float magnitude) {
  return 1e-6f * magnitude + 1e-30f;
}

TEST(Quant, F32RoundTripsExactlyAndF16BF16RoundToNearest) {
  for (TensorType type : {TensorType::kF32, TensorType::kF16, TensorType::kBF16}) {
    const RoundTrip rt = round_trip(type, 1);
    for (int64_t i = 0; i < kN; ++i) {
      const float x = rt.x[static_cast<size_t>(i)];
      const float expected = type == TensorType::kF32   ? x
                             : type == TensorType::kF16 ? fp16_to_fp32(fp32_to_fp16(x))
                                                        : bf16_to_fp32(fp32_to_bf16(x));
      ASSERT_EQ(rt.y[static_cast<size_t>(i)], expected) << tensor_type_name(type) << " " << i;
    }
  }
}

// Q8_0: d = amax / 127 (then f16), codes round to nearest: |err| <= d / 2.
TEST(Quant, Q8_0ErrorIsAtMostHalfAStep) {
  const RoundTrip rt = round_trip(TensorType::kQ8_0, 2);
  for (int64_t b = 0; b < kN / 32; ++b) {
    const float d = half_at(rt.bytes, static_cast<size_t>(b) * 34);
    const float amax = abs_max(&rt.x[static_cast<size_t>(b) * 32], 32);
    EXPECT_NEAR(d, amax / 127.0f, amax / 127.0f * 0x1p-11f + 1e-30f);
    for (int i = 0; i < 32; ++i) {
      const size_t e = static_cast<size_t>(b) * 32 + i;
      ASSERT_LE(std::fabs(rt.x[e] - rt.y[e]), 0.5f * d + slack(amax)) << e;
    }
  }
}

// Q4_0: d = -extreme / 8 so codes span [-8, 7] steps: |err| <= |d| / 2 for
// values within the grid, and elements on the other side of the extreme
// can clip at +7 steps (|err| <= |d|).
TEST(Quant, Q4_0ErrorIsHalfAStepInsideTheGrid) {
  const RoundTrip rt = round_trip(TensorType::kQ4_0, 3);
  for (int64_t b = 0; b < kN / 32; ++b) {
    const float d = half_at(rt.bytes, static_cast<size_t>(b) * 18);
    const float amax = abs_max(&rt.x[static_cast<size_t>(b) * 32], 32);
    EXPECT_NEAR(std::fabs(d), amax / 8.0f, amax / 8.0f * 0x1p-11f + 1e-30f);
    for (int i = 0; i < 32; ++i) {
      const size_t e = static_cast<size_t>(b) * 32 + i;
      const float steps = d != 0.0f ? rt.x[e] / d : 0.0f;
      const float bound = steps <= 7.5f ? 0.5f * std::fabs(d) : std::fabs(d);
      ASSERT_LE(std::fabs(rt.x[e] - rt.y[e]), bound + slack(amax)) << e;
    }
  }
}

// Q4_1: m = min, d = (max - min) / 15: |err| <= d / 2, plus the f16
// rounding of m and d (2^-11 relative each, times at most 15 steps).
TEST(Quant, Q4_1ErrorIsAtMostHalfAStep) {
  const RoundTrip rt = round_trip(TensorType::kQ4_1, 4);
  for (int64_t b = 0; b < kN / 32; ++b) {
    const float d = half_at(rt.bytes, static_cast<size_t>(b) * 20);
    const float amax = abs_max(&rt.x[static_cast<size_t>(b) * 32], 32);
    for (int i = 0; i < 32; ++i) {
      const size_t e = static_cast<size_t>(b) * 32 + i;
      ASSERT_LE(std::fabs(rt.x[e] - rt.y[e]), 0.5f * d + 2 * amax * 0x1p-10f + slack(amax)) << e;
    }
  }
}

// Q4_K / Q5_K: sub-block j of 32 covers [min(lo_j, 0), hi_j] with
// max_code + 1 levels; its stored step is at most range_j / max_code + d
// (scales round up on the 6-bit grid of step d) and its offset is within
// dmin / 2 of the ideal one, so |err| <= max(range_j / max_code + d, dmin) / 2.
void expect_asymmetric_k_quant_bound(TensorType type, int max_code, size_t block_bytes) {
  const RoundTrip rt = round_trip(type, 5);
  for (int64_t b = 0; b < kN / 256; ++b) {
    const float d = half_at(rt.bytes, static_cast<size_t>(b) * block_bytes);
    const float dmin = half_at(rt.bytes, static_cast<size_t>(b) * block_bytes + 2);
    const float amax = abs_max(&rt.x[static_cast<size_t>(b) * 256], 256);
    for (int j = 0; j < 8; ++j) {
      const float* xs = &rt.x[static_cast<size_t>(b) * 256 + 32 * j];
      const float lo = std::min(0.0f, *std::min_element(xs, xs + 32));
      const float hi = *std::max_element(xs, xs + 32);
      const float bound = 0.5f * std::max((hi - lo) / static_cast<float>(max_code) + d, dmin);
      for (int i = 0; i < 32; ++i) {
        const size_t e = static_cast<size_t>(b) * 256 + 32 * j + i;
        ASSERT_LE(std::fabs(rt.x[e] - rt.y[e]), bound + slack(amax))
            << tensor_type_name(type) << " " << e;
      }
    }
  }
}

TEST(Quant, Q4_KErrorBound) {
  expect_asymmetric_k_quant_bound(TensorType::kQ4_K, 15, 144);
}
TEST(Quant, Q5_KErrorBound) {
  expect_asymmetric_k_quant_bound(TensorType::kQ5_K, 31, 176);
}

// Q6_K: per sub-block of 16 the ideal step is amax_j / 32; the stored step
// d * scale_j is within |d| / 2 of it, so values inside the grid err by at
// most half a step and the clipped side by at most amax_j / 32 + 16 |d|.
TEST(Quant, Q6_KErrorBound) {
  const RoundTrip rt = round_trip(TensorType::kQ6_K, 6);
  for (int64_t b = 0; b < kN / 256; ++b) {
    const float d = std::fabs(half_at(rt.bytes, static_cast<size_t>(b) * 210 + 208));
    const float amax = abs_max(&rt.x[static_cast<size_t>(b) * 256], 256);
    for (int j = 0; j < 16; ++j) {
      const float* xs = &rt.x[static_cast<size_t>(b) * 256 + 16 * j];
      const float bound = abs_max(xs, 16) / 32.0f + 16.0f * d;
      for (int i = 0; i < 16; ++i) {
        const size_t e = static_cast<size_t>(b) * 256 + 16 * j + i;
        ASSERT_LE(std::fabs(rt.x[e] - rt.y[e]), bound + slack(amax)) << e;
      }
    }
  }
}

TEST(Quant, QuantizedTypesAreMuchBetterThanTheirBoundOnAverage) {
  // A regression guard on quantizer quality: RMS error relative to RMS value
  // on gaussian data, generous upper limits per bit width.
  struct Case {
    TensorType type;
    float max_relative_rms;
  };
  for (const Case& c : {Case{TensorType::kQ8_0, 0.01f}, Case{TensorType::kQ4_0, 0.15f},
                        Case{TensorType::kQ4_1, 0.12f}, Case{TensorType::kQ4_K, 0.12f},
                        Case{TensorType::kQ5_K, 0.06f}, Case{TensorType::kQ6_K, 0.04f}}) {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(kN), y(kN);
    for (float& v : x) v = normal(rng);
    std::vector<uint8_t> bytes(tensor_row_bytes(c.type, kN));
    quantize_row(c.type, x.data(), bytes.data(), kN);
    dequantize_row(c.type, bytes.data(), y.data(), kN);
    double err2 = 0, val2 = 0;
    for (int64_t i = 0; i < kN; ++i) {
      err2 += (x[i] - y[i]) * static_cast<double>(x[i] - y[i]);
      val2 += x[i] * static_cast<double>(x[i]);
    }
    EXPECT_LT(std::sqrt(err2 / val2), c.max_relative_rms) << tensor_type_name(c.type);
  }
}

TEST(Quant, ZerosStayZeros) {
  for (TensorType type :
       {TensorType::kF32, TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0, TensorType::kQ4_0,
        TensorType::kQ4_1, TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K}) {
    std::vector<float> x(512, 0.0f), y(512, 1.0f);
    std::vector<uint8_t> bytes(tensor_row_bytes(type, 512));
    quantize_row(type, x.data(), bytes.data(), 512);
    dequantize_row(type, bytes.data(), y.data(), 512);
    for (float v : y) ASSERT_EQ(v, 0.0f) << tensor_type_name(type);
  }
}

}  // namespace
}  // namespace kvforge::kernels
