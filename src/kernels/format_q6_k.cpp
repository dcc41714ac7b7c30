// Q6_K: super-blocks of 256 elements in 16 sub-blocks of 16 (ggml's
// block_q6_K); element e decodes as d * scale[e / 16] * (q[e] - 32) with
// 6-bit q and int8 scales.
//
//   byte  0                 128              192            208     210
//         +-----------------+----------------+--------------+-------+
//         | ql[0..127]      | qh[0..63]      | scales[0..15]| d f16 |
//         +-----------------+----------------+--------------+-------+
//   The block is two halves h of 128 elements (ql + 64h, qh + 32h); inside
//   a half, quarter k = 0..3 of 32 elements, l < 32:
//     low 4 bits : ql[64h + 32(k & 1) + l] >> (4 (k >> 1))   (& 0x0f)
//     high 2 bits: qh[32h + l] >> 2k                          (& 3)
#include <cmath>

#include "kernels/block_io.h"
#include "kernels/weight_format.h"

namespace kvforge::kernels {
namespace {

constexpr int kBlockElems = 256;
constexpr size_t kBlockBytes = 210;
constexpr int kSubBlockElems = 16;
constexpr int kSubBlocks = 16;

void dequantize_q6_k(const uint8_t* src, float* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kBlockBytes, dst += kBlockElems) {
    const uint8_t* ql = src;
    const uint8_t* qh = src + 128;
    const auto* scales = reinterpret_cast<const int8_t*>(src + 192);
    const float d = load_f16(src + 208);
    for (int h = 0; h < 2; ++h) {
      for (int k = 0; k < 4; ++k) {
        for (int l = 0; l < 32; ++l) {
          const int e = 128 * h + 32 * k + l;
          const int low = (ql[64 * h + 32 * (k & 1) + l] >> (4 * (k >> 1))) & 0x0f;
          const int high = (qh[32 * h + l] >> (2 * k)) & 3;
          dst[e] = d * static_cast<float>(scales[e / kSubBlockElems]) *
                   static_cast<float>((low | high << 4) - 32);
        }
      }
    }
  }
}

// Per sub-block the element of largest magnitude maps to code 0 (value -32
// steps), as in Q4_0; the sub-block steps are then quantized to int8 against
// d = -(step of largest magnitude) / 128.
void quantize_q6_k(const float* src, uint8_t* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kBlockElems, dst += kBlockBytes) {
    float sub_step[kSubBlocks];
    float extreme_step = 0.0f;
    for (int j = 0; j < kSubBlocks; ++j) {
      float extreme = 0.0f;
      for (int i = 0; i < kSubBlockElems; ++i) {
        const float v = src[j * kSubBlockElems + i];
        if (std::fabs(v) > std::fabs(extreme)) extreme = v;
      }
      sub_step[j] = extreme / -32.0f;
      if (std::fabs(sub_step[j]) > std::fabs(extreme_step)) extreme_step = sub_step[j];
    }
    const float d = store_f16(dst + 208, extreme_step / -128.0f);
    const float inv_d = d != 0.0f ? 1.0f / d : 0.0f;
    auto* scales = reinterpret_cast<int8_t*>(dst + 192);
    uint8_t codes[kBlockElems];
    for (int j = 0; j < kSubBlocks; ++j) {
      const int scale = clamp_int(round_to_int(sub_step[j] * inv_d), -128, 127);
      scales[j] = static_cast<int8_t>(scale);
      const float step = d * static_cast<float>(scale);
      const float inv_step = step != 0.0f ? 1.0f / step : 0.0f;
      for (int i = 0; i < kSubBlockElems; ++i) {
        const int e = j * kSubBlockElems + i;
        codes[e] = static_cast<uint8_t>(clamp_int(round_to_int(src[e] * inv_step), -32, 31) + 32);
      }
    }
    uint8_t* ql = dst;
    uint8_t* qh = dst + 128;
    for (int h = 0; h < 2; ++h) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t* c = codes + 128 * h + l;  // c[32 k] is quarter k's element l
        ql[64 * h + l] = static_cast<uint8_t>((c[0] & 0x0f) | (c[64] & 0x0f) << 4);
        ql[64 * h + 32 + l] = static_cast<uint8_t>((c[32] & 0x0f) | (c[96] & 0x0f) << 4);
        qh[32 * h + l] = static_cast<uint8_t>(c[0] >> 4 | (c[32] >> 4) << 2 | (c[64] >> 4) << 4 |
                                              (c[96] >> 4) << 6);
      }
    }
  }
}

}  // namespace

const WeightFormat kQ6_KFormat = {TensorType::kQ6_K, kBlockElems, kBlockBytes, dequantize_q6_k,
                                  quantize_q6_k};

}  // namespace kvforge::kernels
