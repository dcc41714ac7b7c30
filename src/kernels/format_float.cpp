// The unquantized float formats: F32 (4 bytes), F16 (IEEE half) and BF16
// (the upper 16 bits of an f32), all little-endian, one element per "block".
#include <cstring>

#include "kernels/weight_format.h"
#include "util/fp16.h"

namespace kvforge::kernels {
namespace {

void dequantize_f32(const uint8_t* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}
void quantize_f32(const float* src, uint8_t* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

template <float (*kToFloat)(uint16_t)>
void dequantize_half(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, sizeof h);
    dst[i] = kToFloat(h);
  }
}

template <uint16_t (*kFromFloat)(float)>
void quantize_half(const float* src, uint8_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = kFromFloat(src[i]);
    std::memcpy(dst + 2 * i, &h, sizeof h);
  }
}

}  // namespace

const WeightFormat kF32Format = {TensorType::kF32, 1, 4, dequantize_f32, quantize_f32};
const WeightFormat kF16Format = {TensorType::kF16, 1, 2, dequantize_half<fp16_to_fp32>,
                                 quantize_half<fp32_to_fp16>};
const WeightFormat kBF16Format = {TensorType::kBF16, 1, 2, dequantize_half<bf16_to_fp32>,
                                  quantize_half<fp32_to_bf16>};

}  // namespace kvforge::kernels
