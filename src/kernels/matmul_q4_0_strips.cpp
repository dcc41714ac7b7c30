// Integer kernel for Q4_0 weights repacked into strips (q4_0_strips.h), for
// any number of tokens: nothing is unpacked per call.
//
// The 4-bit codes q (0..15) are the unsigned operand of the u8 x s8 dot
// products and the activations the signed one (the decode layout of
// QuantizedActivations, whose q4_0_term holds each block's -8 * sum x), so
// that a row's integer sum over a block of 32 columns is
//
//   I = sum q * x - 8 * sum x = sum (q - 8) * x,
//
// the same exact integer as the decode and panel kernels, followed by the
// same f32 step out = fma(f32(I), scale * d_x, out) block by block
// (matmul_internal.h, batch invariance): the strips change where the bytes
// are, not one bit of any result.
//
// A register tile holds kV vectors of kLanes rows (one strip per vector on
// AVX-512, half a strip on AVX2) and up to kT tokens; per unit of 8 columns
// one load per vector gives columns 8p..8p+3 (low nibbles) and 8p+4..8p+7
// (high nibbles) of its rows, each met by a broadcast of 4 activation bytes.
// Without VNNI a block's products are summed in i16 lanes (block_dot).
#define KVFORGE_SIMD_WITH_AVX3_DL
#include "kernels/simd_targets.h"
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_q4_0_strips.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "kernels/amx.h"
#include "kernels/matmul_internal.h"
#include "kernels/q4_0_strips.h"
#include "kvforge/status.h"

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
// Highway's AVX3_DL target string names AVX-VNNI but not AVX512-VNNI, which
// its run-time check for the target requires; AMX is used only where
// amx_enabled() says so.
// GFNI only by the tiles that check for it (high_nibbles_gfni).
#pragma GCC target("avx512vnni,amx-tile,amx-int8,gfni")
#endif
namespace kvforge::kernels {
namespace HWY_NAMESPACE {

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL

#include "kernels/int8_tile_ops-inl.h"

static_assert(kStripRows % kLanes == 0 && kPanelRows % kStripRows == 0);

#if HWY_TARGET == HWY_AVX2
// kLanes f16 scales as f32.
HWY_INLINE VF load_scales(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(p)));
}
HWY_INLINE VI low_nibbles(VI v) {
  return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}
HWY_INLINE VI high_nibbles(VI v) {
  return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0f));
}
#else
HWY_INLINE VF load_scales(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(p)));
}
HWY_INLINE VI low_nibbles(VI v) {
  return _mm512_and_si512(v, _mm512_set1_epi8(0x0f));
}
HWY_INLINE VI high_nibbles(VI v) {
  return _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0f));
}
#endif

#if HWY_TARGET == HWY_AVX3_DL
// The high nibbles in one instruction instead of two: GFNI's affine byte
// transform with the bit matrix of a right shift by 4 (output bit i is input
// bit i + 4 for i < 4, else 0; matrix byte 7 - i selects output bit i's
// input bits). Highway's AVX3_DL target does not require GFNI, so the
// tiles use it only where the CPU has it (kGfni).
HWY_INLINE VI high_nibbles_gfni(VI v) {
  return _mm512_gf2p8affine_epi64_epi8(v, _mm512_set1_epi64(0x1020408000000000LL), 0);
}
#endif

template <bool kGfni>
HWY_INLINE VI strip_high_nibbles(VI v) {
#if HWY_TARGET == HWY_AVX3_DL
  if constexpr (kGfni) return high_nibbles_gfni(v);
#endif
  return high_nibbles(v);
}

// Where vector v of a panel finds its rows: its strip, and which kLanes of
// the strip's 16 rows it holds.
struct StripRows {
  const uint8_t* strip[kV];
  size_t part[kV];  // rows [kLanes * part, kLanes * (part + 1)) of the strip
};

// What a tile requests from memory while it multiplies: for block b0 + i of
// its chunk, the i-th kPrefetchStep bytes from ahead[v] (offsets from
// `base`, below `end`) for every strip of the panel (the first vector of
// each strip; the others' entries are unused). Spread over the blocks
// so that the requests never fill the line-fill buffers at once: issued as
// one burst per chunk, the prefetches stalled the core for a fifth of the
// kernel's time at 16 tokens (perf).
struct StripPrefetch {
  const uint8_t* base = nullptr;
  size_t ahead[kV] = {};
  size_t end = 0;
};
constexpr size_t kPrefetchStep = kStripPairBytes / 2;

// Activations of a tile's first token, from column 0 (decode layout).
struct StripActs {
  const int8_t* q;           // token t at q + t * n_cols
  const float* d;            // token t at d + t * n_blocks
  const int32_t* q4_0_term;  // token t at q4_0_term + t * n_blocks
  int64_t n_cols, n_blocks;
};

// A block's products of one accumulator: with VNNI each multiply-add goes
// into the int32 sum (which starts at the block's zero-point term); without
// it the block's 8 byte multiply-adds (2 products per i16 lane each) are
// summed in i16 lanes, 16 products of at most 15 * 128 in magnitude: at most
// 30720, so exactly. They are widened once per block (block_sum) instead of
// once per multiply-add (measured 1.03-1.28x faster at 4-32 tokens on AVX2
// and AVX3, docs/kernels.md).
HWY_INLINE VI block_dot(VI acc, VI codes, VI acts, VI ones16) {
  if constexpr (kHasVnni) {
    return dot4(acc, codes, acts, ones16);
  } else {
    return add_i16(acc, maddubs(codes, acts));
  }
}
HWY_INLINE VI block_start(int32_t zero_point) {
  return kHasVnni ? set1_i(zero_point) : zero_i();
}
HWY_INLINE VI block_sum(VI acc, int32_t zero_point, VI ones16) {
  if constexpr (kHasVnni) {
    return acc;
  } else {
    return add_i(set1_i(zero_point), madd(acc, ones16));
  }
}

// Where a tile's sums over a chunk go: token t's kPanelRows outputs at
// `to + t * to_stride`, after adding those at `from + t * kPanelRows` (the
// panel's sums so far; none for its first chunk). The last chunk of a full
// panel writes into the matmul's output rows directly: copying 16-48 floats
// per token and panel afterwards took about 4% of a 16-token call.
struct StripTileOut {
  const float* from;  // nullptr: the chunk is the panel's first
  float* to;
  int64_t to_stride;
};

// out[t] (+)= the panel's rows times tokens [0, kTokens) over blocks [b0, b1).
// kPrefetch: the tile requests `ahead` (a separate instance, so that the
// other tiles' loop carries no prefetch code).
template <int kTokens, bool kPrefetch, bool kGfni>
void strip_tile(const StripRows& rows, size_t b0, size_t b1, const StripActs& x,
                const StripPrefetch& ahead, const StripTileOut& sums) {
  const VI ones16 = set1_i16(1);
  const uint8_t* u[kTokens];
  const float* dx[kTokens];
  const int32_t* zero_term[kTokens];
#pragma GCC unroll 8
  for (int t = 0; t < kTokens; ++t) {
    u[t] = reinterpret_cast<const uint8_t*>(x.q) + t * x.n_cols;
    dx[t] = x.d + t * x.n_blocks;
    zero_term[t] = x.q4_0_term + t * x.n_blocks;
  }
  // Vector v's codes and scales in its strip's first block pair.
  const uint8_t* codes_at[kV];
  const uint8_t* scales_at[kV];
#pragma GCC unroll 4
  for (int v = 0; v < kV; ++v) {
    codes_at[v] = rows.strip[v] + 64 + 4 * kLanes * rows.part[v];
    scales_at[v] = rows.strip[v] + 2 * kLanes * rows.part[v];
  }
  VF out[kTokens][kV];
#pragma GCC unroll 8
  for (int t = 0; t < kTokens; ++t) {
#pragma GCC unroll 4
    for (int v = 0; v < kV; ++v) {
      out[t][v] = sums.from == nullptr ? zero_f() : load_f(sums.from + t * kPanelRows + v * kLanes);
    }
  }
  for (size_t b = b0; b < b1; ++b) {
    if constexpr (kPrefetch) {
      for (int v = 0; v < kV; v += kStripRows / kLanes) {
        const size_t from = ahead.ahead[v] + (b - b0) * kPrefetchStep;
        const size_t to = std::min(from + kPrefetchStep, ahead.end);
        for (size_t at = from; at < to; at += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(ahead.base + at), _MM_HINT_T0);
        }
      }
    }
    const size_t pair = b / 2 * kStripPairBytes;
    const size_t code_offset = pair + 256 * (b & 1);
    VI acc[kV][kTokens];
#pragma GCC unroll 8
    for (int t = 0; t < kTokens; ++t) {
      const VI start = block_start(zero_term[t][b]);
#pragma GCC unroll 4
      for (int v = 0; v < kV; ++v) acc[v][t] = start;
    }
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      const uint8_t* codes[kV];
#pragma GCC unroll 4
      for (int v = 0; v < kV; ++v) codes[v] = codes_at[v] + code_offset + 64 * p;
      const size_t col = 32 * b + 8 * p;
      // Loaded again for the high nibbles (from L1) rather than kept: the
      // tile's accumulators need the registers.
      VI w[kV];
#pragma GCC unroll 4
      for (int v = 0; v < kV; ++v) w[v] = low_nibbles(load_i(codes[v]));
#pragma GCC unroll 8
      for (int t = 0; t < kTokens; ++t) {
        const VI xb = broadcast4(u[t] + col);
#pragma GCC unroll 4
        for (int v = 0; v < kV; ++v) acc[v][t] = block_dot(acc[v][t], w[v], xb, ones16);
      }
#pragma GCC unroll 4
      for (int v = 0; v < kV; ++v) w[v] = strip_high_nibbles<kGfni>(load_i(codes[v]));
#pragma GCC unroll 8
      for (int t = 0; t < kTokens; ++t) {
        const VI xb = broadcast4(u[t] + col + 4);
#pragma GCC unroll 4
        for (int v = 0; v < kV; ++v) acc[v][t] = block_dot(acc[v][t], w[v], xb, ones16);
      }
    }
#pragma GCC unroll 4
    for (int v = 0; v < kV; ++v) {
      const VF scale = load_scales(scales_at[v] + pair + 32 * (b & 1));
#pragma GCC unroll 8
      for (int t = 0; t < kTokens; ++t) {
        const VI sum = block_sum(acc[v][t], zero_term[t][b], ones16);
        out[t][v] = fmadd_f(cvt_f(sum), mul_f(scale, set1_f(dx[t][b])), out[t][v]);
      }
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < kTokens; ++t) {
#pragma GCC unroll 4
    for (int v = 0; v < kV; ++v)
      store_unaligned_f(sums.to + t * sums.to_stride + v * kLanes, out[t][v]);
  }
}

using StripTile = void (*)(const StripRows&, size_t, size_t, const StripActs&, const StripPrefetch&,
                           const StripTileOut&);

template <bool kPrefetch, bool kGfni, int... kTokens>
constexpr auto make_strip_tiles(std::integer_sequence<int, kTokens...>) {
  return std::array<StripTile, sizeof...(kTokens)>{strip_tile<kTokens + 1, kPrefetch, kGfni>...};
}
// [prefetch][tokens - 1]
using StripTiles = std::array<std::array<StripTile, kT>, 2>;
template <bool kGfni>
constexpr StripTiles make_strip_tile_table() {
  return {make_strip_tiles<false, kGfni>(std::make_integer_sequence<int, kT>()),
          make_strip_tiles<true, kGfni>(std::make_integer_sequence<int, kT>())};
}
constexpr StripTiles kStripTiles = make_strip_tile_table<false>();

// The tiles for this CPU: with GFNI where the target may use it and the CPU
// has it (unless a test forbids it).
const StripTiles& strip_tiles() {
#if HWY_TARGET == HWY_AVX3_DL
  static constexpr StripTiles kGfniStripTiles = make_strip_tile_table<true>();
  static const bool has_gfni = __builtin_cpu_supports("gfni");
  if (has_gfni && strip_gfni_allowed()) return kGfniStripTiles;
#endif
  return kStripTiles;
}

#if HWY_TARGET == HWY_AVX3_DL
// ---------------------------------------------------------------------------
// The same products on AMX (amx.h), for calls of kAmxMinTokens tokens or
// more. A panel's strips are first unpacked into the code tiles' layout,
// signed codes q - 8 (-8..7): per strip and block of 32 columns, 8 rows of
// 64 bytes, row k holding columns 4k..4k+3 of the strip's 16 rows as byte
// 4 * row + column % 4. A strip's unit p (columns 8p..8p+7) is already in
// that order: its low nibbles are row 2p, its high nibbles row 2p + 1.
// Then, per 16 tokens, strip and block, one TDPBSSD of the tokens' signed
// activation codes (read in place, one tile row per token) by the block's
// codes gives the 16 x 16 exact integer sums I (without the vector
// kernels' -8 * sum(x) term: the codes are already centred), followed by
// the canonical out = fma(f32(I), scale * d_x, out): every output is bit
// for bit the vector kernel's.

#include "kernels/amx_tile_ops-inl.h"

constexpr size_t kBlockCodeBytes = 32 * kStripRows;  // one block of one strip

// The codes of one strip (all its blocks) in the code tiles' layout.
void unpack_strip(const uint8_t* strip, int64_t n_blocks, int8_t* out) {
  const VI nibble = _mm512_set1_epi8(0x0f);
  const VI eight = _mm512_set1_epi8(8);
  for (int64_t b = 0; b < n_blocks; ++b) {
    const uint8_t* units =
        strip + static_cast<size_t>(b / 2) * kStripPairBytes + 64 + 256 * (b & 1);
    int8_t* dst = out + static_cast<size_t>(b) * kBlockCodeBytes;
    for (int p = 0; p < 4; ++p) {
      const VI v = load_i(units + 64 * p);
      store_i(dst + 128 * p, _mm512_sub_epi8(low_nibbles(v), eight));
      store_i(dst + 128 * p + 64, _mm512_sub_epi8(high_nibbles(v), eight));
    }
  }
}

// One strip's blocks for amx_blocks: kTokens tokens from x (token t's codes
// at x + t * act_stride, its block scales at d + t * n_blocks).
template <int kTokens>
struct StripBlocks {
  const uint8_t* strip;  // the f16 scales
  const int8_t* unpacked;
  const int8_t* x;
  const float* d;
  int64_t n_blocks;
  int64_t act_stride;
  AmxLinesAhead* ahead;
  static constexpr int64_t code_stride = 64;

  const int8_t* acts(int64_t b) const { return x + 32 * b; }
  const int8_t* codes(int64_t b) const {
    return unpacked + static_cast<size_t>(b) * kBlockCodeBytes;
  }
  HWY_INLINE void scale(const int32_t* sums, int64_t b, VF* out) const {
    ahead->step();
    const VF row_scales =
        load_scales(strip + static_cast<size_t>(b / 2) * kStripPairBytes + 32 * (b & 1));
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) {
      const VF dot = cvt_f(load_i(sums + 16 * t));
      out[t] = fmadd_f(dot, mul_f(row_scales, set1_f(d[t * n_blocks + b])), out[t]);
    }
  }
};

// One strip's 16 rows (`live` of them stored) for kTokens tokens.
struct AmxStripCall {
  const uint8_t* strip;
  const int8_t* unpacked;
  const int8_t* x;
  const float* d;
  int64_t n_cols, n_blocks;
  float* y;  // token t's row at y + t * y_stride
  int64_t y_stride;
  __mmask16 live;
  AmxLinesAhead* ahead;
};

template <int kTokens>
void amx_strip_tokens(const AmxStripCall& c) {
  const StripBlocks<kTokens> blocks{c.strip, c.unpacked, c.x, c.d, c.n_blocks, c.n_cols, c.ahead};
  VF out[kTokens];
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) out[t] = zero_f();
  amx_blocks</*kSignedActs=*/true>(blocks, c.n_blocks, out);
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) _mm512_mask_storeu_ps(c.y + t * c.y_stride, c.live, out[t]);
}

using AmxStripTokens = void (*)(const AmxStripCall&);
template <int... kTokens>
constexpr auto make_amx_strip_tokens(std::integer_sequence<int, kTokens...>) {
  return std::array<AmxStripTokens, sizeof...(kTokens)>{amx_strip_tokens<kTokens + 1>...};
}
// [tokens - 1]
constexpr std::array<AmxStripTokens, kAmxTileTokens> kAmxStripTokens =
    make_amx_strip_tokens(std::make_integer_sequence<int, kAmxTileTokens>());

void amx_strip_panel(const MatmulArgs& a, int64_t row_begin, int64_t token_begin, int64_t token_end,
                     ThreadScratch scratch) {
  const MatrixView& w = *a.w;
  const int64_t n_blocks = w.n_cols / 32;
  const size_t strip_bytes = q4_0_strip_bytes(w.n_cols);
  const int64_t row_end = std::min(row_begin + kPanelRows, w.n_rows);
  const int64_t n_strips = (row_end - row_begin + kStripRows - 1) / kStripRows;
  // The panel's unpacked codes (kPanelRows x n_cols bytes) fit the int8
  // prefill kernel's panel array (int8_scratch_layout).
  static_assert(kPanelRows <= kMaxPanelRows);
  auto* unpacked = reinterpret_cast<int8_t*>(scratch.int8);
  const size_t strip_codes = static_cast<size_t>(n_blocks) * kBlockCodeBytes;
  const uint8_t* first = w.strips + static_cast<size_t>(row_begin / kStripRows) * strip_bytes;
  for (int64_t s = 0; s < n_strips; ++s) {
    unpack_strip(first + s * strip_bytes, n_blocks, unpacked + s * strip_codes);
  }
  // The unpacking reads cold weights at one core's miss rate; the products
  // that follow it are long enough to bring the next two panels (whichever
  // thread takes them) into L2 meanwhile (AmxLinesAhead).
  const uint8_t* next = first + static_cast<size_t>(n_strips) * strip_bytes;
  const uint8_t* strips_end = w.strips + q4_0_strips_bytes(w.n_rows, w.n_cols);
  const size_t panel_bytes = static_cast<size_t>(kPanelRows / kStripRows) * strip_bytes;
  AmxLinesAhead ahead = AmxLinesAhead::span(next, 2 * panel_bytes, strips_end);
  amx_for_token_tiles(token_begin, token_end, 32, [&](int64_t t0, int n_tokens) {
    for (int64_t s = 0; s < n_strips; ++s) {
      const int64_t row = row_begin + s * kStripRows;
      const int64_t n_live = std::min<int64_t>(kStripRows, row_end - row);
      const AmxStripCall call{first + s * strip_bytes,
                              unpacked + s * strip_codes,
                              a.xq.q + t0 * w.n_cols,
                              a.xq.d + t0 * n_blocks,
                              w.n_cols,
                              n_blocks,
                              a.y + t0 * w.n_rows + row,
                              w.n_rows,
                              static_cast<__mmask16>((1u << n_live) - 1),
                              &ahead};
      kAmxStripTokens[static_cast<size_t>(n_tokens - 1)](call);
    }
  });
}
#endif  // HWY_TARGET == HWY_AVX3_DL

void q4_0_strip_panel_impl(const MatmulArgs& a, int64_t row_begin, int64_t token_begin,
                           int64_t token_end, ThreadScratch scratch) {
  const MatrixView& w = *a.w;
  KVF_CHECK(w.strips != nullptr && row_begin % kPanelRows == 0);
#if HWY_TARGET == HWY_AVX3_DL
  if (token_end - token_begin >= kAmxMinTokens && amx_enabled()) {
    amx_strip_panel(a, row_begin, token_begin, token_end, scratch);
    return;
  }
#endif
  const size_t strip_bytes = q4_0_strip_bytes(w.n_cols);
  StripRows rows;
  for (int v = 0; v < kV; ++v) {
    const int64_t r = row_begin + v * kLanes;
    // Rows past the last strip read the last one (their outputs are dropped).
    const int64_t strip = std::min(r / kStripRows, (w.n_rows - 1) / kStripRows);
    rows.strip[v] = w.strips + static_cast<size_t>(strip) * strip_bytes;
    rows.part[v] = static_cast<size_t>(r % kStripRows / kLanes);
  }
  const int64_t n_blocks = w.n_cols / 32;
  const int64_t n_live = std::min<int64_t>(kPanelRows, w.n_rows - row_begin);
  constexpr int64_t kChunkBlocks = kColumnChunk / 32;
  float* acc = scratch.acc;
  // Chunks of kColumnChunk columns: the chunk's strips stay in L1 while
  // every token tile passes over them; chunks add up in column order. One
  // tile of a chunk requests the lines of a later chunk (chunks_ahead), so
  // that memory delivers them while this one is multiplied; past the
  // strips' end, those of the next panel's strips (which follow in memory),
  // for a task that runs several panels. Offsets from w.strips, so that no
  // pointer is formed past the end.
  const size_t panel_bytes = static_cast<size_t>(kPanelRows / kStripRows) * strip_bytes;
  StripPrefetch prefetch;
  prefetch.base = w.strips;
  prefetch.end = q4_0_strips_bytes(w.n_rows, w.n_cols);
  // The tile that requests them: kPrefetchTiles tiles before the chunk's
  // last (the first with few tokens), so that the lines arrive in time but
  // are not evicted by the activations of many tiles before they are read.
  constexpr int64_t kPrefetchTiles = 4;
  const int64_t n_tiles = (token_end - token_begin + kT - 1) / kT;
  const int64_t prefetch_t0 = token_begin + std::max<int64_t>(0, n_tiles - kPrefetchTiles) * kT;
  // How far ahead: the next chunk when the tiles of several tokens take
  // long enough over this one for the lines to arrive. Without VNNI one
  // token passes a chunk in about the time memory takes to answer, so it
  // requests the fourth chunk on (one-token decode 1.2-1.6x faster on AVX2;
  // with VNNI, where two threads already read at the bandwidth, it measured
  // no better and maybe 5% worse: docs/kernels.md).
  const int64_t chunks_ahead = !kHasVnni && token_end - token_begin == 1 ? 4 : 1;
  const StripTiles& tiles = strip_tiles();
  for (int64_t b0 = 0; b0 < n_blocks; b0 += kChunkBlocks) {
    const int64_t b1 = std::min(b0 + kChunkBlocks, n_blocks);
    // Past a strip's end (an odd last block rounds up to its pair), the
    // same vector's strip in the next panel.
    size_t ahead =
        static_cast<size_t>((b1 + 1) / 2 + (chunks_ahead - 1) * kChunkBlocks / 2) * kStripPairBytes;
    if (ahead >= strip_bytes) ahead += panel_bytes - strip_bytes;
    for (int v = 0; v < kV; v += kStripRows / kLanes) {  // the vectors strip_tile reads
      prefetch.ahead[v] = static_cast<size_t>(rows.strip[v] - w.strips) + ahead;
    }
    const bool into_output = b1 == n_blocks && n_live == kPanelRows;
    for (int64_t t0 = token_begin; t0 < token_end; t0 += kT) {
      const int64_t n_tile = std::min<int64_t>(kT, token_end - t0);
      const StripActs x{a.xq.q + t0 * w.n_cols, a.xq.d + t0 * n_blocks,
                        a.xq.q4_0_term + t0 * n_blocks, w.n_cols, n_blocks};
      float* tile_acc = acc + (t0 - token_begin) * kPanelRows;
      const float* from = b0 == 0 ? nullptr : tile_acc;
      const StripTileOut sums = into_output
                                    ? StripTileOut{from, a.y + t0 * w.n_rows + row_begin, w.n_rows}
                                    : StripTileOut{from, tile_acc, kPanelRows};
      tiles[t0 == prefetch_t0 ? 1 : 0][static_cast<size_t>(n_tile - 1)](
          rows, static_cast<size_t>(b0), static_cast<size_t>(b1), x, prefetch, sums);
    }
  }
  if (n_live == kPanelRows) return;
  // A partial last panel: only its live rows are outputs.
  for (int64_t t = token_begin; t < token_end; ++t) {
    std::memcpy(a.y + t * w.n_rows + row_begin, acc + (t - token_begin) * kPanelRows,
                static_cast<size_t>(n_live) * sizeof(float));
  }
}

bool q4_0_strips_supported_impl() {
  return true;
}

int64_t q4_0_strip_panel_rows_impl() {
  return kPanelRows;
}

#else  // no integer kernel on this target

void q4_0_strip_panel_impl(const MatmulArgs&, int64_t, int64_t, int64_t, ThreadScratch) {
  KVF_CHECK(false);
}

bool q4_0_strips_supported_impl() {
  return false;
}

int64_t q4_0_strip_panel_rows_impl() {
  return kStripRows;
}

#endif

}  // namespace HWY_NAMESPACE
}  // namespace kvforge::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvforge::kernels {

HWY_EXPORT(q4_0_strip_panel_impl);
HWY_EXPORT(q4_0_strips_supported_impl);
HWY_EXPORT(q4_0_strip_panel_rows_impl);

bool q4_0_strips_supported() {
  return HWY_DYNAMIC_DISPATCH(q4_0_strips_supported_impl)();
}

int64_t q4_0_strip_panel_rows() {
  return HWY_DYNAMIC_DISPATCH(q4_0_strip_panel_rows_impl)();
}

void q4_0_strip_panel(const MatmulArgs& args, int64_t row_begin, int64_t token_begin,
                      int64_t token_end, ThreadScratch scratch) {
  HWY_DYNAMIC_DISPATCH(q4_0_strip_panel_impl)(args, row_begin, token_begin, token_end, scratch);
}

}  // namespace kvforge::kernels
#endif
