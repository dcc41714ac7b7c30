#include "kernels/k_quant_scales.h"

#include <cmath>

#include "kernels/block_io.h"

namespace kvforge::kernels {

SubBlockScaleMin unpack_scale_min(const uint8_t* packed, int j) {
  if (j < 4) {
    return {static_cast<uint8_t>(packed[j] & 63), static_cast<uint8_t>(packed[j + 4] & 63)};
  }
  const int scale = (packed[j + 4] & 0x0f) | (packed[j - 4] >> 6) << 4;
  const int min = (packed[j + 4] >> 4) | (packed[j] >> 6) << 4;
  return {static_cast<uint8_t>(scale), static_cast<uint8_t>(min)};
}

void pack_scales_mins(const SubBlockScaleMin (&v)[kKQuantSubBlocks], uint8_t* packed) {
  for (int j = 0; j < 4; ++j) {
    packed[j] = static_cast<uint8_t>((v[j].scale & 63) | (v[j + 4].scale >> 4) << 6);
    packed[j + 4] = static_cast<uint8_t>((v[j].min & 63) | (v[j + 4].min >> 4) << 6);
    packed[j + 8] = static_cast<uint8_t>((v[j + 4].scale & 0x0f) | (v[j + 4].min & 0x0f) << 4);
  }
}

// Per sub-block the range [min(lo, 0), hi] is covered by max_code + 1 levels
// (the format's offset -dmin * min[j] can only be <= 0). Sub-block scales are
// rounded up to the 6-bit grid so the top of the range never clips; mins are
// rounded to nearest. With stored step s_j = d * scale[j], every element then
// decodes within max(s_j, dmin) / 2 of its value.
void quantize_asymmetric_super_block(const float* x, int max_code, uint8_t* header,
                                     uint8_t* codes) {
  float sub_scale[kKQuantSubBlocks];
  float sub_min[kKQuantSubBlocks];
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int j = 0; j < kKQuantSubBlocks; ++j) {
    const float* xs = x + j * kKQuantSubBlockElems;
    float lo = 0.0f;
    float hi = xs[0];
    for (int i = 0; i < kKQuantSubBlockElems; ++i) {
      lo = std::fmin(lo, xs[i]);
      hi = std::fmax(hi, xs[i]);
    }
    sub_scale[j] = std::fmax(hi - lo, 0.0f) / static_cast<float>(max_code);
    sub_min[j] = -lo;
    max_scale = std::fmax(max_scale, sub_scale[j]);
    max_min = std::fmax(max_min, sub_min[j]);
  }
  const float d = store_f16(header, max_scale / 63.0f);
  const float dmin = store_f16(header + 2, max_min / 63.0f);
  SubBlockScaleMin packed[kKQuantSubBlocks];
  for (int j = 0; j < kKQuantSubBlocks; ++j) {
    // The f16 rounding of d may make sub_scale / d slightly exceed 63.
    const int scale =
        d > 0.0f ? clamp_int(static_cast<int>(std::ceil(sub_scale[j] / d)), 0, 63) : 0;
    const int min = dmin > 0.0f ? clamp_int(round_to_int(sub_min[j] / dmin), 0, 63) : 0;
    packed[j] = {static_cast<uint8_t>(scale), static_cast<uint8_t>(min)};
    const float step = d * static_cast<float>(scale);
    const float offset = dmin * static_cast<float>(min);
    const float inv_step = step > 0.0f ? 1.0f / step : 0.0f;
    for (int i = 0; i < kKQuantSubBlockElems; ++i) {
      const int e = j * kKQuantSubBlockElems + i;
      codes[e] =
          static_cast<uint8_t>(clamp_int(round_to_int((x[e] + offset) * inv_step), 0, max_code));
    }
  }
  pack_scales_mins(packed, header + 4);
}

}  // namespace kvforge::kernels
