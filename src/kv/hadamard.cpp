#include "kv/hadamard.h"

#include <cmath>

#include "kvforge/status.h"

namespace kvforge {

void hadamard_transform(float* x, int32_t n) {
  KVF_CHECK(is_hadamard_order(n));
  // Butterflies over strides 1, 2, 4, ...: after the pass with stride h every
  // block of 2h entries holds the unnormalized transform of that block.
  for (int32_t h = 1; h < n; h *= 2) {
    for (int32_t block = 0; block < n; block += 2 * h) {
      for (int32_t i = block; i < block + h; ++i) {
        const float a = x[i];
        const float b = x[i + h];
        x[i] = a + b;
        x[i + h] = a - b;
      }
    }
  }
  const float norm = 1.0f / std::sqrt(static_cast<float>(n));
  for (int32_t i = 0; i < n; ++i) x[i] *= norm;
}

}  // namespace kvforge
