#include "kernels/weight_format.h"

#include <array>

namespace kvforge::kernels {
namespace {

const std::array<const WeightFormat*, 9> kFormats = {
    &kF32Format,  &kF16Format,  &kBF16Format, &kQ8_0Format, &kQ4_0Format,
    &kQ4_1Format, &kQ4_KFormat, &kQ5_KFormat, &kQ6_KFormat,
};

}  // namespace

const WeightFormat* find_weight_format(TensorType type) {
  for (const WeightFormat* format : kFormats) {
    if (format->type == type) return format;
  }
  return nullptr;
}

}  // namespace kvforge::kernels
