// Prefill kernel for quantized weights (many tokens): integer dot products.
//
// The activations arrive rounded to int8 blocks of 32 (matmul.cpp,
// quantize_activations), stored as the unsigned bytes u = q + 128. Every
// weight format is unpacked, once per panel of R rows and chunk of 256
// columns, to the same form: signed 8-bit codes w with an f32 scale per
// sub-block (16 or 32 columns) and, for the formats with one, an f32 offset
// per 32 columns, so that W[r, c] = scale * w + offset:
//
//   Q4_0  w = q - 8 (-8..7)      scale d
//   Q4_1  w = q (0..15)          scale d, offset m
//   Q8_0  w = q (-128..127)      scale d
//   Q4_K  w = q (0..15)          scale d * sc[j], offset -dmin * m[j]
//   Q5_K  w = q (0..31)          as Q4_K
//   Q6_K  w = q - 32 (-32..31)   scale d * sc[i], sub-blocks of 16
//
// The codes are interleaved by groups of 4 columns, panel[c / 4][r][c % 4],
// so that one vector holds 4 consecutive columns of 16 (AVX-512) or 8
// (AVX2) rows, and a register-blocked micro-kernel over V vectors of rows
// and T tokens runs
//
//   I[v][t] += dot4(broadcast(u[t][c..c+3]), panel[c / 4][v])   (V x T i32 vectors)
//
// with dot4 = vpdpbusd on AVX-512 VNNI (AVX3_DL: 64 products in one
// instruction), or vpmaddubsw + vpmaddwd + vpaddd on AVX-512BW / AVX2. The
// bias of u is removed exactly by starting each sub-block's I at
// -128 * sum(w) of the row (computed once per panel), so I is the exact
// integer dot product of the codes; at the end of a sub-block it is
// converted to f32 and added as
//
//   y[t][r] += f32(I) * (scale[r] * d_x[t])  (+ offset[r] * sum_x[t] per 32 columns)
//
// No i16 saturation on the vpmaddubsw path: |w| <= 32 there, so a pair sum
// is at most 2 * 255 * 32 < 2^15; Q8_0's 8-bit codes and the 4-bit formats'
// i16 sub-block sums multiply the signed activations instead (Products,
// below). On VNNI the i32 sums of 4 products cannot overflow either (|I| <
// 2^21 per sub-block).
//
// Other targets (SSE4, NEON, portable) have no such instructions and use the
// f32 kernel (matmul_prefill.cpp).
#define KVFORGE_SIMD_WITH_AVX3_DL
#include "kernels/simd_targets.h"
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_prefill_int8.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "kernels/amx.h"
#include "kernels/k_quant_scales.h"
#include "kernels/matmul_internal.h"
#include "kvforge/status.h"

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
// Highway's AVX3_DL target string names AVX-VNNI but not AVX512-VNNI, which
// its run-time check for the target requires; AMX is used only where
// amx_enabled() says so.
#pragma GCC target("avx512vnni,amx-tile,amx-int8")
#endif
namespace kvforge::kernels {
namespace HWY_NAMESPACE {

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL

#include "kernels/int8_tile_ops-inl.h"

HWY_INLINE float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return _cvtsh_ss(h);
}

HWY_INLINE __m256i load32(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

HWY_INLINE void store32(void* p, __m256i v) {
  _mm256_storeu_si256(static_cast<__m256i*>(p), v);
}

// Low nibbles of 16 bytes in the low 128 bits, high nibbles in the high.
HWY_INLINE __m256i split_nibbles(const uint8_t* p) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f));
}

// ---------------------------------------------------------------------------
// Per-thread scratch (ThreadScratch::int8, laid out by int8_scratch_layout;
// every array 64-byte aligned), for a panel of the matrix's whole width K:
//   panel   [K / 4][kPanelRows][4] int8  codes, interleaved
//   scales  [K / 16][kPanelRows]  f32    per sub-block and row
//   corr    [K / 16][kPanelRows]  i32    -128 * sum of the sub-block's codes
//   offsets [K / 32][kPanelRows]  f32    per 32 columns and row
//   rows    [kLanes][K] int8             codes of kLanes rows, by column
// and ThreadScratch::acc [n_tokens][kPanelRows] f32, the panel's results.
struct Int8Scratch {
  int8_t* panel;
  float* scales;
  int32_t* corr;
  float* offsets;
  int8_t* rows;
  float* acc;
};
static_assert(kPanelRows <= kMaxPanelRows && kLanes <= kInt8ScratchRows);

Int8Scratch carve(ThreadScratch s, int64_t n_cols) {
  const Int8ScratchLayout layout = int8_scratch_layout(n_cols);
  Int8Scratch out;
  out.panel = reinterpret_cast<int8_t*>(s.int8 + layout.panel);
  out.scales = reinterpret_cast<float*>(s.int8 + layout.scales);
  out.corr = reinterpret_cast<int32_t*>(s.int8 + layout.corr);
  out.offsets = reinterpret_cast<float*>(s.int8 + layout.offsets);
  out.rows = reinterpret_cast<int8_t*>(s.int8 + layout.rows);
  out.acc = s.acc;
  return out;
}

// How a tile multiplies a format's codes with the activations:
//   kBiased     dot4(u, w) from I = corr (every format with VNNI, and the
//               formats whose codes fit |w| <= 32 without it);
//   kSignBySign |w| times the signed activations q = u ^ 0x80 with w's sign
//               (Q8_0 without VNNI: its 8-bit codes would overflow
//               vpmaddubsw's pair sums against u);
//   kNibblesI16 codes 0..15 as the unsigned operand and q as the signed one,
//               the vpmaddubsw pair sums of a whole 32-column sub-block
//               added in i16 lanes and widened once (Q4_1, Q4_K without
//               VNNI): 16 products of at most 15 * 128 are at most 30720 <
//               2^15, so exactly the same I as kBiased, with one vpmaddubsw
//               and one i16 add per group and row vector where dot4 takes
//               three operations (plus one xor per broadcast).
enum class Products { kBiased, kSignBySign, kNibblesI16 };

// ---------------------------------------------------------------------------
// Row decoders: `len` columns (a multiple of the format's block) starting at
// the block at `src` into codes[len], scales[i * kPanelRows] per sub-block i
// and offsets[j * kPanelRows] per 32 columns j.

struct Q4_0Rows {
  static constexpr int kSubBlock = 32;
  static constexpr bool kOffsets = false;
  static constexpr Products kProducts = Products::kBiased;
  static HWY_INLINE void decode(const uint8_t* src, int64_t len, int8_t* codes, float* scales,
                                float*) {
    for (int64_t b = 0; b < len / 32; ++b, src += 18) {
      store32(codes + 32 * b, _mm256_sub_epi8(split_nibbles(src + 2), _mm256_set1_epi8(8)));
      scales[b * kPanelRows] = half_at(src);
    }
  }
};

struct Q4_1Rows {
  static constexpr int kSubBlock = 32;
  static constexpr bool kOffsets = true;
  static constexpr Products kProducts = kHasVnni ? Products::kBiased : Products::kNibblesI16;
  static HWY_INLINE void decode(const uint8_t* src, int64_t len, int8_t* codes, float* scales,
                                float* offsets) {
    for (int64_t b = 0; b < len / 32; ++b, src += 20) {
      store32(codes + 32 * b, split_nibbles(src + 4));
      scales[b * kPanelRows] = half_at(src);
      offsets[b * kPanelRows] = half_at(src + 2);
    }
  }
};

struct Q8_0Rows {
  static constexpr int kSubBlock = 32;
  static constexpr bool kOffsets = false;
  // 8-bit codes overflow vpmaddubsw's i16 pair sums against the unsigned
  // activations; without VNNI the sign trick multiplies |w| by the signed
  // activations with w's sign instead (2 * 128 * 127 < 2^15).
  static constexpr Products kProducts = kHasVnni ? Products::kBiased : Products::kSignBySign;
  static HWY_INLINE void decode(const uint8_t* src, int64_t len, int8_t* codes, float* scales,
                                float*) {
    for (int64_t b = 0; b < len / 32; ++b, src += 34) {
      store32(codes + 32 * b, load32(src + 2));
      scales[b * kPanelRows] = half_at(src);
    }
  }
};

// Q4_K (kHighBit false) and Q5_K: sub-block j of a super-block is the low
// (even j) or high (odd j) nibbles of bytes qs[32 * (j / 2) ..], plus bit j
// of qh[l] as the fifth bit of element l for Q5_K.
template <bool kHighBit>
struct QK45Rows {
  static constexpr int kSubBlock = 32;
  static constexpr bool kOffsets = true;
  // Q5_K's codes reach 31: a sub-block's i16 sums could reach 61440.
  static constexpr Products kProducts =
      kHasVnni || kHighBit ? Products::kBiased : Products::kNibblesI16;
  static HWY_INLINE void decode(const uint8_t* src, int64_t len, int8_t* codes, float* scales,
                                float* offsets) {
    constexpr size_t kBytes = kHighBit ? 176 : 144;
    constexpr size_t kQs = kHighBit ? 48 : 16;
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    for (int64_t sb = 0; sb < len / 256; ++sb, src += kBytes, codes += 256) {
      const float d = half_at(src);
      const float dmin = half_at(src + 2);
      for (int j = 0; j < kKQuantSubBlocks; ++j) {
        const SubBlockScaleMin sm = unpack_scale_min(src + 4, j);
        scales[(sb * 8 + j) * kPanelRows] = d * static_cast<float>(sm.scale);
        offsets[(sb * 8 + j) * kPanelRows] = -(dmin * static_cast<float>(sm.min));
      }
      __m256i high = kHighBit ? load32(src + 16) : _mm256_setzero_si256();
      for (int c = 0; c < 4; ++c) {
        const __m256i raw = load32(src + kQs + 32 * c);
        __m256i w[2] = {_mm256_and_si256(raw, low4),
                        _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4)};
        for (int h = 0; h < 2; ++h) {
          if (kHighBit) {
            w[h] = _mm256_or_si256(
                w[h], _mm256_and_si256(_mm256_slli_epi16(high, 4), _mm256_set1_epi8(0x10)));
            high = _mm256_srli_epi16(high, 1);
          }
          store32(codes + 64 * c + 32 * h, w[h]);
        }
      }
    }
  }
};

// Q6_K: element 128h + 32k + l (h < 2, k < 4, l < 32) has low bits from
// ql[64h + 32(k & 1) + l] (low nibble for k < 2, high for k >= 2) and bits
// 4-5 from bits 2k, 2k+1 of qh[32h + l]; value d * sc[e / 16] * (q - 32).
struct Q6_KRows {
  static constexpr int kSubBlock = 16;
  static constexpr bool kOffsets = false;
  static constexpr Products kProducts = Products::kBiased;
  static HWY_INLINE void decode(const uint8_t* src, int64_t len, int8_t* codes, float* scales,
                                float*) {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i bits45 = _mm256_set1_epi8(0x30);
    for (int64_t sb = 0; sb < len / 256; ++sb, src += 210, codes += 256) {
      const float d = half_at(src + 208);
      for (int i = 0; i < 16; ++i) {
        scales[(sb * 16 + i) * kPanelRows] =
            d * static_cast<float>(static_cast<int8_t>(src[192 + i]));
      }
      for (int h = 0; h < 2; ++h) {
        const __m256i ql[2] = {load32(src + 64 * h), load32(src + 64 * h + 32)};
        const __m256i qh = load32(src + 128 + 32 * h);
        for (int k = 0; k < 4; ++k) {
          const __m256i low =
              _mm256_and_si256(k < 2 ? ql[k & 1] : _mm256_srli_epi16(ql[k & 1], 4), low4);
          const __m256i shifted = k == 0   ? _mm256_slli_epi16(qh, 4)
                                  : k == 1 ? _mm256_slli_epi16(qh, 2)
                                  : k == 2 ? qh
                                           : _mm256_srli_epi16(qh, 2);
          store32(codes + 128 * h + 32 * k,
                  _mm256_sub_epi8(_mm256_or_si256(low, _mm256_and_si256(shifted, bits45)),
                                  _mm256_set1_epi8(32)));
        }
      }
    }
  }
};

// ---------------------------------------------------------------------------
// rows[i][0..n_cols) (i < kLanes, row stride n_cols) -> panel[k / 4][r0 + i][k % 4]:
// a transpose of 4-byte groups, kLanes x kLanes at a time. Reads up to 63
// bytes past n_cols in each row (into groups nobody reads) when n_cols is
// not a multiple of 64.

#if HWY_TARGET == HWY_AVX2
HWY_INLINE void transpose_groups(const int8_t* rows, int64_t n_cols, int64_t r0, int8_t* panel) {
  for (int64_t k = 0; k < n_cols; k += 32) {  // 8 groups of 4 columns
    __m256 v[8], p[8], q[8];
    for (int i = 0; i < 8; ++i) v[i] = _mm256_castsi256_ps(load32(rows + i * n_cols + k));
    for (int i = 0; i < 4; ++i) {
      p[2 * i] = _mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]);
      p[2 * i + 1] = _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]);
    }
    for (int i = 0; i < 2; ++i) {
      q[4 * i] = _mm256_shuffle_ps(p[4 * i], p[4 * i + 2], 0x44);
      q[4 * i + 1] = _mm256_shuffle_ps(p[4 * i], p[4 * i + 2], 0xee);
      q[4 * i + 2] = _mm256_shuffle_ps(p[4 * i + 1], p[4 * i + 3], 0x44);
      q[4 * i + 3] = _mm256_shuffle_ps(p[4 * i + 1], p[4 * i + 3], 0xee);
    }
    int8_t* dst = panel + (k / 4 * kPanelRows + r0) * 4;
    for (int i = 0; i < 4; ++i) {
      _mm256_store_ps(reinterpret_cast<float*>(dst + i * kPanelRows * 4),
                      _mm256_permute2f128_ps(q[i], q[i + 4], 0x20));
      _mm256_store_ps(reinterpret_cast<float*>(dst + (i + 4) * kPanelRows * 4),
                      _mm256_permute2f128_ps(q[i], q[i + 4], 0x31));
    }
  }
}
#else
HWY_INLINE void transpose_groups(const int8_t* rows, int64_t n_cols, int64_t r0, int8_t* panel) {
  for (int64_t k = 0; k < n_cols; k += 64) {  // 16 groups of 4 columns
    __m512i a[16], b[16];
    for (int i = 0; i < 16; ++i) a[i] = _mm512_loadu_si512(rows + i * n_cols + k);
    // Within 128-bit lanes: pairs of rows, then quads (a[4i + c] holds, per
    // lane L, group 4L + c of rows 4i..4i+3).
    for (int i = 0; i < 8; ++i) {
      b[2 * i] = _mm512_unpacklo_epi32(a[2 * i], a[2 * i + 1]);
      b[2 * i + 1] = _mm512_unpackhi_epi32(a[2 * i], a[2 * i + 1]);
    }
    for (int i = 0; i < 4; ++i) {
      a[4 * i] = _mm512_unpacklo_epi64(b[4 * i], b[4 * i + 2]);
      a[4 * i + 1] = _mm512_unpackhi_epi64(b[4 * i], b[4 * i + 2]);
      a[4 * i + 2] = _mm512_unpacklo_epi64(b[4 * i + 1], b[4 * i + 3]);
      a[4 * i + 3] = _mm512_unpackhi_epi64(b[4 * i + 1], b[4 * i + 3]);
    }
    // Across lanes: group 4L + c = lane L of a[c], a[4 + c], a[8 + c], a[12 + c].
    int8_t* dst = panel + (k / 4 * kPanelRows + r0) * 4;
    for (int c = 0; c < 4; ++c) {
      const __m512i c0 = _mm512_shuffle_i32x4(a[c], a[4 + c], 0x88);
      const __m512i c1 = _mm512_shuffle_i32x4(a[c], a[4 + c], 0xdd);
      const __m512i d0 = _mm512_shuffle_i32x4(a[8 + c], a[12 + c], 0x88);
      const __m512i d1 = _mm512_shuffle_i32x4(a[8 + c], a[12 + c], 0xdd);
      _mm512_store_si512(dst + (0 + c) * kPanelRows * 4, _mm512_shuffle_i32x4(c0, d0, 0x88));
      _mm512_store_si512(dst + (8 + c) * kPanelRows * 4, _mm512_shuffle_i32x4(c0, d0, 0xdd));
      _mm512_store_si512(dst + (4 + c) * kPanelRows * 4, _mm512_shuffle_i32x4(c1, d1, 0x88));
      _mm512_store_si512(dst + (12 + c) * kPanelRows * 4, _mm512_shuffle_i32x4(c1, d1, 0xdd));
    }
  }
}
#endif

constexpr uintptr_t kPrefetchBytes = 2048;
constexpr int64_t kPrefetchCols = 1024;  // a multiple of every block (<= 1 KiB for 8-bit codes)

// Unpacks rows [row_begin, row_begin + n_live) into the panel, kLanes rows
// at a time, each read front to back (consecutive rows are consecutive in
// memory, so the hardware prefetcher follows); rows past n_live get zero
// codes, scales and offsets.
template <class Format>
void build_panel(const MatmulArgs& a, int64_t row_begin, int64_t n_live, const Int8Scratch& s) {
  const MatrixView& w = *a.w;
  const int64_t n_cols = w.n_cols;
  const int64_t n_sub = n_cols / Format::kSubBlock;
  const auto* first =
      static_cast<const uint8_t*>(w.data) + static_cast<size_t>(row_begin) * w.row_bytes;
  const uintptr_t end =
      reinterpret_cast<uintptr_t>(first) + static_cast<size_t>(n_live) * w.row_bytes;
  // Software prefetch kPrefetchBytes ahead of the row being decoded: the
  // hardware prefetcher alone keeps too few lines in flight for one thread
  // (the decode kernels do the same). The first lines are requested here.
  uintptr_t prefetched = reinterpret_cast<uintptr_t>(first);
  auto prefetch_to = [&](uintptr_t target) {
    for (target = std::min(target, end); prefetched < target; prefetched += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(prefetched), _MM_HINT_T0);
    }
  };
  prefetch_to(prefetched + kPrefetchBytes);
  for (int64_t r0 = 0; r0 < kPanelRows; r0 += kLanes) {
    for (int64_t i = 0; i < kLanes; ++i) {
      const int64_t r = r0 + i;
      int8_t* codes = s.rows + i * n_cols;
      if (r < n_live) {
        const uint8_t* src = first + static_cast<size_t>(r) * w.row_bytes;
        // Decode in pieces of about kPrefetchBytes, requesting as much ahead.
        for (int64_t c = 0; c < n_cols; c += kPrefetchCols) {
          const int64_t len = std::min<int64_t>(kPrefetchCols, n_cols - c);
          const size_t offset =
              static_cast<size_t>(c / a.format->block_elems) * a.format->block_bytes;
          prefetch_to(reinterpret_cast<uintptr_t>(src + offset) + 2 * kPrefetchBytes);
          Format::decode(src + offset, len, codes + c,
                         s.scales + c / Format::kSubBlock * kPanelRows + r,
                         s.offsets + c / 32 * kPanelRows + r);
        }
      } else {
        std::memset(codes, 0, static_cast<size_t>(n_cols));
        for (int64_t j = 0; j < n_sub; ++j) s.scales[j * kPanelRows + r] = 0.0f;
        if (Format::kOffsets) {
          for (int64_t j = 0; j < n_cols / 32; ++j) s.offsets[j * kPanelRows + r] = 0.0f;
        }
      }
    }
    transpose_groups(s.rows, n_cols, r0, s.panel);
  }
  // corr[j][r] = -128 * (sum of row r's codes in sub-block j), the bias of
  // the unsigned activations.
  if constexpr (Format::kProducts != Products::kBiased) return;
  constexpr int kGroups = Format::kSubBlock / 4;
  const VI ones8 = set1_i(0x01010101);
  const VI ones16 = set1_i16(1);
  for (int64_t j = 0; j < n_sub; ++j) {
    for (int v = 0; v < kV; ++v) {
      VI sum = zero_i();
      for (int g = 0; g < kGroups; ++g) {
        sum = dot4(sum, ones8, load_i(s.panel + ((j * kGroups + g) * kPanelRows + v * kLanes) * 4),
                   ones16);
      }
      store_i(s.corr + j * kPanelRows + v * kLanes, neg_times_128(sum));
    }
  }
}

// Activations of the first token of a tile, at the chunk's first column.
struct TileActivations {
  const uint8_t* u;  // token t at u + t * n_cols
  const float* d;    // token t at d + t * n_blocks
  const float* sum;
  int64_t n_cols, n_blocks;
};

// out[t][0..kPanelRows) (+)= sum over the chunk's columns of W[r, c] * x[t, c],
// for n_sub sub-blocks of kGroups * 4 columns; `first` overwrites.
// The chunk's slice of the panel (the layout above, from the chunk's first
// sub-block).
struct PanelSlice {
  const int8_t* panel;
  const float* scales;
  const int32_t* corr;
  const float* offsets;
};

// The signed activation codes q = u ^ 0x80 of 4 columns at u, broadcast.
HWY_INLINE VI broadcast_signed4(const uint8_t* u) {
  return xor_i(broadcast4(u), set1_i(static_cast<int32_t>(0x80808080u)));
}

template <int kTokens, int kGroups, bool kOffsets, Products kProducts>
void tile_kernel(const PanelSlice& s, int64_t n_sub, const TileActivations& x, float* acc_out,
                 bool first) {
  const VI ones16 = set1_i16(1);
  const uint8_t* u[kTokens];
  const float* dx[kTokens];
  const float* sx[kTokens];
#pragma GCC unroll 8
  for (int t = 0; t < kTokens; ++t) {
    u[t] = x.u + t * x.n_cols;
    dx[t] = x.d + t * x.n_blocks;
    sx[t] = x.sum + t * x.n_blocks;
  }
  VF out[kTokens][kV];
#pragma GCC unroll 8
  for (int t = 0; t < kTokens; ++t) {
#pragma GCC unroll 4
    for (int v = 0; v < kV; ++v) {
      out[t][v] = first ? zero_f() : load_f(acc_out + t * kPanelRows + v * kLanes);
    }
  }
  const int8_t* panel = s.panel;
  const float* scales = s.scales;
  const int32_t* corr = s.corr;
  for (int64_t sb = 0; sb < n_sub; ++sb) {
    VI acc[kV][kTokens];
    if constexpr (kProducts != Products::kNibblesI16) {  // (kNibblesI16: from the first group)
#pragma GCC unroll 4
      for (int v = 0; v < kV; ++v) {
        const VI c = kProducts == Products::kSignBySign
                         ? zero_i()
                         : load_i(corr + sb * kPanelRows + v * kLanes);
#pragma GCC unroll 8
        for (int t = 0; t < kTokens; ++t) acc[v][t] = c;
      }
    }
    const int64_t col = sb * kGroups * 4;
#pragma GCC unroll 8
    for (int g = 0; g < kGroups; ++g) {
      VI wv[kV];
#pragma GCC unroll 4
      for (int v = 0; v < kV; ++v) wv[v] = load_i(panel + (g * kPanelRows + v * kLanes) * 4);
      if constexpr (kProducts == Products::kSignBySign) {
        // acc += |w| * (q with w's sign), q = u ^ 0x80 the signed codes.
        VI w_abs[kV];
#pragma GCC unroll 4
        for (int v = 0; v < kV; ++v) w_abs[v] = abs8(wv[v]);
#pragma GCC unroll 8
        for (int t = 0; t < kTokens; ++t) {
          const VI xs = broadcast_signed4(u[t] + col + 4 * g);
#pragma GCC unroll 4
          for (int v = 0; v < kV; ++v) {
            acc[v][t] = add_i(acc[v][t], madd(maddubs(w_abs[v], sign8(xs, wv[v])), ones16));
          }
        }
      } else if constexpr (kProducts == Products::kNibblesI16) {
#pragma GCC unroll 8
        for (int t = 0; t < kTokens; ++t) {
          const VI xs = broadcast_signed4(u[t] + col + 4 * g);
#pragma GCC unroll 4
          for (int v = 0; v < kV; ++v) {
            const VI pairs = maddubs(wv[v], xs);
            acc[v][t] = g == 0 ? pairs : add_i16(acc[v][t], pairs);
          }
        }
      } else {
#pragma GCC unroll 8
        for (int t = 0; t < kTokens; ++t) {
          const VI xb = broadcast4(u[t] + col + 4 * g);
#pragma GCC unroll 4
          for (int v = 0; v < kV; ++v) acc[v][t] = dot4(acc[v][t], xb, wv[v], ones16);
        }
      }
    }
    panel += kGroups * kPanelRows * 4;
    const int64_t block = col / 32;
#pragma GCC unroll 4
    for (int v = 0; v < kV; ++v) {
      const VF scale = load_f(scales + sb * kPanelRows + v * kLanes);
#pragma GCC unroll 8
      for (int t = 0; t < kTokens; ++t) {
        const VI sum = kProducts == Products::kNibblesI16 ? madd(acc[v][t], ones16) : acc[v][t];
        out[t][v] = fmadd_f(cvt_f(sum), mul_f(scale, set1_f(dx[t][block])), out[t][v]);
      }
    }
    if (kOffsets) {
#pragma GCC unroll 4
      for (int v = 0; v < kV; ++v) {
        const VF offset = load_f(s.offsets + block * kPanelRows + v * kLanes);
#pragma GCC unroll 8
        for (int t = 0; t < kTokens; ++t) {
          out[t][v] = fmadd_f(offset, set1_f(sx[t][block]), out[t][v]);
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < kTokens; ++t) {
#pragma GCC unroll 4
    for (int v = 0; v < kV; ++v) store_f(acc_out + t * kPanelRows + v * kLanes, out[t][v]);
  }
}

using TileKernel = void (*)(const PanelSlice&, int64_t, const TileActivations&, float*, bool);

template <int kGroups, bool kOffsets, Products kProducts>
struct TileKernels {
  template <int... kTokens>
  static constexpr auto make(std::integer_sequence<int, kTokens...>) {
    return std::array<TileKernel, sizeof...(kTokens)>{
        tile_kernel<kTokens + 1, kGroups, kOffsets, kProducts>...};
  }
  static constexpr auto kByTokens = make(std::make_integer_sequence<int, kT>());
};

#if HWY_TARGET == HWY_AVX3_DL
// ---------------------------------------------------------------------------
// The same products on AMX (amx.h), for calls of kAmxMinTokens tokens or
// more: per 16 tokens, 16 rows of the panel and sub-block, one TDPBUSD of
// the tokens' biased activation bytes u (read in place, one tile row per
// token) by the sub-block's codes, read from the panel as it is (its 4-byte
// groups of 16 consecutive rows are one code tile row, kPanelRows * 4 bytes
// apart), gives sum(u * w) = I - corr; adding corr gives the exact I of the
// vector kernel, and the f32 steps are the same (scale, then offset), so
// every output is bit for bit the vector kernel's.

#include "kernels/amx_tile_ops-inl.h"

// Rows [16 v, 16 v + 16) of the panel's sub-blocks for amx_blocks: kTokens
// tokens from u (token t's bytes at u + t * act_stride, its block scales
// and sums at d and sum + t * n_blocks).
template <int kTokens, class Format>
struct PanelBlocks {
  const Int8Scratch* s;
  int64_t v;
  const uint8_t* u;
  const float* d;
  const float* sum;
  int64_t n_blocks;
  int64_t act_stride;
  static constexpr int64_t code_stride = kPanelRows * 4;
  static constexpr int kGroups = Format::kSubBlock / 4;

  const uint8_t* acts(int64_t sb) const { return u + sb * Format::kSubBlock; }
  const int8_t* codes(int64_t sb) const {
    return s->panel + (sb * kGroups * kPanelRows + v * kLanes) * 4;
  }
  HWY_INLINE void scale(const int32_t* sums, int64_t sb, VF* out) const {
    const int64_t row = sb * kPanelRows + v * kLanes;
    const int64_t block = sb * Format::kSubBlock / 32;
    const VI corr = load_i(s->corr + row);
    const VF row_scales = load_f(s->scales + row);
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) {
      const VF dot = cvt_f(add_i(load_i(sums + 16 * t), corr));
      out[t] = fmadd_f(dot, mul_f(row_scales, set1_f(d[t * n_blocks + block])), out[t]);
    }
    if constexpr (Format::kOffsets) {
      const VF offset = load_f(s->offsets + block * kPanelRows + v * kLanes);
#pragma GCC unroll 16
      for (int t = 0; t < kTokens; ++t) {
        out[t] = fmadd_f(offset, set1_f(sum[t * n_blocks + block]), out[t]);
      }
    }
  }
};

// Rows [16 v, 16 v + 16) of the panel (`live` of them stored) for kTokens
// tokens.
struct AmxPanelCall {
  const Int8Scratch* s;
  int64_t v;
  const uint8_t* u;
  const float* d;
  const float* sum;
  int64_t n_cols, n_blocks, n_sub;
  float* y;  // token t's rows at y + t * y_stride
  int64_t y_stride;
  __mmask16 live;
};

template <int kTokens, class Format>
void amx_panel_tokens(const AmxPanelCall& c) {
  const PanelBlocks<kTokens, Format> blocks{c.s, c.v, c.u, c.d, c.sum, c.n_blocks, c.n_cols};
  VF out[kTokens];
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) out[t] = zero_f();
  amx_blocks</*kSignedActs=*/false>(blocks, c.n_sub, out);
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) _mm512_mask_storeu_ps(c.y + t * c.y_stride, c.live, out[t]);
}

using AmxPanelTokens = void (*)(const AmxPanelCall&);
template <class Format>
struct AmxPanelKernels {
  template <int... kTokens>
  static constexpr auto make(std::integer_sequence<int, kTokens...>) {
    return std::array<AmxPanelTokens, sizeof...(kTokens)>{amx_panel_tokens<kTokens + 1, Format>...};
  }
  // [tokens - 1]
  static constexpr auto kByTokens = make(std::make_integer_sequence<int, kAmxTileTokens>());
};

// The built panel's products of rows [row_begin, row_begin + n_live) for
// tokens [token_begin, token_end), stored to y.
template <class Format>
void amx_panel(const MatmulArgs& a, const Int8Scratch& s, int64_t row_begin, int64_t n_live,
               int64_t token_begin, int64_t token_end) {
  const MatrixView& w = *a.w;
  const int64_t n_blocks = w.n_cols / kActivationBlock;
  const int64_t n_sub = w.n_cols / Format::kSubBlock;
  amx_for_token_tiles(token_begin, token_end, Format::kSubBlock, [&](int64_t t0, int n_tokens) {
    for (int64_t v = 0; v < kV && v * kLanes < n_live; ++v) {
      const int64_t live = std::min<int64_t>(kLanes, n_live - v * kLanes);
      const AmxPanelCall call{&s,
                              v,
                              reinterpret_cast<const uint8_t*>(a.xq.q) + t0 * w.n_cols,
                              a.xq.d + t0 * n_blocks,
                              a.xq.sum + t0 * n_blocks,
                              w.n_cols,
                              n_blocks,
                              n_sub,
                              a.y + t0 * w.n_rows + row_begin + v * kLanes,
                              w.n_rows,
                              static_cast<__mmask16>((1u << live) - 1)};
      AmxPanelKernels<Format>::kByTokens[static_cast<size_t>(n_tokens - 1)](call);
    }
  });
}
#endif  // HWY_TARGET == HWY_AVX3_DL

template <class Format>
void panel_rows(const MatmulArgs& a, int64_t row_begin, int64_t token_begin, int64_t token_end,
                ThreadScratch scratch) {
  const MatrixView& w = *a.w;
  const Int8Scratch s = carve(scratch, w.n_cols);
  const int64_t n_live = std::min<int64_t>(kPanelRows, w.n_rows - row_begin);
  const int64_t n_blocks = w.n_cols / kActivationBlock;
  constexpr auto& kernels =
      TileKernels<Format::kSubBlock / 4, Format::kOffsets, Format::kProducts>::kByTokens;
  build_panel<Format>(a, row_begin, n_live, s);
#if HWY_TARGET == HWY_AVX3_DL
  // Not for sub-blocks of 16 columns (Q6_K): a tile product costs the same
  // for 16 columns as for 32, and the AMX kernel measured slower there
  // (docs/kernels.md, "AMX").
  if (Format::kSubBlock == 32 && token_end - token_begin >= kAmxMinTokens && amx_enabled()) {
    amx_panel<Format>(a, s, row_begin, n_live, token_begin, token_end);
    return;
  }
#endif
  // Chunks of kColumnChunk columns: the chunk's slice of the panel stays in
  // L1 while every token passes over it.
  for (int64_t col = 0; col < w.n_cols; col += kColumnChunk) {
    const int64_t len = std::min<int64_t>(kColumnChunk, w.n_cols - col);
    const int64_t sub = col / Format::kSubBlock;
    const PanelSlice slice{s.panel + col * kPanelRows, s.scales + sub * kPanelRows,
                           s.corr + sub * kPanelRows, s.offsets + col / 32 * kPanelRows};
    for (int64_t t0 = token_begin; t0 < token_end; t0 += kT) {
      const int64_t n_tile = std::min<int64_t>(kT, token_end - t0);
      const TileActivations x{reinterpret_cast<const uint8_t*>(a.xq.q) + t0 * w.n_cols + col,
                              a.xq.d + t0 * n_blocks + col / kActivationBlock,
                              a.xq.sum + t0 * n_blocks + col / kActivationBlock, w.n_cols,
                              n_blocks};
      // Chunks add up in column order: every output sees the same sequence
      // of additions whatever the thread count.
      kernels[static_cast<size_t>(n_tile - 1)](slice, len / Format::kSubBlock, x,
                                               s.acc + (t0 - token_begin) * kPanelRows, col == 0);
    }
  }
  for (int64_t t = token_begin; t < token_end; ++t) {
    std::memcpy(a.y + t * w.n_rows + row_begin, s.acc + (t - token_begin) * kPanelRows,
                static_cast<size_t>(n_live) * sizeof(float));
  }
}

using PanelFn = void (*)(const MatmulArgs&, int64_t, int64_t, int64_t, ThreadScratch);

PanelFn panel_fn(TensorType type) {
  switch (type) {
    case TensorType::kQ4_0:
      return panel_rows<Q4_0Rows>;
    case TensorType::kQ4_1:
      return panel_rows<Q4_1Rows>;
    case TensorType::kQ8_0:
      return panel_rows<Q8_0Rows>;
    case TensorType::kQ4_K:
      return panel_rows<QK45Rows<false>>;
    case TensorType::kQ5_K:
      return panel_rows<QK45Rows<true>>;
    case TensorType::kQ6_K:
      return panel_rows<Q6_KRows>;
    default:
      return nullptr;
  }
}

#else  // no integer kernel on this target

constexpr int kPanelRows = 16;
using PanelFn = void (*)(const MatmulArgs&, int64_t, int64_t, int64_t, ThreadScratch);
PanelFn panel_fn(TensorType) {
  return nullptr;
}

#endif

bool prefill_uses_quantized_activations_impl(TensorType type) {
  return panel_fn(type) != nullptr;
}

int64_t prefill_int8_panel_rows_impl() {
  return kPanelRows;
}

void prefill_int8_panel_impl(const MatmulArgs& a, int64_t row_begin, int64_t token_begin,
                             int64_t token_end, ThreadScratch scratch) {
  const PanelFn fn = panel_fn(a.w->type);
  KVF_CHECK(fn != nullptr);
  fn(a, row_begin, token_begin, token_end, scratch);
}

const char* matmul_simd_target_impl() {
  return hwy::TargetName(HWY_TARGET);
}

}  // namespace HWY_NAMESPACE
}  // namespace kvforge::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvforge::kernels {

HWY_EXPORT(prefill_uses_quantized_activations_impl);
HWY_EXPORT(prefill_int8_panel_rows_impl);
HWY_EXPORT(prefill_int8_panel_impl);
HWY_EXPORT(matmul_simd_target_impl);

bool prefill_uses_quantized_activations(TensorType type) {
  return HWY_DYNAMIC_DISPATCH(prefill_uses_quantized_activations_impl)(type);
}

int64_t prefill_int8_panel_rows() {
  return HWY_DYNAMIC_DISPATCH(prefill_int8_panel_rows_impl)();
}

void prefill_int8_panel(const MatmulArgs& args, int64_t row_begin, int64_t token_begin,
                        int64_t token_end, ThreadScratch scratch) {
  HWY_DYNAMIC_DISPATCH(prefill_int8_panel_impl)(args, row_begin, token_begin, token_end, scratch);
}

const char* matmul_simd_target() {
  return HWY_DYNAMIC_DISPATCH(matmul_simd_target_impl)();
}

}  // namespace kvforge::kernels
#endif
