#include "kv/kv_codec_quantize.h"

#include <algorithm>
#include <cmath>
#include <string>

#include <fmt/format.h>

#include "util/fp16.h"

namespace kvforge::kv_quant {
namespace {

constexpr uint16_t kSignBit = 0x8000u;

// NaN (from non-finite inputs) becomes 0 so that grids and outputs stay finite.
float clamp_to_f16_range(float x) {
  return std::isnan(x) ? 0.0f : std::clamp(x, -kMaxF16, kMaxF16);
}

}  // namespace

Status check_quantized_head_dim(std::string_view codec, int32_t head_dim) {
  if (head_dim == 8 || head_dim == 16 || (head_dim % 32 == 0 && head_dim > 0 && head_dim <= 256)) {
    return Status::ok_status();
  }
  return invalid_argument(fmt::format(
      "codec '{}' quantizes head_dim in groups of 8, 16 or 32: head_dim must be 8, 16 or a "
      "multiple of 32 up to 256, got {}",
      codec, head_dim));
}

uint16_t fp16_round_down(float x) {
  x = clamp_to_f16_range(x);
  uint16_t h = fp32_to_fp16(x);
  if (fp16_to_fp32(h) > x) {
    if (h == 0) return kSignBit | 1u;  // +0 -> the negative subnormal closest to 0
    h = (h & kSignBit) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h - 1);
  }
  return h;
}

uint16_t fp16_round_up(float x) {
  x = clamp_to_f16_range(x);
  uint16_t h = fp32_to_fp16(x);
  if (fp16_to_fp32(h) < x) {
    if (h == kSignBit) return 1u;  // -0 -> the positive subnormal closest to 0
    h = (h & kSignBit) ? static_cast<uint16_t>(h - 1) : static_cast<uint16_t>(h + 1);
  }
  return h;
}

AffineGrid affine_grid(float lo, float hi, int32_t qmax) {
  AffineGrid grid;
  grid.min = fp16_round_down(lo);
  const float range = clamp_to_f16_range(hi) - fp16_to_fp32(grid.min);
  grid.scale = range > 0.0f ? fp16_round_up(range / static_cast<float>(qmax)) : 0;
  return grid;
}

uint16_t symmetric_scale(float amax, int32_t qmax) {
  return amax > 0.0f ? fp16_round_up(amax / static_cast<float>(qmax)) : 0;
}

void pack_codes(const uint8_t* codes, int32_t n, int32_t group, int32_t bits, uint8_t* out) {
  const int32_t per_byte = 8 / bits;
  const int32_t chunk_bytes = group / per_byte;
  for (int32_t chunk = 0; chunk < n; chunk += group) {
    const uint8_t* c = codes + chunk;
    uint8_t* o = out + chunk / per_byte;
    for (int32_t j = 0; j < chunk_bytes; ++j) {
      uint32_t byte = 0;
      for (int32_t s = 0; s < per_byte; ++s) {
        byte |= static_cast<uint32_t>(c[j + s * chunk_bytes]) << (s * bits);
      }
      o[j] = static_cast<uint8_t>(byte);
    }
  }
}

}  // namespace kvforge::kv_quant
