// Q5_K: like Q4_K with a fifth bit per element (ggml's block_q5_K):
//   d * scale[j] * q[e] - dmin * min[j],  q 5-bit, j = e / 32.
//
//   byte  0      2         4                 16          48              176
//         +------+---------+-----------------+-----------+---------------+
//         | d f16| dmin f16| scales+mins (12)| qh[0..31] | qs[0..127]    |
//         +------+---------+-----------------+-----------+---------------+
//   Low 4 bits as in Q4_K (chunk c = e / 64, low nibbles for sub-block 2c,
//   high nibbles for 2c+1). The fifth bit of element e = 32 j + l is
//   bit j of qh[l]:
//     q[32j + l] = nibble | ((qh[l] >> j) & 1) << 4
#include "kernels/block_io.h"
#include "kernels/k_quant_scales.h"
#include "kernels/weight_format.h"

namespace kvforge::kernels {
namespace {

constexpr int kBlockElems = 256;
constexpr size_t kBlockBytes = 176;

void dequantize_q5_k(const uint8_t* src, float* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kBlockBytes, dst += kBlockElems) {
    const float d = load_f16(src);
    const float dmin = load_f16(src + 2);
    const uint8_t* scales = src + 4;
    const uint8_t* qh = src + 16;
    const uint8_t* qs = src + 48;
    for (int c = 0; c < 4; ++c) {
      const int j_lo = 2 * c, j_hi = 2 * c + 1;
      const SubBlockScaleMin lo_half = unpack_scale_min(scales, j_lo);
      const SubBlockScaleMin hi_half = unpack_scale_min(scales, j_hi);
      const float step_lo = d * lo_half.scale, offset_lo = dmin * lo_half.min;
      const float step_hi = d * hi_half.scale, offset_hi = dmin * hi_half.min;
      float* y = dst + 64 * c;
      for (int l = 0; l < 32; ++l) {
        const uint8_t byte = qs[32 * c + l];
        const int q_lo = (byte & 0x0f) | ((qh[l] >> j_lo) & 1) << 4;
        const int q_hi = (byte >> 4) | ((qh[l] >> j_hi) & 1) << 4;
        y[l] = step_lo * static_cast<float>(q_lo) - offset_lo;
        y[32 + l] = step_hi * static_cast<float>(q_hi) - offset_hi;
      }
    }
  }
}

void quantize_q5_k(const float* src, uint8_t* dst, int64_t n_blocks) {
  uint8_t codes[kBlockElems];
  for (int64_t b = 0; b < n_blocks; ++b, src += kBlockElems, dst += kBlockBytes) {
    quantize_asymmetric_super_block(src, 31, dst, codes);
    uint8_t* qh = dst + 16;
    uint8_t* qs = dst + 48;
    for (int l = 0; l < 32; ++l) {
      int bits = 0;
      for (int j = 0; j < 8; ++j) bits |= (codes[32 * j + l] >> 4) << j;
      qh[l] = static_cast<uint8_t>(bits);
    }
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        qs[32 * c + l] =
            static_cast<uint8_t>((codes[64 * c + l] & 0x0f) | (codes[64 * c + 32 + l] & 0x0f) << 4);
      }
    }
  }
}

}  // namespace

const WeightFormat kQ5_KFormat = {TensorType::kQ5_K, kBlockElems, kBlockBytes, dequantize_q5_k,
                                  quantize_q5_k};

}  // namespace kvforge::kernels
