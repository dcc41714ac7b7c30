// Q8_0: blocks of 32 elements, value = d * q (ggml's block_q8_0).
//
//   byte  0      2                                   34
//         +------+-----------------------------------+
//         | d f16| q[0] q[1] ... q[31]   (int8 each)  |
//         +------+-----------------------------------+
#include <cmath>

#include "kernels/block_io.h"
#include "kernels/weight_format.h"

namespace kvforge::kernels {
namespace {

constexpr int kBlockElems = 32;
constexpr size_t kBlockBytes = 34;

void dequantize_q8_0(const uint8_t* src, float* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kBlockBytes, dst += kBlockElems) {
    const float d = load_f16(src);
    const auto* q = reinterpret_cast<const int8_t*>(src + 2);
    for (int i = 0; i < kBlockElems; ++i) dst[i] = d * static_cast<float>(q[i]);
  }
}

// d = amax / 127 so that the largest magnitude maps to +-127; the codes are
// computed against the f16-rounded d that readers will see.
void quantize_q8_0(const float* src, uint8_t* dst, int64_t n_blocks) {
  for (int64_t b = 0; b < n_blocks; ++b, src += kBlockElems, dst += kBlockBytes) {
    float amax = 0.0f;
    for (int i = 0; i < kBlockElems; ++i) amax = std::fmax(amax, std::fabs(src[i]));
    const float d = store_f16(dst, amax / 127.0f);
    const float inv_d = d != 0.0f ? 1.0f / d : 0.0f;
    auto* q = reinterpret_cast<int8_t*>(dst + 2);
    for (int i = 0; i < kBlockElems; ++i) {
      q[i] = static_cast<int8_t>(clamp_int(round_to_int(src[i] * inv_d), -127, 127));
    }
  }
}

}  // namespace

const WeightFormat kQ8_0Format = {TensorType::kQ8_0, kBlockElems, kBlockBytes, dequantize_q8_0,
                                  quantize_q8_0};

}  // namespace kvforge::kernels
