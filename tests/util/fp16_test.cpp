#include "util/fp16.h"

#include <gtest/gtest.h>

#include <cmath>

namespace kvforge {
namespace {

// Every half value must survive half -> float -> half unchanged (NaNs stay NaN).
TEST(Fp16, AllHalfValuesRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(f))));
      continue;
    }
    ASSERT_EQ(fp32_to_fp16(f), h) << "h=" << h;
  }
}

// Known values from the IEEE 754 binary16 definition.
TEST(Fp16, KnownValues) {
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xc000);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);            // rounds up to infinity
  EXPECT_EQ(fp32_to_fp16(5.9604645e-8f), 0x0001);       // smallest subnormal
  EXPECT_EQ(fp32_to_fp16(1.0f + 1.0f / 2048), 0x3c00);  // tie -> even
  EXPECT_EQ(fp32_to_fp16(1.0f + 3.0f / 2048), 0x3c02);  // tie -> even (up)
  EXPECT_FLOAT_EQ(fp16_to_fp32(0x3555), 0.33325195f);
}

// Rounding to nearest: the result is never farther than half an ulp.
TEST(Fp16, RoundsToNearest) {
  for (float x = -70000.0f; x < 70000.0f; x += 3.1234f) {
    const float y = fp16_to_fp32(fp32_to_fp16(x));
    if (std::isinf(y)) continue;
    const float ulp = std::ldexp(1.0f, std::ilogb(y == 0 ? 1e-7f : y) - 10);
    EXPECT_LE(std::fabs(y - x), 0.5f * ulp + 1e-12f) << x;
  }
}

TEST(Bf16, RoundTripAndRounding) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_bf16(f), h);
  }
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3f808000u)), 0x3f80);  // tie -> even
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3f818000u)), 0x3f82);  // tie -> even (up)
}

}  // namespace
}  // namespace kvforge
