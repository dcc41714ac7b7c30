// Compiled once per SIMD target (Highway foreach_target), dispatched at run time.
#include "kernels/simd_targets.h"
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kv/selection/key_bounds.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on
#include "kernels/vector_ops-inl.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kv/selection/key_bounds.h"
#include "kvforge/status.h"
#include "util/fp16.h"

HWY_BEFORE_NAMESPACE();
namespace kvforge {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
namespace vec = kernels::HWY_NAMESPACE::vec;

constexpr int32_t kMaxGroup = 16;
constexpr int32_t kMaxHeadDim = 256;

// max(q min, q max) = q+ max + q- min with q+ = max(q, 0), q- = min(q, 0):
// two multiply-adds per element and query head.
void key_bound_scores_impl(const float* queries, int32_t group, int32_t d, const uint8_t* arena,
                           size_t stride_bytes, const int32_t* ids, int64_t n_ids, float* scores) {
  using DF = hn::ScalableTag<float>;
  const DF df;
  const auto lanes = static_cast<int32_t>(hn::Lanes(df));
  alignas(64) float positive[kMaxGroup][kMaxHeadDim];
  alignas(64) float negative[kMaxGroup][kMaxHeadDim];
  alignas(64) float lo[kMaxHeadDim];
  alignas(64) float hi[kMaxHeadDim];
  for (int32_t g = 0; g < group; ++g) {
    for (int32_t c = 0; c < d; ++c) {
      const float x = queries[static_cast<size_t>(g) * static_cast<size_t>(d) + c];
      positive[g][c] = std::max(x, 0.0f);
      negative[g][c] = std::min(x, 0.0f);
    }
  }
  const int32_t vector_end = d / lanes * lanes;
  for (int64_t i = 0; i < n_ids; ++i) {
    const uint8_t* bounds = arena + static_cast<size_t>(ids[i]) * stride_bytes;
    vec::load_f16_row(reinterpret_cast<const uint16_t*>(bounds), lo, d);
    vec::load_f16_row(reinterpret_cast<const uint16_t*>(bounds) + d, hi, d);
    float best = -std::numeric_limits<float>::infinity();
    bool undefined = false;
    for (int32_t g = 0; g < group; ++g) {
      auto sum = hn::Zero(df);
      for (int32_t c = 0; c < vector_end; c += lanes) {
        sum = hn::MulAdd(hn::Load(df, negative[g] + c), hn::Load(df, lo + c), sum);
        sum = hn::MulAdd(hn::Load(df, positive[g] + c), hn::Load(df, hi + c), sum);
      }
      float s = vector_end > 0 ? hn::GetLane(hn::SumOfLanes(df, sum)) : 0.0f;
      for (int32_t c = vector_end; c < d; ++c) s += negative[g][c] * lo[c] + positive[g][c] * hi[c];
      undefined = undefined || std::isnan(s);
      best = std::max(best, s);
    }
    scores[i] = undefined ? std::numeric_limits<float>::infinity() : best;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace kvforge
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvforge {

HWY_EXPORT(key_bound_scores_impl);

namespace {

// The half nearest x, then one step toward -inf (down) or +inf (up) when
// rounding went the other way, so that the half is <= x (down) or >= x (up).
uint16_t half_rounded(float x, bool up) {
  uint16_t h = fp32_to_fp16(x);
  const float back = fp16_to_fp32(h);
  if (up ? back >= x : back <= x) return h;
  const bool negative = (h & 0x8000u) != 0;
  const bool zero = (h & 0x7fffu) == 0;
  if (up) {
    // Toward +inf: a larger magnitude when positive, a smaller one when negative.
    if (zero) return 0x0001u;
    return negative ? static_cast<uint16_t>(h - 1) : static_cast<uint16_t>(h + 1);
  }
  if (zero) return 0x8001u;
  return negative ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h - 1);
}

}  // namespace

void fold_key_rows(const float* rows, int64_t row_stride, int32_t n, int32_t head_dim, float* lo,
                   float* hi) {
  for (int32_t r = 0; r < n; ++r) {
    const float* row = rows + r * row_stride;
    for (int32_t c = 0; c < head_dim; ++c) {
      lo[c] = std::min(lo[c], row[c]);
      hi[c] = std::max(hi[c], row[c]);
    }
  }
}

void write_key_bounds(const float* lo, const float* hi, int32_t head_dim, uint8_t* out) {
  for (int32_t c = 0; c < head_dim; ++c) {
    const uint16_t halves[2] = {half_rounded(lo[c], false), half_rounded(hi[c], true)};
    std::memcpy(out + 2 * static_cast<size_t>(c), &halves[0], 2);
    std::memcpy(out + 2 * static_cast<size_t>(head_dim + c), &halves[1], 2);
  }
}

void read_key_bounds(const uint8_t* bounds, int32_t head_dim, float* lo, float* hi) {
  for (int32_t c = 0; c < head_dim; ++c) {
    uint16_t h[2];
    std::memcpy(&h[0], bounds + 2 * static_cast<size_t>(c), 2);
    std::memcpy(&h[1], bounds + 2 * static_cast<size_t>(head_dim + c), 2);
    lo[c] = fp16_to_fp32(h[0]);
    hi[c] = fp16_to_fp32(h[1]);
  }
}

void key_bound_scores(const float* queries, int32_t group, int32_t head_dim, const uint8_t* arena,
                      size_t stride_bytes, std::span<const int32_t> block_ids, float* scores) {
  KVF_CHECK(group >= 1 && group <= 16 && head_dim >= 1 && head_dim <= 256);
  HWY_DYNAMIC_DISPATCH(key_bound_scores_impl)
  (queries, group, head_dim, arena, stride_bytes, block_ids.data(),
   static_cast<int64_t>(block_ids.size()), scores);
}

}  // namespace kvforge
#endif  // HWY_ONCE
