// Q4_0: blocks of 32 elements, value = d * (q - 8) with 4-bit q
// (ggml's block_q4_0).
//
//   byte  0      2                         18
//         +------+-------------------------+
//         | d f16| qs[0] ... qs[15]        |
//         +------+-------------------------+
//   qs[j] = q[j] | q[j + 16] << 4: low nibbles hold elements 0..15,
//   high nibbles elements 16..31.
#include <cmath>

#include "kernels/block_io.h"
#include "kernels/weight_format.h"

namespace kvforge::kernels {
namespace {

constexpr int kBlockElems = 32;
constexpr size_t kBlockBytes = 18;

void dequantize_q4_0(const uint8_t* src, float* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kBlockBytes, dst += kBlockElems) {
    const float d = load_f16(src);
    const uint8_t* qs = src + 2;
    for (int j = 0; j < 16; ++j) {
      dst[j] = d * static_cast<float>((qs[j] & 0x0f) - 8);
      dst[j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
    }
  }
}

// The element of largest magnitude defines d = -extreme / 8, so it maps to
// code 0 (value -8 d) exactly and the asymmetric range [-8, 7] is fully used
// on its side. Elements of the other sign may clip at +7.
void quantize_q4_0(const float* src, uint8_t* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kBlockElems, dst += kBlockBytes) {
    float extreme = 0.0f;
    for (int i = 0; i < kBlockElems; ++i) {
      if (std::fabs(src[i]) > std::fabs(extreme)) extreme = src[i];
    }
    const float d = store_f16(dst, extreme / -8.0f);
    const float inv_d = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t* qs = dst + 2;
    for (int j = 0; j < 16; ++j) {
      const int lo = clamp_int(round_to_int(src[j] * inv_d) + 8, 0, 15);
      const int hi = clamp_int(round_to_int(src[j + 16] * inv_d) + 8, 0, 15);
      qs[j] = static_cast<uint8_t>(lo | hi << 4);
    }
  }
}

}  // namespace

const WeightFormat kQ4_0Format = {TensorType::kQ4_0, kBlockElems, kBlockBytes, dequantize_q4_0,
                                  quantize_q4_0};

}  // namespace kvforge::kernels
