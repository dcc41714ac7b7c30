// Byte-level helpers shared by the format files: reading and writing the
// little-endian f16 scales that ggml blocks store at arbitrary (often odd)
// byte offsets, and rounding to the nearest integer.
//
// Blocks are addressed as raw bytes and fields are copied with memcpy, never
// through casted struct pointers: a Q4_0 block is 18 bytes, so its scale is
// only 2-byte aligned in a row, and a Q6_K block (210 bytes) not even that.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "util/fp16.h"

namespace kvforge::kernels {

inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return fp16_to_fp32(h);
}

// Stores f as f16 and returns the value a reader will see.
inline float store_f16(uint8_t* p, float f) {
  const uint16_t h = fp32_to_fp16(f);
  std::memcpy(p, &h, sizeof h);
  return fp16_to_fp32(h);
}

inline int round_to_int(float f) {
  return static_cast<int>(std::lrintf(f));
}

inline int clamp_int(int v, int lo, int hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

}  // namespace kvforge::kernels
