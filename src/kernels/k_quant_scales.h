// Shared pieces of the Q4_K and Q5_K formats: the 12-byte packing of eight
// 6-bit sub-block scales and eight 6-bit sub-block mins, and the quantizer's
// choice of those scales.
//
// Packing (ggml's get_scale_min_k4 reads it this way), s = scales, m = mins:
//
//   byte  0..3 : s[0..3] in bits 0-5, bits 4-5 of s[4..7] in bits 6-7
//   byte  4..7 : m[0..3] in bits 0-5, bits 4-5 of m[4..7] in bits 6-7
//   byte 8..11 : bits 0-3 of s[4..7] in bits 0-3, bits 0-3 of m[4..7] in bits 4-7
//
// Stateless functions; thread-safe.
#pragma once

#include <cstdint>

namespace kvforge::kernels {

constexpr int kKQuantSubBlocks = 8;       // sub-blocks per 256-element super-block
constexpr int kKQuantSubBlockElems = 32;  // elements per sub-block
constexpr int kKQuantScaleBytes = 12;

struct SubBlockScaleMin {
  uint8_t scale;  // 0..63
  uint8_t min;    // 0..63
};

[[nodiscard]] SubBlockScaleMin unpack_scale_min(const uint8_t* packed, int sub_block);
void pack_scales_mins(const SubBlockScaleMin (&values)[kKQuantSubBlocks], uint8_t* packed);

// Chooses the header of one asymmetric K-quant super-block of 256 elements
// whose sub-blocks decode as d * scale[j] * q - dmin * min[j], q in
// [0, max_code], and writes d and dmin (f16) to header[0..3] and the packed
// scales to header[4..15]. Fills codes[256] with each element's code.
void quantize_asymmetric_super_block(const float* x, int max_code, uint8_t* header, uint8_t* codes);

}  // namespace kvforge::kernels
