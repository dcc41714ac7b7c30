// Compiled once per SIMD target (Highway foreach_target) and dispatched at
// run time; the scalar reference at the end is compiled once.
#include "kernels/simd_targets.h"
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/attention.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on
#include "kernels/vector_ops-inl.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention.h"
#include "kvforge/status.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

HWY_BEFORE_NAMESPACE();
namespace kvforge::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int kMaxHeadDim = 256;
constexpr int kMaxGroup = 16;   // query heads per KV head
constexpr int kKeyChunk = 128;  // keys scored per softmax update

// One task: all query heads of one KV-head group for one query token.
// Keys are processed in chunks: score the chunk for every head of the group
// (each key row is loaded once), then fold the chunk into each head's running
// max / denominator / accumulator (online softmax).
template <class T>
void attend_group(const AttentionArgs& a, int32_t token, int32_t kv_head) {
  const int32_t group = a.n_heads / a.n_kv_heads;
  const int32_t d = a.head_dim;
  const int32_t n_keys = a.first_pos + token + 1;
  const T* keys = static_cast<const T*>(a.k) + kv_head * a.head_stride;
  const T* values = static_cast<const T*>(a.v) + kv_head * a.head_stride;

  float scores[kMaxGroup][kKeyChunk];
  float acc[kMaxGroup][kMaxHeadDim];
  float running_max[kMaxGroup];
  float denom[kMaxGroup];
  float row[kMaxHeadDim];
  const float* q[kMaxGroup];
  for (int32_t g = 0; g < group; ++g) {
    q[g] = a.q + (static_cast<int64_t>(token) * a.n_heads + kv_head * group + g) * d;
    std::fill(acc[g], acc[g] + d, 0.0f);
    running_max[g] = -std::numeric_limits<float>::infinity();
    denom[g] = 0.0f;
  }

  for (int32_t j0 = 0; j0 < n_keys; j0 += kKeyChunk) {
    const int32_t n = std::min(kKeyChunk, n_keys - j0);
    for (int32_t j = 0; j < n; ++j) {
      const T* k = keys + static_cast<int64_t>(j0 + j) * d;
      const float* krow = nullptr;
      if constexpr (std::is_same_v<T, float>) {
        krow = k;
      } else {
        vec::load_f16_row(k, row, d);
        krow = row;
      }
      for (int32_t g = 0; g < group; ++g) scores[g][j] = vec::dot(q[g], krow, d) * a.scale;
    }
    for (int32_t g = 0; g < group; ++g) {
      vec::scale(vec::online_softmax_fold(scores[g], n, running_max[g], denom[g]), acc[g], d);
    }
    for (int32_t j = 0; j < n; ++j) {
      const T* v = values + static_cast<int64_t>(j0 + j) * d;
      const float* vrow = nullptr;
      if constexpr (std::is_same_v<T, float>) {
        vrow = v;
      } else {
        vec::load_f16_row(v, row, d);
        vrow = row;
      }
      for (int32_t g = 0; g < group; ++g) vec::axpy(scores[g][j], vrow, acc[g], d);
    }
  }

  for (int32_t g = 0; g < group; ++g) {
    float* out = a.out + (static_cast<int64_t>(token) * a.n_heads + kv_head * group + g) * d;
    const float inv = 1.0f / denom[g];
    for (int32_t i = 0; i < d; ++i) out[i] = acc[g][i] * inv;
  }
}

void attention_impl(const AttentionArgs& a, ThreadPool& pool) {
  const int64_t n_tasks = static_cast<int64_t>(a.n_tokens) * a.n_kv_heads;
  pool.parallel_for(n_tasks, [&](int64_t task, int) {
    const auto token = static_cast<int32_t>(task / a.n_kv_heads);
    const auto kv_head = static_cast<int32_t>(task % a.n_kv_heads);
    if (a.element == KvElement::kF32) {
      attend_group<float>(a, token, kv_head);
    } else {
      attend_group<uint16_t>(a, token, kv_head);
    }
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace kvforge::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvforge::kernels {

HWY_EXPORT(attention_impl);

void attention(const AttentionArgs& a, ThreadPool& pool) {
  KVF_CHECK(a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0);
  KVF_CHECK(a.n_heads / a.n_kv_heads <= 16);
  KVF_CHECK(a.head_dim > 0 && a.head_dim <= 256);
  HWY_DYNAMIC_DISPATCH(attention_impl)(a, pool);
}

void attention_reference(const AttentionArgs& a) {
  const int32_t group = a.n_heads / a.n_kv_heads;
  const int32_t d = a.head_dim;
  auto key_at = [&](int32_t kvh, int32_t pos, int32_t i) -> double {
    const int64_t idx = kvh * a.head_stride + static_cast<int64_t>(pos) * d + i;
    return a.element == KvElement::kF32 ? static_cast<const float*>(a.k)[idx]
                                        : fp16_to_fp32(static_cast<const uint16_t*>(a.k)[idx]);
  };
  auto value_at = [&](int32_t kvh, int32_t pos, int32_t i) -> double {
    const int64_t idx = kvh * a.head_stride + static_cast<int64_t>(pos) * d + i;
    return a.element == KvElement::kF32 ? static_cast<const float*>(a.v)[idx]
                                        : fp16_to_fp32(static_cast<const uint16_t*>(a.v)[idx]);
  };
  for (int32_t t = 0; t < a.n_tokens; ++t) {
    const int32_t n_keys = a.first_pos + t + 1;
    std::vector<double> s(static_cast<size_t>(n_keys));
    for (int32_t h = 0; h < a.n_heads; ++h) {
      const int32_t kvh = h / group;
      const float* q = a.q + (static_cast<int64_t>(t) * a.n_heads + h) * d;
      double m = -std::numeric_limits<double>::infinity();
      for (int32_t j = 0; j < n_keys; ++j) {
        double dotv = 0;
        for (int32_t i = 0; i < d; ++i) dotv += q[i] * key_at(kvh, j, i);
        s[static_cast<size_t>(j)] = dotv * a.scale;
        m = std::max(m, s[static_cast<size_t>(j)]);
      }
      double z = 0;
      for (auto& x : s) z += (x = std::exp(x - m));
      float* out = a.out + (static_cast<int64_t>(t) * a.n_heads + h) * d;
      for (int32_t i = 0; i < d; ++i) {
        double o = 0;
        for (int32_t j = 0; j < n_keys; ++j) o += s[static_cast<size_t>(j)] * value_at(kvh, j, i);
        out[i] = static_cast<float>(o / z);
      }
    }
  }
}

}  // namespace kvforge::kernels
#endif  // HWY_ONCE
