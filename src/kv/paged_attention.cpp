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
namespace hn = hwy::HWY_NAMESPACE;
namespace vec = kernels::HWY_NAMESPACE::vec;

HWY_INLINE const uint8_t* tile_data(const PagedAttentionArgs& a, const PagedSide& side,
                                    int32_t block, int32_t kv_head) {
  return side.head_arenas[kv_head] +
         static_cast<size_t>(a.block_ids[static_cast<size_t>(block)]) * side.tile_bytes;
}

// Rows [0, n) of blocks [first, first + count) of one side, as the query at
// `query_pos` reads them, into `rows` (head_dim floats each, contiguous):
// decoded from their tiles, or copied from the staged f32 rows. Returns n.
HWY_INLINE int32_t gather_rows(const PagedAttentionArgs& a, const PagedSide& side, int32_t first,
                               int32_t count, int32_t kv_head, int32_t query_pos, float* rows) {
  const int32_t bt = a.block_tokens;
  const int32_t d = a.head_dim;
  int32_t n = 0;
  for (int32_t j = first; j < first + count; ++j) {
    const int32_t block_rows = std::min(bt, query_pos + 1 - j * bt);
    float* dst = rows + static_cast<int64_t>(n) * d;
    if (reads_encoded(side, j, bt, query_pos)) {
      side.codec->decode(tile_data(a, side, j, kv_head), block_rows, dst);
    } else {
      const int64_t stride = static_cast<int64_t>(a.n_kv_heads) * d;
      const float* src = side.staged_rows +
                         (static_cast<int64_t>(j) * bt - a.staged_begin) * stride +
                         static_cast<int64_t>(kv_head) * d;
      for (int32_t r = 0; r < block_rows; ++r) std::copy_n(src + r * stride, d, dst + r * d);
    }
    n += block_rows;
  }
  return n;
}

// Requests the tiles of blocks [first, first + count) that do not directly
// follow the previous block's tile: consecutive block ids are one contiguous
// run, which the hardware prefetcher follows by itself; a jump to another
// place in the arena it does not.
HWY_INLINE void prefetch_jumps(const PagedAttentionArgs& a, const PagedSide& side, int32_t first,
                               int32_t count, int32_t kv_head) {
  for (int32_t j = first; j < first + count; ++j) {
    if (j > 0 &&
        a.block_ids[static_cast<size_t>(j)] == a.block_ids[static_cast<size_t>(j - 1)] + 1) {
      continue;
    }
    const uint8_t* data = tile_data(a, side, j, kv_head);
    for (size_t offset = 0; offset < side.tile_bytes; offset += 64) hwy::Prefetch(data + offset);
  }
}

// The kernel takes whole blocks at a time, up to kChunkRows rows and
// kChunkFloats floats of decoded scratch (16 KiB: stays in L1).
constexpr int32_t kChunkRows = kPagedMaxBlockTokens;
constexpr int32_t kChunkFloats = 4096;

using DF = hn::ScalableTag<float>;
// Fixed-width targets batch the score kernel's rows: one accumulator per row,
// reduced together. Others (scalar, scalable vectors) take one row at a time.
#undef KVF_PAGED_ROW_BATCH
#if HWY_TARGET == HWY_SCALAR || HWY_HAVE_SCALABLE
#define KVF_PAGED_ROW_BATCH 0
#else
#define KVF_PAGED_ROW_BATCH 1
constexpr int32_t kRowBatch = static_cast<int32_t>(hn::MaxLanes(DF()));
static_assert(kChunkRows % kRowBatch == 0);
#endif

// Zeros standing in for the rows past the end of a partial block.
alignas(64) constexpr float kZeroRow[kPagedMaxHeadDim] = {};

#if KVF_PAGED_ROW_BATCH
using VF = hn::Vec<DF>;

// Four vectors to one: lane i of 128-bit block k = the sum of v_i's lanes in
// block k (a transpose-and-add inside each block, no cross-block shuffle).
HWY_INLINE VF sum_blocks_of_four(VF a, VF b, VF c, VF e) {
  const DF df;
  const hn::Repartition<uint64_t, DF> d64;
  const VF ab = hn::Add(hn::InterleaveLower(df, a, b), hn::InterleaveUpper(df, a, b));
  const VF ce = hn::Add(hn::InterleaveLower(df, c, e), hn::InterleaveUpper(df, c, e));
  const auto ab64 = hn::BitCast(d64, ab);
  const auto ce64 = hn::BitCast(d64, ce);
  return hn::Add(hn::BitCast(df, hn::InterleaveLower(d64, ab64, ce64)),
                 hn::BitCast(df, hn::InterleaveUpper(d64, ab64, ce64)));
}

// v[0..kRowBatch) folded into one vector whose lane i is the sum of v[i]'s
// lanes: kRowBatch dot products finish together instead of each paying a full
// horizontal sum.
HWY_INLINE VF sum_lanes_of_each(VF* v) {
  const DF df;
  if constexpr (kRowBatch == 1) {
    return v[0];
  } else if constexpr (kRowBatch == 4) {
    return sum_blocks_of_four(v[0], v[1], v[2], v[3]);
  } else if constexpr (kRowBatch == 8) {  // two 128-bit blocks
    const VF lo = sum_blocks_of_four(v[0], v[1], v[2], v[3]);
    const VF hi = sum_blocks_of_four(v[4], v[5], v[6], v[7]);
    return hn::Add(hn::ConcatLowerLower(df, hi, lo), hn::ConcatUpperUpper(df, hi, lo));
  } else {  // pairwise: each level adds the even and odd lanes of two vectors
#pragma GCC unroll 16
    for (int32_t count = kRowBatch; count > 1; count /= 2) {
#pragma GCC unroll 16
      for (int32_t i = 0; i < count / 2; ++i) {
        v[i] = hn::Add(hn::ConcatEven(df, v[2 * i + 1], v[2 * i]),
                       hn::ConcatOdd(df, v[2 * i + 1], v[2 * i]));
      }
    }
    return v[0];
  }
}
#endif

// scores[r] = q · rows[r] for r < n (rows of d floats, contiguous); lanes past
// n of the last batch are written too (with zero rows) and are not used.
HWY_INLINE void block_scores(const float* HWY_RESTRICT q, const float* rows, int32_t n, int32_t d,
                             float* HWY_RESTRICT scores) {
#if KVF_PAGED_ROW_BATCH
  const DF df;
  using V = VF;
  const int32_t vector_end = d - d % kRowBatch;
  for (int32_t r0 = 0; r0 < n; r0 += kRowBatch) {
    const float* row[kRowBatch];
    V acc[kRowBatch];
#pragma GCC unroll 16
    for (int32_t i = 0; i < kRowBatch; ++i) {
      row[i] = r0 + i < n ? rows + (r0 + i) * d : kZeroRow;
      acc[i] = hn::Zero(df);
    }
    for (int32_t c = 0; c < vector_end; c += kRowBatch) {
      const V qc = hn::Load(df, q + c);
#pragma GCC unroll 16
      for (int32_t i = 0; i < kRowBatch; ++i) {
        acc[i] = hn::MulAdd(qc, hn::LoadU(df, row[i] + c), acc[i]);
      }
    }
    hn::Store(sum_lanes_of_each(acc), df, scores + r0);
    for (int32_t c = vector_end; c < d; ++c) {  // head_dim below the lane count
      for (int32_t i = 0; i < kRowBatch; ++i) scores[r0 + i] += q[c] * row[i][c];
    }
  }
#else
  for (int32_t r = 0; r < n; ++r) scores[r] = vec::dot(q, rows + r * d, d);
#endif
}

// acc[g][0, d) = acc[g] * rescale[g] + sum_r weights[g][r] * rows[r] for the
// NB heads g of one batch (rows of d floats, contiguous); the accumulators
// stay in registers across rows.
template <int NB>
HWY_INLINE void accumulate_rows(float* const* HWY_RESTRICT acc, const float* const* weights,
                                const float* rescale, const float* rows, int32_t n, int32_t d) {
  const DF df;
  using V = hn::Vec<DF>;
  const int32_t lanes = static_cast<int32_t>(hn::Lanes(df));
  int32_t c = 0;
  for (; c + 2 * lanes <= d; c += 2 * lanes) {
    V a0[NB], a1[NB];
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) {
      const V s = hn::Set(df, rescale[g]);
      a0[g] = hn::Mul(s, hn::Load(df, acc[g] + c));
      a1[g] = hn::Mul(s, hn::Load(df, acc[g] + c + lanes));
    }
    for (int32_t r = 0; r < n; ++r) {
      const V v0 = hn::LoadU(df, rows + r * d + c);
      const V v1 = hn::LoadU(df, rows + r * d + c + lanes);
#pragma GCC unroll 4
      for (int g = 0; g < NB; ++g) {
        const V w = hn::Set(df, weights[g][r]);
        a0[g] = hn::MulAdd(w, v0, a0[g]);
        a1[g] = hn::MulAdd(w, v1, a1[g]);
      }
    }
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) {
      hn::Store(a0[g], df, acc[g] + c);
      hn::Store(a1[g], df, acc[g] + c + lanes);
    }
  }
  for (; c + lanes <= d; c += lanes) {
    V a0[NB];
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) a0[g] = hn::Mul(hn::Set(df, rescale[g]), hn::Load(df, acc[g] + c));
    for (int32_t r = 0; r < n; ++r) {
      const V v0 = hn::LoadU(df, rows + r * d + c);
#pragma GCC unroll 4
      for (int g = 0; g < NB; ++g) a0[g] = hn::MulAdd(hn::Set(df, weights[g][r]), v0, a0[g]);
    }
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) hn::Store(a0[g], df, acc[g] + c);
  }
  for (; c < d; ++c) {  // head_dim not a multiple of the lane count
    for (int g = 0; g < NB; ++g) {
      float sum = acc[g][c] * rescale[g];
      for (int32_t r = 0; r < n; ++r) sum += weights[g][r] * rows[r * d + c];
      acc[g][c] = sum;
    }
  }
}

// One task: every query head of one KV-head group, for one query token. The
// keys are taken a chunk of whole blocks at a time (kChunkRows, kChunkFloats):
// the softmax bookkeeping and loop overheads are paid per chunk, not per block.
void attend_group(const PagedAttentionArgs& a, int32_t token, int32_t kv_head) {
  const int32_t group = a.n_heads / a.n_kv_heads;
  const int32_t d = a.head_dim;
  const int32_t bt = a.block_tokens;
  const int32_t query_pos = a.first_pos + token;
  const int32_t n_keys = query_pos + 1;
  const int32_t chunk_blocks = std::max(1, std::min(kChunkRows, kChunkFloats / d) / bt);

  alignas(64) float rows[kChunkRows * kPagedMaxHeadDim];
  // Queries pre-scaled (and rotated for rotated keys: q·k = Hq·Hk). A rotated
  // side is never staged (rotation is a token-granular codec without a
  // residual window), so every block reads the rotated form.
  alignas(64) float q[kPagedMaxGroup][kPagedMaxHeadDim];
  alignas(64) float acc[kPagedMaxGroup][kPagedMaxHeadDim];
  alignas(64) float scores[kPagedMaxGroup][kChunkRows];
  float running_max[kPagedMaxGroup];
  float denom[kPagedMaxGroup];
  float rescale[kPagedMaxGroup];
  float* acc_rows[kPagedMaxGroup];
  const float* weight_rows[kPagedMaxGroup];

  for (int32_t g = 0; g < group; ++g) {
    const float* src = a.q + (static_cast<int64_t>(token) * a.n_heads + kv_head * group + g) * d;
    for (int32_t i = 0; i < d; ++i) q[g][i] = src[i] * a.scale;
    if (a.keys.codec->rotated()) hadamard_transform(q[g], d);
    std::fill_n(acc[g], d, 0.0f);
    running_max[g] = -std::numeric_limits<float>::infinity();
    denom[g] = 0.0f;
    acc_rows[g] = acc[g];
    weight_rows[g] = scores[g];
  }

  const int32_t n_blocks = (n_keys + bt - 1) / bt;
  prefetch_jumps(a, a.keys, 0, std::min(chunk_blocks, n_blocks), kv_head);
  prefetch_jumps(a, a.values, 0, std::min(chunk_blocks, n_blocks), kv_head);
  for (int32_t j = 0; j < n_blocks; j += chunk_blocks) {
    const int32_t count = std::min(chunk_blocks, n_blocks - j);
    const int32_t next = std::min(chunk_blocks, n_blocks - j - count);
    prefetch_jumps(a, a.keys, j + count, next, kv_head);
    prefetch_jumps(a, a.values, j + count, next, kv_head);

    const int32_t n = gather_rows(a, a.keys, j, count, kv_head, query_pos, rows);
    for (int32_t g = 0; g < group; ++g) {
      block_scores(q[g], rows, n, d, scores[g]);
      rescale[g] = vec::online_softmax_fold(scores[g], n, running_max[g], denom[g]);
    }
    gather_rows(a, a.values, j, count, kv_head, query_pos, rows);
    int32_t g = 0;
    for (; g + 4 <= group; g += 4) {
      accumulate_rows<4>(acc_rows + g, weight_rows + g, rescale + g, rows, n, d);
    }
    switch (group - g) {
      case 3:
        accumulate_rows<3>(acc_rows + g, weight_rows + g, rescale + g, rows, n, d);
        break;
      case 2:
        accumulate_rows<2>(acc_rows + g, weight_rows + g, rescale + g, rows, n, d);
        break;
      case 1:
        accumulate_rows<1>(acc_rows + g, weight_rows + g, rescale + g, rows, n, d);
        break;
      default:
        break;
    }
  }

  for (int32_t g = 0; g < group; ++g) {
    float* out = a.out + (static_cast<int64_t>(token) * a.n_heads + kv_head * group + g) * d;
    if (a.values.codec->rotated()) hadamard_transform(acc[g], d);
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
  // The kernel reads a rotated side only in its rotated form (see attend_group).
  KVF_CHECK(!(a.keys.staged && a.keys.codec->rotated()));
  KVF_CHECK(!(a.values.staged && a.values.codec->rotated()));
  KVF_CHECK(static_cast<int64_t>(a.block_ids.size()) * a.block_tokens >=
            static_cast<int64_t>(a.first_pos) + a.n_tokens);
  HWY_DYNAMIC_DISPATCH(paged_attention_impl)(a, pool);
}

}  // namespace kvforge
#endif  // HWY_ONCE
