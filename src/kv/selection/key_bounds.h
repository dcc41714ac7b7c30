// Per-block key bounds for query-aware selection (Quest; docs/kv-compression.md).
//
// For one block and one (layer, KV head), the element-wise minimum and
// maximum of the block's keys bound every key's score with any query q:
//
//   q . k  <=  sum_c max(q_c min_c, q_c max_c)        for every key k of the block.
//
// Layout of one block's bounds: head_dim IEEE halves (the minima), then
// head_dim halves (the maxima), 4 * head_dim bytes. The halves are rounded
// outward (minima toward -inf, maxima toward +inf), so the stored box holds
// every key exactly and the bound stays an upper bound; f16 halves the bytes
// a decode step reads for the bounds against f32 (docs/kv-compression.md).
// A key beyond the f16 range widens its bound to infinity: such a block's
// score is +inf (always read), never NaN.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace kvforge {

[[nodiscard]] constexpr size_t key_bounds_bytes(int32_t head_dim) {
  return 4 * static_cast<size_t>(head_dim);
}

// Widens [lo, hi] (head_dim floats each) to hold rows [0, n) (row r at
// rows + r * row_stride). Start from lo = +inf, hi = -inf.
void fold_key_rows(const float* rows, int64_t row_stride, int32_t n, int32_t head_dim, float* lo,
                   float* hi);

// Writes [lo, hi] (the box of at least one row) in the layout above,
// rounded outward.
void write_key_bounds(const float* lo, const float* hi, int32_t head_dim, uint8_t* out);

// Reads the stored bounds back as f32.
void read_key_bounds(const uint8_t* bounds, int32_t head_dim, float* lo, float* hi);

// For every block id b in `block_ids`, with its bounds at
// arena + b * stride_bytes: scores[i] = max over the group's query heads g of
// sum_c max(q[g][c] min_c, q[g][c] max_c); NaN (a zero query element against
// an infinite bound) counts as +inf. queries: [group][head_dim], group <= 16,
// head_dim <= 256. SIMD (Highway dynamic dispatch).
void key_bound_scores(const float* queries, int32_t group, int32_t head_dim, const uint8_t* arena,
                      size_t stride_bytes, std::span<const int32_t> block_ids, float* scores);

}  // namespace kvforge
