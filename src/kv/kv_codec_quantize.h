// Scalar quantization primitives shared by the encoders of the quantized KV
// codecs (int8, int4, int4h, KIVI). Decoding is in kv_codec_kernels.h.
//
// Scales and minimums are stored as f16. They are rounded in the direction
// that keeps the quantization grid covering the data (minimum down, step
// up), and the codes are then computed against the rounded values, so the
// error stays within half a (stored) step, with no extra term for the
// rounding of the scale itself.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>

#include "kvforge/status.h"

namespace kvforge::kv_quant {

inline constexpr float kMaxF16 = 65504.0f;
inline constexpr int32_t kMaxChannelGroup = 32;

// Channels per group of the per-token codecs: min(32, head_dim).
[[nodiscard]] constexpr int32_t channel_group(int32_t head_dim) {
  return head_dim < kMaxChannelGroup ? head_dim : kMaxChannelGroup;
}

// The quantized codecs group head_dim by 8, 16 or 32: head_dim must be 8, 16 or
// a multiple of 32, at most 256.
[[nodiscard]] Status check_quantized_head_dim(std::string_view codec, int32_t head_dim);

// Largest f16 <= x and smallest f16 >= x (as bits), x first clamped to ±65504. x not NaN.
[[nodiscard]] uint16_t fp16_round_down(float x);
[[nodiscard]] uint16_t fp16_round_up(float x);

// Asymmetric grid {min + q * scale : q = 0..qmax}, both as f16 bits.
struct AffineGrid {
  uint16_t scale = 0;
  uint16_t min = 0;
};
// The grid covering [lo, hi] (clamped to ±65504): min = fp16_round_down(lo),
// scale = fp16_round_up((hi - min) / qmax); scale 0 when hi == min.
[[nodiscard]] AffineGrid affine_grid(float lo, float hi, int32_t qmax);
// 1 / scale, or 0 for an empty grid (scale 0: every code is 0).
[[nodiscard]] inline float inverse_step(float scale) {
  return scale > 0.0f ? 1.0f / scale : 0.0f;
}

// Nearest grid point's index for x, clamped to [0, qmax] (NaN -> 0). Branch-free so
// that the encoders' loops vectorize.
[[nodiscard]] inline uint8_t affine_code(float x, float min, float inv_step, int32_t qmax) {
  float steps = (x - min) * inv_step;
  steps = std::max(0.0f, steps);  // NaN -> 0: std::max returns its first argument if unordered
  steps = std::min(steps, static_cast<float>(qmax));
  return static_cast<uint8_t>(static_cast<int32_t>(steps + 0.5f));
}

// Step of the symmetric grid {q * scale : |q| <= qmax} covering [-amax, amax]:
// fp16_round_up(amax / qmax), at most 65504 (larger values saturate).
[[nodiscard]] uint16_t symmetric_scale(float amax, int32_t qmax);
// round(x / scale) (half away from zero), clamped to [-qmax, qmax] (NaN -> 0).
[[nodiscard]] inline int8_t symmetric_code(float x, float inv_step, int32_t qmax) {
  float steps = x * inv_step;
  steps = steps == steps ? steps : 0.0f;
  steps = std::clamp(steps, static_cast<float>(-qmax), static_cast<float>(qmax));
  return static_cast<int8_t>(static_cast<int32_t>(steps + std::copysign(0.5f, steps)));
}

// Packs n codes of `bits` (2 or 4) bits, in chunks of `group` codes (n a multiple of
// group; group a multiple of 8 / bits). Within a chunk of B = group * bits / 8 bytes,
// byte j holds codes j, j + B, j + 2B, ... in its bit fields from the least
// significant up, so a SIMD decoder unpacks a chunk with shifts and masks of
// whole vectors.
void pack_codes(const uint8_t* codes, int32_t n, int32_t group, int32_t bits, uint8_t* out);

}  // namespace kvforge::kv_quant
