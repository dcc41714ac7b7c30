// Decode kernels for AVX-512 VNNI (Highway's AVX3_DL target): the integer
// dot products of matmul_decode.cpp on 512-bit vectors, one vpdpbusd for
// 64 weight x activation products. Included by matmul_decode.cpp (outside
// its namespaces, after its 256-bit int8 helpers, which these kernels use
// for odd last blocks) once per target; empty except for AVX3_DL.
//
// A vector holds 64 consecutive columns of a row (two 32-element blocks, or
// two sub-blocks of a K-quant) as unsigned codes u, multiplied with the
// int8 activations q by vpdpbusd into 16 i32 lanes, each the sum of 4
// consecutive products. Everything that varies along the row is prepared
// per lane of 4 columns (expand_decode_activations), so no lane needs
// shuffling:
//   lane_d[l]    = d_x of the activation block holding lane l's columns
//   lane_zero[l] = -z * (sum of lane l's 4 codes), z the format's zero point
//                  (Q4_0: 8, Q8_0: 128, Q6_K: 32), the start value of a lane,
//                  so that it ends as sum (u - z) * q exactly
//   lane_sum[l]  = sum[b] / 8 (Q4_1's offset term m * sum[b] spread over the
//                  block's 8 lanes)
// and each lane is scaled by (weight scale of its sub-block) * lane_d.
#if defined(KVFORGE_KERNELS_MATMUL_DECODE_VNNI_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVFORGE_KERNELS_MATMUL_DECODE_VNNI_INL_H_
#undef KVFORGE_KERNELS_MATMUL_DECODE_VNNI_INL_H_
#else
#define KVFORGE_KERNELS_MATMUL_DECODE_VNNI_INL_H_
#endif

#if HWY_TARGET == HWY_AVX3_DL

#include <immintrin.h>

#include <cstdint>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
// Highway's AVX3_DL target string names AVX-VNNI but not AVX512-VNNI, which
// its run-time check for the target requires.
#pragma GCC target("avx512vnni")
namespace kvforge::kernels {
namespace HWY_NAMESPACE {

// Activations of one call, lane-expanded; token t at + t * n_lanes.
struct VnniRows {
  const int8_t* q;  // token t at q + t * n_cols
  const float* lane_d;
  const int32_t* lane_zero;
  const float* lane_sum;
  const float* sum;  // per 32 columns, token t at + t * n_blocks
  int64_t n_cols, n_lanes, n_blocks;
};

HWY_INLINE __m512i load64(const void* p) {
  return _mm512_loadu_si512(p);
}

HWY_INLINE float hsum512(__m512 v) {
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  return hsum(s8);
}

// 16 f32 lanes: lanes 0-7 = f16 word w0 of `raw`, lanes 8-15 = word w1.
HWY_INLINE __m512 two_halves(__m512i raw, int w0, int w1) {
  const __m512i idx = _mm512_castsi256_si512(_mm256_set_m128i(
      _mm_set1_epi16(static_cast<int16_t>(w1)), _mm_set1_epi16(static_cast<int16_t>(w0))));
  return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(idx, raw)));
}

// Q4_0 (kHasMin false) and Q4_1, two blocks per vector. The blocks' bytes
// (36 or 40) come in one masked load; vpermb places block b's 16 code bytes
// in 128-bit lanes 0 and 1 and block b + 1's in lanes 2 and 3, and lanes 1
// and 3 are shifted by 4: [lo(b) hi(b) lo(b+1) hi(b+1)] is elements 0..63.
template <bool kHasMin, int kTokens>
HWY_INLINE void vnni_row_q4(const uint8_t* row, const VnniRows& x, float* out) {
  constexpr int kBytes = kHasMin ? 20 : 18;
  constexpr int kQs = kHasMin ? 4 : 2;
  alignas(64) static constexpr uint8_t kPick[64] = {
#define KVF_Q(i) static_cast<uint8_t>(kQs + (i))
#define KVF_LANE(base)                                                                          \
  KVF_Q(base + 0), KVF_Q(base + 1), KVF_Q(base + 2), KVF_Q(base + 3), KVF_Q(base + 4),          \
      KVF_Q(base + 5), KVF_Q(base + 6), KVF_Q(base + 7), KVF_Q(base + 8), KVF_Q(base + 9),      \
      KVF_Q(base + 10), KVF_Q(base + 11), KVF_Q(base + 12), KVF_Q(base + 13), KVF_Q(base + 14), \
      KVF_Q(base + 15)
      KVF_LANE(0), KVF_LANE(0), KVF_LANE(kBytes), KVF_LANE(kBytes)
#undef KVF_LANE
#undef KVF_Q
  };
  const __m512i pick = _mm512_load_si512(kPick);
  const __m512i shifts = _mm512_set_epi64(4 * 0x0001000100010001LL, 4 * 0x0001000100010001LL, 0, 0,
                                          4 * 0x0001000100010001LL, 4 * 0x0001000100010001LL, 0, 0);
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __mmask64 pair_bytes = (__mmask64{1} << (2 * kBytes)) - 1;
  __m512 acc[kTokens];
#pragma GCC unroll 4
  for (int t = 0; t < kTokens; ++t) acc[t] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 1 < x.n_blocks; b += 2) {
    const uint8_t* blocks = row + b * kBytes;
    prefetch_ahead(blocks, 1);
    const __m512i raw = _mm512_maskz_loadu_epi8(pair_bytes, blocks);
    const __m512i codes =
        _mm512_and_si512(_mm512_srlv_epi16(_mm512_permutexvar_epi8(pick, raw), shifts), low4);
    const __m512 dw = two_halves(raw, 0, kBytes / 2);
#pragma GCC unroll 4
    for (int t = 0; t < kTokens; ++t) {
      const int64_t lane = t * x.n_lanes + b * 8;
      const __m512i init = kHasMin ? _mm512_setzero_si512() : load64(x.lane_zero + lane);
      const __m512i dot = _mm512_dpbusd_epi32(init, codes, load64(x.q + t * x.n_cols + b * 32));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot),
                               _mm512_mul_ps(dw, _mm512_loadu_ps(x.lane_d + lane)), acc[t]);
      if (kHasMin) {
        acc[t] = _mm512_fmadd_ps(two_halves(raw, 1, kBytes / 2 + 1),
                                 _mm512_loadu_ps(x.lane_sum + lane), acc[t]);
      }
    }
  }
  float tail[kTokens] = {};
  if (b < x.n_blocks) {
    // An odd last block, with 256-bit vectors.
    const uint8_t* block = row + b * kBytes;
    const float dw = half_at(block);
    const float m = kHasMin ? half_at(block + 2) : -8.0f * dw;
    const __m256i w = split_nibbles(block + kQs);
#pragma GCC unroll 4
    for (int t = 0; t < kTokens; ++t) {
      const __m256i dot = dot_u8_s8(w, load32(x.q + t * x.n_cols + b * 32));
      tail[t] = hsum(_mm256_cvtepi32_ps(dot)) * dw * x.lane_d[t * x.n_lanes + b * 8] +
                m * x.sum[t * x.n_blocks + b];
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < kTokens; ++t) out[t] = hsum512(acc[t]) + tail[t];
}

// Q8_0, two blocks per vector: the codes as unsigned bytes q + 128 (an
// exclusive or), zero point 128.
template <int kTokens>
HWY_INLINE void vnni_row_q8_0(const uint8_t* row, const VnniRows& x, float* out) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 acc[kTokens];
#pragma GCC unroll 4
  for (int t = 0; t < kTokens; ++t) acc[t] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 1 < x.n_blocks; b += 2) {
    const uint8_t* blocks = row + b * 34;
    prefetch_ahead(blocks, 65);
    const __m512i codes = _mm512_xor_si512(
        _mm512_inserti64x4(_mm512_castsi256_si512(load32(blocks + 2)), load32(blocks + 36), 1),
        flip);
    const __m512 dw = _mm512_insertf32x8(_mm512_set1_ps(half_at(blocks)),
                                         _mm256_set1_ps(half_at(blocks + 34)), 1);
#pragma GCC unroll 4
    for (int t = 0; t < kTokens; ++t) {
      const int64_t lane = t * x.n_lanes + b * 8;
      const __m512i dot = _mm512_dpbusd_epi32(load64(x.lane_zero + lane), codes,
                                              load64(x.q + t * x.n_cols + b * 32));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot),
                               _mm512_mul_ps(dw, _mm512_loadu_ps(x.lane_d + lane)), acc[t]);
    }
  }
  float tail[kTokens] = {};
  if (b < x.n_blocks) {
    const uint8_t* block = row + b * 34;
    const __m256i w = load32(block + 2);
    const __m256i w_abs = abs_s8(w);
    const float dw = half_at(block);
#pragma GCC unroll 4
    for (int t = 0; t < kTokens; ++t) {
      const __m256i dot = _mm256_madd_epi16(
          signed_pairs(w_abs, w, load32(x.q + t * x.n_cols + b * 32)), _mm256_set1_epi16(1));
      tail[t] = hsum(_mm256_cvtepi32_ps(dot)) * dw * x.lane_d[t * x.n_lanes + b * 8];
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < kTokens; ++t) out[t] = hsum512(acc[t]) + tail[t];
}

// Lanes 0-7 = v[i], lanes 8-15 = v[i + 1] (v: 8 or 16 floats).
HWY_INLINE __m512 pair_of(__m512 v, int i) {
  const __m512i idx = _mm512_inserti64x4(_mm512_set1_epi32(i), _mm256_set1_epi32(i + 1), 1);
  return _mm512_permutexvar_ps(idx, v);
}

// Q4_K and Q5_K: per super-block, 64 bytes of qs hold sub-blocks 4h
// (low nibbles of bytes 0-31), 4h + 1 (high nibbles of 0-31), 4h + 2 and
// 4h + 3 (bytes 32-63); they are regrouped into two vectors of two
// consecutive sub-blocks. Q5_K's fifth bits: bit j of qh[l] for sub-block j.
template <bool kHighBit, int kTokens>
HWY_INLINE void vnni_row_q4_q5_k(const uint8_t* row, const VnniRows& x, float* out) {
  constexpr size_t kBytes = kHighBit ? 176 : 144;
  constexpr size_t kQs = kHighBit ? 48 : 16;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  __m512 acc[kTokens];
  __m256 mins_acc[kTokens];
#pragma GCC unroll 4
  for (int t = 0; t < kTokens; ++t) {
    acc[t] = _mm512_setzero_ps();
    mins_acc[t] = _mm256_setzero_ps();
  }
  for (int64_t sb = 0; sb < x.n_blocks / 8; ++sb) {
    const uint8_t* block = row + static_cast<size_t>(sb) * kBytes;
    prefetch_ahead(block, kBytes);
    const __m128i sm = k_quant_scales_mins(block + 4);
    const __m256 scales = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm));
    const __m256 mins = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8)));
    const __m512 steps =
        _mm512_castps256_ps512(_mm256_mul_ps(_mm256_set1_ps(half_at(block)), scales));
    const __m256 offsets = _mm256_mul_ps(_mm256_set1_ps(half_at(block + 2)), mins);
#pragma GCC unroll 4
    for (int t = 0; t < kTokens; ++t) {
      mins_acc[t] =
          _mm256_fmadd_ps(offsets, _mm256_loadu_ps(x.sum + t * x.n_blocks + sb * 8), mins_acc[t]);
    }
    const __m512i high =
        kHighBit ? _mm512_broadcast_i64x4(load32(block + 16)) : _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m512i raw = load64(block + kQs + 64 * h);
      const __m512i lo = _mm512_and_si512(raw, low4);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4);
      __m512i w[2] = {_mm512_inserti64x4(lo, _mm512_castsi512_si256(hi), 1),
                      _mm512_shuffle_i64x2(lo, hi, 0xee)};
#pragma GCC unroll 2
      for (int k = 0; k < 2; ++k) {
        const int j = 4 * h + 2 * k;  // first sub-block of w[k]
        if (kHighBit) {
          // Bit j (lanes 0-31) or j + 1 (lanes 32-63) of each qh byte to bit 4.
          const __m512i count =
              _mm512_inserti64x4(_mm512_set1_epi16(static_cast<int16_t>(j)),
                                 _mm256_set1_epi16(static_cast<int16_t>(j + 1)), 1);
          const __m512i bit = _mm512_slli_epi16(_mm512_srlv_epi16(high, count), 4);
          w[k] = _mm512_ternarylogic_epi32(w[k], bit, _mm512_set1_epi8(0x10), 0xf8);  // a | (b & c)
        }
        const __m512 step = pair_of(steps, j);
#pragma GCC unroll 4
        for (int t = 0; t < kTokens; ++t) {
          const int64_t col = sb * 256 + 64 * j / 2;
          const __m512i dot =
              _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[k], load64(x.q + t * x.n_cols + col));
          acc[t] = _mm512_fmadd_ps(
              _mm512_cvtepi32_ps(dot),
              _mm512_mul_ps(step, _mm512_loadu_ps(x.lane_d + t * x.n_lanes + col / 4)), acc[t]);
        }
      }
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < kTokens; ++t) out[t] = hsum512(acc[t]) - hsum(mins_acc[t]);
}

// Q6_K: element 128h + 64m + i (i < 64) has its low 4 bits in the low (m = 0)
// or high (m = 1) nibble of ql[64h + i], and bits 4-5 in bits 4m + 2(i / 32),
// +1 of qh[32h + i % 32]; value d * sc[e / 16] * (q - 32), zero point 32.
template <int kTokens>
HWY_INLINE void vnni_row_q6_k(const uint8_t* row, const VnniRows& x, float* out) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i bits45 = _mm512_set1_epi8(0x30);
  // Shift counts (16-bit lanes) taking bits 4m + 2(i / 32), +1 to bits 4, 5:
  // m = 0: left 4 (lanes 0-31), left 2 (32-63); m = 1: right 0, right 2.
  const __m512i left0 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
  const __m512i right1 = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
  __m512 acc[kTokens];
#pragma GCC unroll 4
  for (int t = 0; t < kTokens; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < x.n_blocks / 8; ++sb) {
    const uint8_t* block = row + static_cast<size_t>(sb) * 210;
    prefetch_ahead(block, 210);
    const __m512 scales = _mm512_mul_ps(_mm512_set1_ps(half_at(block + 208)),
                                        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                                            reinterpret_cast<const __m128i*>(block + 192)))));
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = load64(block + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(load32(block + 128 + 32 * h));
#pragma GCC unroll 2
      for (int m = 0; m < 2; ++m) {
        const __m512i low = _mm512_and_si512(m == 0 ? ql : _mm512_srli_epi16(ql, 4), low4);
        const __m512i high = m == 0 ? _mm512_sllv_epi16(qh, left0) : _mm512_srlv_epi16(qh, right1);
        const __m512i w = _mm512_ternarylogic_epi32(low, high, bits45, 0xf8);  // a | (b & c)
        // Lane l covers elements 4l..4l+3: scale 8h + 4m + l / 4.
        const int first = 8 * h + 4 * m;
        const __m512i idx = _mm512_add_epi32(
            _mm512_set1_epi32(first),
            _mm512_srli_epi32(
                _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 2));
        const __m512 step = _mm512_permutexvar_ps(idx, scales);
        const int64_t col = sb * 256 + 128 * h + 64 * m;
#pragma GCC unroll 4
        for (int t = 0; t < kTokens; ++t) {
          const int64_t lane = t * x.n_lanes + col / 4;
          const __m512i dot =
              _mm512_dpbusd_epi32(load64(x.lane_zero + lane), w, load64(x.q + t * x.n_cols + col));
          acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot),
                                   _mm512_mul_ps(step, _mm512_loadu_ps(x.lane_d + lane)), acc[t]);
        }
      }
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < kTokens; ++t) out[t] = hsum512(acc[t]);
}

}  // namespace HWY_NAMESPACE
}  // namespace kvforge::kernels
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX3_DL

#endif  // include guard
