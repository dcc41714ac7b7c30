// Q4_K: super-blocks of 256 elements in 8 sub-blocks of 32 (ggml's
// block_q4_K); element e of sub-block j = e / 32 decodes as
//   d * scale[j] * q[e] - dmin * min[j],  q 4-bit, scale/min 6-bit.
//
//   byte  0      2         4                 16                      144
//         +------+---------+-----------------+-----------------------+
//         | d f16| dmin f16| scales+mins (12)| qs[0..127]            |
//         +------+---------+-----------------+-----------------------+
//   (scale packing: k_quant_scales.h)
//   Nibbles in 4 chunks of 32 bytes, chunk c = e / 64 holding sub-blocks
//   2c (low nibbles) and 2c+1 (high nibbles):
//     q[64c + l]      = qs[32c + l] & 0x0f     l < 32
//     q[64c + 32 + l] = qs[32c + l] >> 4
#include "kernels/block_io.h"
#include "kernels/k_quant_scales.h"
#include "kernels/weight_format.h"

namespace kvforge::kernels {
namespace {

constexpr int kBlockElems = 256;
constexpr size_t kBlockBytes = 144;

void dequantize_q4_k(const uint8_t* src, float* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kBlockBytes, dst += kBlockElems) {
    const float d = load_f16(src);
    const float dmin = load_f16(src + 2);
    const uint8_t* scales = src + 4;
    const uint8_t* qs = src + 16;
    for (int c = 0; c < 4; ++c) {
      const SubBlockScaleMin lo_half = unpack_scale_min(scales, 2 * c);
      const SubBlockScaleMin hi_half = unpack_scale_min(scales, 2 * c + 1);
      const float step_lo = d * lo_half.scale, offset_lo = dmin * lo_half.min;
      const float step_hi = d * hi_half.scale, offset_hi = dmin * hi_half.min;
      float* y = dst + 64 * c;
      for (int l = 0; l < 32; ++l) {
        const uint8_t byte = qs[32 * c + l];
        y[l] = step_lo * static_cast<float>(byte & 0x0f) - offset_lo;
        y[32 + l] = step_hi * static_cast<float>(byte >> 4) - offset_hi;
      }
    }
  }
}

void quantize_q4_k(const float* src, uint8_t* dst, int64_t n_blocks) {
  uint8_t codes[kBlockElems];
  for (int64_t b = 0; b < n_blocks; ++b, src += kBlockElems, dst += kBlockBytes) {
    quantize_asymmetric_super_block(src, 15, dst, codes);
    uint8_t* qs = dst + 16;
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        qs[32 * c + l] = static_cast<uint8_t>(codes[64 * c + l] | codes[64 * c + 32 + l] << 4);
      }
    }
  }
}

}  // namespace

const WeightFormat kQ4_KFormat = {TensorType::kQ4_K, kBlockElems, kBlockBytes, dequantize_q4_k,
                                  quantize_q4_k};

}  // namespace kvforge::kernels
