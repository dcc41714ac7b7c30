// The SIMD unpackers used inside matmul decode exactly what dequantize_row
// decodes, bit for bit, on random bytes (every bit pattern of codes, scales
// and high bits is a valid block apart from the f16 scales, kept finite), on
// every SIMD target compiled and supported here.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/simd_targets_for_test.h"
#include "kernels/matmul_internal.h"
#include "kernels/quant.h"
#include "kernels/weight_format.h"

namespace kvforge::kernels {
namespace {

TEST(UnpackBlocks, MatchesScalarDecoderBitForBit) {
  for (TensorType type :
       {TensorType::kF32, TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0, TensorType::kQ4_0,
        TensorType::kQ4_1, TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K}) {
    const WeightFormat& format = *find_weight_format(type);
    constexpr int64_t kBlocks = 16;
    const int64_t n = kBlocks * format.block_elems;
    std::vector<float> source(static_cast<size_t>(n));
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& v : source) v = normal(rng);
    std::vector<uint8_t> bytes(kBlocks * format.block_bytes);
    quantize_row(type, source.data(), bytes.data(), n);
    // Randomize everything but the f16 scales:
    // packed scales and codes of Q4_K/Q5_K (bytes 4..), codes and int8 scales of Q6_K (0..207).
    std::uniform_int_distribution<int> byte(0, 255);
    for (int64_t b = 0; b < kBlocks; ++b) {
      uint8_t* block = bytes.data() + b * format.block_bytes;
      if (type == TensorType::kQ4_K || type == TensorType::kQ5_K) {
        for (size_t i = 4; i < format.block_bytes; ++i) block[i] = static_cast<uint8_t>(byte(rng));
      } else if (type == TensorType::kQ6_K) {
        for (size_t i = 0; i < 208; ++i) block[i] = static_cast<uint8_t>(byte(rng));
      }
    }
    std::vector<float> expected(static_cast<size_t>(n));
    dequantize_row(type, bytes.data(), expected.data(), n);
    test_util::on_every_simd_target([&](int64_t) {
      std::vector<float> actual(static_cast<size_t>(n), NAN);
      unpack_blocks(format, bytes.data(), actual.data(), kBlocks);
      ASSERT_EQ(std::memcmp(expected.data(), actual.data(), expected.size() * sizeof(float)), 0)
          << tensor_type_name(type);
    });
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace kvforge::kernels
