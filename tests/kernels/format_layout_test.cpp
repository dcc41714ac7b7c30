// Known-vector tests: blocks built byte by byte from the published layouts
// (GGUF / ggml block definitions), decoded, and compared with values worked
// out here from the format description rather than from the decoder.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/k_quant_scales.h"
#include "kernels/quant.h"

namespace kvforge::kernels {
namespace {

// Little-endian f16 bit patterns of a few exact values.
constexpr uint16_t kHalfOne = 0x3c00;       // 1.0
constexpr uint16_t kHalfHalf = 0x3800;      // 0.5
constexpr uint16_t kHalfTwo = 0x4000;       // 2.0
constexpr uint16_t kHalfQuarter = 0x3400;   // 0.25
constexpr uint16_t kHalfMinusOne = 0xbc00;  // -1.0

void put_u16(std::vector<uint8_t>& bytes, size_t offset, uint16_t v) {
  bytes[offset] = static_cast<uint8_t>(v & 0xff);
  bytes[offset + 1] = static_cast<uint8_t>(v >> 8);
}

std::vector<float> decode(TensorType type, const std::vector<uint8_t>& bytes, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  dequantize_row(type, bytes.data(), out.data(), n);
  return out;
}

TEST(FormatLayout, F16AndBF16DecodeExactly) {
  std::vector<uint8_t> f16(8);
  put_u16(f16, 0, kHalfOne);
  put_u16(f16, 2, 0xc000);  // -2.0
  put_u16(f16, 4, 0x7bff);  // 65504, the largest finite half
  put_u16(f16, 6, 0x0001);  // 2^-24, the smallest subnormal
  EXPECT_EQ(decode(TensorType::kF16, f16, 4),
            (std::vector<float>{1.0f, -2.0f, 65504.0f, 0x1p-24f}));

  std::vector<uint8_t> bf16(4);
  put_u16(bf16, 0, 0x3f80);  // 1.0
  put_u16(bf16, 2, 0x4049);  // 0x40490000 = 3.140625
  EXPECT_EQ(decode(TensorType::kBF16, bf16, 2), (std::vector<float>{1.0f, 3.140625f}));
}

TEST(FormatLayout, F16AndBF16RoundTripRepresentableValues) {
  const std::vector<float> values = {0.0f, -0.0f, 1.5f, -3.25f, 1024.0f, 0x1p-14f, -0x1p-20f};
  for (TensorType type : {TensorType::kF16, TensorType::kBF16, TensorType::kF32}) {
    std::vector<uint8_t> bytes(values.size() * 4);
    quantize_row(type, values.data(), bytes.data(), static_cast<int64_t>(values.size()));
    EXPECT_EQ(decode(type, bytes, static_cast<int64_t>(values.size())), values);
  }
}

TEST(FormatLayout, Q8_0IsScaleThenSignedBytes) {
  std::vector<uint8_t> block(34);
  put_u16(block, 0, kHalfHalf);
  for (int i = 0; i < 32; ++i)
    block[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(4 * i - 100));
  const std::vector<float> y = decode(TensorType::kQ8_0, block, 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], 0.5f * static_cast<float>(4 * i - 100)) << i;
}

TEST(FormatLayout, Q4_0LowNibblesAreTheFirstHalf) {
  std::vector<uint8_t> block(18);
  put_u16(block, 0, kHalfTwo);
  // Byte j: low nibble j (element j), high nibble 15 - j (element 16 + j).
  for (int j = 0; j < 16; ++j) block[2 + j] = static_cast<uint8_t>(j | (15 - j) << 4);
  const std::vector<float> y = decode(TensorType::kQ4_0, block, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 2.0f * static_cast<float>(j - 8)) << j;
    EXPECT_EQ(y[16 + j], 2.0f * static_cast<float>(7 - j)) << j;
  }
}

TEST(FormatLayout, Q4_1AddsTheMinimum) {
  std::vector<uint8_t> block(20);
  put_u16(block, 0, kHalfQuarter);
  put_u16(block, 2, kHalfMinusOne);
  for (int j = 0; j < 16; ++j) block[4 + j] = static_cast<uint8_t>(j | ((j + 5) % 16) << 4);
  const std::vector<float> y = decode(TensorType::kQ4_1, block, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.25f * static_cast<float>(j) - 1.0f) << j;
    EXPECT_EQ(y[16 + j], 0.25f * static_cast<float>((j + 5) % 16) - 1.0f) << j;
  }
}

// Sub-block scales and mins used by the K-quant tests, and their 12-byte
// packing worked out by hand from the layout in k_quant_scales.h:
//   s = {1, 2, 3, 4, 17, 33, 49, 63}   m = {10, 20, 30, 40, 50, 37, 21, 63}
//   bytes 0-3 : s[j] | (s[j+4] >> 4) << 6 = 1|1<<6, 2|2<<6, 3|3<<6, 4|3<<6
//   bytes 4-7 : m[j] | (m[j+4] >> 4) << 6 = 10|3<<6, 20|2<<6, 30|1<<6, 40|3<<6
//   bytes 8-11: (s[j+4] & 15) | (m[j+4] & 15) << 4 = 0x21, 0x51, 0x51, 0xff
constexpr int kScales[8] = {1, 2, 3, 4, 17, 33, 49, 63};
constexpr int kMins[8] = {10, 20, 30, 40, 50, 37, 21, 63};
constexpr uint8_t kPackedScales[12] = {65, 130, 195,  196,  202,  148,
                                       94, 232, 0x21, 0x51, 0x51, 0xff};

TEST(FormatLayout, KQuantScalePackingMatchesHandPackedBytes) {
  SubBlockScaleMin values[8];
  for (int j = 0; j < 8; ++j) {
    values[j] = {static_cast<uint8_t>(kScales[j]), static_cast<uint8_t>(kMins[j])};
  }
  uint8_t packed[12];
  pack_scales_mins(values, packed);
  EXPECT_EQ(std::memcmp(packed, kPackedScales, 12), 0);
  for (int j = 0; j < 8; ++j) {
    const SubBlockScaleMin v = unpack_scale_min(kPackedScales, j);
    EXPECT_EQ(v.scale, kScales[j]) << j;
    EXPECT_EQ(v.min, kMins[j]) << j;
  }
}

TEST(FormatLayout, Q4_KSubBlocksTakeNibbleHalvesOfEach32ByteChunk) {
  std::vector<uint8_t> block(144);
  put_u16(block, 0, kHalfOne);   // d
  put_u16(block, 2, kHalfHalf);  // dmin
  std::memcpy(block.data() + 4, kPackedScales, 12);
  for (int i = 0; i < 128; ++i)
    block[16 + i] = static_cast<uint8_t>((i % 16) | ((i * 7) % 16) << 4);
  const std::vector<float> y = decode(TensorType::kQ4_K, block, 256);
  // Chunk c of 32 bytes (qs[32c..32c+31]) holds elements 64c..64c+31 in its
  // low nibbles (sub-block 2c) and 64c+32..64c+63 in its high nibbles (2c+1).
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const int i = 32 * c + l;
      const float low = static_cast<float>(i % 16), high = static_cast<float>((i * 7) % 16);
      EXPECT_EQ(y[64 * c + l], 1.0f * kScales[2 * c] * low - 0.5f * kMins[2 * c]);
      EXPECT_EQ(y[64 * c + 32 + l], 1.0f * kScales[2 * c + 1] * high - 0.5f * kMins[2 * c + 1]);
    }
  }
}

TEST(FormatLayout, Q5_KFifthBitComesFromBitJOfQh) {
  std::vector<uint8_t> block(176);
  put_u16(block, 0, kHalfHalf);  // d
  put_u16(block, 2, kHalfOne);   // dmin
  std::memcpy(block.data() + 4, kPackedScales, 12);
  for (int l = 0; l < 32; ++l) block[16 + l] = static_cast<uint8_t>(l * 37 + 11);  // qh
  for (int i = 0; i < 128; ++i) block[48 + i] = static_cast<uint8_t>(i * 29 + 3);  // qs
  const std::vector<float> y = decode(TensorType::kQ5_K, block, 256);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t qs = static_cast<uint8_t>((32 * c + l) * 29 + 3);
      const uint8_t qh = static_cast<uint8_t>(l * 37 + 11);
      const int j0 = 2 * c, j1 = 2 * c + 1;  // sub-blocks of the low / high nibbles
      const int q0 = (qs & 15) + 16 * ((qh >> j0) & 1);
      const int q1 = (qs >> 4) + 16 * ((qh >> j1) & 1);
      EXPECT_EQ(y[32 * j0 + l], 0.5f * kScales[j0] * q0 - 1.0f * kMins[j0]);
      EXPECT_EQ(y[32 * j1 + l], 0.5f * kScales[j1] * q1 - 1.0f * kMins[j1]);
    }
  }
}

TEST(FormatLayout, Q6_KInterleavesFourQuartersPerHalf) {
  std::vector<uint8_t> block(210);
  for (int i = 0; i < 128; ++i) block[i] = static_cast<uint8_t>(i * 37 + 5);       // ql
  for (int i = 0; i < 64; ++i) block[128 + i] = static_cast<uint8_t>(i * 91 + 1);  // qh
  for (int j = 0; j < 16; ++j)
    block[192 + j] = static_cast<uint8_t>(static_cast<int8_t>(9 * j - 70));
  put_u16(block, 208, kHalfHalf);
  const std::vector<float> y = decode(TensorType::kQ6_K, block, 256);
  // Per half h (128 elements), for l < 32, with ql' = ql + 64h, qh' = qh + 32h:
  //   element l      : ql'[l] low nibble,      qh'[l] bits 0-1, scale 8h + l/16
  //   element l + 32 : ql'[l + 32] low nibble, qh'[l] bits 2-3, scale 8h + 2 + l/16
  //   element l + 64 : ql'[l] high nibble,     qh'[l] bits 4-5, scale 8h + 4 + l/16
  //   element l + 96 : ql'[l + 32] high nibble, qh'[l] bits 6-7, scale 8h + 6 + l/16
  auto ql = [](int i) { return static_cast<uint8_t>(i * 37 + 5); };
  auto qh = [](int i) { return static_cast<uint8_t>(i * 91 + 1); };
  auto scale = [](int j) { return static_cast<float>(9 * j - 70); };
  for (int h = 0; h < 2; ++h) {
    for (int l = 0; l < 32; ++l) {
      const int a = ql(64 * h + l), b = ql(64 * h + l + 32), hi = qh(32 * h + l);
      const int q[4] = {(a & 15) | (hi & 3) << 4, (b & 15) | ((hi >> 2) & 3) << 4,
                        (a >> 4) | ((hi >> 4) & 3) << 4, (b >> 4) | ((hi >> 6) & 3) << 4};
      for (int k = 0; k < 4; ++k) {
        const float expected = 0.5f * scale(8 * h + 2 * k + l / 16) * static_cast<float>(q[k] - 32);
        EXPECT_EQ(y[128 * h + 32 * k + l], expected) << h << " " << k << " " << l;
      }
    }
  }
}

}  // namespace
}  // namespace kvforge::kernels
