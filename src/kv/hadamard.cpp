// Compiled once per SIMD target (Highway foreach_target) and dispatched at
// run time. Every target performs the same additions in the same order, so
// results are bit-identical across targets.
#include "kernels/simd_targets.h"
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kv/hadamard.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on

#include <cmath>
#include <cstdint>

#include "kv/hadamard.h"
#include "kvforge/status.h"

HWY_BEFORE_NAMESPACE();
namespace kvforge {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Butterflies over strides h = 1, 2, 4, ...: after the pass with stride h, every
// block of 2h entries holds the unnormalized transform of that block. Strides of
// at least a vector run on whole vectors.
void hadamard_transform_impl(float* x, int32_t n) {
  const hn::ScalableTag<float> df;
  const auto lanes = static_cast<int32_t>(hn::Lanes(df));
  int32_t h = 1;
  for (; h < n && h < lanes; h *= 2) {
    for (int32_t block = 0; block < n; block += 2 * h) {
      for (int32_t i = block; i < block + h; ++i) {
        const float a = x[i];
        const float b = x[i + h];
        x[i] = a + b;
        x[i + h] = a - b;
      }
    }
  }
  for (; h < n; h *= 2) {
    for (int32_t block = 0; block < n; block += 2 * h) {
      for (int32_t i = block; i < block + h; i += lanes) {
        const auto a = hn::LoadU(df, x + i);
        const auto b = hn::LoadU(df, x + i + h);
        hn::StoreU(hn::Add(a, b), df, x + i);
        hn::StoreU(hn::Sub(a, b), df, x + i + h);
      }
    }
  }
  const float norm = 1.0f / std::sqrt(static_cast<float>(n));
  for (int32_t i = 0; i < n; ++i) x[i] *= norm;
}

}  // namespace HWY_NAMESPACE
}  // namespace kvforge
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvforge {

HWY_EXPORT(hadamard_transform_impl);

void hadamard_transform(float* x, int32_t n) {
  KVF_CHECK(is_hadamard_order(n));
  HWY_DYNAMIC_DISPATCH(hadamard_transform_impl)(x, n);
}

}  // namespace kvforge
#endif  // HWY_ONCE
