// Q4_1: blocks of 32 elements, value = d * q + m with 4-bit q
// (ggml's block_q4_1).
//
//   byte  0      2      4                         20
//         +------+------+-------------------------+
//         | d f16| m f16| qs[0] ... qs[15]        |
//         +------+------+-------------------------+
//   nibble order as in Q4_0: low nibbles elements 0..15, high 16..31.
#include <cmath>

#include "kernels/block_io.h"
#include "kernels/weight_format.h"

namespace kvforge::kernels {
namespace {

constexpr int kBlockElems = 32;
constexpr size_t kBlockBytes = 20;

void dequantize_q4_1(const uint8_t* src, float* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kBlockBytes, dst += kBlockElems) {
    const float d = load_f16(src);
    const float m = load_f16(src + 2);
    const uint8_t* qs = src + 4;
    for (int j = 0; j < 16; ++j) {
      dst[j] = d * static_cast<float>(qs[j] & 0x0f) + m;
      dst[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
    }
  }
}

// m = block minimum, d = (max - min) / 15: the 16 levels span the block.
void quantize_q4_1(const float* src, uint8_t* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kBlockElems, dst += kBlockBytes) {
    float lo = src[0];
    float hi = src[0];
    for (int i = 1; i < kBlockElems; ++i) {
      lo = std::fmin(lo, src[i]);
      hi = std::fmax(hi, src[i]);
    }
    const float d = store_f16(dst, (hi - lo) / 15.0f);
    const float m = store_f16(dst + 2, lo);
    const float inv_d = d != 0.0f ? 1.0f / d : 0.0f;
    uint8_t* qs = dst + 4;
    for (int j = 0; j < 16; ++j) {
      const int q_lo = clamp_int(round_to_int((src[j] - m) * inv_d), 0, 15);
      const int q_hi = clamp_int(round_to_int((src[j + 16] - m) * inv_d), 0, 15);
      qs[j] = static_cast<uint8_t>(q_lo | q_hi << 4);
    }
  }
}

}  // namespace

const WeightFormat kQ4_1Format = {TensorType::kQ4_1, kBlockElems, kBlockBytes, dequantize_q4_1,
                                  quantize_q4_1};

}  // namespace kvforge::kernels
