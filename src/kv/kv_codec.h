// KvCodec: how the keys or the values of one KV head are stored for the
// tokens of one block.
//
// A "tile" is block_tokens rows × head_dim floats: one KV head's keys (or
// values) for the tokens of one block. The paged cache owns the tile bytes
// (tile_bytes() each); a codec is a stateless, immutable description of how
// they are encoded, so one instance may be shared by any number of threads.
// The attention reads the layouts that row_format() names in place and
// decodes the others into a small f32 scratch right before its dot products,
// so decode() of the row layouts is a hot path (SIMD, Highway dynamic
// dispatch); the column layouts' decode() is scalar (fallback targets and
// tests). encode() runs once per stored token and is scalar.
//
// Codecs (docs/kv-codecs.md gives layouts, bytes per token and error bounds):
//   f32, f16, bf16   plain rows
//   int8             per row: symmetric, one f16 scale
//   int4             per row, groups of min(32, head_dim): asymmetric f16 scale + min
//   int4h            int4 of H·x, H the orthonormal Walsh–Hadamard matrix
//   kivi2, kivi4     KIVI: keys per channel over groups of g tokens, values like
//                    int4 (2 or 4 bits); the cache keeps the newest r tokens in f32
// Spec syntax: name[:key=value]..., parameters for KIVI only:
//   g  token group of the keys, must divide block_tokens (default min(32, block_tokens))
//   r  full-precision residual window in tokens (default 128; 0 allowed)
// e.g. "int8", "int4h", "kivi2:g=32:r=128".
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kvforge/status.h"

namespace kvforge {

enum class KvSide { kKey, kValue };

// How the attention may read a tile's rows in place instead of decode()-ing
// them: tiles whose rows are stored one after another, row r at
// tile + r * kv_row_bytes(format, head_dim), with no other bytes in the tile
// (so the tiles of consecutive blocks in one arena are one run of rows).
enum class KvRowFormat {
  kOpaque,  // only decode() knows the layout
  kF32,     // head_dim floats
  kF16,     // head_dim IEEE halves
  kBF16,    // head_dim bfloat16
  kInt8,    // an f16 scale s, then head_dim int8 codes c: x = s * c
  // Not row formats: the whole tile by column, so that the score kernel
  // computes a vector of rows' scores per query element, with no per-row
  // horizontal sums (kv-cache.md). f16, bf16, int8, int4 and KIVI keys use
  // them.
  // kF16Columns: head_dim columns of block_tokens IEEE halves (element c of
  // row r at c * block_tokens + r).
  kF16Columns,
  // kBF16Columns: the same with bfloat16 elements.
  kBF16Columns,
  // kInt8Columns: block_tokens f16 row scales s, then head_dim columns of
  // block_tokens int8 codes q (row r's code c at 2 * block_tokens +
  // c * block_tokens + r): x = s[r] * q.
  kInt8Columns,
  // kInt4Pairs (int4 and int4h keys; block_tokens a multiple of 16): with
  // G = min(32, head_dim) channels per group and n = head_dim / G groups,
  // n × block_tokens f16 scales (group k of row r at k * block_tokens + r),
  // n × block_tokens f16 mins in the same order, then the codes by chunks of
  // 16 rows: per chunk, per channel pair p (channels 2p, 2p + 1), 16 bytes;
  // byte j holds channel 2p + j % 2 of row j / 2 in its low nibble and of
  // row 8 + j / 2 in its high nibble. x = code * scale + min. The attention
  // multiplies such 16 bytes, as pairs of unsigned codes, with the int8
  // query's channel pair in one integer multiply-add (kv-cache.md).
  kInt4Pairs,
  // kInt4TokenPairs (int4 and int4h values and kivi4 values with r = 0;
  // block_tokens a multiple of 16, head_dim a multiple of 32): scales and
  // mins as kInt4Pairs (G = 32), then the codes by chunks of 16 rows: per
  // chunk, per group k, per row pair i (rows 2i, 2i + 1 of the chunk), 32
  // bytes; byte j holds row 2i + j % 2's code of channel 32k + j / 2 in its
  // low nibble and of channel 32k + 16 + j / 2 in its high nibble. The value
  // kernel converts such bytes L at a time (L lanes) into channels of two
  // rows alternating, which meet the two rows' weights alternating the same
  // way in one multiply-add per code field (kv-cache.md).
  kInt4TokenPairs,
  // kInt2TokenPairs (kivi2 values, same conditions): scales and mins as
  // kInt4TokenPairs, then per chunk of 16 rows, per group k, per row quad q
  // (rows 4q .. 4q + 3 of the chunk), 32 bytes; byte j holds, from its low
  // bits up, the 2-bit codes of channel 32k + j / 2 and 32k + 16 + j / 2 of
  // row 4q + j % 2, then the same two channels of row 4q + 2 + j % 2.
  kInt2TokenPairs,
  // kKivi2Columns, kKivi4Columns (KIVI keys): per token group of g rows,
  // head_dim f16 scales, head_dim f16 mins (one grid per channel), then
  // head_dim columns of B = g * bits / 8 bytes: byte j of column c holds the
  // codes of rows j, j + B, j + 2B, ... from its low bits up. x = code * scale[c] + min[c].
  kKivi2Columns,
  kKivi4Columns,
};

// True for the value layouts by token pairs above.
[[nodiscard]] inline bool is_token_pair_format(KvRowFormat format) {
  return format == KvRowFormat::kInt4TokenPairs || format == KvRowFormat::kInt2TokenPairs;
}

// True for the KIVI key layouts above (per-channel grids over token groups).
[[nodiscard]] inline bool is_kivi_format(KvRowFormat format) {
  return format == KvRowFormat::kKivi2Columns || format == KvRowFormat::kKivi4Columns;
}

// True for the column formats above.
[[nodiscard]] inline bool is_column_format(KvRowFormat format) {
  return format == KvRowFormat::kF16Columns || format == KvRowFormat::kBF16Columns ||
         format == KvRowFormat::kInt8Columns || format == KvRowFormat::kInt4Pairs ||
         is_token_pair_format(format) || is_kivi_format(format);
}

// Bytes of one row in a plain row format (0 for kOpaque and the column formats).
[[nodiscard]] size_t kv_row_bytes(KvRowFormat format, int32_t head_dim);

struct KvCodecParams {
  int32_t block_tokens = 16;  // rows per tile
  int32_t head_dim = 0;       // columns
};

class KvCodec {
 public:
  virtual ~KvCodec() = default;
  KvCodec(const KvCodec&) = delete;
  KvCodec& operator=(const KvCodec&) = delete;

  // Canonical spec that make_kv_codec accepts back, e.g. "int8", "int4h", "kivi2:g=32:r=128".
  [[nodiscard]] virtual std::string name() const = 0;
  [[nodiscard]] virtual size_t tile_bytes() const = 0;  // bytes of one tile
  // Average bytes one token of one head costs in this codec (tile_bytes / block_tokens).
  [[nodiscard]] double bytes_per_row() const;
  // true: rows are encoded independently, so encode() may write any row range of a tile,
  // at different times. false: only a full tile at once (first == 0, n == block_tokens).
  [[nodiscard]] virtual bool token_granular() const = 0;
  // true: the stored data is H·x, H the orthonormal Walsh–Hadamard matrix of order head_dim
  // (see hadamard.h); decode() returns rotated rows. The attention then rotates queries
  // (keys) or rotates the output back (values): H is symmetric and its own inverse.
  [[nodiscard]] virtual bool rotated() const = 0;
  // KIVI's full-precision residual window R (tokens); 0 for codecs without one.
  [[nodiscard]] virtual int32_t residual_tokens() const = 0;
  // The plain row layout the attention may read in place; kOpaque by default.
  [[nodiscard]] virtual KvRowFormat row_format() const { return KvRowFormat::kOpaque; }
  // KIVI keys: the g rows that share one grid per channel; 0 for the others.
  [[nodiscard]] virtual int32_t grid_tokens() const { return 0; }
  // Encodes rows [first, first + n) of the tile from `rows` (n rows of head_dim floats,
  // row i at rows + i * row_stride). Deterministic: the same input gives the same bytes.
  // Not for concurrent calls on one tile: column layouts share bytes between rows.
  // Finite inputs give finite decodes; quantized codecs saturate beyond the f16 range.
  virtual void encode(const float* rows, int64_t row_stride, int32_t first, int32_t n,
                      void* tile) const = 0;
  // Like encode(), for rows in the stored space, as decode() returns them:
  // rotated codecs do not rotate them again, so re-encoding decoded rows
  // reproduces their codes (pressing kept rows into pages).
  virtual void encode_stored(const float* rows, int64_t row_stride, int32_t first, int32_t n,
                             void* tile) const {
    encode(rows, row_stride, first, n, tile);
  }
  // Decodes rows [0, n) of the tile into out (n × head_dim, contiguous). SIMD via
  // Highway dynamic dispatch for the row layouts, scalar for the column layouts.
  virtual void decode(const void* tile, int32_t n, float* out) const = 0;

  [[nodiscard]] const KvCodecParams& params() const { return params_; }
  [[nodiscard]] int32_t block_tokens() const { return params_.block_tokens; }
  [[nodiscard]] int32_t head_dim() const { return params_.head_dim; }

 protected:
  explicit KvCodec(const KvCodecParams& params) : params_(params) {}

 private:
  KvCodecParams params_;
};

// spec: "f32" | "f16" | "bf16" | "int8" | "int4" | "int4h" | "kivi2" | "kivi4", optional
// ":key=value" parameters for KIVI (g = token group of keys, r = residual window).
// kInvalidArgument naming the problem: unknown codec (lists the valid ones), bad or
// unknown parameter, head_dim the codec cannot group (quantized codecs need 8, 16 or a
// multiple of 32; Hadamard needs a power of two), g not dividing block_tokens.
[[nodiscard]] Result<std::unique_ptr<KvCodec>> make_kv_codec(std::string_view spec, KvSide side,
                                                             const KvCodecParams& params);

// Checks the spelling of a spec (name and parameters) without a tile shape; ok for
// every spec make_kv_codec could accept for some shape.
[[nodiscard]] Status check_kv_codec_spec(std::string_view spec);

// The codec names make_kv_codec knows, in the order of the list above.
[[nodiscard]] const std::vector<std::string>& kv_codec_names();

}  // namespace kvforge
