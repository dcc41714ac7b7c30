// SIMD decoders of the KV codecs' tile layouts (Highway dynamic dispatch).
// Each writes rows of head_dim floats, contiguous. Layouts (f16 = IEEE half,
// little endian; G = min(32, head_dim); codes packed as kv_quant::pack_codes):
//   int8 row:          [f16 scale][head_dim × int8 q]            x = q * scale
//   token-group row:   head_dim / G × [f16 scale][f16 min][G·bits/8 codes]
//                                                                x = q * scale + min
// The affine forms are one fused multiply-add where the target has FMA.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvforge::kv_kernels {

// Byte sizes of the layouts above, and of one token group of a KIVI key tile
// (kv_codec.h, kKivi2Columns / kKivi4Columns; decoded by its codec).
[[nodiscard]] constexpr size_t int8_row_bytes(int32_t head_dim) {
  return 2 + static_cast<size_t>(head_dim);
}
[[nodiscard]] constexpr size_t token_group_row_bytes(int32_t head_dim, int32_t bits) {
  const int32_t group = head_dim < 32 ? head_dim : 32;
  return static_cast<size_t>(head_dim / group) * (4 + static_cast<size_t>(group * bits / 8));
}
// Where a KIVI token group's column codes start: after its head_dim f16
// scales and head_dim f16 mins.
[[nodiscard]] constexpr size_t channel_group_codes_offset(int32_t head_dim) {
  return 4 * static_cast<size_t>(head_dim);
}
[[nodiscard]] constexpr size_t channel_group_bytes(int32_t head_dim, int32_t bits,
                                                   int32_t group_tokens) {
  return channel_group_codes_offset(head_dim) +
         static_cast<size_t>(group_tokens) * static_cast<size_t>(head_dim * bits / 8);
}

// out[i] = src[i] for i < n, src f32, or f16 or bf16 bits.
void decode_f32(const float* src, int64_t n, float* out);
void decode_f16(const uint16_t* src, int64_t n, float* out);
void decode_bf16(const uint16_t* src, int64_t n, float* out);

void decode_int8_rows(const uint8_t* src, int32_t n_rows, int32_t head_dim, float* out);
// bits 2 or 4.
void decode_token_group_rows(const uint8_t* src, int32_t n_rows, int32_t head_dim, int32_t bits,
                             float* out);

}  // namespace kvforge::kv_kernels
