// Decode kernels (n_tokens <= kMaxDecodeTokens): the weight matrix is read
// once from memory, so these should be bandwidth bound.
//
// Quantized formats on AVX2/AVX-512 targets: the activations are rounded to
// int8 blocks of 32 once per call (quantize_activations) and each weight
// block is dotted with them in integers (vpmaddubsw + vpmaddwd, 32 products
// in two instructions), scaled per block in f32. Other targets, and the
// float formats everywhere, decode each weight block into f32 vectors in
// registers and FMA it with the f32 activations of every token.
//
// Compiled once per SIMD target (Highway foreach_target) and dispatched at
// run time; see matmul_internal.h for the contract.
#define KVFORGE_SIMD_WITH_AVX3_DL
#include "kernels/simd_targets.h"
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_decode.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on

#include <algorithm>
#include <cstring>

#include "kernels/matmul_internal.h"

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>
#endif

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
// Activations to int8 blocks (see QuantizedActivations). Any target.

void quantize_activations_impl(const float* x, int64_t n_values, int8_t* q, float* d, float* sum,
                               bool biased) {
  // At most 8 lanes, so that 32 is a whole number of vectors.
  const hn::CappedTag<float, 8> df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> d8;
  const size_t n = hn::Lanes(df);
  for (int64_t b = 0; b < n_values / kActivationBlock; ++b) {
    const float* xb = x + b * kActivationBlock;
    int8_t* qb = q + b * kActivationBlock;
    auto amax = hn::Zero(df);
    for (size_t i = 0; i < static_cast<size_t>(kActivationBlock); i += n) {
      amax = hn::Max(amax, hn::Abs(hn::LoadU(df, xb + i)));
    }
    const float max = hn::GetLane(hn::MaxOfLanes(df, amax));
    // |x * inv| <= 127 up to rounding, so the codes stay in [-127, 127] and
    // their negation fits in int8 (the kernels' sign trick needs that).
    const auto inv = hn::Set(df, max > 0.0f ? 127.0f / max : 0.0f);
    auto qsum = hn::Zero(di);
    for (size_t i = 0; i < static_cast<size_t>(kActivationBlock); i += n) {
      const auto qi = hn::NearestInt(hn::Mul(hn::LoadU(df, xb + i), inv));
      qsum = hn::Add(qsum, qi);
      const auto codes = hn::DemoteTo(d8, qi);
      hn::StoreU(biased ? hn::Xor(codes, hn::Set(d8, -128)) : codes, d8, qb + i);
    }
    d[b] = max / 127.0f;
    sum[b] = d[b] * static_cast<float>(hn::GetLane(hn::SumOfLanes(di, qsum)));
  }
}

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
// ---------------------------------------------------------------------------
// Integer dot products against int8 activations (AVX2 instructions; the
// AVX-512 target runs the same 256-bit code). Highway 1.0.3 has no op for
// vpmaddubsw (u8 x s8 -> pairwise-added i16), which does 32 products in one
// instruction, so these use <immintrin.h> directly.
//
// Each kernel returns, per token, sum_c W[r, c] * d[b] * q[c] for one row.
// Per 32-element block: u8 x s8 products summed in pairs (vpmaddubsw; no
// saturation because one factor is at most 63 here, or 128 with x in
// [-127, 127] for the sign trick below: 2 * 128 * 127 < 2^15), then in
// fours to i32 (vpmaddwd with ones), converted to f32 and FMA'd with the
// product of the weight and activation block scales.

struct Int8Rows {
  const int8_t* q;  // token 0; token t at q + t * n_cols
  const float* d;   // token 0; token t at d + t * n_blocks
  const float* sum;
  int64_t n_cols, n_blocks;
};

HWY_INLINE float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return _cvtsh_ss(h);
}

HWY_INLINE __m256i load32(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// Eight i32 lanes summing to sum_i u[i] * s[i] (u unsigned, s signed bytes).
HWY_INLINE __m256i dot_u8_s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// The same for two signed factors: |w| * (x with w's sign).
HWY_INLINE __m256i abs_s8(__m256i w) {
  return _mm256_sign_epi8(w, w);
}
HWY_INLINE __m256i signed_pairs(__m256i w_abs, __m256i w, __m256i x) {
  return _mm256_maddubs_epi16(w_abs, _mm256_sign_epi8(x, w));
}

HWY_INLINE float hsum(__m256 v) {
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

// Low nibbles of 16 bytes in the low 128 bits, high nibbles in the high.
HWY_INLINE __m256i split_nibbles(const uint8_t* p) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f));
}

// Q8_0: d_w * d_x * (q_w . q_x), block b into acc[t].
template <int kTokens>
HWY_INLINE void int8_block_q8_0(const uint8_t* row, const Int8Rows& x, int64_t b,
                                __m256 (&acc)[kTokens]) {
  const uint8_t* block = row + static_cast<size_t>(b) * 34;
  const float dw = half_at(block);
  const __m256i w = load32(block + 2);
  const __m256i w_abs = abs_s8(w);
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) {
    const __m256i xv = load32(x.q + t * x.n_cols + b * 32);
    const __m256i dot = _mm256_madd_epi16(signed_pairs(w_abs, w, xv), _mm256_set1_epi16(1));
    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(dw * x.d[t * x.n_blocks + b]),
                             acc[t]);
  }
}

// Q4_0 and Q4_1 (value d * q + m with q in 0..15; Q4_0 has m = -8 d):
// d_w * d_x * (q_w . q_x) + m * (d_x * sum q_x), the second term from the
// precomputed activation sums.
template <bool kHasMin, int kTokens>
HWY_INLINE void int8_block_q4(const uint8_t* row, const Int8Rows& x, int64_t b,
                              __m256 (&acc)[kTokens], float (&offset)[kTokens]) {
  constexpr size_t kBytes = kHasMin ? 20 : 18;
  const uint8_t* block = row + static_cast<size_t>(b) * kBytes;
  const float dw = half_at(block);
  const float m = kHasMin ? half_at(block + 2) : -8.0f * dw;
  const __m256i w = split_nibbles(block + (kHasMin ? 4 : 2));
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) {
    const __m256i dot = dot_u8_s8(w, load32(x.q + t * x.n_cols + b * 32));
    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(dw * x.d[t * x.n_blocks + b]),
                             acc[t]);
    offset[t] += m * x.sum[t * x.n_blocks + b];
  }
}

// Software prefetch distance: the kernels spend several cycles per 64 bytes,
// so with one thread the hardware prefetcher alone keeps too few lines in
// flight. Prefetching past the end of a row fetches the next row (or, at
// the last row, is a harmless hint).
constexpr int64_t kPrefetchBytes = 2048;

// Prefetches the lines kPrefetchBytes past [p, p + bytes). The address is
// formed as an integer: it may lie past the weights, where a pointer may
// not point, and a prefetch never faults.
HWY_INLINE void prefetch_ahead(const uint8_t* p, size_t bytes) {
  const uintptr_t ahead = reinterpret_cast<uintptr_t>(p) + kPrefetchBytes;
  for (size_t i = 0; i < bytes; i += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(ahead + i), _MM_HINT_T0);
  }
}

// Rows of 32-element blocks: even and odd blocks go to separate accumulators
// (two chains hide the FMA latency).
template <int kTokens>
HWY_INLINE void int8_row_q8_0(const uint8_t* row, const Int8Rows& x, float* out) {
  __m256 acc0[kTokens], acc1[kTokens];
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) acc0[t] = acc1[t] = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 1 < x.n_blocks; b += 2) {
    prefetch_ahead(row + b * 34, 1);
    int8_block_q8_0<kTokens>(row, x, b, acc0);
    int8_block_q8_0<kTokens>(row, x, b + 1, acc1);
  }
  if (b < x.n_blocks) int8_block_q8_0<kTokens>(row, x, b, acc0);
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) out[t] = hsum(_mm256_add_ps(acc0[t], acc1[t]));
}

template <bool kHasMin, int kTokens>
HWY_INLINE void int8_row_q4(const uint8_t* row, const Int8Rows& x, float* out) {
  __m256 acc0[kTokens], acc1[kTokens];
  float offset0[kTokens], offset1[kTokens];
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) {
    acc0[t] = acc1[t] = _mm256_setzero_ps();
    offset0[t] = offset1[t] = 0.0f;
  }
  int64_t b = 0;
  for (; b + 1 < x.n_blocks; b += 2) {
    prefetch_ahead(row + b * (kHasMin ? 20 : 18), 1);
    int8_block_q4<kHasMin, kTokens>(row, x, b, acc0, offset0);
    int8_block_q4<kHasMin, kTokens>(row, x, b + 1, acc1, offset1);
  }
  if (b < x.n_blocks) int8_block_q4<kHasMin, kTokens>(row, x, b, acc0, offset0);
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) {
    out[t] = hsum(_mm256_add_ps(acc0[t], acc1[t])) + (offset0[t] + offset1[t]);
  }
}

// The eight 6-bit scales (bytes 0..7) and mins (bytes 8..15) of a Q4_K/Q5_K
// super-block, from the 12-byte packing described in k_quant_scales.h; four
// bytes at a time.
HWY_INLINE __m128i k_quant_scales_mins(const uint8_t* packed) {
  uint32_t w0, w1, w2;
  std::memcpy(&w0, packed, 4);
  std::memcpy(&w1, packed + 4, 4);
  std::memcpy(&w2, packed + 8, 4);
  const uint32_t scales_lo = w0 & 0x3f3f3f3f;
  const uint32_t mins_lo = w1 & 0x3f3f3f3f;
  const uint32_t scales_hi = (w2 & 0x0f0f0f0f) | ((w0 >> 2) & 0x30303030);
  const uint32_t mins_hi = ((w2 >> 4) & 0x0f0f0f0f) | ((w1 >> 2) & 0x30303030);
  return _mm_set_epi32(static_cast<int>(mins_hi), static_cast<int>(mins_lo),
                       static_cast<int>(scales_hi), static_cast<int>(scales_lo));
}

// Q4_K and Q5_K: sub-block j (32 elements, one activation block) is
// d * sc[j] * q - dmin * m[j], so a super-block adds
//   sum_j d * sc[j] * d_x[j] * (q . q_x)_j  -  dmin * sum_j m[j] * sum_x[j].
// The eight combined scales are computed in one vector per token; the min
// term accumulates in a vector across super-blocks.
template <bool kHighBit, int kTokens>
HWY_INLINE void int8_row_q4_q5_k(const uint8_t* row, const Int8Rows& x, float* out) {
  constexpr size_t kBytes = kHighBit ? 176 : 144;
  constexpr size_t kQs = kHighBit ? 48 : 16;
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  __m256 acc[kTokens][2], mins_acc[kTokens];
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) {
    acc[t][0] = acc[t][1] = mins_acc[t] = _mm256_setzero_ps();
  }
  alignas(32) float step[kTokens][8];
  for (int64_t sb = 0; sb < x.n_blocks / 8; ++sb) {
    const uint8_t* block = row + static_cast<size_t>(sb) * kBytes;
    prefetch_ahead(block, kBytes);
    const __m128i sm = k_quant_scales_mins(block + 4);
    const __m256 scales = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm));
    const __m256 mins = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8)));
    const __m256 d = _mm256_set1_ps(half_at(block));
    const __m256 dmin = _mm256_set1_ps(half_at(block + 2));
    const __m256 steps = _mm256_mul_ps(d, scales);
    const __m256 offsets = _mm256_mul_ps(dmin, mins);
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) {
      const int64_t xb = t * x.n_blocks + sb * 8;
      _mm256_store_ps(step[t], _mm256_mul_ps(steps, _mm256_loadu_ps(x.d + xb)));
      mins_acc[t] = _mm256_fmadd_ps(offsets, _mm256_loadu_ps(x.sum + xb), mins_acc[t]);
    }
    __m256i high = kHighBit ? load32(block + 16) : _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      const __m256i raw = load32(block + kQs + 32 * c);
      __m256i w[2] = {_mm256_and_si256(raw, low4),
                      _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4)};
      if (kHighBit) {
        // Bit j of qh[l] is the fifth bit of sub-block j's element l; shift
        // it to bit 4 of each byte, then move on to bit j + 1.
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          w[h] = _mm256_or_si256(
              w[h], _mm256_and_si256(_mm256_slli_epi16(high, 4), _mm256_set1_epi8(0x10)));
          high = _mm256_srli_epi16(high, 1);
        }
      }
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 16
        for (int t = 0; t < kTokens; ++t) {
          const __m256i dot =
              dot_u8_s8(w[h], load32(x.q + t * x.n_cols + sb * 256 + 64 * c + 32 * h));
          acc[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot),
                                      _mm256_broadcast_ss(&step[t][2 * c + h]), acc[t][h]);
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) {
    out[t] = hsum(_mm256_sub_ps(_mm256_add_ps(acc[t][0], acc[t][1]), mins_acc[t]));
  }
}

// Q6_K: element e is d * sc[e / 16] * (q - 32). Per 32-element activation
// block the signed products (q - 32) * q_x, added in pairs, are multiplied by
// their 16-element sub-block's int8 scale and added in pairs to i32 by one
// vpmaddwd (at most 2 * 128 * 8128 in magnitude), then scaled by d * d_x.
template <int kTokens>
HWY_INLINE void int8_row_q6_k(const uint8_t* row, const Int8Rows& x, float* out) {
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const __m256i bits45 = _mm256_set1_epi8(0x30);
  __m256 acc[kTokens][2];
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < x.n_blocks / 8; ++sb) {
    const uint8_t* block = row + static_cast<size_t>(sb) * 210;
    prefetch_ahead(block, 210);
    const float d = half_at(block + 208);
    // The 16 scales as i16, lanes 0..7 of each 128-bit half = scales 0..7
    // (halves[0]) or 8..15 (halves[1]).
    const __m256i scales16 =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 192)));
    const __m256i halves[2] = {_mm256_permute2x128_si256(scales16, scales16, 0x00),
                               _mm256_permute2x128_si256(scales16, scales16, 0x11)};
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256i ql[2] = {load32(block + 64 * h), load32(block + 64 * h + 32)};
      const __m256i qh = load32(block + 128 + 32 * h);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        const __m256i low =
            _mm256_and_si256(k < 2 ? ql[k & 1] : _mm256_srli_epi16(ql[k & 1], 4), low4);
        // Bits 2k, 2k+1 of qh to bits 4, 5.
        const __m256i shifted = k == 0   ? _mm256_slli_epi16(qh, 4)
                                : k == 1 ? _mm256_slli_epi16(qh, 2)
                                : k == 2 ? qh
                                         : _mm256_srli_epi16(qh, 2);
        const __m256i w = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_and_si256(shifted, bits45)),
                                          _mm256_set1_epi8(32));
        const __m256i w_abs = abs_s8(w);
        // i16 lanes 0..7 take scale 8h + 2k, lanes 8..15 scale 8h + 2k + 1.
        const __m256i pick =
            _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>((4 * k + 3) << 8 | (4 * k + 2))),
                             _mm_set1_epi16(static_cast<int16_t>((4 * k + 1) << 8 | (4 * k))));
        const __m256i scale = _mm256_shuffle_epi8(halves[h], pick);
        const int64_t xb = sb * 8 + 4 * h + k;
#pragma GCC unroll 16
        for (int t = 0; t < kTokens; ++t) {
          const __m256i pairs = signed_pairs(w_abs, w, load32(x.q + t * x.n_cols + xb * 32));
          const __m256i dot = _mm256_madd_epi16(pairs, scale);
          acc[t][k & 1] = _mm256_fmadd_ps(
              _mm256_cvtepi32_ps(dot), _mm256_set1_ps(d * x.d[t * x.n_blocks + xb]), acc[t][k & 1]);
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) out[t] = hsum(_mm256_add_ps(acc[t][0], acc[t][1]));
}

struct Int8Q8_0 {
  template <int kTokens>
  static HWY_INLINE void row(const uint8_t* r, const Int8Rows& x, float* out) {
    int8_row_q8_0<kTokens>(r, x, out);
  }
};
struct Int8Q4_0 {
  template <int kTokens>
  static HWY_INLINE void row(const uint8_t* r, const Int8Rows& x, float* out) {
    int8_row_q4<false, kTokens>(r, x, out);
  }
};
struct Int8Q4_1 {
  template <int kTokens>
  static HWY_INLINE void row(const uint8_t* r, const Int8Rows& x, float* out) {
    int8_row_q4<true, kTokens>(r, x, out);
  }
};
struct Int8Q4_K {
  template <int kTokens>
  static HWY_INLINE void row(const uint8_t* r, const Int8Rows& x, float* out) {
    int8_row_q4_q5_k<false, kTokens>(r, x, out);
  }
};
struct Int8Q5_K {
  template <int kTokens>
  static HWY_INLINE void row(const uint8_t* r, const Int8Rows& x, float* out) {
    int8_row_q4_q5_k<true, kTokens>(r, x, out);
  }
};
struct Int8Q6_K {
  template <int kTokens>
  static HWY_INLINE void row(const uint8_t* r, const Int8Rows& x, float* out) {
    int8_row_q6_k<kTokens>(r, x, out);
  }
};

template <class Format, int kTokens>
void int8_rows(const MatmulArgs& a, int64_t row_begin, int64_t row_end, ThreadScratch) {
  const MatrixView& w = *a.w;
  const Int8Rows x{a.xq.q, a.xq.d, a.xq.sum, w.n_cols, w.n_cols / kActivationBlock};
  for (int64_t r = row_begin; r < row_end; ++r) {
    float out[kTokens];
    Format::template row<kTokens>(
        static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_bytes, x, out);
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) a.y[t * w.n_rows + r] = out[t];
  }
}

constexpr bool kHasInt8Kernels = true;
#else
constexpr bool kHasInt8Kernels = false;
#endif  // HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL

}  // namespace HWY_NAMESPACE
}  // namespace kvforge::kernels
HWY_AFTER_NAMESPACE();
// Every pass includes it (its include guard toggles per target); it is
// empty except on AVX3_DL, where it uses the int8 helpers above.
#include "kernels/matmul_decode_vnni-inl.h"
HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
#pragma GCC target("avx512vnni")
#endif
namespace kvforge::kernels {
namespace HWY_NAMESPACE {

#if HWY_TARGET == HWY_AVX3_DL

struct VnniQ4_0 {
  template <int kTokens>
  static HWY_INLINE void row(const uint8_t* r, const VnniRows& x, float* out) {
    vnni_row_q4<false, kTokens>(r, x, out);
  }
};
struct VnniQ4_1 {
  template <int kTokens>
  static HWY_INLINE void row(const uint8_t* r, const VnniRows& x, float* out) {
    vnni_row_q4<true, kTokens>(r, x, out);
  }
};
struct VnniQ8_0 {
  template <int kTokens>
  static HWY_INLINE void row(const uint8_t* r, const VnniRows& x, float* out) {
    vnni_row_q8_0<kTokens>(r, x, out);
  }
};
struct VnniQ4_K {
  template <int kTokens>
  static HWY_INLINE void row(const uint8_t* r, const VnniRows& x, float* out) {
    vnni_row_q4_q5_k<false, kTokens>(r, x, out);
  }
};
struct VnniQ5_K {
  template <int kTokens>
  static HWY_INLINE void row(const uint8_t* r, const VnniRows& x, float* out) {
    vnni_row_q4_q5_k<true, kTokens>(r, x, out);
  }
};
struct VnniQ6_K {
  template <int kTokens>
  static HWY_INLINE void row(const uint8_t* r, const VnniRows& x, float* out) {
    vnni_row_q6_k<kTokens>(r, x, out);
  }
};

template <class Format, int kTokens>
void vnni_rows(const MatmulArgs& a, int64_t row_begin, int64_t row_end, ThreadScratch) {
  const MatrixView& w = *a.w;
  const VnniRows x{a.xq.q,   a.xq.lane_d, a.xq.lane_zero, a.xq.lane_sum,
                   a.xq.sum, w.n_cols,    w.n_cols / 4,   w.n_cols / kActivationBlock};
  for (int64_t r = row_begin; r < row_end; ++r) {
    float out[kTokens];
    Format::template row<kTokens>(
        static_cast<const uint8_t*>(w.data) + static_cast<size_t>(r) * w.row_bytes, x, out);
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) a.y[t * w.n_rows + r] = out[t];
  }
}

// Zero point of the VNNI kernel's unsigned codes for `type` (0: none).
constexpr int vnni_zero_point(TensorType type) {
  return type == TensorType::kQ4_0   ? 8
         : type == TensorType::kQ8_0 ? 128
         : type == TensorType::kQ6_K ? 32
                                     : 0;
}

void expand_activations(TensorType type, const QuantizedActivations& xq, int64_t n_tokens,
                        int64_t n_cols, float* lane_d, int32_t* lane_zero, float* lane_sum) {
  const int64_t n_blocks = n_cols / kActivationBlock;
  const int zero = vnni_zero_point(type);
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t i = t * n_blocks + b;  // block index; its lanes: 8 * i ..
      _mm256_storeu_ps(lane_d + 8 * i, _mm256_set1_ps(xq.d[i]));
      _mm256_storeu_ps(lane_sum + 8 * i, _mm256_set1_ps(xq.sum[i] * 0.125f));
    }
    if (zero != 0) {
      // -zero * (sum of each lane's 4 codes), 16 lanes at a time.
      const int shift = zero == 8 ? 3 : zero == 32 ? 5 : 7;
      int64_t c = 0;
      for (; c + 64 <= n_cols; c += 64) {
        const __m512i sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones,
                                                 _mm512_loadu_si512(xq.q + t * n_cols + c));
        _mm512_storeu_si512(
            lane_zero + (t * n_cols + c) / 4,
            _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sums, shift)));
      }
      for (; c < n_cols; c += 4) {
        const int8_t* q = xq.q + t * n_cols + c;
        lane_zero[(t * n_cols + c) / 4] = -zero * (q[0] + q[1] + q[2] + q[3]);
      }
    }
  }
}
#endif


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
#if HWY_TARGET == HWY_AVX3_DL
    KVF_DECODE_KERNELS(TensorType::kQ8_0, vnni_rows, VnniQ8_0),
    KVF_DECODE_KERNELS(TensorType::kQ4_0, vnni_rows, VnniQ4_0),
    KVF_DECODE_KERNELS(TensorType::kQ4_1, vnni_rows, VnniQ4_1),
    KVF_DECODE_KERNELS(TensorType::kQ4_K, vnni_rows, VnniQ4_K),
    KVF_DECODE_KERNELS(TensorType::kQ5_K, vnni_rows, VnniQ5_K),
    KVF_DECODE_KERNELS(TensorType::kQ6_K, vnni_rows, VnniQ6_K),
#elif HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
    KVF_DECODE_KERNELS(TensorType::kQ8_0, int8_rows, Int8Q8_0),
    KVF_DECODE_KERNELS(TensorType::kQ4_0, int8_rows, Int8Q4_0),
    KVF_DECODE_KERNELS(TensorType::kQ4_1, int8_rows, Int8Q4_1),
    KVF_DECODE_KERNELS(TensorType::kQ4_K, int8_rows, Int8Q4_K),
    KVF_DECODE_KERNELS(TensorType::kQ5_K, int8_rows, Int8Q5_K),
    KVF_DECODE_KERNELS(TensorType::kQ6_K, int8_rows, Int8Q6_K),
#else
    KVF_DECODE_KERNELS(TensorType::kQ8_0, dot_block_rows, Q8_0Format),
    KVF_DECODE_KERNELS(TensorType::kQ4_0, dot_block_rows, Q4_0Format),
    KVF_DECODE_KERNELS(TensorType::kQ4_1, dot_block_rows, Q4_1Format),
#endif
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

bool decode_uses_quantized_activations_impl(TensorType type) {
  return kHasInt8Kernels && type != TensorType::kF32 && type != TensorType::kF16 &&
         type != TensorType::kBF16;
}

bool decode_expands_activations_impl(TensorType type) {
  return HWY_TARGET == HWY_AVX3_DL && decode_uses_quantized_activations_impl(type);
}

void expand_decode_activations_impl(TensorType type, const QuantizedActivations& xq,
                                    int64_t n_tokens, int64_t n_cols, float* lane_d,
                                    int32_t* lane_zero, float* lane_sum) {
#if HWY_TARGET == HWY_AVX3_DL
  expand_activations(type, xq, n_tokens, n_cols, lane_d, lane_zero, lane_sum);
#else
  (void)type, (void)xq, (void)n_tokens, (void)n_cols, (void)lane_d, (void)lane_zero, (void)lane_sum;
#endif
}

}  // namespace HWY_NAMESPACE
}  // namespace kvforge::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvforge::kernels {

HWY_EXPORT(decode_rows_impl);
HWY_EXPORT(decode_uses_quantized_activations_impl);
HWY_EXPORT(quantize_activations_impl);
HWY_EXPORT(decode_expands_activations_impl);
HWY_EXPORT(expand_decode_activations_impl);

bool decode_expands_activations(TensorType type) {
  return HWY_DYNAMIC_DISPATCH(decode_expands_activations_impl)(type);
}

void expand_decode_activations(TensorType type, const QuantizedActivations& xq, int64_t n_tokens,
                               int64_t n_cols, float* lane_d, int32_t* lane_zero, float* lane_sum) {
  HWY_DYNAMIC_DISPATCH(expand_decode_activations_impl)
  (type, xq, n_tokens, n_cols, lane_d, lane_zero, lane_sum);
}

bool decode_uses_quantized_activations(TensorType type) {
  return HWY_DYNAMIC_DISPATCH(decode_uses_quantized_activations_impl)(type);
}

void quantize_activations(const float* x, int64_t n_values, int8_t* q, float* d, float* sum,
                          bool biased) {
  HWY_DYNAMIC_DISPATCH(quantize_activations_impl)(x, n_values, q, d, sum, biased);
}

void decode_rows(const MatmulArgs& args, int64_t row_begin, int64_t row_end,
                 ThreadScratch scratch) {
  HWY_DYNAMIC_DISPATCH(decode_rows_impl)(args, row_begin, row_end, scratch);
}

}  // namespace kvforge::kernels
#endif
