// Internal seam between matmul.cpp (argument checks, threading, scratch) and
// the SIMD kernel files, which Highway compiles once per target and
// dispatches at run time.
//
// A kernel call covers a contiguous range of weight rows and writes only
// those rows' outputs, so threads can run disjoint ranges concurrently; each
// output is computed by one call in a fixed order, which keeps results
// identical for any thread count.
//
// Batch invariance: an output y[t, r] is the same function of row r of W and
// row t of x whatever the other rows of x are and however many there are,
// bit for bit. Each weight type on each target has one canonical sequence
// of f32 operations per output (docs/kernels.md), which the decode kernels
// (a few tokens, rows in registers) and the prefill kernels (many tokens,
// register tiles) both perform:
//   * integer paths (decode_uses_quantized_activations): per sub-block j of
//     16 or 32 columns in column order, the exact integer dot product I_j of
//     the weight codes with the activation codes, then
//       out = fma(f32(I_j), scale_j * d_x, out)  [; out = fma(offset_j, sum_x, out)]
//     starting from out = 0 (prefill_int8_panel);
//   * f32 paths: one FMA chain out = fma(W[r, c], x[t, c], out) over the
//     columns in order, starting from 0 (prefill_panel, also used for
//     decode).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/matmul.h"
#include "kernels/weight_format.h"

namespace kvforge::kernels {

// Columns of weights unpacked at a time in the f32 kernel: a multiple of
// every block size (32, 256).
constexpr int64_t kColumnChunk = 256;
// Largest number of weight rows one prefill panel holds (the f32 kernel: 2
// vectors of up to 16 f32 lanes; the int8 kernel: up to 4 vectors of 16 i32
// lanes), and tokens per register tile.
constexpr int64_t kMaxPanelRows = 64;
constexpr int64_t kMaxTileTokens = 6;
// Up to this many tokens use the decode kernels (weights streamed once).
// They hold kDecodePassTokens tokens' sums in registers; a call for more
// tokens makes several passes over each group of rows, which the first
// pass has brought into L1, so the weights still come from memory once.
// Past about 8 tokens the prefill kernels' register tiles win despite
// unpacking every panel (docs/kernels.md, "Small batches").
constexpr int64_t kDecodePassTokens = 4;
constexpr int64_t kMaxDecodeTokens = 8;

// Per-thread scratch for one kernel call, all 64-byte aligned:
//   rows   [kMaxPanelRows][kColumnChunk]  dequantized weight rows
//   panel  [kColumnChunk][kMaxPanelRows]  the same, interleaved by column
//   tile   [kMaxTileTokens][kMaxPanelRows] micro-kernel results
//   acc    [max_tokens][kMaxPanelRows]    one panel's outputs for all
//                                         tokens (the int8 prefill kernel)
//   int8   int8_scratch_layout(max_cols).bytes: the int8 prefill kernel's
//          panel of the whole matrix width (matmul_prefill_int8.cpp)
struct ThreadScratch {
  float* rows;
  float* panel;
  float* tile;
  float* acc;
  uint8_t* int8;
};
constexpr size_t kThreadScratchFloats =
    2 * kMaxPanelRows * kColumnChunk + kMaxTileTokens * kMaxPanelRows;

// Byte offsets of the int8 prefill kernel's arrays for matrices of up to
// n_cols columns (K = n_cols rounded up to 256), each 64-byte aligned:
//   panel [K / 4][kMaxPanelRows][4] int8, scales and corr [K / 16][kMaxPanelRows]
//   f32 / i32, offsets [K / 32][kMaxPanelRows] f32, rows [kInt8ScratchRows][K]
//   int8 plus 64 bytes the transposes may read past the last row.
constexpr int64_t kInt8ScratchRows = 16;
struct Int8ScratchLayout {
  size_t panel, scales, corr, offsets, rows, bytes;
};
constexpr Int8ScratchLayout int8_scratch_layout(int64_t n_cols) {
  const auto k = static_cast<size_t>((n_cols + 255) / 256 * 256);
  const auto rows = static_cast<size_t>(kMaxPanelRows);
  Int8ScratchLayout l{};
  l.panel = 0;
  l.scales = l.panel + k * rows;
  l.corr = l.scales + k / 16 * rows * 4;
  l.offsets = l.corr + k / 16 * rows * 4;
  l.rows = l.offsets + k / 32 * rows * 4;
  l.bytes = l.rows + static_cast<size_t>(kInt8ScratchRows) * k + 64;
  return l;
}

// Activations rounded to int8 in blocks of kActivationBlock columns, for the
// integer kernels: x[t, c] ~ d[t, b] * q[t, c] with b = c / 32,
// d = amax / 127 of the block (f32), and sum[t, b] = d[t, b] * (sum of the
// block's q), which the kernels need for the formats' offsets (Q4_1's and
// the K-quants' mins). Decode stores q as int8 plus qsum16, the integer sum
// of every 16 consecutive codes (its kernels multiply unsigned weight codes
// and remove their zero point z exactly as z * qsum16); prefill stores the
// byte q + 128 (= q ^ 0x80), the unsigned operand of the u8 x s8 dot
// product instructions (see matmul_prefill_int8.cpp). Both paths round
// the same values to the same codes. Decode also stores q4_0_term, -8 times
// each block's code sum: the integer term that Q4_0's zero point (8) adds
// to a row's block sum, which the strip kernel starts its sums from.
constexpr int64_t kActivationBlock = 32;
struct QuantizedActivations {
  const int8_t* q;           // [n_tokens, n_cols]
  const float* d;            // [n_tokens, n_cols / 32]
  const float* sum;          // [n_tokens, n_cols / 32]
  const int32_t* qsum16;     // [n_tokens, n_cols / 16], decode layout only
  const int32_t* q4_0_term;  // [n_tokens, n_cols / 32], decode layout only
};

// Activations of the f32 prefill kernel, copied once per call into the
// order its register tiles read them:
//   tiles[chunk][tile][k][kMaxTileTokens]
// with chunk = column / kColumnChunk, tile = token / kMaxTileTokens and
// k < kColumnChunk, so that a tile's values for one column lie side by side
// and a chunk's values for all tokens form one contiguous run. Entries past
// the last token or column are never read and left unset. Read from x in
// place, a tile's tokens lie n_cols floats apart: for power-of-two widths
// all tokens' slices of a chunk fall into a few L2 sets, so each panel
// fetched them again from L3 (docs/kernels.md, "Prefill, float weights").
// Where the tile of tokens from t0 (a multiple of kMaxTileTokens) of the
// chunk from column `col` (a multiple of kColumnChunk) starts, in floats,
// for n_tokens tokens.
constexpr size_t packed_tile_offset(int64_t col, int64_t t0, int64_t n_tokens) {
  const int64_t n_tiles = (n_tokens + kMaxTileTokens - 1) / kMaxTileTokens;
  return static_cast<size_t>(col / kColumnChunk * n_tiles + t0 / kMaxTileTokens) *
         static_cast<size_t>(kColumnChunk * kMaxTileTokens);
}
constexpr size_t packed_activation_floats(int64_t n_tokens, int64_t n_cols) {
  const int64_t n_chunks = (n_cols + kColumnChunk - 1) / kColumnChunk;
  return packed_tile_offset(n_chunks * kColumnChunk, 0, n_tokens);
}

struct MatmulArgs {
  const MatrixView* w;
  const WeightFormat* format;
  const float* x;  // [n_tokens, n_cols]
  int64_t n_tokens;
  float* y;  // [n_tokens, n_rows]
  // Filled in (by matmul.cpp) when decode_uses_quantized_activations(type)
  // (n_tokens <= kMaxDecodeTokens) or prefill_uses_quantized_activations(type).
  QuantizedActivations xq;
  // x in the tile order above; filled in (by matmul.cpp) for prefill_panel.
  const float* x_tiles = nullptr;
};

// Whether `type` on this machine's SIMD target multiplies in integers:
// decode_rows for up to kMaxDecodeTokens tokens (int8 codes in args.xq)
// and prefill_int8_panel for more (biased codes). Otherwise f32
// activations: decode_rows where decode_has_kernel(type) (the float
// formats on the x86 vector targets), prefill_panel for every other call.
// The first two agree on every target (the integer kernels exist for the
// same types).
bool decode_uses_quantized_activations(TensorType type);
bool prefill_uses_quantized_activations(TensorType type);
bool decode_has_kernel(TensorType type);

// Rounds n_values (a multiple of kActivationBlock) consecutive activations
// to int8 blocks: q[n_values], d and sum[n_values / 32], and, unless they
// are null (both or neither), qsum16[n_values / 16] and
// q4_0_term[n_values / 32]. Every block's error is at most its amax / 254
// (plus f32 rounding of d) per element. With `biased`, q holds the bytes
// q + 128 instead (the prefill layout).
void quantize_activations(const float* x, int64_t n_values, int8_t* q, float* d, float* sum,
                          int32_t* qsum16, int32_t* q4_0_term, bool biased);

// Name of the SIMD target the matmul kernels dispatch to now ("AVX3_DL",
// "AVX2", ...; Highway's names).
const char* matmul_simd_target();

// format.dequantize_blocks, with SIMD decoders where a format has one
// (bit-identical results).
void unpack_blocks(const WeightFormat& format, const uint8_t* src, float* dst, int64_t n_blocks);

// Rows [row_begin, row_end) for n_tokens <= kMaxDecodeTokens, where
// decode_has_kernel(type). Rows go in groups of
// decode_group_rows(); a range that is not a multiple of it costs a partial
// group.
void decode_rows(const MatmulArgs& args, int64_t row_begin, int64_t row_end, ThreadScratch scratch);
int64_t decode_group_rows();

// Rows [row_begin, min(row_begin + prefill_panel_rows(), n_rows)).
void prefill_panel(const MatmulArgs& args, int64_t row_begin, ThreadScratch scratch);
// Rows per prefill panel on this machine's SIMD target (<= kMaxPanelRows).
int64_t prefill_panel_rows();

// The integer prefill kernel (prefill_uses_quantized_activations): rows
// [row_begin, min(row_begin + prefill_int8_panel_rows(), n_rows)) of tokens
// [token_begin, token_end).
void prefill_int8_panel(const MatmulArgs& args, int64_t row_begin, int64_t token_begin,
                        int64_t token_end, ThreadScratch scratch);
int64_t prefill_int8_panel_rows();

// The integer kernel of Q4_0 matrices repacked into strips (w.strips), for
// any number of tokens (decode-layout activations, with q4_0_term): rows
// [row_begin, min(row_begin + q4_0_strip_panel_rows(), n_rows)) of tokens
// [token_begin, token_end). Exists where q4_0_strips_supported().
void q4_0_strip_panel(const MatmulArgs& args, int64_t row_begin, int64_t token_begin,
                      int64_t token_end, ThreadScratch scratch);
int64_t q4_0_strip_panel_rows();

}  // namespace kvforge::kernels
