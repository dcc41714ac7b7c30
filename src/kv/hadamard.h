// Walsh–Hadamard rotation of KV head vectors (int4h codec, SAW-INT4 / QuaRot).
//
// H_n is the Sylvester Hadamard matrix of order n scaled by 1/sqrt(n), so it
// is orthonormal, symmetric and its own inverse: rotating keys and queries by
// H leaves q·k unchanged, and rotating the attention output by H undoes a
// rotation of the values. Outlier channels are spread over the whole vector,
// which shrinks the range a low-bit quantizer has to cover.
#pragma once

#include <cstdint>

namespace kvforge {

inline constexpr int32_t kMaxHadamardOrder = 256;

[[nodiscard]] constexpr bool is_hadamard_order(int32_t n) {
  return n >= 1 && n <= kMaxHadamardOrder && (n & (n - 1)) == 0;
}

// In-place orthonormal fast Walsh–Hadamard transform of x[0, n), n a power of two (<= 256):
// x <- H_n x, with (H_n)_{ij} = (-1)^popcount(i & j) / sqrt(n). O(n log n).
void hadamard_transform(float* x, int32_t n);

}  // namespace kvforge
