// Causal grouped-query attention over one sequence's KV blocks in one layer,
// reading every codec directly.
//
// Tiles in a plain row format (f16, bf16, int8: KvCodec::row_format) and in
// the column and pair layouts of kv_codec.h are read in place, converted
// inside the dot products; the others (and all on the scalar target) are
// decoded into an L1-sized f32 scratch right before their dot products and
// value sums, then dropped. An online (streaming) softmax folds one chunk of blocks at a time,
// so no score matrix and no dequantized copy of the cache exists. Rows that
// the cache still stages in full precision (see paged_kv_cache.h) are read in
// the same pass as encoded blocks. docs/kv-cache.md walks through the kernel.
//
// int4 and int4h keys stored by channel pairs (KvRowFormat::kInt4Pairs) are
// scored with the query rounded to int8, on every target: per group of
// min(32, head_dim) channels of the pre-scaled (and, for int4h, rotated)
// query x, with amax = max |x|, x becomes nearbyint(x * (127 / amax)) *
// (amax / 127). On x86 with AVX2 or later the kernel then multiplies the
// 4-bit codes by the int8 codes in integer multiply-adds (as llama.cpp's
// Q4_0 x Q8_0 dot products do), elsewhere by the rounded query in f32; the
// rounding adds about 1% to the KL divergence int4 keys cause
// (docs/kv-fidelity.md).
//
// int8 keys (KvRowFormat::kInt8Columns) are scored with the query rounded
// to int16, on every target: with amax = max |x| over the head, x becomes
// nearbyint(x * (32767 / amax)) * (amax / 32767). On x86 with AVX2 or later
// the int8 codes then meet the int16 codes in integer multiply-adds
// (PMADDWD; VPDPWSSD with AVX-512 VNNI), elsewhere the rounded query meets
// them in f32; the rounding moves the KL divergence int8 keys cause by
// about 0.1 %, within its standard error (docs/kv-fidelity.md).
//
// KIVI keys (KvRowFormat::kKivi2Columns, kKivi4Columns) have one grid per
// channel and token group: the pre-scaled query x is folded with each
// channel's scale s into w = x * s, and w is rounded per channel group of
// min(32, head_dim) channels to int8 steps of max |w| / 127, on every target;
// a row then scores x · mins + sum over groups of step * (w8 · codes). On x86
// with AVX2 or later the codes meet w8 in integer multiply-adds (VPDPBUSD
// with AVX-512 VNNI, Highway's AVX3_DL; PMADDUBSW otherwise) where the
// columns are 8 bytes or a multiple of 16 (g = 32, the default, or 64; g = 16
// for kivi4) and head_dim is a multiple of 32; elsewhere the rounded w meets
// them in f32 multiply-adds; tiles no vector kernel reads (the scalar
// baseline, odd shapes) are scored from their codes one row at a time with
// the same w. The rounding adds 0-1.5% to the KL divergence KIVI causes
// (docs/kv-fidelity.md).
//
// int4, int4h and KIVI values stored by token pairs (kInt4TokenPairs,
// kInt2TokenPairs) are summed in place in f32 with exact weights, on every
// target with fixed-width vectors: each row's scale is folded into its
// softmax weights, the codes are converted inside the multiply-adds.
//
// Rotated codecs store H·x (H the orthonormal Walsh–Hadamard matrix): for
// rotated keys the query is rotated once (q·k = Hq·Hk); for rotated values the
// weighted sum is rotated back at the end (H is its own inverse).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "kv/kv_codec.h"

namespace kvforge {

class ThreadPool;

// One side (keys or values) of one layer: where its tiles are and how they
// are encoded.
struct PagedSide {
  const KvCodec* codec = nullptr;
  // The block part: per KV head h, the tile of block id b is at
  // head_arenas[h] + b * tile_bytes.
  const uint8_t* const* head_arenas = nullptr;
  // Pages (PagedPages): per KV head h, the tile of page j is head_tiles[h][j].
  const uint8_t* const* const* head_tiles = nullptr;
  size_t tile_bytes = 0;
  bool staged = false;                 // rows of recent positions are also kept in f32
  int32_t residual = 0;                // R of the read rule (staged sides only)
  const float* staged_rows = nullptr;  // [position - staged_begin][n_kv_heads][head_dim]
};

// Rows a press retained (or demoted) for each KV head, in pages of up to
// block_tokens rows in one codec pair (kv-compression.md). Every row is
// visible to every query: all of them lie before the block part.
struct PagedPages {
  PagedSide keys;                           // head_tiles set; never staged
  PagedSide values;                         // head_tiles set; never staged
  const int32_t* head_rows = nullptr;       // rows of KV head h (its pages: ceil(rows / B))
  const float* const* head_bias = nullptr;  // null, or per head a score bias per row
};

// Attention probabilities handed back by the kernel for chosen queries
// (kv-compression.md): for each task whose query position is in
// [first_pos, end_pos), p = softmax of its scores, averaged over the query
// heads of its KV head, is added to thread_sums of the thread that ran it:
//   thread_sums[thread][kv_head][row], rows numbered in span order (each
//   PagedPages entry's rows, then the block part's rows from first_block on,
//   or, with head_blocks, the chosen blocks' rows in order).
// row_scratch[thread] holds kPagedMaxGroup * max_rows floats. The caller sums
// the threads' rows afterwards.
struct ScoreCapture {
  int32_t first_pos = 0;
  int32_t end_pos = 0;
  int32_t max_rows = 0;                 // rows a task may see, at most
  float* const* thread_sums = nullptr;  // per thread: n_kv_heads * max_rows
  float* const* row_scratch = nullptr;  // per thread: kPagedMaxGroup * max_rows
};

struct PagedAttentionArgs {
  const float* q = nullptr;  // [n_tokens][n_heads][head_dim]
  float* out = nullptr;      // same shape
  int32_t n_tokens = 0;
  int32_t first_pos = 0;  // position of query 0; query t attends to [0, first_pos + t]
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  float scale = 1.0f;
  int32_t block_tokens = 0;
  // The block part: the sequence's block table by absolute block index
  // (block j holds positions [j * B, (j + 1) * B)); entries before
  // first_block are not read (their positions were pressed into pages).
  std::span<const int32_t> block_ids;
  int32_t first_block = 0;
  int32_t staged_begin = 0;  // first staged position (a block boundary)
  PagedSide keys;
  PagedSide values;
  // Selection: null, or per KV head the absolute indices (ascending, >=
  // first_block) of the blocks it reads, head_block_counts[h] of them.
  const int32_t* const* head_blocks = nullptr;
  const int32_t* head_block_counts = nullptr;
  // Retained and demoted rows, read before the block part.
  std::span<const PagedPages> pages;
  const ScoreCapture* capture = nullptr;  // null: no probabilities handed back
  // Null: query t is at position first_pos + t. Otherwise the queries'
  // positions, ascending (selective recomputation of scattered tokens).
  const int32_t* query_positions = nullptr;
};

// True when query position `query_pos` reads block `block` (absolute index)
// of this side from its encoded tile, false when from the staged f32 rows.
[[nodiscard]] inline bool reads_encoded(const PagedSide& side, int32_t block, int32_t block_tokens,
                                        int32_t query_pos) {
  return !side.staged ||
         static_cast<int64_t>(block + 1) * block_tokens + side.residual <= query_pos + 1;
}

void paged_attention(const PagedAttentionArgs& args, ThreadPool& pool);

// Limits of the kernel's on-stack scratch.
inline constexpr int32_t kPagedMaxHeadDim = 256;
inline constexpr int32_t kPagedMaxBlockTokens = 64;
inline constexpr int32_t kPagedMaxGroup = 16;
// Spans of pages (retained, demoted) one call may read besides the block part.
inline constexpr int32_t kPagedMaxPageSpans = 2;

}  // namespace kvforge
