// Internal seam between matmul.cpp (argument checks, threading, scratch) and
// the SIMD kernel files, which Highway compiles once per target and
// dispatches at run time.
//
// A kernel call covers a contiguous range of weight rows and writes only
// those rows' outputs, so threads can run disjoint ranges concurrently; each
// output is computed by one call in a fixed order, which keeps results
// identical for any thread count.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/matmul.h"
#include "kernels/weight_format.h"

namespace kvforge::kernels {

// Columns of weights unpacked at a time in the prefill kernel and in the
// decode fallback: a multiple of every block size (32, 256).
constexpr int64_t kColumnChunk = 256;
// Largest number of weight rows one prefill panel holds (2 vectors of up to
// 16 f32 lanes), and tokens per register tile.
constexpr int64_t kMaxPanelRows = 32;
constexpr int64_t kMaxTileTokens = 6;
// Up to this many tokens use the decode kernels (weights streamed once, each
// decoded weight reused from registers for every token).
constexpr int64_t kMaxDecodeTokens = 4;

// Per-thread scratch for one kernel call, all 64-byte aligned:
//   rows   [kMaxPanelRows][kColumnChunk]  dequantized weight rows
//   panel  [kColumnChunk][kMaxPanelRows]  the same, interleaved by column
//   tile   [kMaxTileTokens][kMaxPanelRows] micro-kernel results
struct ThreadScratch {
  float* rows;
  float* panel;
  float* tile;
};
constexpr size_t kThreadScratchFloats =
    2 * kMaxPanelRows * kColumnChunk + kMaxTileTokens * kMaxPanelRows;

// Activations rounded to int8 in blocks of kActivationBlock columns, for the
// integer decode kernels: x[t, c] ~ d[t, b] * q[t, c] with b = c / 32,
// d = amax / 127 of the block (f32), and sum[t, b] = d[t, b] * (sum of the
// block's q), which the kernels need for the formats' offsets (Q4_0's -8,
// Q4_1's and the K-quants' mins).
constexpr int64_t kActivationBlock = 32;
struct QuantizedActivations {
  const int8_t* q;   // [n_tokens, n_cols]
  const float* d;    // [n_tokens, n_cols / 32]
  const float* sum;  // [n_tokens, n_cols / 32]
};

struct MatmulArgs {
  const MatrixView* w;
  const WeightFormat* format;
  const float* x;  // [n_tokens, n_cols]
  int64_t n_tokens;
  float* y;  // [n_tokens, n_rows]
  // Filled in (by matmul.cpp) when decode_uses_quantized_activations(type).
  QuantizedActivations xq;
};

// Whether the decode kernels for `type` on this machine's SIMD target read
// args.xq instead of args.x.
bool decode_uses_quantized_activations(TensorType type);

// Rounds n_values (a multiple of kActivationBlock) consecutive activations
// to int8 blocks: q[n_values], d and sum[n_values / 32]. Every block's error
// is at most its amax / 254 (plus f32 rounding of d) per element.
void quantize_activations(const float* x, int64_t n_values, int8_t* q, float* d, float* sum);

// format.dequantize_blocks, with SIMD decoders where a format has one
// (bit-identical results).
void unpack_blocks(const WeightFormat& format, const uint8_t* src, float* dst, int64_t n_blocks);

// Rows [row_begin, row_end) for n_tokens <= kMaxDecodeTokens.
void decode_rows(const MatmulArgs& args, int64_t row_begin, int64_t row_end, ThreadScratch scratch);

// Rows [row_begin, min(row_begin + prefill_panel_rows(), n_rows)).
void prefill_panel(const MatmulArgs& args, int64_t row_begin, ThreadScratch scratch);
// Rows per prefill panel on this machine's SIMD target (<= kMaxPanelRows).
int64_t prefill_panel_rows();

}  // namespace kvforge::kernels
