#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kvforge::kernels {

void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps) {
  // Accumulate in double: n_embd can be 8192 and the sum of squares spans a
  // wide range; this costs nothing next to the matmuls.
  double sum_sq = 0.0;
  for (int64_t i = 0; i < n; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(n) + eps));
  if (weight) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * weight[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale;
  }
}

void rope_cos_sin(int64_t pos, const float* inv_freq, int64_t half_dim, float* cos_sin) {
  for (int64_t i = 0; i < half_dim; ++i) {
    const double angle = static_cast<double>(pos) * static_cast<double>(inv_freq[i]);
    cos_sin[2 * i] = static_cast<float>(std::cos(angle));
    cos_sin[2 * i + 1] = static_cast<float>(std::sin(angle));
  }
}

void rope_apply(float* v, int64_t n_heads, int64_t head_dim, int64_t rope_dim, RopeLayout layout,
                const float* cos_sin) {
  const int64_t half = rope_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* head = v + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const float c = cos_sin[2 * i];
      const float s = cos_sin[2 * i + 1];
      const int64_t a = layout == RopeLayout::kInterleaved ? 2 * i : i;
      const int64_t b = layout == RopeLayout::kInterleaved ? 2 * i + 1 : i + half;
      const float x0 = head[a];
      const float x1 = head[b];
      head[a] = x0 * c - x1 * s;
      head[b] = x0 * s + x1 * c;
    }
  }
}

void add_in_place(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void add_bias_rows(float* y, const float* b, int64_t n_rows, int64_t n) {
  for (int64_t r = 0; r < n_rows; ++r) add_in_place(y + r * n, b, n);
}

int64_t argmax_finite(const float* x, int64_t n) {
  // Blocks of kBlock values: the largest of each, kept in kLanes independent
  // lanes so that the compiler emits vector max instructions; the first
  // block whose largest beats every earlier block's holds the answer, found
  // there by a scalar scan. v * 0 is 0 for a finite v and NaN otherwise, so
  // one sum per lane tells whether every value was finite.
  if (n <= 0) return -1;
  constexpr int64_t kLanes = 16;
  constexpr int64_t kBlock = 1024;
  constexpr float kLowest = -std::numeric_limits<float>::infinity();
  float best = kLowest;
  int64_t best_block = 0;
  float not_finite[kLanes] = {};
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t b1 = std::min(n, b0 + kBlock);
    float lane_max[kLanes];
    for (int64_t j = 0; j < kLanes; ++j) lane_max[j] = kLowest;
    int64_t i = b0;
    for (; i + kLanes <= b1; i += kLanes) {
      for (int64_t j = 0; j < kLanes; ++j) {
        const float v = x[i + j];
        lane_max[j] = v > lane_max[j] ? v : lane_max[j];
        not_finite[j] += v * 0.0f;
      }
    }
    for (; i < b1; ++i) {
      lane_max[0] = x[i] > lane_max[0] ? x[i] : lane_max[0];
      not_finite[0] += x[i] * 0.0f;
    }
    float block_max = lane_max[0];
    for (int64_t j = 1; j < kLanes; ++j) block_max = std::max(block_max, lane_max[j]);
    if (block_max > best) {
      best = block_max;
      best_block = b0;
    }
  }
  for (int64_t j = 0; j < kLanes; ++j) {
    if (not_finite[j] != 0.0f) return -1;  // NaN: compares unequal to 0
  }
  for (int64_t i = best_block;; ++i) {
    if (x[i] == best) return i;
  }
}

double log_sum_exp(const float* x, int64_t n) {
  float max_v = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) max_v = x[i] > max_v ? x[i] : max_v;
  if (!std::isfinite(max_v)) return max_v;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - max_v);
  return max_v + std::log(sum);
}

}  // namespace kvforge::kernels
