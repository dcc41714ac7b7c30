#include "kernels/quant.h"

#include "kernels/weight_format.h"
#include "kvforge/status.h"

namespace kvforge::kernels {
namespace {

const WeightFormat& format_for_row(TensorType type, int64_t n) {
  const WeightFormat* format = find_weight_format(type);
  KVF_CHECK(format != nullptr);
  KVF_CHECK(n >= 0 && n % format->block_elems == 0);
  return *format;
}

}  // namespace

void dequantize_row(TensorType type, const void* src, float* dst, int64_t n) {
  const WeightFormat& format = format_for_row(type, n);
  format.dequantize_blocks(static_cast<const uint8_t*>(src), dst, n / format.block_elems);
}

void quantize_row(TensorType type, const float* src, void* dst, int64_t n) {
  const WeightFormat& format = format_for_row(type, n);
  format.quantize_blocks(src, static_cast<uint8_t*>(dst), n / format.block_elems);
}

}  // namespace kvforge::kernels
