// The optimized matmul against matmul_reference (double accumulation), for
// every weight type, decode and prefill token counts, odd row counts and 1-3
// threads, on every SIMD target compiled and supported here; results
// identical across thread counts; and batch invariance: a token's outputs
// are the same bits whatever other tokens share the call.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/simd_targets_for_test.h"
#include "hwy/aligned_allocator.h"
#include "kernels/amx.h"
#include "kernels/matmul.h"
#include "kernels/matmul_internal.h"
#include "kernels/q4_0_strips.h"
#include "kernels/quant.h"
#include "kernels/simd_target_select.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace kvforge::kernels {
namespace {

struct Shape {
  int64_t n_rows, n_cols;
};

struct Weights {
  std::vector<uint8_t> bytes;
  std::vector<float> dequantized;  // [n_rows, n_cols]
  MatrixView view;
};

Weights make_weights(TensorType type, Shape shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(shape.n_rows * shape.n_cols));
  for (float& v : w) v = uniform(rng);
  Weights out;
  const size_t row_bytes = tensor_row_bytes(type, static_cast<uint64_t>(shape.n_cols));
  out.bytes.resize(row_bytes * static_cast<size_t>(shape.n_rows));
  out.dequantized.resize(w.size());
  for (int64_t r = 0; r < shape.n_rows; ++r) {
    quantize_row(type, &w[static_cast<size_t>(r * shape.n_cols)], &out.bytes[r * row_bytes],
                 shape.n_cols);
    dequantize_row(type, &out.bytes[r * row_bytes], &out.dequantized[r * shape.n_cols],
                   shape.n_cols);
  }
  out.view = {type, out.bytes.data(), shape.n_rows, shape.n_cols, row_bytes};
  return out;
}

std::vector<float> make_activations(int64_t n_tokens, int64_t n_cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n_tokens * n_cols));
  for (float& v : x) v = normal(rng);
  return x;
}

// Extra error allowed where decode rounds activations to int8 blocks of 32
// (x ~ d * q, d = amax / 127, q = round(x / d)): each element moves by at most
// d / 2 = amax / 254, up to f32 rounding of d and x / d (relative 2^-22,
// far below the 2^-10 margin), so the dot product moves by at most
// sum over blocks of amax / 254 * sum |w| in the block.
double activation_rounding_bound(const float* w, const float* x, int64_t n_cols) {
  double bound = 0.0;
  for (int64_t b = 0; b < n_cols; b += 32) {
    double amax = 0.0, weight_sum = 0.0;
    for (int64_t c = b; c < b + 32; ++c) {
      amax = std::fmax(amax, std::fabs(x[c]));
      weight_sum += std::fabs(w[c]);
    }
    bound += amax / 254.0 * (1.0 + 0x1p-10) * weight_sum;
  }
  return bound;
}

class MatmulTest : public ::testing::TestWithParam<TensorType> {};

TEST_P(MatmulTest, MatchesReferenceForAllTokenCountsAndThreadCounts) {
  const TensorType type = GetParam();
  ThreadPool pool1(1), pool2(2), pool3(3);
  ThreadPool* pools[] = {&pool1, &pool2, &pool3};
  for (Shape shape : {Shape{37, 512}, Shape{70, 256}, Shape{1, 768}}) {
    const Weights w = make_weights(type, shape, 11);
    MatmulScratch scratch(3, 64, shape.n_cols);
    for (int64_t n_tokens : {1, 3, 17, 64}) {
      const std::vector<float> x = make_activations(n_tokens, shape.n_cols, 12);
      std::vector<float> expected(static_cast<size_t>(n_tokens * shape.n_rows));
      matmul_reference(w.view, x.data(), n_tokens, expected.data());
      // Per output: f32 accumulation of n_cols products in any order errs by
      // at most about n_cols * 2^-24 * sum |w| |x|; rounding the activations
      // to int8 blocks adds activation_rounding_bound.
      std::vector<double> f32_tolerance(expected.size()), int8_tolerance(expected.size());
      for (int64_t t = 0; t < n_tokens; ++t) {
        for (int64_t r = 0; r < shape.n_rows; ++r) {
          double magnitude = 0.0;
          for (int64_t c = 0; c < shape.n_cols; ++c) {
            magnitude += std::fabs(w.dequantized[r * shape.n_cols + c] * x[t * shape.n_cols + c]);
          }
          const size_t i = static_cast<size_t>(t * shape.n_rows + r);
          f32_tolerance[i] = static_cast<double>(shape.n_cols) * 0x1p-24 * magnitude;
          int8_tolerance[i] =
              f32_tolerance[i] + activation_rounding_bound(&w.dequantized[r * shape.n_cols],
                                                           &x[t * shape.n_cols], shape.n_cols);
        }
      }
      test_util::on_every_simd_target(
          [&](int64_t) {
            // Quantized types may round the activations to int8 blocks, on the
            // targets that have int8 kernels.
            const bool int8_activations = n_tokens <= kMaxDecodeTokens
                                              ? decode_uses_quantized_activations(type)
                                              : prefill_uses_quantized_activations(type);
            const std::vector<double>& tolerance =
                int8_activations ? int8_tolerance : f32_tolerance;
            std::vector<float> first;
            for (ThreadPool* pool : pools) {
              std::vector<float> y(expected.size(), NAN);
              matmul(w.view, x.data(), n_tokens, y.data(), *pool, scratch);
              for (int64_t t = 0; t < n_tokens; ++t) {
                for (int64_t r = 0; r < shape.n_rows; ++r) {
                  const size_t i = static_cast<size_t>(t * shape.n_rows + r);
                  ASSERT_NEAR(y[i], expected[i], tolerance[i])
                      << "rows " << shape.n_rows << " cols " << shape.n_cols << " tokens "
                      << n_tokens << " threads " << pool->n_threads() << " t " << t << " r " << r
                      << (int8_activations ? " (int8 activations)" : "");
                }
              }
              if (first.empty()) {
                first = y;
              } else {
                ASSERT_EQ(y, first) << "results differ between thread counts, tokens " << n_tokens;
              }
            }
          },
          test_util::matmul_targets_for_test());
      if (HasFatalFailure()) return;
    }
  }
}

// Batch invariance (matmul_internal.h): the outputs of a token computed
// alone (the decode path) must equal, bit for bit, its outputs inside every
// batch of 2..70 tokens (decode kernels up to kMaxDecodeTokens, then the
// prefill kernels with their tiles of up to kMaxTileTokens tokens, token
// splits over threads, and more tokens than kMaxPanelRows), at any
// position in the batch and next to any other tokens, with 1 and 2
// threads, on every SIMD target the matmul kernels are compiled for.
class MatmulBatchInvarianceTest : public ::testing::TestWithParam<TensorType> {};

TEST_P(MatmulBatchInvarianceTest, ARowAloneEqualsTheSameRowInEveryBatch) {
  const TensorType type = GetParam();
  const bool k_quant =
      type == TensorType::kQ4_K || type == TensorType::kQ5_K || type == TensorType::kQ6_K;
  constexpr int64_t kMaxBatch = 70;
  constexpr int64_t kPool = 80;  // distinct tokens; batches are windows of them
  ThreadPool pool1(1), pool2(2);
  // Row counts: less than one decode group / panel, and several of them
  // with a partial last one; columns: a partial last chunk of 256 and, for
  // 32-column blocks, an odd number of blocks.
  const std::vector<Shape> shapes =
      k_quant ? std::vector<Shape>{{7, 256}, {67, 512}} : std::vector<Shape>{{7, 96}, {67, 288}};
  for (const Shape shape : shapes) {
    const Weights w = make_weights(type, shape, 21);
    // Activations of varied scale per token, with an outlier per token, so
    // that the int8 blocks' scales differ from token to token.
    std::vector<float> x = make_activations(kPool, shape.n_cols, 22);
    for (int64_t t = 0; t < kPool; ++t) {
      const float scale = std::ldexp(1.0f, static_cast<int>(t % 7) - 3);
      for (int64_t c = 0; c < shape.n_cols; ++c) x[t * shape.n_cols + c] *= scale;
      x[t * shape.n_cols + (t * 13) % shape.n_cols] *= 9.0f;
    }
    MatmulScratch scratch(2, kMaxBatch, shape.n_cols);
    for (const int64_t target : matmul_simd_targets()) {
      restrict_simd_targets(target);
      const std::string where = matmul_simd_target_name() + ", rows " +
                                std::to_string(shape.n_rows) + " cols " +
                                std::to_string(shape.n_cols);
      // Each token alone.
      std::vector<float> alone(static_cast<size_t>(kPool * shape.n_rows));
      for (int64_t t = 0; t < kPool; ++t) {
        matmul(w.view, &x[t * shape.n_cols], 1, &alone[t * shape.n_rows], pool1, scratch);
      }
      for (int64_t n = 2; n <= kMaxBatch; ++n) {
        const int64_t first = (n * 5) % (kPool - n + 1);  // window [first, first + n)
        for (ThreadPool* pool : {&pool1, &pool2}) {
          // Two threads (panels and token splits over both) for a sample.
          if (pool == &pool2 && n > 8 && n % 4 != 0) continue;
          std::vector<float> y(static_cast<size_t>(n * shape.n_rows), NAN);
          matmul(w.view, &x[first * shape.n_cols], n, y.data(), *pool, scratch);
          for (int64_t t = 0; t < n; ++t) {
            for (int64_t r = 0; r < shape.n_rows; ++r) {
              const float in_batch = y[t * shape.n_rows + r];
              const float single = alone[(first + t) * shape.n_rows + r];
              uint32_t a, b;
              std::memcpy(&a, &in_batch, sizeof a);
              std::memcpy(&b, &single, sizeof b);
              ASSERT_EQ(a, b) << where << ": batch of " << n << " (threads " << pool->n_threads()
                              << "), token " << t << " row " << r << ": " << in_batch
                              << " in the batch, " << single << " alone";
            }
          }
        }
      }
    }
    restrict_simd_targets(0);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, MatmulBatchInvarianceTest,
                         ::testing::Values(TensorType::kF32, TensorType::kF16, TensorType::kBF16,
                                           TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_1,
                                           TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K),
                         [](const auto& info) {
                           return std::string(tensor_type_name(info.param));
                         });

INSTANTIATE_TEST_SUITE_P(AllTypes, MatmulTest,
                         ::testing::Values(TensorType::kF32, TensorType::kF16, TensorType::kBF16,
                                           TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_1,
                                           TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K),
                         [](const auto& info) {
                           return std::string(tensor_type_name(info.param));
                         });

// A Q4_0 matrix repacked into strips (q4_0_strips.h), in a 64-byte aligned
// buffer as the model allocates it.
struct Strips {
  hwy::AlignedFreeUniquePtr<uint8_t[]> bytes;
  MatrixView view;
};

Strips make_strips(const Weights& w) {
  Strips out;
  const size_t n = q4_0_strips_bytes(w.view.n_rows, w.view.n_cols);
  out.bytes = hwy::AllocateAligned<uint8_t>(n);
  const int64_t n_strips = (w.view.n_rows + kStripRows - 1) / kStripRows;
  // In two calls, as the model repacks strips in parallel ranges.
  repack_q4_0_strips(w.view, 0, n_strips / 2, out.bytes.get());
  repack_q4_0_strips(w.view, n_strips / 2, n_strips, out.bytes.get());
  out.view = w.view;
  out.view.strips = out.bytes.get();
  return out;
}

// Reads weight (r, c) back from the strips by the layout the header
// documents, byte by byte.
float strip_weight(const MatrixView& w, int64_t r, int64_t c) {
  const uint8_t* strip = w.strips + static_cast<size_t>(r / 16) * q4_0_strip_bytes(w.n_cols);
  const int64_t b = c / 32, i = r % 16, col = c % 32;
  const uint8_t* pair = strip + static_cast<size_t>(b / 2) * 576;
  uint16_t half;
  std::memcpy(&half, pair + 32 * (b % 2) + 2 * i, 2);
  const uint8_t byte = pair[64 + 256 * (b % 2) + 64 * (col / 8) + 4 * i + col % 4];
  const int code = col % 8 < 4 ? byte & 0x0f : byte >> 4;
  return fp16_to_fp32(half) * static_cast<float>(code - 8);
}

TEST(Q4_0Strips, HoldEveryWeightWhereTheLayoutSays) {
  // Rows: a partial last strip; columns: an odd number of blocks.
  const Weights w = make_weights(TensorType::kQ4_0, Shape{37, 96}, 31);
  const Strips s = make_strips(w);
  for (int64_t r = 0; r < 37; ++r) {
    for (int64_t c = 0; c < 96; ++c) {
      ASSERT_EQ(strip_weight(s.view, r, c), w.dequantized[r * 96 + c]) << "r " << r << " c " << c;
    }
  }
  // Rows past the matrix are zero (scales and codes).
  const uint8_t* last = s.view.strips + 2 * q4_0_strip_bytes(96);
  for (size_t k = 0; k < q4_0_strip_bytes(96); ++k) {
    const bool scale = k % 576 < 64;
    const size_t row = scale ? (k % 32) / 2 : (k % 576 - 64) % 64 / 4;
    if (row >= 5) {
      ASSERT_EQ(last[k], 0) << "byte " << k;
    }
  }
}

// Embedding lookups of a tied output read rows from the strips.
TEST(Q4_0Strips, RowsReadBackAsTheFileRowsDequantized) {
  const Weights w = make_weights(TensorType::kQ4_0, Shape{37, 96}, 32);
  const Strips s = make_strips(w);
  std::vector<float> row(96);
  for (int64_t r = 0; r < 37; ++r) {
    dequantize_q4_0_strip_row(s.view, r, row.data());
    for (int64_t c = 0; c < 96; ++c) {
      ASSERT_EQ(row[static_cast<size_t>(c)], w.dequantized[r * 96 + c]) << "r " << r << " c " << c;
    }
  }
}

// Allows or forbids GFNI in the strip kernel for its lifetime.
struct StripGfniGuard {
  explicit StripGfniGuard(bool allowed) { allow_strip_gfni(allowed); }
  ~StripGfniGuard() { allow_strip_gfni(true); }
  StripGfniGuard(const StripGfniGuard&) = delete;
  StripGfniGuard& operator=(const StripGfniGuard&) = delete;
};

// The strip kernel gives the same bits as the kernels reading the file's
// blocks (themselves checked against the reference above and batch
// invariant), for every token count from decode to several prefill tiles,
// 1 and 2 threads, on every matmul target (those without the strip kernel
// read the blocks), with and without GFNI where the CPU has it.
TEST(Q4_0Strips, MatmulEqualsTheBlockKernelsBitForBit) {
  ThreadPool pool1(1), pool2(2);
  for (const Shape shape : {Shape{7, 96}, Shape{67, 288}, Shape{100, 2080}}) {
    const Weights w = make_weights(TensorType::kQ4_0, shape, 41);
    const Strips s = make_strips(w);
    constexpr int64_t kMaxTokens = 40;
    const std::vector<float> x = make_activations(kMaxTokens, shape.n_cols, 42);
    MatmulScratch scratch(2, kMaxTokens, shape.n_cols);
    test_util::on_every_simd_target(
        [&](int64_t) {
          for (const bool gfni : {true, false})
            for (const int64_t n : {1, 2, 3, 4, 5, 8, 9, 13, 16, 17, 24, 33, 40}) {
              const StripGfniGuard guard(gfni);
              for (ThreadPool* pool : {&pool1, &pool2}) {
                std::vector<float> blocks(static_cast<size_t>(n * shape.n_rows), NAN);
                std::vector<float> strips(blocks.size(), NAN);
                matmul(w.view, x.data(), n, blocks.data(), *pool, scratch);
                matmul(s.view, x.data(), n, strips.data(), *pool, scratch);
                for (size_t i = 0; i < blocks.size(); ++i) {
                  uint32_t a, b;
                  std::memcpy(&a, &blocks[i], sizeof a);
                  std::memcpy(&b, &strips[i], sizeof b);
                  ASSERT_EQ(a, b) << "rows " << shape.n_rows << " cols " << shape.n_cols
                                  << " tokens " << n << " threads " << pool->n_threads() << " gfni "
                                  << gfni << " output " << i << ": " << blocks[i]
                                  << " from blocks, " << strips[i] << " from strips";
                }
              }
            }
        },
        test_util::matmul_targets_for_test());
    if (HasFatalFailure()) return;
  }
}

// Several matrices times one x in one call give each matrix's own matmul
// bits: in strips (x rounded once, one parallel region over all panels,
// token shares judged on all of them) and in the fallback (a matrix in file
// order among them: one matmul each).
TEST(MatmulSharedInput, EqualsEachMatrixOnItsOwnBitForBit) {
  ThreadPool pool1(1), pool2(2);
  constexpr int64_t kCols = 288, kMaxTokens = 40;
  const Weights w1 = make_weights(TensorType::kQ4_0, Shape{100, kCols}, 51);
  const Weights w2 = make_weights(TensorType::kQ4_0, Shape{67, kCols}, 52);
  const Weights w3 = make_weights(TensorType::kQ4_0, Shape{7, kCols}, 53);
  const Strips s1 = make_strips(w1), s2 = make_strips(w2), s3 = make_strips(w3);
  const Weights f1 = make_weights(TensorType::kF16, Shape{40, kCols}, 55);
  const Weights f2 = make_weights(TensorType::kF16, Shape{9, kCols}, 56);
  const Weights k1 = make_weights(TensorType::kQ4_K, Shape{33, 512}, 57);
  const Weights k2 = make_weights(TensorType::kQ6_K, Shape{20, 512}, 58);
  const std::vector<float> x = make_activations(kMaxTokens, 512, 54);
  MatmulScratch scratch(2, kMaxTokens, 512);
  // Strips (one region), file-order Q4_0, F16 (x prepared once per group),
  // and groups whose matrices take different paths (each on its own).
  const std::vector<std::vector<const MatrixView*>> groups = {{&s1.view, &s2.view, &s3.view},
                                                              {&s2.view, &s1.view},
                                                              {&s1.view, &w2.view, &s3.view},
                                                              {&w1.view, &w2.view, &w3.view},
                                                              {&f1.view, &f2.view},
                                                              {&w1.view, &f1.view},
                                                              {&k1.view, &k2.view}};
  test_util::on_every_simd_target(
      [&](int64_t) {
        for (const auto& group : groups) {
          for (const int64_t n : {1, 3, 8, 9, 17, 40}) {
            for (ThreadPool* pool : {&pool1, &pool2}) {
              std::vector<std::vector<float>> alone, together;
              std::vector<MatmulOutput> outputs;
              for (const MatrixView* w : group) {
                alone.emplace_back(static_cast<size_t>(n * w->n_rows), NAN);
                together.emplace_back(alone.back().size(), NAN);
                matmul(*w, x.data(), n, alone.back().data(), *pool, scratch);
              }
              for (size_t i = 0; i < group.size(); ++i) {
                outputs.push_back({group[i], together[i].data()});
              }
              matmul_shared_input(outputs, x.data(), n, *pool, scratch);
              for (size_t i = 0; i < group.size(); ++i) {
                ASSERT_EQ(0, std::memcmp(alone[i].data(), together[i].data(),
                                         alone[i].size() * sizeof(float)))
                    << "matrix " << i << " of " << group.size() << ", tokens " << n << ", threads "
                    << pool->n_threads();
              }
            }
          }
        }
      },
      test_util::matmul_targets_for_test());
}

// The AMX target (amx.h) is listed, named and switched like the Highway
// targets where the machine has AMX, and nowhere else.
TEST(AmxTarget, IsListedAndSwitchedOnlyWhereAvailable) {
  const std::vector<int64_t> targets = matmul_simd_targets();
  const Result<int64_t> parsed = parse_simd_target("AMX");
  if (!amx_available()) {
    EXPECT_FALSE(parsed.ok());
    EXPECT_EQ(std::count(targets.begin(), targets.end(), kAmxTarget), 0);
    EXPECT_FALSE(amx_enabled());
    GTEST_SKIP() << "no AMX on this machine: only its absence was checked";
  }
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(*parsed, kAmxTarget);
  ASSERT_FALSE(targets.empty());
  EXPECT_EQ(targets.front(), kAmxTarget);
  restrict_simd_targets(HWY_AVX3_DL);
  EXPECT_FALSE(amx_enabled());
  EXPECT_EQ(matmul_simd_target_name(), "AVX3_DL");
  restrict_simd_targets(kAmxTarget);
  EXPECT_TRUE(amx_enabled());
  EXPECT_EQ(matmul_simd_target_name(), "AVX3_DL+AMX");
  restrict_simd_targets(HWY_AVX2);
  EXPECT_FALSE(amx_enabled());
  restrict_simd_targets(0);
  EXPECT_TRUE(amx_enabled());
}

// The AMX kernels give the vector kernels' bits (which the tests above hold
// to the reference and to batch invariance): Q4_0 in strips and every
// panel format, for token counts from kAmxMinTokens up with partial tiles
// of 16 tokens, partial strips and panels, 1 and 2 threads (token splits).
TEST(AmxKernels, EqualTheVectorKernelsBitForBit) {
  if (!amx_available()) GTEST_SKIP() << "no AMX on this machine";
  ThreadPool pool1(1), pool2(2);
  constexpr int64_t kMaxTokens = 2 * kAmxMinTokens + 21;
  for (const TensorType type : {TensorType::kQ4_0, TensorType::kQ4_1, TensorType::kQ8_0,
                                TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K}) {
    const bool k_quant =
        type == TensorType::kQ4_K || type == TensorType::kQ5_K || type == TensorType::kQ6_K;
    for (const Shape shape : k_quant ? std::vector<Shape>{{67, 512}, {100, 2048}}
                                     : std::vector<Shape>{{67, 288}, {100, 2080}}) {
      const Weights w = make_weights(type, shape, 61);
      const Strips s = type == TensorType::kQ4_0 ? make_strips(w) : Strips{};
      const std::vector<float> x = make_activations(kMaxTokens, shape.n_cols, 62);
      MatmulScratch scratch(2, kMaxTokens, shape.n_cols);
      for (const MatrixView* view : {&w.view, type == TensorType::kQ4_0 ? &s.view : nullptr}) {
        if (view == nullptr) continue;
        for (const int64_t n : {kAmxMinTokens, kAmxMinTokens + 1, kAmxMinTokens + 15, kMaxTokens}) {
          for (ThreadPool* pool : {&pool1, &pool2}) {
            std::vector<float> vector_bits(static_cast<size_t>(n * shape.n_rows), NAN);
            std::vector<float> amx_bits(vector_bits.size(), NAN);
            restrict_simd_targets(HWY_AVX3_DL);
            matmul(*view, x.data(), n, vector_bits.data(), *pool, scratch);
            restrict_simd_targets(kAmxTarget);
            matmul(*view, x.data(), n, amx_bits.data(), *pool, scratch);
            restrict_simd_targets(0);
            for (size_t i = 0; i < amx_bits.size(); ++i) {
              uint32_t a, b;
              std::memcpy(&a, &vector_bits[i], sizeof a);
              std::memcpy(&b, &amx_bits[i], sizeof b);
              ASSERT_EQ(a, b) << tensor_type_name(type) << (view->strips ? " strips" : "")
                              << " rows " << shape.n_rows << " cols " << shape.n_cols << " tokens "
                              << n << " threads " << pool->n_threads() << " output " << i << ": "
                              << vector_bits[i] << " on AVX3_DL, " << amx_bits[i] << " on AMX";
            }
          }
        }
      }
    }
  }
}

TEST(MatmulReference, ComputesTheDefinitionOnASmallF32Matrix) {
  // W = [[1, 2], [3, 4], [5, 6]] (3 rows, 2 cols), x = [[1, -1], [0.5, 2]].
  const float w[] = {1, 2, 3, 4, 5, 6};
  const float x[] = {1, -1, 0.5f, 2};
  const MatrixView view{TensorType::kF32, w, 3, 2, 8};
  float y[6];
  matmul_reference(view, x, 2, y);
  const float expected[] = {-1, -1, -1, 4.5f, 9.5f, 14.5f};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], expected[i]) << i;
}

}  // namespace
}  // namespace kvforge::kernels
