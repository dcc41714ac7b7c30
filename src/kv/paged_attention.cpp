// Compiled once per SIMD target (Highway foreach_target), dispatched at run time.
#include "kernels/simd_targets.h"
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kv/paged_attention.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on
#include "hwy/cache_control.h"
#include "kernels/vector_ops-inl.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kv/hadamard.h"
#include "kv/paged_attention.h"
#include "kvforge/status.h"
#include "util/thread_pool.h"

HWY_BEFORE_NAMESPACE();
namespace kvforge {
namespace HWY_NAMESPACE {
namespace vec = kernels::HWY_NAMESPACE::vec;

// Rows of one block of one side for one query, either decoded into `tile` or
// pointing at the staged f32 rows. Returns the row pointer and sets `stride`.
HWY_INLINE const float* block_rows(const PagedAttentionArgs& a, const PagedSide& side,
                                   int32_t block, int32_t n_rows, int32_t kv_head,
                                   int32_t query_pos, bool& encoded, int64_t& stride, float* tile) {
  encoded = reads_encoded(side, block, a.block_tokens, query_pos);
  if (!encoded) {
    const int64_t row = static_cast<int64_t>(block) * a.block_tokens - a.staged_begin;
    stride = static_cast<int64_t>(a.n_kv_heads) * a.head_dim;
    return side.staged_rows + row * stride + static_cast<int64_t>(kv_head) * a.head_dim;
  }
  const uint8_t* data = a.blocks[static_cast<size_t>(block)] + side.tile_offset +
                        static_cast<size_t>(kv_head) * side.tile_bytes;
  side.codec->decode(data, n_rows, tile);
  stride = a.head_dim;
  return tile;
}

HWY_INLINE void prefetch_tile(const PagedAttentionArgs& a, const PagedSide& side, int32_t block,
                              int32_t kv_head) {
  const uint8_t* data = a.blocks[static_cast<size_t>(block)] + side.tile_offset +
                        static_cast<size_t>(kv_head) * side.tile_bytes;
  for (size_t offset = 0; offset < side.tile_bytes; offset += 64) hwy::Prefetch(data + offset);
}

// One task: every query head of one KV-head group, for one query token.
void attend_group(const PagedAttentionArgs& a, int32_t token, int32_t kv_head) {
  const int32_t group = a.n_heads / a.n_kv_heads;
  const int32_t d = a.head_dim;
  const int32_t bt = a.block_tokens;
  const int32_t query_pos = a.first_pos + token;
  const int32_t n_keys = query_pos + 1;
  const bool keys_rotated = a.keys.codec->rotated();
  const bool values_rotated = a.values.codec->rotated();

  alignas(64) float tile[kPagedMaxBlockTokens * kPagedMaxHeadDim];
  alignas(64) float q_rotated[kPagedMaxGroup][kPagedMaxHeadDim];
  alignas(64) float acc[kPagedMaxGroup][kPagedMaxHeadDim];
  alignas(64) float acc_rotated[kPagedMaxGroup][kPagedMaxHeadDim];
  float scores[kPagedMaxGroup][kPagedMaxBlockTokens];
  float running_max[kPagedMaxGroup];
  float denom[kPagedMaxGroup];
  const float* q[kPagedMaxGroup];

  for (int32_t g = 0; g < group; ++g) {
    q[g] = a.q + (static_cast<int64_t>(token) * a.n_heads + kv_head * group + g) * d;
    if (keys_rotated) {
      std::copy_n(q[g], d, q_rotated[g]);
      hadamard_transform(q_rotated[g], d);
    }
    std::fill_n(acc[g], d, 0.0f);
    if (values_rotated) std::fill_n(acc_rotated[g], d, 0.0f);
    running_max[g] = -std::numeric_limits<float>::infinity();
    denom[g] = 0.0f;
  }

  const int32_t n_blocks = (n_keys + bt - 1) / bt;
  for (int32_t j = 0; j < n_blocks; ++j) {
    const int32_t n = std::min(bt, n_keys - j * bt);
    // A tile is a short contiguous run (a few KiB) and the next block's tile
    // lies elsewhere in the arena, too far for the hardware prefetcher to
    // follow: request the next block's key and value tiles now.
    if (j + 1 < n_blocks) {
      prefetch_tile(a, a.keys, j + 1, kv_head);
      prefetch_tile(a, a.values, j + 1, kv_head);
    }
    bool encoded = false;
    int64_t stride = 0;
    const float* rows = block_rows(a, a.keys, j, n, kv_head, query_pos, encoded, stride, tile);
    for (int32_t g = 0; g < group; ++g) {
      const float* qg = encoded && keys_rotated ? q_rotated[g] : q[g];
      for (int32_t r = 0; r < n; ++r) scores[g][r] = vec::dot(qg, rows + r * stride, d) * a.scale;
    }
    for (int32_t g = 0; g < group; ++g) {
      const float rescale = vec::online_softmax_fold(scores[g], n, running_max[g], denom[g]);
      vec::scale(rescale, acc[g], d);
      if (values_rotated) vec::scale(rescale, acc_rotated[g], d);
    }
    rows = block_rows(a, a.values, j, n, kv_head, query_pos, encoded, stride, tile);
    for (int32_t g = 0; g < group; ++g) {
      float* target = encoded && values_rotated ? acc_rotated[g] : acc[g];
      for (int32_t r = 0; r < n; ++r) vec::axpy(scores[g][r], rows + r * stride, target, d);
    }
  }

  for (int32_t g = 0; g < group; ++g) {
    float* out = a.out + (static_cast<int64_t>(token) * a.n_heads + kv_head * group + g) * d;
    if (values_rotated) {
      hadamard_transform(acc_rotated[g], d);
      for (int32_t i = 0; i < d; ++i) acc[g][i] += acc_rotated[g][i];
    }
    const float inv = 1.0f / denom[g];
    for (int32_t i = 0; i < d; ++i) out[i] = acc[g][i] * inv;
  }
}

void paged_attention_impl(const PagedAttentionArgs& a, ThreadPool& pool) {
  const int64_t n_tasks = static_cast<int64_t>(a.n_tokens) * a.n_kv_heads;
  pool.parallel_for(n_tasks, [&](int64_t task, int) {
    attend_group(a, static_cast<int32_t>(task / a.n_kv_heads),
                 static_cast<int32_t>(task % a.n_kv_heads));
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace kvforge
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvforge {

HWY_EXPORT(paged_attention_impl);

void paged_attention(const PagedAttentionArgs& a, ThreadPool& pool) {
  KVF_CHECK(a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0);
  KVF_CHECK(a.n_heads / a.n_kv_heads <= kPagedMaxGroup);
  KVF_CHECK(a.head_dim > 0 && a.head_dim <= kPagedMaxHeadDim);
  KVF_CHECK(a.block_tokens > 0 && a.block_tokens <= kPagedMaxBlockTokens);
  KVF_CHECK(a.keys.codec != nullptr && a.values.codec != nullptr);
  KVF_CHECK(static_cast<int64_t>(a.blocks.size()) * a.block_tokens >=
            static_cast<int64_t>(a.first_pos) + a.n_tokens);
  HWY_DYNAMIC_DISPATCH(paged_attention_impl)(a, pool);
}

}  // namespace kvforge
#endif  // HWY_ONCE
