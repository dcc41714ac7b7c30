// The integer matmul paths (int8 activations, decode and prefill) against an
// exact reference, on every SIMD target the matmul kernels are compiled for.
//
// The inputs are chosen so that rounding the activations to int8 changes
// nothing and every floating-point operation of the kernels is exact:
//   * each 32-column block of a token holds p * k with k an integer in
//     [-15, 15] except one k = +-127, and p in {1, 2}: its int8 scale is
//     amax / 127 = p and its codes are the k themselves;
//   * weight blocks are random bytes (all codes, including Q8_0's -128),
//     with scales that are powers of two (d in {1/4, 1/2}, dmin = 1/4)
//     times small integers (the K-quants' 6-bit sub-block scales and mins,
//     Q4_1's m in 1/4 * [-63, 63], Q6_K's int8 scales limited to [-16, 16]);
// so every value is a multiple of 1/4, and as long as the sum over a dot
// product of (|w| + 2 * largest |offset|) * |x| stays below 2^24 quarters
// (checked; it bounds every partial sum, whichever way a kernel splits w
// into scale * code + offset), every product, integer sum and f32 partial
// sum is exact. The expected output is then the exact
// dot product of the dequantized weights (format_*.cpp's scalar decoders,
// checked byte by byte in format_layout_test) with the activations,
// accumulated in double, and every kernel must return it bit for bit: an
// integer kernel that drops or doubles a single product, mixes up two
// sub-blocks' scales, or misses an offset fails.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/k_quant_scales.h"
#include "kernels/matmul.h"
#include "kernels/matmul_internal.h"
#include "kernels/quant.h"
#include "kernels/simd_target_select.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace kvforge::kernels {
namespace {

void put_half(uint8_t* p, float f) {
  const uint16_t h = fp32_to_fp16(f);
  std::memcpy(p, &h, sizeof h);
}

// One block of `type` with random codes and exactly representable scales.
void random_block(TensorType type, std::mt19937& rng, uint8_t* b) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> coin(0, 1);
  std::uniform_int_distribution<int> six_bits(0, 63);
  std::uniform_int_distribution<int> small_signed(-16, 16);
  auto power = [&] { return coin(rng) ? 0.25f : 0.5f; };
  auto fill = [&](uint8_t* p, int n) {
    for (int i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(byte(rng));
  };
  switch (type) {
    case TensorType::kQ8_0:  // d, 32 int8 codes
      put_half(b, power());
      fill(b + 2, 32);
      break;
    case TensorType::kQ4_0:  // d, 16 bytes of nibbles
      put_half(b, power());
      fill(b + 2, 16);
      break;
    case TensorType::kQ4_1:  // d, m, nibbles
      put_half(b, power());
      put_half(b + 2, (coin(rng) ? -0.25f : 0.25f) * static_cast<float>(six_bits(rng)));
      fill(b + 4, 16);
      break;
    case TensorType::kQ4_K:
    case TensorType::kQ5_K: {  // d, dmin, 12 bytes of scales/mins, [qh,] qs
      put_half(b, power());
      put_half(b + 2, 0.25f);
      SubBlockScaleMin sm[kKQuantSubBlocks];
      for (auto& v : sm)
        v = {static_cast<uint8_t>(six_bits(rng)), static_cast<uint8_t>(six_bits(rng))};
      pack_scales_mins(sm, b + 4);
      fill(b + 16, type == TensorType::kQ4_K ? 128 : 32 + 128);
      break;
    }
    case TensorType::kQ6_K:  // ql, qh, 16 int8 scales, d
      fill(b, 192);
      for (int i = 0; i < 16; ++i) b[192 + i] = static_cast<uint8_t>(small_signed(rng));
      put_half(b + 208, power());
      break;
    default:
      FAIL() << "no block builder for " << tensor_type_name(type);
  }
}

// Largest |offset| of a weight for the exactness bound below (Q4_1's m,
// the K-quants' dmin * min, as random_block makes them).
double max_weight_offset(TensorType type) {
  return type == TensorType::kQ4_1 || type == TensorType::kQ4_K || type == TensorType::kQ5_K
             ? 0.25 * 63
             : 0.0;
}

// matmul of the n_rows x n_cols matrix `bytes` of `type` with 1-40 tokens of
// x (max_tokens rows), on every target, 1 and 2 threads, equals the exact
// dot products bit for bit.
void expect_exact_on_every_target(TensorType type, int64_t n_rows, int64_t n_cols,
                                  std::vector<uint8_t>& bytes, const std::vector<float>& x,
                                  int64_t max_tokens) {
  const size_t row_bytes = tensor_row_bytes(type, static_cast<uint64_t>(n_cols));
  std::vector<float> w(static_cast<size_t>(n_rows * n_cols));
  for (int64_t r = 0; r < n_rows; ++r) {
    dequantize_row(type, &bytes[static_cast<size_t>(r) * row_bytes],
                   &w[static_cast<size_t>(r * n_cols)], n_cols);
  }
  const MatrixView view{type, bytes.data(), n_rows, n_cols, row_bytes};
  const double max_offset = max_weight_offset(type);
  std::vector<double> expected(static_cast<size_t>(max_tokens * n_rows));
  for (int64_t t = 0; t < max_tokens; ++t) {
    for (int64_t r = 0; r < n_rows; ++r) {
      double sum = 0.0, magnitude = 0.0;
      for (int64_t k = 0; k < n_cols; ++k) {
        const double wx = static_cast<double>(w[static_cast<size_t>(r * n_cols + k)]) *
                          x[static_cast<size_t>(t * n_cols + k)];
        sum += wx;
        magnitude += (std::fabs(static_cast<double>(w[static_cast<size_t>(r * n_cols + k)])) +
                      2 * max_offset) *
                     std::fabs(x[static_cast<size_t>(t * n_cols + k)]);
      }
      // The exactness argument above needs the sums to stay small.
      ASSERT_LT(magnitude * 4.0, 0x1p24) << "test data too large for exact f32 sums";
      expected[static_cast<size_t>(t * n_rows + r)] = sum;
    }
  }
  ThreadPool pool1(1), pool2(2);
  MatmulScratch scratch(2, max_tokens, n_cols);
  for (const int64_t target : matmul_simd_targets()) {
    restrict_simd_targets(target);
    for (int64_t n_tokens : {1, 2, 3, 4, 5, 7, 13, 40}) {
      if (n_tokens > max_tokens) continue;
      const bool int8 = n_tokens <= kMaxDecodeTokens ? decode_uses_quantized_activations(type)
                                                     : prefill_uses_quantized_activations(type);
      for (ThreadPool* pool : {&pool1, &pool2}) {
        std::vector<float> y(static_cast<size_t>(n_tokens * n_rows), NAN);
        matmul(view, x.data(), n_tokens, y.data(), *pool, scratch);
        for (int64_t t = 0; t < n_tokens; ++t) {
          for (int64_t r = 0; r < n_rows; ++r) {
            const size_t i = static_cast<size_t>(t * n_rows + r);
            ASSERT_EQ(static_cast<double>(y[i]), expected[i])
                << matmul_simd_target_name() << (int8 ? " (int8 activations)" : " (f32)")
                << ", rows " << n_rows << " cols " << n_cols << " tokens " << n_tokens
                << " threads " << pool->n_threads() << ": t " << t << " r " << r;
          }
        }
      }
    }
  }
  restrict_simd_targets(0);
}

class MatmulInt8Test : public ::testing::TestWithParam<TensorType> {};

TEST_P(MatmulInt8Test, EqualsExactDotProductsOnEveryTarget) {
  const TensorType type = GetParam();
  const bool k_quant =
      type == TensorType::kQ4_K || type == TensorType::kQ5_K || type == TensorType::kQ6_K;
  // Row counts around the panel sizes (16-64) and a single row; column
  // counts with a partial last chunk of 256 and, for 32-column blocks, one
  // that is not a multiple of 64.
  std::mt19937 rng(static_cast<uint32_t>(type) * 7919u + 1);
  for (int64_t n_rows : {1, 37, 101}) {
    for (int64_t n_cols :
         k_quant ? std::vector<int64_t>{256, 512} : std::vector<int64_t>{96, 288}) {
      const size_t row_bytes = tensor_row_bytes(type, static_cast<uint64_t>(n_cols));
      const int64_t block_elems =
          static_cast<int64_t>(tensor_type_traits(static_cast<uint32_t>(type))->block_elems);
      const size_t block_bytes = row_bytes / static_cast<size_t>(n_cols / block_elems);
      std::vector<uint8_t> bytes(row_bytes * static_cast<size_t>(n_rows));
      for (size_t off = 0; off < bytes.size(); off += block_bytes)
        random_block(type, rng, &bytes[off]);
      const int64_t max_tokens = 40;
      std::vector<float> x(static_cast<size_t>(max_tokens * n_cols));
      std::uniform_int_distribution<int> code(-15, 15), pos(0, 31), coin(0, 1);
      for (int64_t b = 0; b < max_tokens * n_cols / 32; ++b) {
        const float p = coin(rng) ? 1.0f : 2.0f;
        for (int i = 0; i < 32; ++i)
          x[static_cast<size_t>(b * 32 + i)] = p * static_cast<float>(code(rng));
        x[static_cast<size_t>(b * 32 + pos(rng))] = p * (coin(rng) ? 127.0f : -127.0f);
      }
      expect_exact_on_every_target(type, n_rows, n_cols, bytes, x, max_tokens);
    }
  }
}

// The largest sums the integer kernels can meet: every code at the top of
// its range (all bits set: 15 for the 4-bit formats, 31 for Q5_K and Q6_K's
// q - 32, -128 for Q8_0) against activations that are all +127 or all -127
// codes. A kernel that adds more products in 16-bit lanes than they can hold
// (for example the 4-bit formats' i16 sums of a whole 32-column sub-block,
// 16 products of 15 * 127 = 30480 per lane) saturates or wraps here. Scales
// are small so that the f32 sums stay exact.
TEST_P(MatmulInt8Test, LargestCodesAndActivationsAreExact) {
  const TensorType type = GetParam();
  const int64_t n_rows = 37, n_cols = 256, max_tokens = 13;
  const size_t row_bytes = tensor_row_bytes(type, static_cast<uint64_t>(n_cols));
  std::vector<uint8_t> bytes(row_bytes * static_cast<size_t>(n_rows));
  const size_t block_bytes = type == TensorType::kQ4_K   ? 144
                             : type == TensorType::kQ5_K ? 176
                             : type == TensorType::kQ6_K ? 210
                             : type == TensorType::kQ4_0 ? 18
                             : type == TensorType::kQ4_1 ? 20
                                                         : 34;
  for (size_t off = 0; off < bytes.size(); off += block_bytes) {
    uint8_t* b = &bytes[off];
    std::memset(b, 0xff, block_bytes);
    switch (type) {
      case TensorType::kQ8_0:
        put_half(b, 0.25f);
        std::memset(b + 2, 0x80, 32);  // -128
        break;
      case TensorType::kQ4_0:
        put_half(b, 0.25f);
        break;
      case TensorType::kQ4_1:
        put_half(b, 0.25f);
        put_half(b + 2, -0.25f);
        break;
      case TensorType::kQ4_K:
      case TensorType::kQ5_K: {
        put_half(b, 0.25f);
        put_half(b + 2, 0.25f);
        SubBlockScaleMin sm[kKQuantSubBlocks];
        for (auto& v : sm) v = {1, 1};
        pack_scales_mins(sm, b + 4);
        break;
      }
      case TensorType::kQ6_K:
        for (int i = 0; i < 16; ++i) b[192 + i] = 1;
        put_half(b + 208, 0.25f);
        break;
      default:
        FAIL() << "no block builder for " << tensor_type_name(type);
    }
  }
  std::vector<float> x(static_cast<size_t>(max_tokens * n_cols));
  for (int64_t t = 0; t < max_tokens; ++t) {
    const float value = t % 2 == 0 ? 127.0f : -127.0f;
    std::fill_n(x.begin() + t * n_cols, n_cols, value);
  }
  expect_exact_on_every_target(type, n_rows, n_cols, bytes, x, max_tokens);
}

INSTANTIATE_TEST_SUITE_P(QuantizedTypes, MatmulInt8Test,
                         ::testing::Values(TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_1,
                                           TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K),
                         [](const auto& info) {
                           return std::string(tensor_type_name(info.param));
                         });

// The int8 paths are in use where they should be: on the AVX2 and AVX-512
// targets every quantized type's decode and prefill.
TEST(MatmulInt8Paths, IntegerKernelsRunOnTheX86VectorTargets) {
  for (const int64_t target : matmul_simd_targets()) {
    restrict_simd_targets(target);
    const std::string name = matmul_simd_target_name();
    const bool x86_vector =
        name == "AVX2" || name == "AVX3" || name == "AVX3_DL" || name == "AVX3_DL+AMX";
    for (TensorType type : {TensorType::kQ4_0, TensorType::kQ4_1, TensorType::kQ4_K,
                            TensorType::kQ5_K, TensorType::kQ6_K, TensorType::kQ8_0}) {
      EXPECT_EQ(decode_uses_quantized_activations(type), x86_vector) << name;
      EXPECT_EQ(prefill_uses_quantized_activations(type), x86_vector) << name;
    }
    for (TensorType type : {TensorType::kF32, TensorType::kF16, TensorType::kBF16}) {
      EXPECT_FALSE(decode_uses_quantized_activations(type)) << name;
      EXPECT_FALSE(prefill_uses_quantized_activations(type)) << name;
    }
  }
  restrict_simd_targets(0);
}

}  // namespace
}  // namespace kvforge::kernels
