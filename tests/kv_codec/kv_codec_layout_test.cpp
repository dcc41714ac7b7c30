// Byte layout of the KV codecs: exact tile sizes, row-range encodes equal to
// whole-tile encodes, every byte written, and the SIMD decoders of every
// compiled target equal to a scalar decoder written from the documented layout.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "codec_cases.h"
#include "hwy/targets.h"
#include "kernels/simd_targets.h"
#include "kv/kv_codec.h"
#include "kv/kv_codec_kernels.h"
#include "reference_decode.h"
#include "tile_data.h"

namespace kvforge {
namespace {

using testing::CodecCase;

// The formulas behind tile_bytes, checked at compile time against numbers worked out by hand.
static_assert(kv_kernels::int8_row_bytes(128) == 130);
static_assert(kv_kernels::token_group_row_bytes(128, 4) == 4 * (2 + 2 + 16));  // 4 groups of 32
static_assert(kv_kernels::token_group_row_bytes(64, 2) == 2 * (2 + 2 + 8));
static_assert(kv_kernels::token_group_row_bytes(8, 4) == 1 * (2 + 2 + 4));  // one group of 8
static_assert(kv_kernels::channel_group_bytes(128, 2, 32) == 128 * 4 + 32 * 32);
static_assert(kv_kernels::channel_group_bytes(8, 4, 16) == 8 * 4 + 16 * 4);

TEST(KvCodecLayout, TileBytesMatchTheFormulas) {
  struct Expected {
    const char* spec;
    KvSide side;
    int32_t block;
    int32_t head_dim;
    size_t bytes;
  };
  constexpr KvSide K = KvSide::kKey;
  constexpr KvSide V = KvSide::kValue;
  const Expected table[] = {
      {"f32", K, 16, 128, 16 * 128 * 4},         // 8192
      {"f16", V, 16, 128, 16 * 128 * 2},         // 4096
      {"bf16", K, 32, 64, 32 * 64 * 2},          // 4096
      {"int8", K, 16, 128, 16 * (128 + 2)},      // 2080
      {"int8", V, 32, 64, 32 * (64 + 2)},        // 2112
      {"int8", K, 16, 8, 16 * (8 + 2)},          // 160
      {"int4", K, 16, 128, 16 * 4 * 20},         // 1280: 4 groups × (f16 scale, f16 min, 16 B)
      {"int4h", V, 32, 64, 32 * 2 * 20},         // 1280
      {"int4", V, 16, 8, 16 * (4 + 4)},          // 128: one group of 8
      {"kivi2", V, 16, 128, 16 * 4 * 12},        // 768: 4 groups × (4 + 8 B)
      {"kivi4", V, 32, 128, 32 * 4 * 20},        // 2560
      {"kivi2", V, 16, 8, 16 * (4 + 2)},         // 96
      {"kivi2", K, 32, 128, 128 * 4 + 32 * 32},  // 1536: one token group of 32
      {"kivi4", K, 32, 128, 128 * 4 + 32 * 64},  // 2560
      {"kivi2", K, 16, 128, 128 * 4 + 16 * 32},  // 1024: default g = min(32, 16)
      {"kivi2", K, 16, 64, 64 * 4 + 16 * 16},    // 512
      {"kivi2", K, 16, 8, 8 * 4 + 16 * 2},       // 64
      {"kivi2:g=8:r=0", K, 32, 128, 4 * (128 * 4 + 8 * 32)},  // 3072: 4 token groups
  };
  for (const Expected& e : table) {
    const CodecCase c{e.spec, e.side, {e.block, e.head_dim}};
    const auto codec = testing::make_codec(c);
    ASSERT_NE(codec, nullptr);
    EXPECT_EQ(codec->tile_bytes(), e.bytes) << c.label();
    EXPECT_DOUBLE_EQ(codec->bytes_per_row(), static_cast<double>(e.bytes) / e.block) << c.label();
  }
}

TEST(KvCodecLayout, RowRangeEncodesEqualOneWholeTileEncode) {
  for (const CodecCase& c : testing::all_codec_cases()) {
    const auto codec = testing::make_codec(c);
    ASSERT_NE(codec, nullptr);
    const int32_t rows = c.params.block_tokens;
    const int32_t d = c.params.head_dim;
    // Rows with a stride wider than head_dim, as in [n_tokens, n_kv_heads, head_dim].
    const int64_t stride = d + 5;
    std::vector<float> strided(static_cast<size_t>(rows * stride), 12345.0f);
    const std::vector<float> x = testing::make_tile(testing::TileKind::kOutliers, rows, d, 11);
    for (int32_t r = 0; r < rows; ++r) {
      std::copy_n(x.data() + r * d, d, strided.data() + r * stride);
    }
    std::vector<uint8_t> whole(codec->tile_bytes(), 0x11);
    codec->encode(strided.data(), stride, 0, rows, whole.data());
    std::vector<uint8_t> again(codec->tile_bytes(), 0xEE);
    codec->encode(strided.data(), stride, 0, rows, again.data());
    EXPECT_EQ(whole, again) << c.label() << ": encode must write every byte, deterministically";
    if (!codec->token_granular()) continue;
    std::vector<uint8_t> pieces(codec->tile_bytes(), 0xCD);
    const int32_t cuts[] = {0, 1, 4, rows - 3, rows};  // in a different order below
    for (int piece : {2, 0, 3, 1}) {
      const int32_t first = cuts[piece];
      const int32_t n = cuts[piece + 1] - first;
      codec->encode(strided.data() + first * stride, stride, first, n, pieces.data());
    }
    EXPECT_EQ(whole, pieces) << c.label();
  }
}

TEST(KvCodecLayout, SimdDecodeMatchesScalarDecodeOnEveryTarget) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    for (const CodecCase& c : testing::all_codec_cases()) {
      const auto codec = testing::make_codec(c);
      ASSERT_NE(codec, nullptr);
      const int32_t rows = c.params.block_tokens;
      const int32_t d = c.params.head_dim;
      const std::vector<float> x = testing::make_tile(testing::TileKind::kGaussian, rows, d, 5);
      std::vector<uint8_t> tile(codec->tile_bytes());
      codec->encode(x.data(), d, 0, rows, tile.data());
      for (int32_t n : {rows, rows - 3}) {
        const std::vector<float> expected = testing::reference_decode(*codec, tile.data(), n);
        constexpr float kGuard = -7.25f;
        std::vector<float> out(static_cast<size_t>(rows * d), kGuard);
        codec->decode(tile.data(), n, out.data());
        // Bit for bit where the target has fused multiply-add (as the reference uses);
        // elsewhere q * scale + min rounds twice: 1 ulp of the largest operand.
        const bool fused = target == HWY_AVX2 || target == HWY_AVX3;
        float largest = 0.0f;
        for (float v : expected) largest = std::max(largest, std::fabs(v));
        const float tolerance = fused ? 0.0f : 2.0f * largest * 1.2e-7f;
        for (size_t i = 0; i < expected.size(); ++i) {
          ASSERT_NEAR(out[i], expected[i], tolerance)
              << c.label() << " target=" << hwy::TargetName(target) << " n=" << n << " i=" << i;
        }
        for (size_t i = expected.size(); i < out.size(); ++i) {
          ASSERT_EQ(out[i], kGuard) << c.label() << ": decode wrote past row " << n;
        }
      }
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

}  // namespace
}  // namespace kvforge
