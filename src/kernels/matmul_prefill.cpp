// Prefill kernel (many tokens) with f32 activations: compute bound. A panel
// of R = kVecs vectors of weight rows is unpacked to f32 once per
// kColumnChunk columns and reused by every token through a register-blocked
// FMA micro-kernel:
//
//   panel [k][R] (interleaved)     x of up to 6 tokens, [k][6] (packed
//                                  once per call by matmul.cpp)
//   acc[v][t] += panel[k][v] * broadcast(x[k][t])    for k in the chunk
//
// On AVX2 (8 lanes) that is 16 rows x 6 tokens = 12 accumulator registers,
// 2 weight vectors and 1 broadcast of the 16 available; each k costs 2 loads,
// 6 broadcasts and 12 FMAs, so the FMA units stay the bottleneck. AVX-512
// has 32 registers: 64 rows x 6 tokens. Quantized formats use the integer
// kernel (matmul_prefill_int8.cpp) on targets that have one.
//
// Compiled once per SIMD target (Highway foreach_target) and dispatched at
// run time; see matmul_internal.h for the contract.
#define KVFORGE_SIMD_WITH_AVX3_DL
#include "kernels/simd_targets.h"
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_prefill.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on

#include <algorithm>
#include <cstring>

#include "hwy/cache_control.h"
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

// Vectors of rows per panel: 4 on AVX-512 (4 x 6 = 24 accumulators + 4
// weights + 1 broadcast of its 32 registers; per column 10 loads feed 24
// FMAs), 2 elsewhere (12 + 2 + 1 of 16 on AVX2).
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr int kVecs = 4;
#else
constexpr int kVecs = 2;
#endif
using DF = hn::CappedTag<float, kMaxPanelRows / kVecs>;
using VF = hn::Vec<DF>;

// tile[t][0..R) (+)= sum over k < len of panel[k][0..R) * x[k][t] (x: one
// tile of packed_activation_floats' order; `first`: =).
template <int kTokens>
void tile_kernel(const float* HWY_RESTRICT panel, int64_t len, const float* HWY_RESTRICT x,
                 float* HWY_RESTRICT tile, bool first) {
  const DF df;
  const size_t n = hn::Lanes(df);
  VF acc[kVecs][kTokens];
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) {
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) {
      acc[v][t] = first ? hn::Zero(df) : hn::Load(df, tile + (t * kVecs + v) * n);
    }
  }
  for (int64_t k = 0; k < len; ++k) {
    VF w[kVecs];
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v)
      w[v] = hn::Load(df, panel + (static_cast<size_t>(k) * kVecs + v) * n);
#pragma GCC unroll 16
    for (int t = 0; t < kTokens; ++t) {
      const VF xv = hn::Set(df, x[k * kMaxTileTokens + t]);
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) acc[v][t] = hn::MulAdd(w[v], xv, acc[v][t]);
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < kTokens; ++t) {
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) hn::Store(acc[v][t], df, tile + (t * kVecs + v) * n);
  }
}

using TileKernel = void (*)(const float*, int64_t, const float*, float*, bool);
// Indexed by token count - 1.
constexpr TileKernel kTileKernels[kMaxTileTokens] = {
    tile_kernel<1>, tile_kernel<2>, tile_kernel<3>, tile_kernel<4>, tile_kernel<5>, tile_kernel<6>};

// rows[r][0..len) -> panel[k][r], R rows. The transpose runs once per panel
// and chunk, amortized over all tokens.
void interleave(const float* rows, int64_t len, size_t panel_rows, float* panel) {
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  // 8x8 tiles through registers: 24 shuffles per 64 elements instead of 64
  // scalar loads and stores (R is a multiple of 8); the last len % 8
  // columns (float formats only) go one by one.
  const int64_t len8 = len / 8 * 8;
  for (int64_t k = 0; k < len8; k += 8) {
    for (size_t r = 0; r < panel_rows; r += 8) {
      const float* src = rows + r * kColumnChunk + k;
      __m256 v[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) v[i] = _mm256_load_ps(src + i * kColumnChunk);
      // Pairs, then quads within 128-bit lanes, then swap the lanes.
      __m256 p[8], q[8];
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        p[2 * i] = _mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        p[2 * i + 1] = _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]);
      }
#pragma GCC unroll 2
      for (int i = 0; i < 2; ++i) {
        q[4 * i] = _mm256_shuffle_ps(p[4 * i], p[4 * i + 2], 0x44);
        q[4 * i + 1] = _mm256_shuffle_ps(p[4 * i], p[4 * i + 2], 0xee);
        q[4 * i + 2] = _mm256_shuffle_ps(p[4 * i + 1], p[4 * i + 3], 0x44);
        q[4 * i + 3] = _mm256_shuffle_ps(p[4 * i + 1], p[4 * i + 3], 0xee);
      }
      float* dst = panel + static_cast<size_t>(k) * panel_rows + r;
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        _mm256_store_ps(dst + i * panel_rows, _mm256_permute2f128_ps(q[i], q[i + 4], 0x20));
        _mm256_store_ps(dst + (i + 4) * panel_rows, _mm256_permute2f128_ps(q[i], q[i + 4], 0x31));
      }
    }
  }
#else
  const int64_t len8 = 0;
#endif
  for (int64_t k = len8; k < len; ++k) {
    float* out = panel + static_cast<size_t>(k) * panel_rows;
    for (size_t r = 0; r < panel_rows; ++r) out[r] = rows[r * kColumnChunk + k];
  }
}

int64_t prefill_panel_rows_impl() {
  return static_cast<int64_t>(kVecs * hn::Lanes(DF()));
}

void prefill_panel_impl(const MatmulArgs& a, int64_t row_begin, ThreadScratch scratch) {
  const MatrixView& w = *a.w;
  const WeightFormat& format = *a.format;
  const size_t panel_rows = kVecs * hn::Lanes(DF());
  const int64_t n_live = std::min<int64_t>(static_cast<int64_t>(panel_rows), w.n_rows - row_begin);
  const auto* first_row =
      static_cast<const uint8_t*>(w.data) + static_cast<size_t>(row_begin) * w.row_bytes;
  const int64_t n_tiles = (a.n_tokens + kMaxTileTokens - 1) / kMaxTileTokens;
  for (int64_t col = 0; col < w.n_cols; col += kColumnChunk) {
    const int64_t len = std::min<int64_t>(kColumnChunk, w.n_cols - col);
    const size_t col_bytes = static_cast<size_t>(col / format.block_elems) * format.block_bytes;
    for (size_t r = 0; r < panel_rows; ++r) {
      float* dst = scratch.rows + r * kColumnChunk;
      if (static_cast<int64_t>(r) < n_live) {
        unpack_blocks(format, first_row + r * w.row_bytes + col_bytes, dst,
                      len / format.block_elems);
      } else {
        std::memset(dst, 0, static_cast<size_t>(len) * sizeof(float));
      }
    }
    interleave(scratch.rows, len, panel_rows, scratch.panel);
    // The next chunk's weight bytes are requested while this one is
    // multiplied, a share per tile: the rows lie row_bytes apart, a pattern
    // the hardware prefetcher does not follow well.
    const size_t next_bytes =
        static_cast<size_t>(kColumnChunk / format.block_elems) * format.block_bytes;
    const size_t next_begin = col_bytes + next_bytes;
    const size_t next_end = std::min(w.row_bytes, next_begin + next_bytes);
    const size_t lines_per_row = next_end > next_begin ? (next_end - next_begin + 63) / 64 : 0;
    const size_t n_lines = lines_per_row * static_cast<size_t>(n_live);
    const size_t lines_per_tile =
        (2 * n_lines + static_cast<size_t>(n_tiles) - 1) / static_cast<size_t>(n_tiles);
    size_t line = 0;
    for (int64_t t0 = 0; t0 < a.n_tokens; t0 += kMaxTileTokens) {
      for (size_t end = std::min(n_lines, line + lines_per_tile); line < end; ++line) {
        hwy::Prefetch(first_row + (line / lines_per_row) * w.row_bytes + next_begin +
                      64 * (line % lines_per_row));
      }
      const int64_t n_tile_tokens = std::min<int64_t>(kMaxTileTokens, a.n_tokens - t0);
      // Chunks add up in column order, so every output sees the same
      // sequence of additions whatever the thread count. The panel's
      // results for all tokens stay in scratch.acc (contiguous, unlike y's
      // rows n_rows floats apart) until the last chunk.
      kTileKernels[n_tile_tokens - 1](scratch.panel, len,
                                      a.x_tiles + packed_tile_offset(col, t0, a.n_tokens),
                                      scratch.acc + static_cast<size_t>(t0) * panel_rows, col == 0);
    }
  }
  for (int64_t t = 0; t < a.n_tokens; ++t) {
    std::memcpy(a.y + t * w.n_rows + row_begin, scratch.acc + static_cast<size_t>(t) * panel_rows,
                static_cast<size_t>(n_live) * sizeof(float));
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace kvforge::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvforge::kernels {

HWY_EXPORT(prefill_panel_impl);
HWY_EXPORT(prefill_panel_rows_impl);

void prefill_panel(const MatmulArgs& args, int64_t row_begin, ThreadScratch scratch) {
  HWY_DYNAMIC_DISPATCH(prefill_panel_impl)(args, row_begin, scratch);
}

int64_t prefill_panel_rows() {
  return HWY_DYNAMIC_DISPATCH(prefill_panel_rows_impl)();
}

}  // namespace kvforge::kernels
#endif
