// Decode kernels (n_tokens <= kMaxDecodeTokens): the weight matrix is read
// once from memory, so these are bandwidth bound. Each weight block is
// decoded into f32 vectors in registers and immediately multiplied with the
// f32 activations of every token (no int8 activation rounding).
//
// Compiled once per SIMD target (Highway foreach_target) and dispatched at
// run time; see matmul_internal.h for the contract.
#include "kernels/simd_targets.h"
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_decode.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on

#include <algorithm>

#include "kernels/matmul_internal.h"

HWY_BEFORE_NAMESPACE();
namespace kvforge::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Loops over tokens and accumulator chains below are unrolled by pragma: GCC
// -O2 keeps arrays of vectors in registers only when every index is constant.

// At most 16 lanes so that a 32-element block is a whole number of vectors.
using DF = hn::CappedTag<float, 16>;
using VF = hn::Vec<DF>;

// The f16 at p (any alignment) as f32, with the target's conversion.
HWY_INLINE float load_half(const uint8_t* p) {
  const hn::CappedTag<hwy::float16_t, 1> dh;
  const hn::Rebind<float, decltype(dh)> df1;
  return hn::GetLane(hn::PromoteTo(df1, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p))));
}

// ---------------------------------------------------------------------------
// Formats with 32-element blocks. A Format provides
//   Block begin(df, block_bytes)          per-block constants (scales)
//   VF weights(df, block, i)              dequantized elements [i, i + N)

struct Q8_0Format {
  static constexpr int64_t kBlockElems = 32;
  static constexpr size_t kBlockBytes = 34;
  struct Block {
    const int8_t* q;
    VF d;
  };
  static HWY_INLINE Block begin(DF df, const uint8_t* p) {
    return {reinterpret_cast<const int8_t*>(p + 2), hn::Set(df, load_half(p))};
  }
  static HWY_INLINE VF weights(DF df, const Block& b, size_t i) {
    const hn::Rebind<int8_t, DF> d8;
    const hn::Rebind<int32_t, DF> d32;
    return hn::Mul(hn::ConvertTo(df, hn::PromoteTo(d32, hn::LoadU(d8, b.q + i))), b.d);
  }
};

// Nibble j of a 32-element Q4 block: elements 0..15 are the low nibbles of
// bytes 0..15, elements 16..31 the high nibbles of the same bytes.
HWY_INLINE hn::Vec<hn::Rebind<int32_t, DF>> load_nibbles(const uint8_t* qs, size_t i) {
  const hn::Rebind<uint8_t, DF> d8;
  const hn::Rebind<int32_t, DF> d32;
  if (i < 16) return hn::And(hn::PromoteTo(d32, hn::LoadU(d8, qs + i)), hn::Set(d32, 0x0f));
  return hn::ShiftRight<4>(hn::PromoteTo(d32, hn::LoadU(d8, qs + i - 16)));
}

struct Q4_0Format {
  static constexpr int64_t kBlockElems = 32;
  static constexpr size_t kBlockBytes = 18;
  struct Block {
    const uint8_t* qs;
    VF d;
  };
  static HWY_INLINE Block begin(DF df, const uint8_t* p) {
    return {p + 2, hn::Set(df, load_half(p))};
  }
  static HWY_INLINE VF weights(DF df, const Block& b, size_t i) {
    const hn::Rebind<int32_t, DF> d32;
    return hn::Mul(hn::ConvertTo(df, hn::Sub(load_nibbles(b.qs, i), hn::Set(d32, 8))), b.d);
  }
};

struct Q4_1Format {
  static constexpr int64_t kBlockElems = 32;
  static constexpr size_t kBlockBytes = 20;
  struct Block {
    const uint8_t* qs;
    VF d, m;
  };
  static HWY_INLINE Block begin(DF df, const uint8_t* p) {
    return {p + 4, hn::Set(df, load_half(p)), hn::Set(df, load_half(p + 2))};
  }
  static HWY_INLINE VF weights(DF df, const Block& b, size_t i) {
    return hn::MulAdd(hn::ConvertTo(df, load_nibbles(b.qs, i)), b.d, b.m);
  }
};

// Independent accumulator chains per token: enough to hide FMA latency
// (4 cycles on current x86) without running out of registers.
template <int kTokens>
constexpr int kChains = kTokens <= 2 ? 4 : 2;

template <class Format, int kTokens>
void dot_block_rows(const MatmulArgs& a, int64_t row_begin, int64_t row_end, ThreadScratch) {
  const DF df;
  const size_t n = hn::Lanes(df);
  constexpr int kC = kChains<kTokens>;
  const MatrixView& w = *a.w;
  const int64_t n_blocks = w.n_cols / Format::kBlockElems;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_bytes;
    VF acc[kTokens][kC];
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) {
#pragma GCC unroll 16
      for (int c = 0; c < kC; ++c) acc[t][c] = hn::Zero(df);
    }
    for (int64_t b = 0; b < n_blocks; ++b) {
      const auto block = Format::begin(df, row + static_cast<size_t>(b) * Format::kBlockBytes);
      const float* xb = a.x + b * Format::kBlockElems;
#pragma GCC unroll 16
      for (size_t i = 0; i < static_cast<size_t>(Format::kBlockElems); i += n) {
        const VF wv = Format::weights(df, block, i);
        const size_t chain = (i / n) % kC;
#pragma GCC unroll 16
        for (int t = 0; t < kTokens; ++t) {
          acc[t][chain] = hn::MulAdd(wv, hn::LoadU(df, xb + t * w.n_cols + i), acc[t][chain]);
        }
      }
    }
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) {
      VF sum = acc[t][0];
#pragma GCC unroll 16
      for (int c = 1; c < kC; ++c) sum = hn::Add(sum, acc[t][c]);
      a.y[t * w.n_rows + r] = hn::GetLane(hn::SumOfLanes(df, sum));
    }
  }
}

// ---------------------------------------------------------------------------
// Plain float formats (any n_cols): vector body, scalar tail.

struct F32Format {
  static HWY_INLINE VF load(DF df, const uint8_t* row, int64_t c) {
    return hn::LoadU(df, reinterpret_cast<const float*>(row) + c);
  }
};
struct F16Format {
  static HWY_INLINE VF load(DF df, const uint8_t* row, int64_t c) {
    const hn::Rebind<hwy::float16_t, DF> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(row) + c));
  }
};
struct BF16Format {
  static HWY_INLINE VF load(DF df, const uint8_t* row, int64_t c) {
    const hn::Rebind<hwy::bfloat16_t, DF> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::bfloat16_t*>(row) + c));
  }
};

template <class Format, int kTokens>
void dot_plain_rows(const MatmulArgs& a, int64_t row_begin, int64_t row_end, ThreadScratch) {
  const DF df;
  const int64_t n = static_cast<int64_t>(hn::Lanes(df));
  constexpr int kC = kChains<kTokens>;
  const MatrixView& w = *a.w;
  const int64_t n_body = w.n_cols / (n * kC) * (n * kC);
  float tail_row[16 * 4];
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_bytes;
    VF acc[kTokens][kC];
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) {
#pragma GCC unroll 16
      for (int c = 0; c < kC; ++c) acc[t][c] = hn::Zero(df);
    }
    for (int64_t col = 0; col < n_body; col += n * kC) {
#pragma GCC unroll 16
      for (int c = 0; c < kC; ++c) {
        const VF wv = Format::load(df, row, col + c * n);
#pragma GCC unroll 16
        for (int t = 0; t < kTokens; ++t) {
          acc[t][c] = hn::MulAdd(wv, hn::LoadU(df, a.x + t * w.n_cols + col + c * n), acc[t][c]);
        }
      }
    }
    float sums[kTokens];
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) {
      VF sum = acc[t][0];
#pragma GCC unroll 16
      for (int c = 1; c < kC; ++c) sum = hn::Add(sum, acc[t][c]);
      sums[t] = hn::GetLane(hn::SumOfLanes(df, sum));
    }
    // The last < n * kC columns go through the format's scalar decoder.
    const int64_t n_tail = w.n_cols - n_body;
    if (n_tail > 0) {
      const WeightFormat& format = *a.format;
      format.dequantize_blocks(row + static_cast<size_t>(n_body) * format.block_bytes, tail_row,
                               n_tail);
#pragma GCC unroll 16
      for (int t = 0; t < kTokens; ++t) {
        const float* xt = a.x + t * w.n_cols + n_body;
        for (int64_t c = 0; c < n_tail; ++c) sums[t] += tail_row[c] * xt[c];
      }
    }
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) a.y[t * w.n_rows + r] = sums[t];
  }
}

// ---------------------------------------------------------------------------
// Any format: dequantize kColumnChunk columns with the format's scalar
// decoder into scratch, then an f32 dot. Used for the K-quants.

template <class Unused, int kTokens>
void dot_unpacked_rows(const MatmulArgs& a, int64_t row_begin, int64_t row_end,
                       ThreadScratch scratch) {
  const DF df;
  const size_t n = hn::Lanes(df);
  constexpr int kC = kChains<kTokens>;
  const MatrixView& w = *a.w;
  const WeightFormat& format = *a.format;
  float* unpacked = scratch.rows;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_bytes;
    VF acc[kTokens][kC];
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) {
#pragma GCC unroll 16
      for (int c = 0; c < kC; ++c) acc[t][c] = hn::Zero(df);
    }
    for (int64_t col = 0; col < w.n_cols; col += kColumnChunk) {
      const int64_t len = std::min<int64_t>(kColumnChunk, w.n_cols - col);
      unpack_blocks(format,
                    row + static_cast<size_t>(col / format.block_elems) * format.block_bytes,
                    unpacked, len / format.block_elems);
      // len is a multiple of 32 (the smallest block), and n * kC divides 32
      // unless n == 16 and kC == 4; then the chains just take turns.
      for (int64_t i = 0; i < len; i += static_cast<int64_t>(n * kC)) {
#pragma GCC unroll 16
        for (int c = 0; c < kC; ++c) {
          const int64_t k = i + c * static_cast<int64_t>(n);
          if (k >= len) break;
          const VF wv = hn::LoadU(df, unpacked + k);
#pragma GCC unroll 16
          for (int t = 0; t < kTokens; ++t) {
            acc[t][c] = hn::MulAdd(wv, hn::LoadU(df, a.x + t * w.n_cols + col + k), acc[t][c]);
          }
        }
      }
    }
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) {
      VF sum = acc[t][0];
#pragma GCC unroll 16
      for (int c = 1; c < kC; ++c) sum = hn::Add(sum, acc[t][c]);
      a.y[t * w.n_rows + r] = hn::GetLane(hn::SumOfLanes(df, sum));
    }
  }
}

// ---------------------------------------------------------------------------

using RowsFn = void (*)(const MatmulArgs&, int64_t, int64_t, ThreadScratch);

// Kernels for token counts 1..kMaxDecodeTokens, by weight type.
struct DecodeKernels {
  TensorType type;
  RowsFn by_tokens[kMaxDecodeTokens];
};

#define KVF_DECODE_KERNELS(type, kernel, Format)                                 \
  DecodeKernels {                                                                \
    type, {                                                                      \
      kernel<Format, 1>, kernel<Format, 2>, kernel<Format, 3>, kernel<Format, 4> \
    }                                                                            \
  }

struct AnyFormat {};

const DecodeKernels kDecodeKernels[] = {
    KVF_DECODE_KERNELS(TensorType::kF32, dot_plain_rows, F32Format),
    KVF_DECODE_KERNELS(TensorType::kF16, dot_plain_rows, F16Format),
    KVF_DECODE_KERNELS(TensorType::kBF16, dot_plain_rows, BF16Format),
    KVF_DECODE_KERNELS(TensorType::kQ8_0, dot_block_rows, Q8_0Format),
    KVF_DECODE_KERNELS(TensorType::kQ4_0, dot_block_rows, Q4_0Format),
    KVF_DECODE_KERNELS(TensorType::kQ4_1, dot_block_rows, Q4_1Format),
};
// Formats without a fused kernel (the K-quants) unpack through scratch.
const DecodeKernels kUnpackingKernels =
    KVF_DECODE_KERNELS(TensorType::kF32, dot_unpacked_rows, AnyFormat);

#undef KVF_DECODE_KERNELS

void decode_rows_impl(const MatmulArgs& a, int64_t row_begin, int64_t row_end,
                      ThreadScratch scratch) {
  const DecodeKernels* kernels = &kUnpackingKernels;
  for (const DecodeKernels& k : kDecodeKernels) {
    if (k.type == a.w->type) kernels = &k;
  }
  kernels->by_tokens[a.n_tokens - 1](a, row_begin, row_end, scratch);
}

}  // namespace HWY_NAMESPACE
}  // namespace kvforge::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvforge::kernels {

HWY_EXPORT(decode_rows_impl);

void decode_rows(const MatmulArgs& args, int64_t row_begin, int64_t row_end,
                 ThreadScratch scratch) {
  HWY_DYNAMIC_DISPATCH(decode_rows_impl)(args, row_begin, row_end, scratch);
}

}  // namespace kvforge::kernels
#endif
