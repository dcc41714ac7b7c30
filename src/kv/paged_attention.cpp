// Compiled once per SIMD target (Highway foreach_target), dispatched at run time.
// Also for AVX3_DL: KIVI keys are scored with AVX-512 VNNI there.
#define KVFORGE_SIMD_WITH_AVX3_DL
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
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kv/hadamard.h"
#include "kv/kv_codec_kernels.h"
#include "kv/kv_codec_quantize.h"
#include "kv/paged_attention.h"
#include "kvforge/status.h"
#include "util/thread_pool.h"

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
// Highway's AVX3_DL target string names AVX-VNNI but not AVX512-VNNI, which
// its run-time check for the target requires.
#pragma GCC target("avx512vnni")
#endif
namespace kvforge {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
namespace vec = kernels::HWY_NAMESPACE::vec;

// The position of query `token`: first_pos + token, or as listed.
HWY_INLINE int32_t query_position(const PagedAttentionArgs& a, int32_t token) {
  return a.query_positions != nullptr ? a.query_positions[token] : a.first_pos + token;
}

// One span as one task (a query token and a KV head) reads it: a list of
// entries, each a key tile and a value tile of up to block_tokens rows, every
// entry but the last full. The block part's entries are blocks of the
// sequence's table (all of them from first_block on, or a head's chosen
// ones), pages' entries are the head's pages (kv-compression.md).
struct SpanView {
  const PagedSide* keys = nullptr;
  const PagedSide* values = nullptr;
  std::span<const int32_t> block_ids;  // block part: the table
  const int32_t* blocks = nullptr;     // block part: absolute index of each entry, or null
  const float* bias = nullptr;         // pages: a score bias per row, or null
  int32_t first = 0;                   // block part without `blocks`: entry j is block first + j
  int32_t kv_head = 0;
  int32_t bt = 0;
  int32_t end_row = 0;  // block part: the query's position + 1; pages: the head's rows
  int32_t n_entries = 0;
  int32_t n_rows = 0;  // rows the query reads in this span
  int32_t staged_begin = 0;
  bool pages = false;

  // The absolute block index of entry j (block part).
  HWY_INLINE int32_t block(int32_t j) const { return blocks ? blocks[j] : first + j; }
  HWY_INLINE int32_t rows(int32_t j) const {
    return std::min(bt, end_row - (pages ? j : block(j)) * bt);
  }
  HWY_INLINE const uint8_t* tile(const PagedSide& side, int32_t j) const {
    if (pages) return side.head_tiles[kv_head][j];
    return side.head_arenas[kv_head] +
           static_cast<size_t>(block_ids[static_cast<size_t>(block(j))]) * side.tile_bytes;
  }
  // True when entry j's tile lies right after entry j - 1's in memory (for
  // the block part: in every arena), so that their rows form one array.
  HWY_INLINE bool continues(const PagedSide& side, int32_t j) const {
    if (j == 0) return false;
    if (pages)
      return side.head_tiles[kv_head][j] == side.head_tiles[kv_head][j - 1] + side.tile_bytes;
    return block_ids[static_cast<size_t>(block(j))] ==
           block_ids[static_cast<size_t>(block(j - 1))] + 1;
  }
  HWY_INLINE bool encoded(const PagedSide& side, int32_t j, int32_t query_pos) const {
    return pages || reads_encoded(side, block(j), bt, query_pos);
  }
};

// Rows of entries [first, first + count) of one side, as the query at
// `query_pos` reads them, into `rows` (head_dim floats each, contiguous):
// decoded from their tiles, or copied from the staged f32 rows. Returns the
// number of rows.
HWY_INLINE int32_t gather_rows(const PagedAttentionArgs& a, const SpanView& view,
                               const PagedSide& side, int32_t first, int32_t count,
                               int32_t query_pos, float* rows) {
  const int32_t bt = a.block_tokens;
  const int32_t d = a.head_dim;
  int32_t n = 0;
  for (int32_t j = first; j < first + count; ++j) {
    const int32_t block_rows = view.rows(j);
    float* dst = rows + static_cast<int64_t>(n) * d;
    if (view.encoded(side, j, query_pos)) {
      side.codec->decode(view.tile(side, j), block_rows, dst);
    } else {
      const int64_t stride = static_cast<int64_t>(a.n_kv_heads) * d;
      const float* src = side.staged_rows +
                         (static_cast<int64_t>(view.block(j)) * bt - a.staged_begin) * stride +
                         static_cast<int64_t>(view.kv_head) * d;
      for (int32_t r = 0; r < block_rows; ++r) std::copy_n(src + r * stride, d, dst + r * d);
    }
    n += block_rows;
  }
  return n;
}

// Requests the tiles of entries [first, first + count) that do not directly
// follow the previous entry's tile: consecutive tiles are one contiguous
// run, which the hardware prefetcher follows by itself; a jump to another
// place in the arena it does not.
HWY_INLINE void prefetch_jumps(const SpanView& view, const PagedSide& side, int32_t first,
                               int32_t count) {
  for (int32_t j = first; j < first + count; ++j) {
    if (view.continues(side, j)) continue;
    const uint8_t* data = view.tile(side, j);
    for (size_t offset = 0; offset < side.tile_bytes; offset += 64) hwy::Prefetch(data + offset);
  }
}

// Walks the tiles of a run of blocks of one side a few cache lines per call.
// Stepped from the dot products over the other side's rows (once per row
// batch), it requests the rows the kernel reads next while the current ones
// are multiplied. Measured faster than leaving the streams to the hardware
// prefetcher alone, and than one loop that requests a whole chunk at once
// (docs/performance.md). The lines go to L2, not L1: a request for L1 holds
// one of the core's few L1 miss buffers until the line arrives, and with
// them full the requests stalled the kernel (perf: a fifth of an f16
// task's samples on them); to L2 the same requests made f16 and int8 decode
// at 16k faster (docs/performance.md, "Tile requests to L2").
class TilePrefetcher {
 public:
  TilePrefetcher(const SpanView& view, const PagedSide& side) : view_(view), side_(side) {}

  // Starts on the tiles of entries [first, first + count), spread over the
  // `rows` rows of the pass that steps it.
  HWY_INLINE void start(int32_t first, int32_t count, int32_t rows) {
    block_ = first;
    end_ = first + count;
    offset_ = 0;
    const auto lines = static_cast<int64_t>(count) * static_cast<int64_t>(side_.tile_bytes) / 64;
    lines_per_row_ = rows > 0 ? static_cast<int32_t>((lines + rows - 1) / rows) : 0;
    tile_ = block_ < end_ ? view_.tile(side_, block_) : nullptr;
  }

  // Requests the next lines: `rows` rows' share of the tiles. Works on
  // locals, written back once: with the members, the compiler reloads and
  // stores them around every request.
  HWY_INLINE void step(int32_t rows) {
    const uint8_t* tile = tile_;
    size_t offset = offset_;
    int32_t block = block_;
    for (int32_t i = rows * lines_per_row_; i > 0 && block < end_; --i) {
      __builtin_prefetch(tile + offset, /*rw=*/0, /*locality=*/2);  // x86 PREFETCHT1, Arm PLDL2KEEP
      offset += 64;
      if (offset >= side_.tile_bytes) {
        offset = 0;
        if (++block < end_) tile = view_.tile(side_, block);
      }
    }
    tile_ = tile;
    offset_ = offset;
    block_ = block;
  }

 private:
  const SpanView& view_;
  const PagedSide& side_;
  int32_t block_ = 0;
  int32_t end_ = 0;
  size_t offset_ = 0;
  int32_t lines_per_row_ = 0;
  const uint8_t* tile_ = nullptr;
};

// The kernel takes whole blocks at a time, up to kChunkRows rows and
// kChunkFloats floats of decoded scratch (16 KiB: stays in L1).
constexpr int32_t kChunkRows = kPagedMaxBlockTokens;
constexpr int32_t kChunkFloats = 4096;

using DF = hn::ScalableTag<float>;
// Fixed-width targets batch the score kernel (group_scores): one accumulator
// per (row, head) pair, a vector's worth of pairs reduced together; they also
// read plain row formats in place. Others (scalar, scalable vectors) decode
// every tile into the scratch and take one row at a time (block_scores).
#undef KVF_PAGED_ROW_BATCH
#if HWY_TARGET == HWY_SCALAR || HWY_HAVE_SCALABLE
#define KVF_PAGED_ROW_BATCH 0
#else
#define KVF_PAGED_ROW_BATCH 1
constexpr int32_t kRowBatch = static_cast<int32_t>(hn::MaxLanes(DF()));
#endif

// int4 keys by channel pairs (kInt4Pairs) are multiplied as integers where
// the target has 256-bit integer vectors (x86 AVX2 and later): 32 bytes of
// codes (two channel pairs of 16 rows) meet the int8 query's channel pairs
// in unsigned-by-signed byte multiply-adds (PMADDUBSW: products summed
// pairwise into int16; with AVX-512 VNNI, four channels of a row per int32
// lane in VPDPBUSD: int4_quad_scores). Other fixed-width targets multiply
// the codes in f32 with the same int8-rounded query
// (int4_pair_float_scores), which on AVX2 measured 15% slower than the
// integer kernel.
#undef KVF_PAGED_INT4_PAIRS
#if KVF_PAGED_ROW_BATCH && HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
#define KVF_PAGED_INT4_PAIRS 1
#else
#define KVF_PAGED_INT4_PAIRS 0
#endif
// The VNNI variant: quantize_query_int8 lays the query out for it and
// tile_column_scores calls it.
#undef KVF_PAGED_INT4_QUADS
#define KVF_PAGED_INT4_QUADS (KVF_PAGED_INT4_PAIRS && HWY_TARGET == HWY_AVX3_DL)
// int8 keys (kInt8Columns) are multiplied as integers on the same targets:
// two columns' bytes interleaved and widened to int16 meet the int16
// query's channel pair in PMADDWD (VPDPWSSD with AVX-512 VNNI):
// int8_pair_scores.
#undef KVF_PAGED_INT8_PAIRS
#define KVF_PAGED_INT8_PAIRS KVF_PAGED_INT4_PAIRS

// One vector (of D) of IEEE halves starting at element `index` of `base`, as floats.
template <class D = DF>
HWY_INLINE hn::Vec<D> load_halves(const uint8_t* base, size_t index) {
  const hn::Rebind<hwy::float16_t, D> dh;
  return hn::PromoteTo(D(), hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(base) + index));
}

// One vector of row elements [c, c + lanes) of a row in a plain row format
// (kv_codec.h), as floats; int8 rows without their scale (row_scale).
template <KvRowFormat F>
HWY_INLINE hn::Vec<DF> load_row(const uint8_t* row, int32_t c) {
  const DF df;
  if constexpr (F == KvRowFormat::kF32) {
    return hn::LoadU(df, reinterpret_cast<const float*>(row) + c);
  } else if constexpr (F == KvRowFormat::kF16) {
    return load_halves(row, static_cast<size_t>(c));
  } else if constexpr (F == KvRowFormat::kBF16) {
    const hn::RebindToUnsigned<DF> du32;
    const hn::Rebind<uint16_t, DF> du16;
    const auto wide =
        hn::PromoteTo(du32, hn::LoadU(du16, reinterpret_cast<const uint16_t*>(row) + c));
    return hn::BitCast(df, hn::ShiftLeft<16>(wide));
  } else {
    static_assert(F == KvRowFormat::kInt8);
    const hn::RebindToSigned<DF> di32;
    const hn::Rebind<int8_t, DF> di8;
    return hn::ConvertTo(
        df, hn::PromoteTo(di32, hn::LoadU(di8, reinterpret_cast<const int8_t*>(row + 2) + c)));
  }
}

// The factor load_row leaves out: an int8 row's f16 scale, 1 otherwise.
template <KvRowFormat F>
HWY_INLINE float row_scale(const uint8_t* row) {
  if constexpr (F == KvRowFormat::kInt8) {
    return vec::load_f16(row);
  } else {
    return 1.0f;
  }
}

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

// scores[r] = q · rows[r] for r < n (rows of d floats, contiguous): the
// fallback for targets without the batched kernel and for a head_dim that is
// not a multiple of the lane count.
HWY_INLINE void block_scores(const float* HWY_RESTRICT q, const float* rows, int32_t n, int32_t d,
                             float* HWY_RESTRICT scores) {
  for (int32_t r = 0; r < n; ++r) scores[r] = vec::dot(q, rows + r * d, d);
}

#if KVF_PAGED_ROW_BATCH
// scores[g][r] = q[g] · row r for the NB query heads g of one batch and rows
// r < n in format F, row r at rows + r * row_bytes (d a multiple of the lane
// count). R = kRowBatch / NB rows are taken at once, so each row is loaded
// and converted once for all NB heads, and the R * NB dot products finish
// together (sum_lanes_of_each).
template <KvRowFormat F, int NB>
HWY_INLINE void group_scores(const float* const* q, const uint8_t* rows, size_t row_bytes,
                             int32_t n, int32_t d, float* const* scores, TilePrefetcher& ahead) {
  constexpr int32_t R = kRowBatch / NB;
  static_assert(R >= 1);
  const DF df;
  const auto lanes = static_cast<int32_t>(hn::Lanes(df));
  alignas(64) float sums[kRowBatch];
  for (int32_t r0 = 0; r0 < n; r0 += R) {
    ahead.step(R);
    const uint8_t* row[R];
#pragma GCC unroll 16
    for (int32_t r = 0; r < R; ++r) row[r] = rows + std::min(r0 + r, n - 1) * row_bytes;
    VF acc[kRowBatch];
#pragma GCC unroll 16
    for (int32_t i = 0; i < kRowBatch; ++i) acc[i] = hn::Zero(df);
    for (int32_t c = 0; c < d; c += lanes) {
      VF k[R];
#pragma GCC unroll 16
      for (int32_t r = 0; r < R; ++r) k[r] = load_row<F>(row[r], c);
#pragma GCC unroll 4
      for (int32_t g = 0; g < NB; ++g) {
        const VF qg = hn::Load(df, q[g] + c);
#pragma GCC unroll 16
        for (int32_t r = 0; r < R; ++r) acc[r * NB + g] = hn::MulAdd(qg, k[r], acc[r * NB + g]);
      }
    }
    hn::Store(sum_lanes_of_each(acc), df, sums);
    for (int32_t r = 0; r < R && r0 + r < n; ++r) {
      const float s = row_scale<F>(row[r]);
#pragma GCC unroll 4
      for (int32_t g = 0; g < NB; ++g) scores[g][r0 + r] = sums[r * NB + g] * s;
    }
  }
}
#endif

// acc[g][0, d) = acc[g] * rescale[g] + sum_r weights[g][r] * row r for the
// NB heads g of one batch, rows r < n in format F at rows + r * row_bytes
// (int8 scales already folded into the weights); the accumulators stay in
// registers across rows.
template <KvRowFormat F, int NB>
HWY_INLINE void accumulate_rows(float* const* HWY_RESTRICT acc, const float* const* weights,
                                const float* rescale, const uint8_t* rows, size_t row_bytes,
                                int32_t n, int32_t d, TilePrefetcher& ahead) {
  const DF df;
  using V = hn::Vec<DF>;
  const int32_t lanes = static_cast<int32_t>(hn::Lanes(df));
  // Local copies: the compiler would reload the pointers from memory every row.
  const float* w[NB];
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) w[g] = weights[g];
  int32_t c = 0;
  for (; c + 2 * lanes <= d; c += 2 * lanes) {
    V a0[NB], a1[NB];
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) {
      const V s = hn::Set(df, rescale[g]);
      a0[g] = hn::Mul(s, hn::Load(df, acc[g] + c));
      a1[g] = hn::Mul(s, hn::Load(df, acc[g] + c + lanes));
    }
    // The first pass requests the other side's next lines, 8 rows' share at
    // a time (called for every row, the call cost more than the requests).
    for (int32_t r8 = 0; r8 < n; r8 += 8) {
      const int32_t r_end = std::min(n, r8 + 8);
      if (c == 0) ahead.step(r_end - r8);
      for (int32_t r = r8; r < r_end; ++r) {
        const uint8_t* row = rows + r * row_bytes;
        const V v0 = load_row<F>(row, c);
        const V v1 = load_row<F>(row, c + lanes);
#pragma GCC unroll 4
        for (int g = 0; g < NB; ++g) {
          const V wg = hn::Set(df, w[g][r]);
          a0[g] = hn::MulAdd(wg, v0, a0[g]);
          a1[g] = hn::MulAdd(wg, v1, a1[g]);
        }
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
      const V v0 = load_row<F>(rows + r * row_bytes, c);
#pragma GCC unroll 4
      for (int g = 0; g < NB; ++g) a0[g] = hn::MulAdd(hn::Set(df, weights[g][r]), v0, a0[g]);
    }
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) hn::Store(a0[g], df, acc[g] + c);
  }
  if constexpr (F == KvRowFormat::kF32) {
    for (; c < d; ++c) {  // head_dim not a multiple of the lane count (the f32 scratch only)
      for (int g = 0; g < NB; ++g) {
        float sum = acc[g][c] * rescale[g];
        for (int32_t r = 0; r < n; ++r) {
          sum += weights[g][r] * reinterpret_cast<const float*>(rows + r * row_bytes)[c];
        }
        acc[g][c] = sum;
      }
    }
  }
}

// Calls fn(first_entry, row_offset, n_rows) for each run of entries among
// [first, first + count) whose tiles of this side lie one after another, so
// that a run's rows are one array (row_offset: the run's first row within
// the chunk).
template <class Fn>
HWY_INLINE void for_each_run(const SpanView& view, const PagedSide& side, int32_t first,
                             int32_t count, const Fn& fn) {
  const int32_t bt = view.bt;
  int32_t start = first;
  for (int32_t b = first + 1; b <= first + count; ++b) {
    if (b < first + count && view.continues(side, b)) continue;
    fn(start, (start - first) * bt, (b - 1 - start) * bt + view.rows(b - 1));
    start = b;
  }
}

// Calls fn(g, std::integral_constant<int, NB>()) for the batches [g, g + NB)
// of at most four heads that cover a group of `group` query heads.
template <class Fn>
HWY_INLINE void for_head_batches(int32_t group, const Fn& fn) {
  for (int32_t g = 0; g < group; g += 4) {
    switch (std::min(4, group - g)) {
      case 4:
        fn(g, std::integral_constant<int, 4>());
        break;
      case 3:
        fn(g, std::integral_constant<int, 3>());
        break;
      case 2:
        fn(g, std::integral_constant<int, 2>());
        break;
      default:
        fn(g, std::integral_constant<int, 1>());
        break;
    }
  }
}

// scores[g][0, n) = q[g] · rows for every head g of the group, rows in format F.
template <KvRowFormat F>
HWY_INLINE void score_rows(const float* const* q, int32_t group, const uint8_t* rows,
                           size_t row_bytes, int32_t n, int32_t d, float* const* scores,
                           TilePrefetcher& ahead) {
#if KVF_PAGED_ROW_BATCH
  if (d % static_cast<int32_t>(hn::Lanes(DF())) == 0) {
    for_head_batches(group, [&](int32_t g, auto nb) HWY_ATTR {
      group_scores<F, decltype(nb)::value>(q + g, rows, row_bytes, n, d, scores + g, ahead);
    });
    return;
  }
#endif
  // Rows read in place need the batched kernel (reads_in_place); the scratch is f32.
  ahead.step(n);
  if constexpr (F == KvRowFormat::kF32) {
    KVF_CHECK(row_bytes == static_cast<size_t>(d) * sizeof(float));
    for (int32_t g = 0; g < group; ++g) {
      block_scores(q[g], reinterpret_cast<const float*>(rows), n, d, scores[g]);
    }
  } else {
    KVF_CHECK(false);
  }
}

// KIVI key columns are read in vectors of at most 8 rows, so that one layout
// serves every target from SSE4 to AVX-512.
using DN = hn::CappedTag<float, 8>;

// The query of NB heads folded with one KIVI token group's grid
// (paged_attention.h): w = q * the channel's scale, rounded per channel group
// of kv_quant::channel_group(d) channels to int8 steps of max |w| / 127, and
// bias = q · the channels' mins (not rounded). A row's score is then
// bias + sum_k step[k] * (w8 · codes) over the channel groups k. The f32
// kernels take w8 * step as floats; the integer kernels keep w8 and the
// steps apart (KiviInt8Queries, KiviPairQueries).
template <int NB>
struct KiviFoldedQueries {
  alignas(64) float w[NB][kPagedMaxHeadDim];  // w8 * step
  float bias[NB];
};

// Folds NB queries with one token group's grid into f, in vectors of D (whose
// lanes divide the channel group).
template <class D, int NB>
HWY_INLINE void fold_kivi_queries(const float* const* q, const uint8_t* group_tile, int32_t d,
                                  KiviFoldedQueries<NB>& f) {
  const D df;
  const auto lanes = static_cast<int32_t>(hn::Lanes(df));
  const int32_t channels = kv_quant::channel_group(d);
  hn::Vec<D> bias_sum[NB];
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) bias_sum[g] = hn::Zero(df);
  for (int32_t k = 0; k < d / channels; ++k) {
    const int32_t first = k * channels;
    hn::Vec<D> amax[NB];
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) amax[g] = hn::Zero(df);
    for (int32_t c = first; c < first + channels; c += lanes) {
      const auto scale = load_halves<D>(group_tile, static_cast<size_t>(c));
      const auto min = load_halves<D>(group_tile, static_cast<size_t>(d + c));
#pragma GCC unroll 4
      for (int g = 0; g < NB; ++g) {
        const auto qg = hn::LoadU(df, q[g] + c);
        const auto w = hn::Mul(qg, scale);
        hn::Store(w, df, f.w[g] + c);
        amax[g] = hn::Max(amax[g], hn::Abs(w));
        bias_sum[g] = hn::MulAdd(qg, min, bias_sum[g]);
      }
    }
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) {
      const float a = hn::GetLane(hn::MaxOfLanes(df, amax[g]));
      const float step = a / 127.0f;
      const auto inverse = hn::Set(df, a > 0.0f ? 127.0f / a : 0.0f);
      for (int32_t c = first; c < first + channels; c += lanes) {
        // Round: to nearest, ties to even, as nearbyint in the default mode.
        const auto rounded = hn::Round(hn::Mul(hn::Load(df, f.w[g] + c), inverse));
        hn::Store(hn::Mul(rounded, hn::Set(df, step)), df, f.w[g] + c);
      }
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) f.bias[g] = hn::GetLane(hn::SumOfLanes(df, bias_sum[g]));
}

// Bits per code of a KIVI key column format.
HWY_INLINE int32_t kivi_bits(KvRowFormat format) {
  return format == KvRowFormat::kKivi2Columns ? 2 : 4;
}

// Calls fn(std::integral_constant<int, bits>()) for 2 or 4 bits per code.
template <class Fn>
HWY_INLINE void with_kivi_bits(int32_t bits, const Fn& fn) {
  if (bits == 2) {
    fn(std::integral_constant<int, 2>());
  } else {
    fn(std::integral_constant<int, 4>());
  }
}

// scores[h][0, rows) for every head h of the group from one KIVI key tile,
// one row and channel at a time with the same folded query as the column
// kernels: where the kernel does not read KIVI tiles in place (the scalar
// baseline, head_dim or g that fit no vector of rows), so that every target
// scores these keys alike.
HWY_INLINE void kivi_tile_scores_portable(const float* const* q, int32_t group, const uint8_t* tile,
                                          int32_t rows, int32_t g_rows, int32_t bits, int32_t d,
                                          float* const* scores) {
  const size_t group_bytes = kv_kernels::channel_group_bytes(d, bits, g_rows);
  const int32_t column_bytes = g_rows * bits / 8;
  const int mask = (1 << bits) - 1;
  KiviFoldedQueries<1> f;
  for (int32_t t0 = 0; t0 < rows; t0 += g_rows) {
    const uint8_t* group_tile = tile + static_cast<size_t>(t0 / g_rows) * group_bytes;
    const uint8_t* codes = group_tile + kv_kernels::channel_group_codes_offset(d);
    for (int32_t h = 0; h < group; ++h) {
      fold_kivi_queries<DN, 1>(q + h, group_tile, d, f);
      for (int32_t i = 0; i < std::min(g_rows, rows - t0); ++i) {
        const uint8_t* byte = codes + i % column_bytes;
        const int shift = bits * (i / column_bytes);
        float sum = 0.0f;
        for (int32_t c = 0; c < d; ++c) {
          sum += f.w[0][c] *
                 static_cast<float>((byte[static_cast<size_t>(c) * column_bytes] >> shift) & mask);
        }
        scores[h][t0 + i] = sum + f.bias[0];
      }
    }
  }
}

#if KVF_PAGED_ROW_BATCH
// One vector of column c's elements for rows [r0, r0 + lanes) of a tile in a
// column format F (kv_codec.h), as floats; int8 codes without their scales.
template <KvRowFormat F>
HWY_INLINE VF load_column(const uint8_t* tile, int32_t bt, int32_t c, int32_t r0) {
  const size_t at = static_cast<size_t>(c) * bt + r0;
  if constexpr (F == KvRowFormat::kF16Columns) {
    return load_halves(tile, at);
  } else if constexpr (F == KvRowFormat::kBF16Columns) {
    return load_row<KvRowFormat::kBF16>(tile, static_cast<int32_t>(at));
  } else {
    static_assert(F == KvRowFormat::kInt8Columns);
    const DF df;
    const hn::RebindToSigned<DF> di32;
    const hn::Rebind<int8_t, DF> di8;
    const auto* codes = reinterpret_cast<const int8_t*>(tile + 2 * static_cast<size_t>(bt));
    return hn::ConvertTo(df, hn::PromoteTo(di32, hn::LoadU(di8, codes + at)));
  }
}

// Sets every accumulator of an NB x V array to zero.
template <class D, int NB, int V>
HWY_INLINE void zero_accumulators(D d, hn::Vec<D> (&acc)[NB][V]) {
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) {
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) acc[g][v] = hn::Zero(d);
  }
}

// scores[g][r0, r0 + V * lanes) = q[g] · rows of one tile in column format
// F, for the NB heads of one batch: each column element is converted once
// for the NB heads and multiplied with the broadcast query element, so the
// rows' scores come out as vectors, with no horizontal sum per row (int8
// row scales: one vector multiply at the end).
template <KvRowFormat F, int NB, int V>
HWY_INLINE void column_scores(const float* const* q, const uint8_t* tile, int32_t bt, int32_t r0,
                              int32_t d, float* const* scores) {
  const DF df;
  const auto lanes = static_cast<int32_t>(hn::Lanes(df));
  VF acc[NB][V];
  zero_accumulators(df, acc);
  for (int32_t c = 0; c < d; ++c) {
    VF k[V];
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) k[v] = load_column<F>(tile, bt, c, r0 + v * lanes);
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) {
      const VF qg = hn::Set(df, q[g][c]);
#pragma GCC unroll 2
      for (int v = 0; v < V; ++v) acc[g][v] = hn::MulAdd(qg, k[v], acc[g][v]);
    }
  }
  if constexpr (F == KvRowFormat::kInt8Columns) {  // the tile starts with the rows' f16 scales
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) {
      const VF scale = load_halves(tile, static_cast<size_t>(r0 + v * lanes));
#pragma GCC unroll 4
      for (int g = 0; g < NB; ++g) acc[g][v] = hn::Mul(acc[g][v], scale);
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) {
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) hn::StoreU(acc[g][v], df, scores[g] + r0 + v * lanes);
  }
}

using DU32 = hn::RebindToUnsigned<DF>;

// L bytes at p (L lanes), one per lane, zero-extended.
HWY_INLINE hn::Vec<DU32> widen_bytes(const uint8_t* p) {
  return hn::PromoteTo(DU32(), hn::LoadU(hn::Rebind<uint8_t, DF>(), p));
}

// Bits [kShift, kShift + kBits) of every widened byte, as floats (the top
// field of a byte needs no mask). On AVX-512 a field of at most 4 bits is
// looked up in a 16-float table instead (vpermps reads only the low 4 bits
// of each index): one instruction where the mask and the conversion are
// two, the same floats.
template <int kBits, int kShift>
HWY_INLINE VF code_field_floats(hn::Vec<DU32> bytes) {
  const hn::RebindToSigned<DF> di32;
  const auto field = hn::ShiftRight<kShift>(bytes);
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  if constexpr (hn::MaxLanes(DF()) == 16 && kBits <= 4) {
    // Entry i: the field's value when the index's low 4 bits are i.
    alignas(64) static constexpr auto kTable = [] {
      std::array<float, 16> table{};
      for (int i = 0; i < 16; ++i) table[i] = static_cast<float>(i & ((1 << kBits) - 1));
      return table;
    }();
    return VF{_mm512_permutexvar_ps(field.raw, _mm512_load_ps(kTable.data()))};
  }
#endif
  if constexpr (kShift + kBits == 8) {
    return hn::ConvertTo(DF(), hn::BitCast(di32, field));
  } else {
    return hn::ConvertTo(DF(),
                         hn::BitCast(di32, hn::And(field, hn::Set(DU32(), (1u << kBits) - 1))));
  }
}

// A vector of two floats w[0], w[1] repeated: w[0], w[1], w[0], w[1], ...
HWY_INLINE VF alternating_pair(const float* w) {
  const hn::Repartition<uint64_t, DF> du64;
  uint64_t bits;
  std::memcpy(&bits, w, sizeof bits);
  return hn::BitCast(DF(), hn::Set(du64, bits));
}

// The f16 numbers of rows [first, first + L/2) and [first + 8, first + 8 + L/2)
// of one group's scales or mins (`at`: row first's index), as one vector.
HWY_INLINE VF slice_rows_halves(const uint8_t* tile, size_t at) {
  const hn::Half<DF> dh;
  return hn::Combine(DF(), load_halves<decltype(dh)>(tile, at + 8),
                     load_halves<decltype(dh)>(tile, at));
}

// The codes of the 16-row chunk at r0 of a kInt4Pairs tile: after the
// scales and mins (f16, per channel group and row), 16 bytes per channel
// pair and chunk.
HWY_INLINE const uint8_t* int4_pair_chunk_codes(const uint8_t* tile, int32_t bt, int32_t r0,
                                                int32_t d) {
  const int32_t n_groups = d / kv_quant::channel_group(d);
  return tile + 4 * static_cast<size_t>(n_groups) * bt +
         static_cast<size_t>(r0 / 16) * static_cast<size_t>(d / 2) * 16;
}

// scores[g][r0, r0 + 16) = q[g] · row, for the NB heads of one batch, from the
// 16-row chunk at r0 of one kInt4Pairs tile, in f32: on targets without the
// integer kernel, with the query already rounded to int8 steps (so the scores
// match the integer kernel's up to f32 rounding). Each channel pair's 16
// bytes are read L at a time (L lanes; slice s): widened, their low nibbles
// are channels 2p and 2p + 1 of rows r0 + s/2 ... alternating, their high
// nibbles the same of rows r0 + 8 + s/2 ..., which meet the query's channel
// pair alternating the same way. Per channel group k the two channels of
// each row are then added, and its score += scale_k * dot + min_k * qsum_k
// (qsum[g][k]: the query's sum over group k).
template <int NB>
HWY_INLINE void int4_pair_float_scores(const float* const* q, const float* const* qsum,
                                       const uint8_t* tile, int32_t bt, int32_t r0, int32_t d,
                                       float* const* scores) {
  const DF df;
  const hn::Half<DF> dh;
  const auto lanes = static_cast<int32_t>(hn::Lanes(df));
  const int32_t group = kv_quant::channel_group(d);
  const int32_t n_groups = d / group;
  const uint8_t* codes = int4_pair_chunk_codes(tile, bt, r0, d);
  for (int32_t s = 0; s < 16; s += lanes) {
    VF total[NB];
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) total[g] = hn::Zero(df);
    for (int32_t k = 0; k < n_groups; ++k) {
      VF low[NB], high[NB];
#pragma GCC unroll 4
      for (int g = 0; g < NB; ++g) low[g] = high[g] = hn::Zero(df);
      for (int32_t p = k * group / 2; p < (k + 1) * group / 2; ++p) {
        const auto v = widen_bytes(codes + 16 * static_cast<size_t>(p) + s);
        const VF low_codes = code_field_floats<4, 0>(v);
        const VF high_codes = code_field_floats<4, 4>(v);
#pragma GCC unroll 4
        for (int g = 0; g < NB; ++g) {
          const VF pair = alternating_pair(q[g] + 2 * p);
          low[g] = hn::MulAdd(pair, low_codes, low[g]);
          high[g] = hn::MulAdd(pair, high_codes, high[g]);
        }
      }
      const size_t at = static_cast<size_t>(k) * bt + r0 + s / 2;
      const VF scale = slice_rows_halves(tile, at);
      const VF min = slice_rows_halves(tile, static_cast<size_t>(n_groups) * bt + at);
#pragma GCC unroll 4
      for (int g = 0; g < NB; ++g) {  // lower half: the low nibbles' rows, upper: the high ones'
        const VF dot =
            hn::Add(hn::ConcatEven(df, high[g], low[g]), hn::ConcatOdd(df, high[g], low[g]));
        total[g] = hn::MulAdd(dot, scale, hn::MulAdd(hn::Set(df, qsum[g][k]), min, total[g]));
      }
    }
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) {
      hn::StoreU(hn::LowerHalf(dh, total[g]), dh, scores[g] + r0 + s / 2);
      hn::StoreU(hn::UpperHalf(dh, total[g]), dh, scores[g] + r0 + 8 + s / 2);
    }
  }
}

#if KVF_PAGED_INT4_PAIRS
using DB = hn::Full256<uint8_t>;
using DS16 = hn::Full256<int16_t>;
using DS32 = hn::Full256<int32_t>;
using DF8 = hn::Full256<float>;

// 16 int16 sums a[2i] * b[2i] + a[2i + 1] * b[2i + 1] of unsigned bytes a and
// signed bytes b (saturating; never here, where one operand holds 4-bit codes).
HWY_INLINE hn::Vec<DS16> multiply_byte_pairs(hn::Vec<DB> a, hn::Vec<hn::Full256<int8_t>> b) {
  return hn::Vec<DS16>{_mm256_maddubs_epi16(a.raw, b.raw)};
}

// The lower and upper 8 lanes of an int16 vector, as floats (exact).
HWY_INLINE void int16_halves_as_floats(hn::Vec<DS16> v, hn::Vec<DF8>& lower, hn::Vec<DF8>& upper) {
  const DS32 d32;
  const hn::Half<DS16> half;
  lower = hn::ConvertTo(DF8(), hn::PromoteTo(d32, hn::LowerHalf(half, v)));
  upper = hn::ConvertTo(DF8(), hn::PromoteTo(d32, hn::UpperHalf(half, v)));
}

// The bits [kShift, kShift + kBits) of every byte.
template <int kBits, int kShift>
HWY_INLINE hn::Vec<DB> code_field(hn::Vec<DB> bytes) {
  const DB db;
  const auto mask = hn::Set(db, static_cast<uint8_t>((1 << kBits) - 1));
  if constexpr (kShift == 0) {
    return hn::And(bytes, mask);
  } else {  // 16-bit shifts: the mask drops what crosses from the next byte
    return hn::And(hn::BitCast(db, hn::ShiftRight<kShift>(hn::BitCast(DS16(), bytes))), mask);
  }
}

// The 8 rows' sums of one int16 accumulator whose two 128-bit halves hold
// the same 8 rows over different channel pairs, as floats.
HWY_INLINE hn::Vec<DF8> row_sums(hn::Vec<DS16> acc) {
  hn::Vec<DF8> lower, upper;
  int16_halves_as_floats(acc, lower, upper);
  return hn::Add(lower, upper);  // exact: both below 2^24
}

// scores[g][r0, r0 + 16) = q[g] · row, for the NB heads of one batch, from the
// 16-row chunk at r0 of one kInt4Pairs tile. q8[g]: the int8 query with each
// channel pair repeated 8 times (16 bytes per pair, quantize_query_int8);
// step[g][k] and qsum[g][k]: its step and the sum of its rounded values over
// group k.
// With per-row group grids x = code * s + m, a row's score is the sum over
// groups k of s_k * step_k * (q8_k · codes_k) + m_k * qsum_k. Within a group
// of at most 32 channels an int16 lane sums 16 products of at most 127 * 15:
// 30480, no overflow.
template <int NB>
HWY_INLINE void int4_pair_scores(const int8_t* const* q8, const float* const* step,
                                 const float* const* qsum, const uint8_t* tile, int32_t bt,
                                 int32_t r0, int32_t d, float* const* scores) {
  const DB db;
  const DS16 d16;
  const DF8 df;
  const hn::Full256<int8_t> di8;
  using VS = hn::Vec<DS16>;
  using VF8 = hn::Vec<DF8>;
  const int32_t group = kv_quant::channel_group(d);
  const int32_t n_groups = d / group;
  const uint8_t* codes = int4_pair_chunk_codes(tile, bt, r0, d);  // 32 bytes: two pairs
  VF8 total[NB][2];
  zero_accumulators(df, total);
  for (int32_t k = 0; k < n_groups; ++k) {
    VS acc[NB][2];
    zero_accumulators(d16, acc);
    for (int32_t p = k * group / 2; p < (k + 1) * group / 2; p += 2) {
      const auto bytes = hn::LoadU(db, codes + static_cast<size_t>(p) * 16);
      const auto low = code_field<4, 0>(bytes);   // rows r0 .. r0 + 7
      const auto high = code_field<4, 4>(bytes);  // rows r0 + 8 .. r0 + 15
#pragma GCC unroll 4
      for (int g = 0; g < NB; ++g) {
        const auto qp = hn::Load(di8, q8[g] + static_cast<size_t>(p) * 16);
        acc[g][0] = hn::Add(acc[g][0], multiply_byte_pairs(low, qp));
        acc[g][1] = hn::Add(acc[g][1], multiply_byte_pairs(high, qp));
      }
    }
#pragma GCC unroll 2
    for (int v = 0; v < 2; ++v) {
      const size_t at = static_cast<size_t>(k) * bt + r0 + 8 * v;
      const VF8 scale = load_halves<DF8>(tile, at);
      const VF8 min = load_halves<DF8>(tile, static_cast<size_t>(n_groups) * bt + at);
#pragma GCC unroll 4
      for (int g = 0; g < NB; ++g) {
        const VF8 dot = hn::Mul(row_sums(acc[g][v]), hn::Set(df, step[g][k]));
        total[g][v] = hn::MulAdd(dot, scale, hn::MulAdd(hn::Set(df, qsum[g][k]), min, total[g][v]));
      }
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) {
    hn::StoreU(total[g][0], df, scores[g] + r0);
    hn::StoreU(total[g][1], df, scores[g] + r0 + 8);
  }
}

#if KVF_PAGED_INT4_QUADS
// With AVX-512 VNNI the same exact integer sums come from vpdpbusd, which
// adds four byte products into each int32 lane. Per 64 code bytes (four
// channel pairs of 16 rows) two byte permutations give one vector per four
// channels whose lane j holds row r0 + j's four codes (kQuadOrder: the
// bytes of rows j and j + 8 are the same, their low and high nibbles), and a
// mask keeps each lane's nibble: the low one in lanes 0-7, the high one in
// lanes 8-15, unshifted, so that those lanes sum 16 times the codes. Each
// vector meets the four channels' int8 query codes broadcast to every lane
// (quantize_query_int8's quad layout: the codes in channel order). Per 64
// bytes: 4 instructions of unpacking and 2 multiply-adds per head, and per
// channel group one vector of 16 rows' sums per head, whose upper lanes'
// factor 16 the rows' scales take back (a power of two: exact). The scores
// are the same floats as int4_pair_scores' (see int4_quad_scores).
struct QuadOrder {
  alignas(64) uint8_t index[2][64];  // channels 0-3, then 4-7 of the four pairs
  alignas(64) uint8_t nibble[64];    // 0x0f in lanes 0-7, 0xf0 in lanes 8-15
};
constexpr QuadOrder make_quad_order() {
  QuadOrder order{};
  for (int m = 0; m < 2; ++m) {
    for (int j = 0; j < 16; ++j) {
      uint8_t* lane = order.index[m] + 4 * j;
      const int row = j % 8;
      lane[0] = static_cast<uint8_t>(32 * m + 2 * row);
      lane[1] = static_cast<uint8_t>(32 * m + 2 * row + 1);
      lane[2] = static_cast<uint8_t>(32 * m + 16 + 2 * row);
      lane[3] = static_cast<uint8_t>(32 * m + 16 + 2 * row + 1);
    }
  }
  for (int b = 0; b < 64; ++b) order.nibble[b] = b < 32 ? 0x0f : 0xf0;
  return order;
}
constexpr QuadOrder kQuadOrder = make_quad_order();

// scores[g][r0, r0 + 16) as int4_pair_scores computes them, with q8[g] in
// the quad layout. Per channel group k the lanes' integer sums S (a row's
// sum I in lanes 0-7, 16 I in lanes 8-15) become total += f32(S) * step_k *
// (scale, or scale / 16 in lanes 8-15) + qsum_k * min: f32(16 I) * step_k
// is exactly 16 times f32(I) * step_k rounded, and the scale's 1/16 takes
// it back exactly, so each row's score is int4_pair_scores' to the bit.
template <int NB>
HWY_INLINE void int4_quad_scores(const int8_t* const* q8, const float* const* step,
                                 const float* const* qsum, const uint8_t* tile, int32_t bt,
                                 int32_t r0, int32_t d, float* const* scores) {
  const int32_t group = kv_quant::channel_group(d);
  const int32_t n_groups = d / group;
  const uint8_t* codes = int4_pair_chunk_codes(tile, bt, r0, d);
  const __m512i first_order = _mm512_load_si512(kQuadOrder.index[0]);
  const __m512i second_order = _mm512_load_si512(kQuadOrder.index[1]);
  const __m512i nibble = _mm512_load_si512(kQuadOrder.nibble);
  // 1 for the rows of low nibbles, 1/16 for those of high ones.
  const __m512 unshift =
      _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(1.0f), _mm512_set1_ps(0.0625f));
  const auto halves = [&](size_t index) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + 2 * index)));
  };
  __m512 total[NB];
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) total[g] = _mm512_setzero_ps();
  for (int32_t k = 0; k < n_groups; ++k) {
    __m512i acc[NB][2];
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) acc[g][0] = acc[g][1] = _mm512_setzero_si512();
    for (int32_t p = k * group / 2; p < (k + 1) * group / 2; p += 4) {
      const __m512i bytes = _mm512_loadu_si512(codes + 16 * p);
      // Channels 2p .. 2p + 3, and 2p + 4 .. 2p + 7, of the 16 rows.
      const __m512i first = _mm512_and_si512(_mm512_permutexvar_epi8(first_order, bytes), nibble);
      const __m512i second = _mm512_and_si512(_mm512_permutexvar_epi8(second_order, bytes), nibble);
#pragma GCC unroll 4
      for (int g = 0; g < NB; ++g) {
        int32_t q_first, q_second;  // the query's codes of the same channels
        std::memcpy(&q_first, q8[g] + 2 * p, 4);
        std::memcpy(&q_second, q8[g] + 2 * p + 4, 4);
        acc[g][0] = _mm512_dpbusd_epi32(acc[g][0], first, _mm512_set1_epi32(q_first));
        acc[g][1] = _mm512_dpbusd_epi32(acc[g][1], second, _mm512_set1_epi32(q_second));
      }
    }
    const size_t at = static_cast<size_t>(k) * bt + r0;
    const __m512 scale = _mm512_mul_ps(halves(at), unshift);
    const __m512 min = halves(static_cast<size_t>(n_groups) * bt + at);
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) {
      const __m512 sums = _mm512_cvtepi32_ps(_mm512_add_epi32(acc[g][0], acc[g][1]));
      const __m512 dot = _mm512_mul_ps(sums, _mm512_set1_ps(step[g][k]));
      total[g] =
          _mm512_fmadd_ps(dot, scale, _mm512_fmadd_ps(_mm512_set1_ps(qsum[g][k]), min, total[g]));
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) _mm512_storeu_ps(scores[g] + r0, total[g]);
}
#endif  // KVF_PAGED_INT4_QUADS

#endif  // KVF_PAGED_INT4_PAIRS

#if KVF_PAGED_INT8_PAIRS
// scores[g][r0, r0 + R) = q[g] · row for the NB heads of one batch, from a
// kInt8Columns tile (R = 16 rows on AVX-512, 8 * V on AVX2), with the query
// rounded to int16 (round_to_steps: codes q16, one step per head).
// Per channel pair c, c + 1 the two columns' R bytes are interleaved (row
// r's two codes side by side) and widened to int16, and PMADDWD adds each
// row's two products into an int32 lane: the row's exact integer sum
// I = q16 · codes (at most 256 * 127 * 32767 < 2^31 in magnitude for
// head_dim 256: no overflow). The score is then f32(I) * step * the row's
// scale, in that order.
template <int NB, int V>
HWY_INLINE void int8_pair_scores(const int16_t* const* q16, const float* step, const uint8_t* tile,
                                 int32_t bt, int32_t r0, int32_t d, float* const* scores) {
  const auto* codes = reinterpret_cast<const int8_t*>(tile + 2 * static_cast<size_t>(bt));
  const auto column = [&](int32_t c) { return codes + static_cast<size_t>(c) * bt + r0; };
  const auto pair_word = [&](int g, int32_t c) {
    int32_t word;
    std::memcpy(&word, q16[g] + c, sizeof word);
    return word;
  };
#if HWY_TARGET <= HWY_AVX3  // 16 rows in one vector (16 | block_tokens here)
  static_assert(V == 2);
  __m512i acc[NB];
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) acc[g] = _mm512_setzero_si512();
  for (int32_t c = 0; c < d; c += 2) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(column(c)));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(column(c + 1)));
    const __m512i k = _mm512_cvtepi8_epi16(_mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_unpacklo_epi8(a, b)), _mm_unpackhi_epi8(a, b), 1));
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) {
      const __m512i qp = _mm512_set1_epi32(pair_word(g, c));
#if HWY_TARGET == HWY_AVX3_DL
      acc[g] = _mm512_dpwssd_epi32(acc[g], k, qp);
#else
      acc[g] = _mm512_add_epi32(acc[g], _mm512_madd_epi16(k, qp));
#endif
    }
  }
  const __m512 scale = _mm512_cvtph_ps(
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + 2 * static_cast<size_t>(r0))));
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) {
    const __m512 dot = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[g]), _mm512_set1_ps(step[g]));
    _mm512_storeu_ps(scores[g] + r0, _mm512_mul_ps(dot, scale));
  }
#else  // AVX2: V vectors of 8 rows, r0 + 8v .. r0 + 8v + 7
  __m256i acc[NB][V];
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) {
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) acc[g][v] = _mm256_setzero_si256();
  }
  for (int32_t c = 0; c < d; c += 2) {
    __m256i k[V];
    if constexpr (V == 2) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(column(c)));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(column(c + 1)));
      k[0] = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(a, b));
      k[1] = _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(a, b));
    } else {
      const __m128i a = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(column(c)));
      const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(column(c + 1)));
      k[0] = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(a, b));
    }
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) {
      const __m256i qp = _mm256_set1_epi32(pair_word(g, c));
#pragma GCC unroll 2
      for (int v = 0; v < V; ++v)
        acc[g][v] = _mm256_add_epi32(acc[g][v], _mm256_madd_epi16(k[v], qp));
    }
  }
#pragma GCC unroll 2
  for (int v = 0; v < V; ++v) {
    const __m256 scale = _mm256_cvtph_ps(_mm_loadu_si128(
        reinterpret_cast<const __m128i*>(tile + 2 * static_cast<size_t>(r0 + 8 * v))));
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) {
      const __m256 dot = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[g][v]), _mm256_set1_ps(step[g]));
      _mm256_storeu_ps(scores[g] + r0 + 8 * v, _mm256_mul_ps(dot, scale));
    }
  }
#endif
}
#endif  // KVF_PAGED_INT8_PAIRS

// Where the codes of one vector of rows sit in a KIVI key column of B bytes
// (kKivi2Columns, kKivi4Columns: row t at byte t % B, bits (t / B) * bits).
// With B a multiple of the lane count, a vector's rows are consecutive bytes
// at one bit offset: one widening load and one shift. With B <= 4 bytes the
// whole column is one 32-bit word, broadcast and shifted per lane.
struct KiviColumnRows {
  size_t offset = 0;                         // load case: first byte
  int shift = 0;                             // load case: bit offset
  alignas(32) uint32_t lane_shifts[8] = {};  // word case: bit of each lane's row
};

// True when the KIVI kernel reads a column of B = g * bits / 8 bytes: whole
// vectors of rows per token group, and one of the two cases above.
HWY_INLINE bool kivi_columns_readable(int32_t g, int32_t bits) {
  const auto lanes = static_cast<int32_t>(hn::Lanes(DN()));
  const int32_t column_bytes = g * bits / 8;
  return g % lanes == 0 && (column_bytes <= 4 || column_bytes % lanes == 0);
}

HWY_INLINE KiviColumnRows kivi_column_rows(int32_t first_row, int32_t column_bytes, int32_t bits) {
  KiviColumnRows where;
  where.offset = static_cast<size_t>(first_row % column_bytes);
  where.shift = bits * (first_row / column_bytes);
  for (int32_t l = 0; l < static_cast<int32_t>(hn::Lanes(DN())); ++l) {
    const int32_t t = first_row + l;
    where.lane_shifts[l] =
        static_cast<uint32_t>(8 * (t % column_bytes) + bits * (t / column_bytes));
  }
  return where;
}

// scores[g][v * lanes + l] = bias[g] + sum_c w[g][c] * code(row r0 + v * lanes + l, c)
// over the d columns of one KIVI token group (codes: its column bytes), for
// the NB heads of one batch: w = query * the channel's scale and bias = query
// · the channels' mins (kivi_token_group_scores), so the codes are multiplied
// as they are, with no decode.
// kWord: 0 for widening loads, 4 for a column of exactly one 32-bit word,
// 1 for shorter columns (assembled byte by byte, never read past the column).
template <int NB, int V, int kWord>
HWY_INLINE void kivi_column_scores(const float (*w)[kPagedMaxHeadDim], const float* bias,
                                   const uint8_t* codes, int32_t column_bytes, int32_t bits,
                                   int32_t r0, int32_t d, float* const* scores) {
  const DN dn;
  const hn::RebindToUnsigned<DN> du32;
  const hn::RebindToSigned<DN> di32;
  const hn::Rebind<uint8_t, DN> du8;
  using VN = hn::Vec<DN>;
  using VU = hn::Vec<decltype(du32)>;
  const auto lanes = static_cast<int32_t>(hn::Lanes(dn));
  const VU mask = hn::Set(du32, (1u << bits) - 1);
  KiviColumnRows where[V];
  VU lane_shifts[V];
#pragma GCC unroll 2
  for (int v = 0; v < V; ++v) {
    where[v] = kivi_column_rows(r0 + v * lanes, column_bytes, bits);
    lane_shifts[v] = hn::Load(du32, where[v].lane_shifts);
  }
  VN acc[NB][V];
  zero_accumulators(dn, acc);
  for (int32_t c = 0; c < d; ++c) {
    const uint8_t* column = codes + static_cast<size_t>(c) * column_bytes;
    VN k[V];
    if constexpr (kWord != 0) {
      uint32_t word = 0;
      if constexpr (kWord == 4) {
        std::memcpy(&word, column, sizeof word);
      } else {
        for (int32_t i = 0; i < column_bytes; ++i) word |= uint32_t{column[i]} << (8 * i);
      }
      const VU all = hn::Set(du32, word);
#pragma GCC unroll 2
      for (int v = 0; v < V; ++v) {
        k[v] = hn::ConvertTo(dn, hn::BitCast(di32, hn::And(all >> lane_shifts[v], mask)));
      }
    } else {
#pragma GCC unroll 2
      for (int v = 0; v < V; ++v) {
        const VU bytes = hn::PromoteTo(du32, hn::LoadU(du8, column + where[v].offset));
        k[v] = hn::ConvertTo(
            dn, hn::BitCast(di32, hn::And(hn::ShiftRightSame(bytes, where[v].shift), mask)));
      }
    }
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) {
      const VN wg = hn::Set(dn, w[g][c]);
#pragma GCC unroll 2
      for (int v = 0; v < V; ++v) acc[g][v] = hn::MulAdd(wg, k[v], acc[g][v]);
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) {
#pragma GCC unroll 2
    for (int v = 0; v < V; ++v) {
      hn::StoreU(hn::Add(acc[g][v], hn::Set(dn, bias[g])), dn, scores[g] + r0 + v * lanes);
    }
  }
}

#if HWY_TARGET == HWY_AVX3_DL
// On AVX-512 with VNNI and VBMI the codes meet w8 in integer dot products
// (VPDPBUSD: four unsigned codes times four signed bytes, summed into an
// int32 lane): a byte permutation (VPERMB) turns the column bytes of four
// channels into one 4-byte lane per byte row, and each bit field of those
// bytes is then a row's four codes. By instruction count several times fewer
// operations per key than converting the codes to floats; the query's
// folding then costs about as much as the products (docs/performance.md).

// The folded query for the VNNI kernels: w8 and each channel group's step.
template <int NB>
struct KiviInt8Queries {
  alignas(64) int8_t w8[NB][kPagedMaxHeadDim];
  float step[NB][kPagedMaxHeadDim / 32];  // these kernels take groups of 32
  float bias[NB];
};

// The rows' sums at the end of one channel group: scores = bias + step * acc
// for the group k == 0, scores += step * acc after it.
HWY_INLINE void kivi_store_sums(__m512 sums, float step, float bias, bool first, float* out) {
  const __m512 base = first ? _mm512_set1_ps(bias) : _mm512_loadu_ps(out);
  _mm512_storeu_ps(out, _mm512_fmadd_ps(sums, _mm512_set1_ps(step), base));
}
HWY_INLINE void kivi_store_sums(__m256 sums, float step, float bias, bool first, float* out) {
  const __m256 base = first ? _mm256_set1_ps(bias) : _mm256_loadu_ps(out);
  _mm256_storeu_ps(out, _mm256_fmadd_ps(sums, _mm256_set1_ps(step), base));
}

// The bit field f of every byte (f * kBits: its first bit).
template <int kBits>
HWY_INLINE __m512i kivi_field(__m512i bytes, int f) {
  const __m512i mask = _mm512_set1_epi8(static_cast<char>((1 << kBits) - 1));
  // 16-bit shifts: the mask drops what crosses from the next byte.
  return _mm512_and_si512(f == 0 ? bytes : _mm512_srli_epi16(bytes, f * kBits), mask);
}

// acc[g][i] += bit field i of `bytes` times head g's w8 at channel c, whose
// Word (4 or 8 bytes) is broadcast to every lane of that size.
template <class Word, int NB, int kBits>
HWY_INLINE void kivi_field_products(const KiviInt8Queries<NB>& f, int32_t c, __m512i bytes,
                                    __m512i (&acc)[NB][8 / kBits]) {
  __m512i w8[NB];
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) {
    Word word;
    std::memcpy(&word, f.w8[g] + c, sizeof word);
    w8[g] = sizeof(Word) == 8 ? _mm512_set1_epi64(static_cast<int64_t>(word))
                              : _mm512_set1_epi32(static_cast<int32_t>(word));
  }
#pragma GCC unroll 4
  for (int i = 0; i < 8 / kBits; ++i) {
    const __m512i field = kivi_field<kBits>(bytes, i);
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) acc[g][i] = _mm512_dpbusd_epi32(acc[g][i], field, w8[g]);
  }
}

// Columns of 8 bytes (kivi2 with g = 32, kivi4 with g = 16): row i + 8 f is
// field f of byte i. Eight columns (64 bytes) are permuted so that int32 lane
// 2i holds byte i of columns c..c+3 and lane 2i + 1 that of c+4..c+7; w8's
// 8 bytes broadcast to every 64-bit lane meet them, and the two lanes of a
// byte row are added at the end of the channel group.
template <int NB, int kBits>
HWY_INLINE void kivi_octet_scores(const KiviInt8Queries<NB>& f, const uint8_t* codes, int32_t d,
                                  float* const* scores) {
  constexpr int kFields = 8 / kBits;
  alignas(64) static constexpr auto kIndex = [] {
    std::array<uint8_t, 64> index{};
    for (int i = 0; i < 8; ++i) {
      for (int h = 0; h < 2; ++h) {
        for (int k = 0; k < 4; ++k)
          index[4 * (2 * i + h) + k] = static_cast<uint8_t>(8 * (4 * h + k) + i);
      }
    }
    return index;
  }();
  const __m512i transpose = _mm512_load_si512(kIndex.data());
  for (int32_t k = 0; k < d / 32; ++k) {
    __m512i acc[NB][kFields] = {};  // zeros
    for (int32_t c = 32 * k; c < 32 * (k + 1); c += 8) {
      const __m512i bytes = _mm512_permutexvar_epi8(
          transpose, _mm512_loadu_si512(codes + static_cast<size_t>(c) * 8));
      kivi_field_products<int64_t, NB, kBits>(f, c, bytes, acc);
    }
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) {
#pragma GCC unroll 4
      for (int i = 0; i < kFields; ++i) {
        const __m512i pairs = _mm512_add_epi32(acc[g][i], _mm512_srli_epi64(acc[g][i], 32));
        const __m256 sums = _mm256_cvtepi32_ps(_mm512_cvtepi64_epi32(pairs));
        kivi_store_sums(sums, f.step[g][k], f.bias[g], k == 0, scores[g] + 8 * i);
      }
    }
  }
}

// Columns of a multiple of 16 bytes (kivi4 with g = 32, kivi2 with g = 64):
// per 16 byte rows j0.., four columns' 16 bytes are permuted so that int32
// lane i holds byte j0 + i of columns c..c+3; field f is then row
// j0 + i + f * B, and w8's 4 bytes of those channels are broadcast.
template <int NB, int kBits>
HWY_INLINE void kivi_quad_scores(const KiviInt8Queries<NB>& f, const uint8_t* codes,
                                 int32_t column_bytes, int32_t d, float* const* scores) {
  constexpr int kFields = 8 / kBits;
  alignas(64) static constexpr auto kIndex = [] {
    std::array<uint8_t, 64> index{};
    for (int i = 0; i < 16; ++i) {
      for (int k = 0; k < 4; ++k) index[4 * i + k] = static_cast<uint8_t>(16 * k + i);
    }
    return index;
  }();
  const __m512i transpose = _mm512_load_si512(kIndex.data());
  const auto column = [&](int32_t c, int32_t j0) {
    return codes + static_cast<size_t>(c) * column_bytes + j0;
  };
  for (int32_t j0 = 0; j0 < column_bytes; j0 += 16) {
    for (int32_t k = 0; k < d / 32; ++k) {
      __m512i acc[NB][kFields] = {};  // zeros
      for (int32_t c = 32 * k; c < 32 * (k + 1); c += 4) {
        __m512i columns;
        if (column_bytes == 16) {  // the four columns are adjacent
          columns = _mm512_loadu_si512(column(c, 0));
        } else {
          const __m256i low = _mm256_inserti128_si256(
              _mm256_castsi128_si256(
                  _mm_loadu_si128(reinterpret_cast<const __m128i*>(column(c, j0)))),
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(column(c + 1, j0))), 1);
          const __m256i high = _mm256_inserti128_si256(
              _mm256_castsi128_si256(
                  _mm_loadu_si128(reinterpret_cast<const __m128i*>(column(c + 2, j0)))),
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(column(c + 3, j0))), 1);
          columns = _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
        }
        kivi_field_products<int32_t, NB, kBits>(f, c, _mm512_permutexvar_epi8(transpose, columns),
                                                acc);
      }
#pragma GCC unroll 4
      for (int g = 0; g < NB; ++g) {
#pragma GCC unroll 4
        for (int i = 0; i < kFields; ++i) {
          kivi_store_sums(_mm512_cvtepi32_ps(acc[g][i]), f.step[g][k], f.bias[g], k == 0,
                          scores[g] + j0 + i * column_bytes);
        }
      }
    }
  }
}

// The folded query as KiviFoldedQueries defines it, for the VNNI kernels, 16
// channels per vector.
template <int NB>
HWY_INLINE void fold_kivi_queries_int8(const float* const* q, const uint8_t* group_tile, int32_t d,
                                       KiviInt8Queries<NB>& f) {
  const auto halves = [&](int32_t index) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(group_tile + 2 * static_cast<size_t>(index))));
  };
  __m512 bias[NB];
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) bias[g] = _mm512_setzero_ps();
  for (int32_t c = 0; c < d; c += 32) {  // one channel group
    const __m512 scale0 = halves(c), scale1 = halves(c + 16);
    const __m512 min0 = halves(d + c), min1 = halves(d + c + 16);
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) {
      const __m512 q0 = _mm512_loadu_ps(q[g] + c), q1 = _mm512_loadu_ps(q[g] + c + 16);
      const __m512 w0 = _mm512_mul_ps(q0, scale0), w1 = _mm512_mul_ps(q1, scale1);
      bias[g] = _mm512_fmadd_ps(q0, min0, _mm512_fmadd_ps(q1, min1, bias[g]));
      const float a = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(w0), _mm512_abs_ps(w1)));
      f.step[g][c / 32] = a / 127.0f;
      const __m512 inverse = _mm512_set1_ps(a > 0.0f ? 127.0f / a : 0.0f);
      // To nearest, ties to even (the default rounding mode), saturated to int8.
      _mm_storeu_si128(reinterpret_cast<__m128i*>(f.w8[g] + c),
                       _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(w0, inverse))));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(f.w8[g] + c + 16),
                       _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(w1, inverse))));
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) f.bias[g] = _mm512_reduce_add_ps(bias[g]);
}

// scores[g][0, g_rows) of one token group in a layout kivi_integer_layout
// accepts (scales and mins at group_tile, column codes at codes), with VNNI.
template <int NB>
HWY_INLINE void kivi_integer_scores(const float* const* q, const uint8_t* group_tile,
                                    const uint8_t* codes, int32_t bits, int32_t column_bytes,
                                    int32_t d, float* const* scores) {
  KiviInt8Queries<NB> f;
  fold_kivi_queries_int8<NB>(q, group_tile, d, f);
  with_kivi_bits(bits, [&](auto b) HWY_ATTR {
    if (column_bytes == 8) {
      kivi_octet_scores<NB, decltype(b)::value>(f, codes, d, scores);
    } else {
      kivi_quad_scores<NB, decltype(b)::value>(f, codes, column_bytes, d, scores);
    }
  });
}
#endif  // HWY_TARGET == HWY_AVX3_DL

#if KVF_PAGED_INT4_PAIRS
// True when the integer kernels (kivi_integer_scores) read this group
// layout: channel groups of 32, and columns of 8 bytes or a multiple of 16.
HWY_INLINE bool kivi_integer_layout(int32_t column_bytes, int32_t d) {
  return d % 32 == 0 && (column_bytes == 8 || column_bytes % 16 == 0);
}
#endif

#if KVF_PAGED_INT4_PAIRS && HWY_TARGET != HWY_AVX3_DL
// Without VNNI (AVX2, AVX-512 without it) the codes meet w8 in PMADDUBSW:
// two channels' codes of one row side by side in a byte pair, times the
// pair of w8 bytes, summed into int16. Within a channel group every int16
// lane adds 8 such pairs of at most 2 * 15 * 127: 30480, no overflow.

// The folded query for this kernel: per channel quad c..c+3, w8 as byte
// pairs (c, c+2) in the lower and (c+1, c+3) in the upper 128 bits, each
// repeated 8 times; each channel group's step.
template <int NB>
struct KiviPairQueries {
  alignas(32) int8_t pairs[NB][kPagedMaxHeadDim / 4][32];
  float step[NB][kPagedMaxHeadDim / 32];  // this kernel takes groups of 32
  float bias[NB];
};

template <int NB>
HWY_INLINE void fold_kivi_queries_pairs(const float* const* q, const uint8_t* group_tile, int32_t d,
                                        KiviPairQueries<NB>& f) {
  const auto halves = [&](int32_t index) {
    return _mm256_cvtph_ps(_mm_loadu_si128(
        reinterpret_cast<const __m128i*>(group_tile + 2 * static_cast<size_t>(index))));
  };
  const __m256 sign = _mm256_set1_ps(-0.0f);
  // packs leave the 4-byte runs of four vectors interleaved by 128-bit lane.
  const __m256i runs = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256i spread = _mm256_setr_epi8(0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2,  //
                                          1, 3, 1, 3, 1, 3, 1, 3, 1, 3, 1, 3, 1, 3, 1, 3);
  __m256 bias[NB];
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) bias[g] = _mm256_setzero_ps();
  for (int32_t c = 0; c < d; c += 32) {  // one channel group
    __m256 scale[4], min[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      scale[i] = halves(c + 8 * i);
      min[i] = halves(d + c + 8 * i);
    }
#pragma GCC unroll 4
    for (int g = 0; g < NB; ++g) {
      __m256 w[4];
      __m256 amax = _mm256_setzero_ps();
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        const __m256 qi = _mm256_loadu_ps(q[g] + c + 8 * i);
        w[i] = _mm256_mul_ps(qi, scale[i]);
        bias[g] = _mm256_fmadd_ps(qi, min[i], bias[g]);
        amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, w[i]));
      }
      __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
      m = _mm_max_ps(m, _mm_movehl_ps(m, m));
      m = _mm_max_ss(m, _mm_movehdup_ps(m));
      const float a = _mm_cvtss_f32(m);
      f.step[g][c / 32] = a / 127.0f;
      const __m256 inverse = _mm256_set1_ps(a > 0.0f ? 127.0f / a : 0.0f);
      __m256i codes[4];
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) codes[i] = _mm256_cvtps_epi32(_mm256_mul_ps(w[i], inverse));
      const __m256i bytes =
          _mm256_permutevar8x32_epi32(_mm256_packs_epi16(_mm256_packs_epi32(codes[0], codes[1]),
                                                         _mm256_packs_epi32(codes[2], codes[3])),
                                      runs);
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {  // w8 of channels c + 4i .. c + 4i + 3: lane i of bytes
        const __m256i quad = _mm256_permutevar8x32_epi32(bytes, _mm256_set1_epi32(i));
        _mm256_store_si256(reinterpret_cast<__m256i*>(f.pairs[g][c / 4 + i]),
                           _mm256_shuffle_epi8(quad, spread));
      }
    }
  }
#pragma GCC unroll 4
  for (int g = 0; g < NB; ++g) {
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(bias[g]), _mm256_extractf128_ps(bias[g], 1));
    const __m128 p = _mm_add_ps(h, _mm_movehl_ps(h, h));
    f.bias[g] = _mm_cvtss_f32(_mm_add_ss(p, _mm_movehdup_ps(p)));
  }
}

// scores[g][0, g_rows) from the columns of one token group: per 8 byte rows
// j.. of channels c..c+3, the lower 128 bits hold the byte pairs (c, c+2)
// and the upper (c+1, c+3) of those rows (kHalves = 1: 8-byte columns, one
// load and a qword permutation; kHalves = 2: columns of a multiple of 16
// bytes, 16 byte rows from two loads of two columns each). Bit field f of
// byte row j is row j + f * B.
template <int NB, int kBits, int kHalves>
HWY_INLINE void kivi_pair_scores(const KiviPairQueries<NB>& f, const uint8_t* codes,
                                 int32_t column_bytes, int32_t d, float* const* scores) {
  const __m256i interleave = _mm256_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7,
                                              15,  //
                                              0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
  const __m256i mask = _mm256_set1_epi8(static_cast<char>((1 << kBits) - 1));
  const auto column = [&](int32_t c, int32_t j0) {
    return reinterpret_cast<const __m128i*>(codes + static_cast<size_t>(c) * column_bytes + j0);
  };
  for (int32_t j0 = 0; j0 < column_bytes; j0 += 8 * kHalves) {
    for (int32_t k = 0; k < d / 32; ++k) {
      for (int i = 0; i < 8 / kBits; ++i) {
        __m256i acc[kHalves][NB] = {};  // zeros
        for (int32_t c = 32 * k; c < 32 * (k + 1); c += 4) {
          __m256i part[kHalves];
          if constexpr (kHalves == 1) {
            part[0] = _mm256_permute4x64_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                                   codes + static_cast<size_t>(c) * 8)),
                                               0xD8);
          } else {
            const __m256i low = _mm256_loadu2_m128i(column(c + 1, j0), column(c, j0));
            const __m256i high = _mm256_loadu2_m128i(column(c + 3, j0), column(c + 2, j0));
            part[0] = _mm256_unpacklo_epi64(low, high);
            part[1] = _mm256_unpackhi_epi64(low, high);
          }
#pragma GCC unroll 2
          for (int h = 0; h < kHalves; ++h) {
            __m256i field = _mm256_shuffle_epi8(part[h], interleave);
            if (i > 0) field = _mm256_srli_epi16(field, i * kBits);
            field = _mm256_and_si256(field, mask);
#pragma GCC unroll 4
            for (int g = 0; g < NB; ++g) {
              const __m256i w =
                  _mm256_load_si256(reinterpret_cast<const __m256i*>(f.pairs[g][c / 4]));
              acc[h][g] = _mm256_add_epi16(acc[h][g], _mm256_maddubs_epi16(field, w));
            }
          }
        }
#pragma GCC unroll 2
        for (int h = 0; h < kHalves; ++h) {
#pragma GCC unroll 4
          for (int g = 0; g < NB; ++g) {
            // The two 128-bit halves: the same 8 rows over other channel pairs.
            const __m256i sums =
                _mm256_add_epi32(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(acc[h][g])),
                                 _mm256_cvtepi16_epi32(_mm256_extracti128_si256(acc[h][g], 1)));
            float* out = scores[g] + j0 + 8 * h + i * column_bytes;
            const __m256 base = k == 0 ? _mm256_set1_ps(f.bias[g]) : _mm256_loadu_ps(out);
            _mm256_storeu_ps(
                out, _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_set1_ps(f.step[g][k]), base));
          }
        }
      }
    }
  }
}

// scores[g][0, g_rows) of one token group in a layout kivi_integer_layout
// accepts (scales and mins at group_tile, column codes at codes), with PMADDUBSW.
template <int NB>
HWY_INLINE void kivi_integer_scores(const float* const* q, const uint8_t* group_tile,
                                    const uint8_t* codes, int32_t bits, int32_t column_bytes,
                                    int32_t d, float* const* scores) {
  KiviPairQueries<NB> f;
  fold_kivi_queries_pairs<NB>(q, group_tile, d, f);
  with_kivi_bits(bits, [&](auto b) HWY_ATTR {
    if (column_bytes == 8) {
      kivi_pair_scores<NB, decltype(b)::value, 1>(f, codes, column_bytes, d, scores);
    } else {
      kivi_pair_scores<NB, decltype(b)::value, 2>(f, codes, column_bytes, d, scores);
    }
  });
}
#endif  // KVF_PAGED_INT4_PAIRS && HWY_TARGET != HWY_AVX3_DL

// scores[g][0, g_rows) for the NB heads of one batch over one KIVI token group
// (its scales, mins and column codes at `group_tile`).
template <int NB>
HWY_INLINE void kivi_token_group_scores(const float* const* q, const uint8_t* group_tile,
                                        int32_t g_rows, int32_t bits, int32_t d,
                                        float* const* scores, TilePrefetcher& ahead) {
  const uint8_t* codes = group_tile + kv_kernels::channel_group_codes_offset(d);
  const int32_t column_bytes = g_rows * bits / 8;
#if KVF_PAGED_INT4_PAIRS
  if (kivi_integer_layout(column_bytes, d)) {
    ahead.step(g_rows);
    kivi_integer_scores<NB>(q, group_tile, codes, bits, column_bytes, d, scores);
    return;
  }
#endif
  KiviFoldedQueries<NB> f;
  fold_kivi_queries<DF, NB>(q, group_tile, d, f);  // d: a multiple of DF's lanes here
  const auto rows = static_cast<int32_t>(hn::Lanes(DN()));
  auto run = [&](auto word) HWY_ATTR {
    constexpr int kWord = decltype(word)::value;
    int32_t r0 = 0;
    for (; r0 + 2 * rows <= g_rows; r0 += 2 * rows) {
      ahead.step(2 * rows);
      kivi_column_scores<NB, 2, kWord>(f.w, f.bias, codes, column_bytes, bits, r0, d, scores);
    }
    if (r0 < g_rows) {
      ahead.step(rows);
      kivi_column_scores<NB, 1, kWord>(f.w, f.bias, codes, column_bytes, bits, r0, d, scores);
    }
  };
  if (column_bytes == 4) {
    run(std::integral_constant<int, 4>());
  } else if (column_bytes < 4) {
    run(std::integral_constant<int, 1>());
  } else {
    run(std::integral_constant<int, 0>());
  }
}
#endif

// Values by token pairs (kInt4TokenPairs, kInt2TokenPairs) are summed in
// place, in f32. A vector of L code bytes of one row pair's (or quad's) 32
// holds, in each code field, L / 2 channels of two rows, the rows
// alternating lane by lane; multiplied with the two rows' weights
// alternating the same way, it accumulates into a pair accumulator whose
// lane 2m + j sums row parity j's share of channel m. The two parities are
// added once per task (add_token_pair_sums). Each row's scale in each channel
// group is folded into its weights per chunk (fold_token_pair_weights), and
// the mins' share, sum(weight * min), the same for all 32 channels of a
// group, accumulates per head and group, lane by lane until the end.
struct TokenPairSums {
  // Per head: per channel group k, per slice of L bytes at b, the pair
  // accumulator of the low channels (32k + b / 2 ...) at 64k + 2b, of the
  // high ones (32k + 16 + b / 2 ...) L floats after it.
  alignas(64) float pairs[kPagedMaxGroup][2 * kPagedMaxHeadDim];
  alignas(64) float mins[kPagedMaxGroup][kPagedMaxHeadDim / 32][hn::MaxLanes(DF())];
  // The chunk's weights times each row's scale, per head and channel group.
  alignas(64) float weights[kPagedMaxGroup][kPagedMaxHeadDim / 32][kChunkRows];
};

// The encoded token-pair tiles of one chunk: tile t holds rows[t] rows, the
// first of them the chunk's row offset[t].
struct ChunkTiles {
  const uint8_t* data[kChunkRows];
  int32_t offset[kChunkRows];
  int32_t rows[kChunkRows];
  int32_t count = 0;

  void add(const uint8_t* tile, int32_t first_row, int32_t n_rows) {
    data[count] = tile;
    offset[count] = first_row;
    rows[count] = n_rows;
    ++count;
  }
};

// For the chunk's token-pair tiles: sums.weights[g][k][offset[t] + r] =
// weights[g][offset[t] + r] * scale of row r of tile t in group k (0 for the
// rows after the tile's, up to the next multiple of the lane count), and
// sums.mins[g][k] = sums.mins[g][k] * rescale[g] + the weights times the
// rows' mins, lane by lane.
HWY_INLINE void fold_token_pair_weights(TokenPairSums& sums, const float* const* weights,
                                        const float* rescale, int32_t group,
                                        const ChunkTiles& tiles, int32_t bt, int32_t d) {
  const DF df;
  using V = hn::Vec<DF>;
  const auto lanes = static_cast<int32_t>(hn::Lanes(df));
  const int32_t n_groups = d / 32;
  for (int32_t k = 0; k < n_groups; ++k) {
    V min_sums[kPagedMaxGroup];
    for (int32_t g = 0; g < group; ++g) {
      min_sums[g] = hn::Mul(hn::Load(df, sums.mins[g][k]), hn::Set(df, rescale[g]));
    }
    for (int32_t t = 0; t < tiles.count; ++t) {
      for (int32_t r0 = 0; r0 < tiles.rows[t]; r0 += lanes) {  // bt is a multiple of 16
        const auto keep = hn::FirstN(df, static_cast<size_t>(tiles.rows[t] - r0));
        const V scale = load_halves(tiles.data[t], static_cast<size_t>(k) * bt + r0);
        const V min = load_halves(tiles.data[t], static_cast<size_t>(n_groups + k) * bt + r0);
        const int32_t at = tiles.offset[t] + r0;
        for (int32_t g = 0; g < group; ++g) {
          const V p = hn::LoadU(df, weights[g] + at);
          // Masked after the products: rows never written may hold any bits.
          hn::StoreU(hn::IfThenElseZero(keep, hn::Mul(p, scale)), df, sums.weights[g][k] + at);
          min_sums[g] = hn::Add(min_sums[g], hn::IfThenElseZero(keep, hn::Mul(p, min)));
        }
      }
    }
    for (int32_t g = 0; g < group; ++g) hn::Store(min_sums[g], df, sums.mins[g][k]);
  }
}

#if KVF_PAGED_ROW_BATCH

// One chunk's token-pair tiles of kBits-bit values, for the NB heads
// [g0, g0 + NB): sums.pairs = sums.pairs * rescale + each tile's rows times
// their folded weights. The first slice requests `ahead`'s lines, 16 rows' share
// at a time, when step_ahead.
template <int kBits, int NB>
HWY_INLINE void token_pair_sums(TokenPairSums& sums, int32_t g0, const float* rescale,
                                const ChunkTiles& tiles, int32_t bt, int32_t d,
                                TilePrefetcher& ahead, bool step_ahead) {
  const DF df;
  const auto lanes = static_cast<int32_t>(hn::Lanes(df));
  const int32_t n_groups = d / 32;
  constexpr int32_t kRowsPerUnit = 8 / kBits;                      // rows per 32-byte unit
  constexpr size_t kGroupBytes = 64 * kBits;                       // per 16 rows and group
  const size_t codes_at = 4 * static_cast<size_t>(n_groups) * bt;  // after scales and mins
  for (int32_t k = 0; k < n_groups; ++k) {
    for (int32_t b = 0; b < 32; b += lanes) {
      VF low[NB], high[NB];
#pragma GCC unroll 4
      for (int g = 0; g < NB; ++g) {
        const VF s = hn::Set(df, rescale[g0 + g]);
        float* at = sums.pairs[g0 + g] + 64 * k + 2 * b;
        low[g] = hn::Mul(s, hn::Load(df, at));
        high[g] = hn::Mul(s, hn::Load(df, at + lanes));
      }
      for (int32_t t = 0; t < tiles.count; ++t) {
        const uint8_t* codes = tiles.data[t] + codes_at + static_cast<size_t>(k) * kGroupBytes + b;
        const int32_t rows = tiles.rows[t];
        const float* w[NB];
#pragma GCC unroll 4
        for (int g = 0; g < NB; ++g) w[g] = sums.weights[g0 + g][k] + tiles.offset[t];
        for (int32_t r16 = 0; r16 < rows; r16 += 16) {
          if (step_ahead && k == 0 && b == 0) ahead.step(16);
          const uint8_t* chunk = codes + static_cast<size_t>(r16 / 16) * n_groups * kGroupBytes;
          const int32_t units = std::min(16, rows - r16 + kRowsPerUnit - 1) / kRowsPerUnit;
#pragma GCC unroll 8
          for (int32_t u = 0; u < units; ++u) {
            const auto v = widen_bytes(chunk + 32 * u);
            const int32_t r = r16 + kRowsPerUnit * u;
            if constexpr (kBits == 4) {  // low nibble: low channels; high: high ones
              const VF low_codes = code_field_floats<4, 0>(v);
              const VF high_codes = code_field_floats<4, 4>(v);
#pragma GCC unroll 4
              for (int g = 0; g < NB; ++g) {
                const VF pair = alternating_pair(w[g] + r);
                low[g] = hn::MulAdd(pair, low_codes, low[g]);
                high[g] = hn::MulAdd(pair, high_codes, high[g]);
              }
            } else {  // low and high channels of rows r, r + 1, then of rows r + 2, r + 3
              const VF low01 = code_field_floats<2, 0>(v);
              const VF high01 = code_field_floats<2, 2>(v);
              const VF low23 = code_field_floats<2, 4>(v);
              const VF high23 = code_field_floats<2, 6>(v);
#pragma GCC unroll 4
              for (int g = 0; g < NB; ++g) {
                const VF pair01 = alternating_pair(w[g] + r);
                const VF pair23 = alternating_pair(w[g] + r + 2);
                low[g] = hn::MulAdd(pair23, low23, hn::MulAdd(pair01, low01, low[g]));
                high[g] = hn::MulAdd(pair23, high23, hn::MulAdd(pair01, high01, high[g]));
              }
            }
          }
        }
      }
#pragma GCC unroll 4
      for (int g = 0; g < NB; ++g) {
        float* at = sums.pairs[g0 + g] + 64 * k + 2 * b;
        hn::Store(low[g], df, at);
        hn::Store(high[g], df, at + lanes);
      }
    }
  }
}
#endif

// acc[g][c] += both row parities of channel c's pair accumulator + the
// mins' share of its channel group, for every head g.
HWY_INLINE void add_token_pair_sums(const TokenPairSums& sums, int32_t group, int32_t d,
                                    float (*acc)[kPagedMaxHeadDim]) {
  const auto lanes = static_cast<int32_t>(hn::Lanes(DF()));
  for (int32_t g = 0; g < group; ++g) {
    for (int32_t k = 0; k < d / 32; ++k) {
      const float min_share = hn::GetLane(hn::SumOfLanes(DF(), hn::Load(DF(), sums.mins[g][k])));
      for (int32_t b = 0; b < 32; b += lanes) {
        const float* low = sums.pairs[g] + 64 * k + 2 * b;
        const float* high = low + lanes;
        for (int32_t m = 0; m < lanes / 2; ++m) {
          float* out = acc[g] + 32 * k + b / 2 + m;
          out[0] += low[2 * m] + low[2 * m + 1] + min_share;
          out[16] += high[2 * m] + high[2 * m + 1] + min_share;
        }
      }
    }
  }
}

// What the score kernel of a column format needs besides the tile, fixed for
// one task.
struct ColumnScoring {
  KvRowFormat format = KvRowFormat::kOpaque;
  const float* const* q = nullptr;      // the group's queries (pre-scaled, rotated if the keys are)
  const float* const* qsum = nullptr;   // kInt4Pairs: each query's sum over each channel group
  const int8_t* const* q8 = nullptr;    // kInt4Pairs: quantize_query_int8's pairs
  const float* const* step = nullptr;   // kInt4Pairs: each query's step per channel group
  const int16_t* const* q16 = nullptr;  // kInt8Columns: the query's int16 codes
  const float* q16_step = nullptr;      // kInt8Columns: each query's int16 step
  int32_t group = 0;                    // query heads
  int32_t bt = 0;                       // block_tokens
  int32_t d = 0;                        // head_dim
  int32_t grid_tokens = 0;              // KIVI: g
};

// scores[g][0, bt) = q[g] · row r of one tile in a column format, for every
// head g of the group (block_tokens a multiple of the format's vector of rows:
// reads_in_place). Rows past the ones the query reads hold whatever the tile
// holds there; their scores are computed and never used.
HWY_INLINE void tile_column_scores(const ColumnScoring& cs, const uint8_t* tile,
                                   float* const* scores, TilePrefetcher& ahead) {
#if KVF_PAGED_ROW_BATCH
  const auto lanes = static_cast<int32_t>(hn::Lanes(DF()));
  const int32_t bt = cs.bt;
  const int32_t d = cs.d;
  auto run = [&](auto f) HWY_ATTR {
    constexpr KvRowFormat F = decltype(f)::value;
    for_head_batches(cs.group, [&](int32_t g, auto nb) HWY_ATTR {
      constexpr int NB = decltype(nb)::value;
      int32_t r0 = 0;
      for (; r0 + 2 * lanes <= bt; r0 += 2 * lanes) {
        ahead.step(2 * lanes);
        column_scores<F, NB, 2>(cs.q + g, tile, bt, r0, d, scores + g);
      }
      if (r0 < bt) {
        ahead.step(lanes);
        column_scores<F, NB, 1>(cs.q + g, tile, bt, r0, d, scores + g);
      }
    });
  };
  switch (cs.format) {
    case KvRowFormat::kF16Columns:
      run(std::integral_constant<KvRowFormat, KvRowFormat::kF16Columns>());
      break;
    case KvRowFormat::kBF16Columns:
      run(std::integral_constant<KvRowFormat, KvRowFormat::kBF16Columns>());
      break;
    case KvRowFormat::kInt8Columns:
#if KVF_PAGED_INT8_PAIRS
      for_head_batches(cs.group, [&](int32_t g, auto nb) HWY_ATTR {
        constexpr int NB = decltype(nb)::value;
        int32_t r0 = 0;
        for (; r0 + 16 <= bt; r0 += 16) {  // two vectors of rows on AVX2, one on AVX-512
          ahead.step(16);
          int8_pair_scores<NB, 2>(cs.q16 + g, cs.q16_step + g, tile, bt, r0, d, scores + g);
        }
#if HWY_TARGET == HWY_AVX2
        if (r0 < bt) {  // 8 rows left (bt % lanes == 0: reads_in_place)
          ahead.step(bt - r0);
          int8_pair_scores<NB, 1>(cs.q16 + g, cs.q16_step + g, tile, bt, r0, d, scores + g);
        }
#endif
      });
#else
      run(std::integral_constant<KvRowFormat, KvRowFormat::kInt8Columns>());
#endif
      break;
    case KvRowFormat::kInt4Pairs:
      for_head_batches(cs.group, [&](int32_t g, auto nb) HWY_ATTR {
        constexpr int NB = decltype(nb)::value;
        for (int32_t r0 = 0; r0 < bt; r0 += 16) {  // the codec guarantees 16 | bt
          ahead.step(16);
#if KVF_PAGED_INT4_QUADS
          int4_quad_scores<NB>(cs.q8 + g, cs.step + g, cs.qsum + g, tile, bt, r0, d, scores + g);
#elif KVF_PAGED_INT4_PAIRS
          int4_pair_scores<NB>(cs.q8 + g, cs.step + g, cs.qsum + g, tile, bt, r0, d, scores + g);
#else
          int4_pair_float_scores<NB>(cs.q + g, cs.qsum + g, tile, bt, r0, d, scores + g);
#endif
        }
      });
      break;
    default: {
      KVF_CHECK(is_kivi_format(cs.format));
      const int32_t bits = kivi_bits(cs.format);
      const int32_t g_rows = cs.grid_tokens;
      const size_t group_bytes = kv_kernels::channel_group_bytes(d, bits, g_rows);
      for_head_batches(cs.group, [&](int32_t g, auto nb) HWY_ATTR {
        float* at[4];
        for (int32_t t0 = 0; t0 < bt; t0 += g_rows) {
          for (int32_t i = 0; i < decltype(nb)::value; ++i) at[i] = scores[g + i] + t0;
          kivi_token_group_scores<decltype(nb)::value>(
              cs.q + g, tile + static_cast<size_t>(t0 / g_rows) * group_bytes, g_rows, bits, d, at,
              ahead);
        }
      });
      break;
    }
  }
#else
  (void)cs, (void)tile, (void)scores, (void)ahead;
  KVF_CHECK(false);  // reads_in_place never picks a column format here
#endif
}

// acc[g] = acc[g] * rescale[g] + sum_r weights[g][r] * row r, for every head g.
template <KvRowFormat F>
HWY_INLINE void sum_rows(float* const* acc, const float* const* weights, const float* rescale,
                         int32_t group, const uint8_t* rows, size_t row_bytes, int32_t n, int32_t d,
                         TilePrefetcher& ahead) {
  for_head_batches(group, [&](int32_t g, auto nb) HWY_ATTR {
    accumulate_rows<F, decltype(nb)::value>(acc + g, weights + g, rescale + g, rows, row_bytes, n,
                                            d, ahead);
  });
}

// sums.pairs[g] = sums.pairs[g] * rescale[g] + the rows of the chunk's
// token-pair tiles (`bits` 4 or 2; see token_pair_sums) times their folded
// weights, for every head g.
HWY_INLINE void chunk_token_pair_sums(TokenPairSums& sums, const float* rescale, int32_t group,
                                      const ChunkTiles& tiles, int32_t bits, int32_t bt, int32_t d,
                                      TilePrefetcher& ahead) {
#if KVF_PAGED_ROW_BATCH
  for_head_batches(group, [&](int32_t g, auto nb) HWY_ATTR {
    constexpr int NB = decltype(nb)::value;
    if (bits == 4) {
      token_pair_sums<4, NB>(sums, g, rescale, tiles, bt, d, ahead, g == 0);
    } else {
      token_pair_sums<2, NB>(sums, g, rescale, tiles, bt, d, ahead, g == 0);
    }
  });
#else
  (void)sums, (void)rescale, (void)group, (void)tiles;
  (void)bits, (void)bt, (void)d, (void)ahead;
  KVF_CHECK(false);  // reads_in_place never picks a token pair format here
#endif
}

// Runs fn with the row format as a compile-time constant.
template <class Fn>
HWY_INLINE void with_row_format(KvRowFormat format, const Fn& fn) {
  switch (format) {
    case KvRowFormat::kF16:
      fn(std::integral_constant<KvRowFormat, KvRowFormat::kF16>());
      break;
    case KvRowFormat::kBF16:
      fn(std::integral_constant<KvRowFormat, KvRowFormat::kBF16>());
      break;
    case KvRowFormat::kInt8:
      fn(std::integral_constant<KvRowFormat, KvRowFormat::kInt8>());
      break;
    case KvRowFormat::kF32:
      fn(std::integral_constant<KvRowFormat, KvRowFormat::kF32>());
      break;
    default:  // opaque and column formats never take the row path
      KVF_CHECK(false);
  }
}

// The format in which the kernel reads a side's tiles in place, or kOpaque
// when it decodes them into the f32 scratch: in place needs a plain row
// format or a column format (with block_tokens a multiple of its vector of
// rows), the batched score kernel (head_dim a multiple of the lane count),
// and, for row formats, a side that is never read from staged rows.
HWY_INLINE KvRowFormat reads_in_place(const PagedSide& side, int32_t d, int32_t bt) {
#if KVF_PAGED_ROW_BATCH
  // f32 tiles stay on the copy path: a plain copy into the scratch streams
  // them from memory faster than dot products reading them in place
  // (docs/performance.md); the narrower formats gain from skipping it.
  const KvRowFormat format = side.codec->row_format();
  const auto lanes = static_cast<int32_t>(hn::Lanes(DF()));
  // Column tiles are read a vector of rows at a time (the pair layouts: 16
  // rows, at most the lane count, which their codecs guarantee).
  bool whole_vectors = true;
  if (is_kivi_format(format)) {
    whole_vectors = kivi_columns_readable(side.codec->grid_tokens(), kivi_bits(format));
  } else if (is_column_format(format)) {
    whole_vectors = bt % lanes == 0;
  }
  // A staged side (KIVI's residual window) is read block by block: its
  // column tiles in place, its staged rows through the scratch.
  const bool blockwise = !side.staged || is_column_format(format);
  if (blockwise && format != KvRowFormat::kF32 && d % lanes == 0 && whole_vectors) {
    return format;
  }
#else
  (void)side;
  (void)d;
  (void)bt;
#endif
  return KvRowFormat::kOpaque;
}

// Rounds x[0, n) in place to integer steps of max |x| / M, M the largest
// Code: with amax = max |x|, codes = nearbyint(x * (M / amax)) and x
// becomes codes * (amax / M). Returns the step amax / M. Not a number (a
// broken query) becomes code 0 and stays NaN in x.
template <class Code>
HWY_INLINE float round_to_steps(float* x, int32_t n, Code* codes) {
  constexpr auto kMax = static_cast<float>(std::numeric_limits<Code>::max());
  float amax = 0.0f;
  for (int32_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float step = amax / kMax;
  const float inverse = amax > 0.0f ? kMax / amax : 0.0f;
  for (int32_t i = 0; i < n; ++i) {
    const float rounded = std::nearbyint(x[i] * inverse);
    codes[i] = std::fabs(rounded) <= kMax ? static_cast<Code>(rounded) : Code{0};
    x[i] = rounded * step;
  }
  return step;
}

// Rounds a query (d floats, pre-scaled and rotated) to int8 per channel group
// of kv_quant::channel_group(d) channels, as the scores of int4 keys stored
// by pairs use it on every target (paged_attention.h): per group, with
// amax = max |x|, q8 = nearbyint(x * (127 / amax)) and x becomes
// q8 * (amax / 127). step[k] = amax / 127 and qsum[k] = step[k] * sum(q8)
// per group k; pairs (if not null) receives the operand of the integer key
// kernel: each channel pair's two codes repeated 8 times (16 bytes per
// pair) for int4_pair_scores, or on AVX3_DL the codes in channel order for
// int4_quad_scores.
HWY_INLINE void quantize_query_int8(float* x, int32_t d, int8_t* pairs, float* step, float* qsum) {
  const int32_t channels = kv_quant::channel_group(d);
  int8_t codes[kPagedMaxHeadDim];
  for (int32_t k = 0; k < d / channels; ++k) {
    step[k] = round_to_steps(x + k * channels, channels, codes + k * channels);
    int32_t sum = 0;
    for (int32_t i = 0; i < channels; ++i) sum += codes[k * channels + i];
    qsum[k] = step[k] * static_cast<float>(sum);
  }
  if (pairs == nullptr) return;
#if KVF_PAGED_INT4_QUADS
  std::copy_n(codes, d, pairs);  // int4_quad_scores broadcasts them four at a time
#else
  for (int32_t p = 0; p < d / 2; ++p) {  // 2-byte copies: byte by byte cost 1-2% of a task
    for (int32_t j = 0; j < 16; j += 2) std::memcpy(pairs + 16 * p + j, codes + 2 * p, 2);
  }
#endif
}

// What one task keeps across spans: the scratch of the span loop and the
// softmax state of the spans done so far (kv-compression.md: spans combine
// like split-K partial results).
struct TaskState {
  alignas(64) float rows[kChunkRows * kPagedMaxHeadDim];
  // Queries pre-scaled (and rotated for rotated keys: q·k = Hq·Hk), per span.
  alignas(64) float q[kPagedMaxGroup][kPagedMaxHeadDim];
  alignas(64) float acc[kPagedMaxGroup][kPagedMaxHeadDim];
  // int4 keys by channel pairs: each query rounded to int8 per channel group
  // (quantize_query_int8), laid out for the integer key kernel.
  alignas(64) int8_t q8[kPagedMaxGroup][8 * kPagedMaxHeadDim];
  // int8 keys: each query rounded to int16 (round_to_steps).
  alignas(64) int16_t q16[kPagedMaxGroup][kPagedMaxHeadDim];
  float q16_step[kPagedMaxGroup];
  float step[kPagedMaxGroup][kPagedMaxHeadDim / kv_quant::kMaxChannelGroup];
  float qsum[kPagedMaxGroup][kPagedMaxHeadDim / kv_quant::kMaxChannelGroup];
  alignas(64) float scores[kPagedMaxGroup][kChunkRows];
  float running_max[kPagedMaxGroup];
  float denom[kPagedMaxGroup];
  float rescale[kPagedMaxGroup];
  float ones[kPagedMaxGroup];
  TokenPairSums pair_sums;
  // The spans done so far, combined.
  alignas(64) float total[kPagedMaxGroup][kPagedMaxHeadDim];
  float total_max[kPagedMaxGroup];
  float total_denom[kPagedMaxGroup];
  bool has_total = false;
  // Score capture: this task's raw scores per head (row_scratch), rows so far.
  float* captured = nullptr;
  int32_t captured_rows = 0;
  int32_t capture_stride = 0;
};

// One span of one task: every query head of one KV-head group, for one
// query token, over the span's entries, which are taken a chunk at a time
// (kChunkRows, kChunkFloats): the softmax bookkeeping and loop overheads are
// paid per chunk, not per entry. Tiles that reads_in_place accepts
// (f16/int8/int4/KIVI key columns, f16/bf16/int8 rows) are read in place,
// with the conversion inside the dot products; the others are decoded (or
// copied) into an L1-sized f32 scratch first. The span's result is combined
// into st.total.
void attend_span(const PagedAttentionArgs& a, const SpanView& view, int32_t token, TaskState& st) {
  const int32_t group = a.n_heads / a.n_kv_heads;
  const int32_t kv_head = view.kv_head;
  const int32_t d = a.head_dim;
  const int32_t bt = a.block_tokens;
  const int32_t query_pos = query_position(a, token);
  const PagedSide& keys = *view.keys;
  const PagedSide& values = *view.values;
  const int32_t chunk_blocks = std::max(1, std::min(kChunkRows, kChunkFloats / d) / bt);
  const KvRowFormat key_format = reads_in_place(keys, d, bt);
  const KvRowFormat value_format = reads_in_place(values, d, bt);
  const size_t key_row_bytes = kv_row_bytes(key_format, d);
  const size_t value_row_bytes = kv_row_bytes(value_format, d);
  const auto scratch_row_bytes = static_cast<size_t>(d) * sizeof(float);
  float* rows = st.rows;
  const bool int8_query = keys.codec->row_format() == KvRowFormat::kInt4Pairs;
  const bool int16_query = keys.codec->row_format() == KvRowFormat::kInt8Columns;
  // KIVI keys the kernel does not read in place: scored from their tiles all
  // the same (every target rounds their folded query alike).
  const bool kivi_keys_portable =
      key_format == KvRowFormat::kOpaque && is_kivi_format(keys.codec->row_format());
  const float* q_rows[kPagedMaxGroup];
  const float* qsum_rows[kPagedMaxGroup];
  const int8_t* q8_rows[kPagedMaxGroup];
  const int16_t* q16_rows[kPagedMaxGroup];
  const float* step_rows[kPagedMaxGroup];
  float* acc_rows[kPagedMaxGroup];
  float* score_rows_at[kPagedMaxGroup];
  const float* weight_rows_at[kPagedMaxGroup];

  for (int32_t g = 0; g < group; ++g) {
    const float* src = a.q + (static_cast<int64_t>(token) * a.n_heads + kv_head * group + g) * d;
    float* q = st.q[g];
    for (int32_t i = 0; i < d; ++i) q[i] = src[i] * a.scale;
    // A rotated side is never staged (rotation is a token-granular codec
    // without a residual window), so every entry reads the rotated form.
    if (keys.codec->rotated()) hadamard_transform(q, d);
    if (int8_query) {
      quantize_query_int8(
          q, d, KVF_PAGED_INT4_PAIRS && key_format == KvRowFormat::kInt4Pairs ? st.q8[g] : nullptr,
          st.step[g], st.qsum[g]);
    }
    // int8 keys: the query rounded to int16 per head, on every target
    // (paged_attention.h); int8_pair_scores multiplies the codes.
    if (int16_query) st.q16_step[g] = round_to_steps(q, d, st.q16[g]);
    q16_rows[g] = st.q16[g];
    q8_rows[g] = st.q8[g];
    step_rows[g] = st.step[g];
    qsum_rows[g] = st.qsum[g];
    std::fill_n(st.acc[g], d, 0.0f);
    st.running_max[g] = -std::numeric_limits<float>::infinity();
    st.denom[g] = 0.0f;
    q_rows[g] = q;
    acc_rows[g] = st.acc[g];
    st.ones[g] = 1.0f;
  }
  float(&scores)[kPagedMaxGroup][kChunkRows] = st.scores;
  float* rescale = st.rescale;
  const float* ones = st.ones;

  // Values by token pairs: their sums apart until the end (TokenPairSums).
  TokenPairSums& pair_sums = st.pair_sums;
  bool staged_values_summed = false;
  if (is_token_pair_format(value_format)) {
    for (int32_t g = 0; g < group; ++g) {
      std::fill_n(pair_sums.pairs[g], 2 * d, 0.0f);
      for (int32_t k = 0; k < d / 32; ++k) std::fill_n(pair_sums.mins[g][k], hn::Lanes(DF()), 0.0f);
    }
  }

  ColumnScoring columns;
  columns.format = key_format;
  columns.q = q_rows;
  columns.qsum = qsum_rows;
  columns.q8 = q8_rows;
  columns.step = step_rows;
  columns.q16 = q16_rows;
  columns.q16_step = st.q16_step;
  columns.group = group;
  columns.bt = bt;
  columns.d = d;
  columns.grid_tokens = keys.codec->grid_tokens();

  const int32_t n_entries = view.n_entries;
  // The first chunk has no arithmetic before it to spread requests over.
  prefetch_jumps(view, keys, 0, std::min(chunk_blocks, n_entries));
  prefetch_jumps(view, values, 0, std::min(chunk_blocks, n_entries));
  // While the keys of a chunk are multiplied, its values are requested; while
  // its values are summed, the next chunk's keys.
  TilePrefetcher value_ahead(view, values);
  TilePrefetcher key_ahead(view, keys);
  for (int32_t j = 0; j < n_entries; j += chunk_blocks) {
    const int32_t count = std::min(chunk_blocks, n_entries - j);
    const int32_t next = std::min(chunk_blocks, n_entries - j - count);
    // Every entry but the span's last is full.
    const int32_t n = (count - 1) * bt + view.rows(j + count - 1);
    value_ahead.start(j, count, n);
    key_ahead.start(j + count, next, n);

    // Scores of the chunk's rows, then the online softmax over them.
    if (is_column_format(key_format) || kivi_keys_portable) {
      for (int32_t b = j; b < j + count; ++b) {
        for (int32_t g = 0; g < group; ++g) score_rows_at[g] = scores[g] + (b - j) * bt;
        if (kivi_keys_portable && view.encoded(keys, b, query_pos)) {
          kivi_tile_scores_portable(q_rows, group, view.tile(keys, b), view.rows(b),
                                    keys.codec->grid_tokens(), kivi_bits(keys.codec->row_format()),
                                    d, score_rows_at);
        } else if (view.encoded(keys, b, query_pos)) {
          tile_column_scores(columns, view.tile(keys, b), score_rows_at, value_ahead);
        } else {  // KIVI's residual window: f32 rows, through the scratch
          const int32_t staged = gather_rows(a, view, keys, b, 1, query_pos, rows);
          score_rows<KvRowFormat::kF32>(q_rows, group, reinterpret_cast<const uint8_t*>(rows),
                                        scratch_row_bytes, staged, d, score_rows_at, value_ahead);
        }
      }
    } else if (key_format != KvRowFormat::kOpaque) {
      with_row_format(key_format, [&](auto format) {
        for_each_run(view, keys, j, count, [&](int32_t first, int32_t offset, int32_t run_rows) {
          for (int32_t g = 0; g < group; ++g) score_rows_at[g] = scores[g] + offset;
          score_rows<decltype(format)::value>(q_rows, group, view.tile(keys, first), key_row_bytes,
                                              run_rows, d, score_rows_at, value_ahead);
        });
      });
    } else {
      gather_rows(a, view, keys, j, count, query_pos, rows);
      for (int32_t g = 0; g < group; ++g) score_rows_at[g] = scores[g];
      score_rows<KvRowFormat::kF32>(q_rows, group, reinterpret_cast<const uint8_t*>(rows),
                                    scratch_row_bytes, n, d, score_rows_at, value_ahead);
    }
    if (view.bias != nullptr) {  // merged rows: log of the tokens each stands for
      const float* bias = view.bias + static_cast<size_t>(j) * bt;
      for (int32_t g = 0; g < group; ++g) {
        for (int32_t r = 0; r < n; ++r) scores[g][r] += bias[r];
      }
    }
    if (st.captured != nullptr) {
      KVF_CHECK(st.captured_rows + n <= st.capture_stride);
      for (int32_t g = 0; g < group; ++g) {
        std::copy_n(scores[g], n, st.captured + g * st.capture_stride + st.captured_rows);
      }
      st.captured_rows += n;
    }
    for (int32_t g = 0; g < group; ++g) {
      rescale[g] = vec::online_softmax_fold(scores[g], n, st.running_max[g], st.denom[g]);
    }

    // Weighted sum of the chunk's value rows.
    if (is_token_pair_format(value_format)) {
      // The staged rows' accumulators (KIVI's residual window), once they
      // hold rows, take the chunk's rescale here; the mins' shares in
      // fold_token_pair_weights, the pair accumulators in token_pair_sums.
      if (staged_values_summed) {
        for (int32_t g = 0; g < group; ++g) vec::scale(rescale[g], st.acc[g], d);
      }
      ChunkTiles tiles;
      for (int32_t b = j; b < j + count; ++b) {
        const int32_t offset = (b - j) * bt;
        if (view.encoded(values, b, query_pos)) {
          tiles.add(view.tile(values, b), offset, std::min(bt, n - offset));
        } else {  // KIVI's residual window: f32 rows, through the scratch
          for (int32_t g = 0; g < group; ++g) weight_rows_at[g] = scores[g] + offset;
          const int32_t staged = gather_rows(a, view, values, b, 1, query_pos, rows);
          sum_rows<KvRowFormat::kF32>(acc_rows, weight_rows_at, ones, group,
                                      reinterpret_cast<const uint8_t*>(rows), scratch_row_bytes,
                                      staged, d, key_ahead);
          staged_values_summed = true;
        }
      }
      for (int32_t g = 0; g < group; ++g) weight_rows_at[g] = scores[g];
      fold_token_pair_weights(pair_sums, weight_rows_at, rescale, group, tiles, bt, d);
      chunk_token_pair_sums(pair_sums, rescale, group, tiles,
                            value_format == KvRowFormat::kInt4TokenPairs ? 4 : 2, bt, d, key_ahead);
    } else if (value_format != KvRowFormat::kOpaque) {
      const float* run_rescale = rescale;  // the accumulators are rescaled once per chunk
      with_row_format(value_format, [&](auto format) {
        constexpr KvRowFormat F = decltype(format)::value;
        for_each_run(view, values, j, count, [&](int32_t first, int32_t offset, int32_t run_rows) {
          const uint8_t* tile_rows = view.tile(values, first);
          if constexpr (F == KvRowFormat::kInt8) {  // fold each row's scale into its weights
            float row_scales[kChunkRows];
            for (int32_t r = 0; r < run_rows; ++r) {
              row_scales[r] = row_scale<F>(tile_rows + r * value_row_bytes);
            }
            for (int32_t g = 0; g < group; ++g) {
              vec::multiply(row_scales, scores[g] + offset, run_rows);
            }
          }
          for (int32_t g = 0; g < group; ++g) weight_rows_at[g] = scores[g] + offset;
          sum_rows<F>(acc_rows, weight_rows_at, run_rescale, group, tile_rows, value_row_bytes,
                      run_rows, d, key_ahead);
          run_rescale = ones;
        });
      });
    } else {
      gather_rows(a, view, values, j, count, query_pos, rows);
      for (int32_t g = 0; g < group; ++g) weight_rows_at[g] = scores[g];
      sum_rows<KvRowFormat::kF32>(acc_rows, weight_rows_at, rescale, group,
                                  reinterpret_cast<const uint8_t*>(rows), scratch_row_bytes, n, d,
                                  key_ahead);
    }
  }

  if (is_token_pair_format(value_format)) add_token_pair_sums(pair_sums, group, d, st.acc);
  for (int32_t g = 0; g < group; ++g) {
    if (values.codec->rotated()) hadamard_transform(st.acc[g], d);
    if (!st.has_total) {
      std::copy_n(st.acc[g], d, st.total[g]);
      st.total_max[g] = st.running_max[g];
      st.total_denom[g] = st.denom[g];
      continue;
    }
    // Split-K combine: both partial sums onto the larger maximum.
    const float m = std::max(st.total_max[g], st.running_max[g]);
    const float old_share = std::exp(st.total_max[g] - m);
    const float new_share = std::exp(st.running_max[g] - m);
    for (int32_t i = 0; i < d; ++i) {
      st.total[g][i] = st.total[g][i] * old_share + st.acc[g][i] * new_share;
    }
    st.total_denom[g] = st.total_denom[g] * old_share + st.denom[g] * new_share;
    st.total_max[g] = m;
  }
  st.has_total = true;
}

// sums[r] += weight * exp(scores[r] - max) for r < n (scores <= max).
HWY_INLINE void add_probabilities(const float* scores, int32_t n, float max, float weight,
                                  float* sums) {
  const DF df;
  const auto lanes = static_cast<int32_t>(hn::Lanes(df));
  const auto vmax = hn::Set(df, max);
  const auto vweight = hn::Set(df, weight);
  int32_t r = 0;
  for (; r + lanes <= n; r += lanes) {
    const auto p = vec::exp_nonpositive(hn::Sub(hn::LoadU(df, scores + r), vmax));
    hn::StoreU(hn::MulAdd(p, vweight, hn::LoadU(df, sums + r)), df, sums + r);
  }
  for (; r < n; ++r) sums[r] += weight * std::exp(scores[r] - max);
}

// One task: every query head of one KV-head group, for one query token, over
// the pages spans and then the block part.
void attend_group(const PagedAttentionArgs& a, int32_t token, int32_t kv_head, int thread) {
  const int32_t group = a.n_heads / a.n_kv_heads;
  const int32_t d = a.head_dim;
  const int32_t bt = a.block_tokens;
  const int32_t query_pos = query_position(a, token);
  TaskState st;
  const ScoreCapture* capture = a.capture;
  if (capture != nullptr && query_pos >= capture->first_pos && query_pos < capture->end_pos) {
    st.captured = capture->row_scratch[thread];
    st.capture_stride = capture->max_rows;
  }

  for (const PagedPages& pages : a.pages) {
    SpanView view;
    view.pages = true;
    view.keys = &pages.keys;
    view.values = &pages.values;
    view.kv_head = kv_head;
    view.bt = bt;
    view.end_row = pages.head_rows[kv_head];
    view.n_entries = (view.end_row + bt - 1) / bt;
    view.n_rows = view.end_row;
    view.bias = pages.head_bias != nullptr ? pages.head_bias[kv_head] : nullptr;
    if (view.n_rows > 0) attend_span(a, view, token, st);
  }

  SpanView view;
  view.keys = &a.keys;
  view.values = &a.values;
  view.block_ids = a.block_ids;
  view.first = a.first_block;
  view.kv_head = kv_head;
  view.bt = bt;
  view.end_row = query_pos + 1;
  view.staged_begin = a.staged_begin;
  const int32_t last_block = query_pos / bt;  // the query's own block
  if (a.head_blocks != nullptr) {
    view.blocks = a.head_blocks[kv_head];
    const int32_t* chosen_end = view.blocks + a.head_block_counts[kv_head];
    view.n_entries =
        static_cast<int32_t>(std::upper_bound(view.blocks, chosen_end, last_block) - view.blocks);
  } else {
    view.n_entries = last_block + 1 - a.first_block;
  }
  view.n_rows = (view.n_entries - 1) * bt + view.rows(view.n_entries - 1);
  attend_span(a, view, token, st);

  for (int32_t g = 0; g < group; ++g) {
    float* out = a.out + (static_cast<int64_t>(token) * a.n_heads + kv_head * group + g) * d;
    const float inv = 1.0f / st.total_denom[g];
    for (int32_t i = 0; i < d; ++i) out[i] = st.total[g][i] * inv;
  }
  if (st.captured != nullptr) {
    float* sums = capture->thread_sums[thread] + static_cast<int64_t>(kv_head) * capture->max_rows;
    for (int32_t g = 0; g < group; ++g) {
      add_probabilities(st.captured + g * st.capture_stride, st.captured_rows, st.total_max[g],
                        1.0f / (st.total_denom[g] * static_cast<float>(group)), sums);
    }
  }
}

void paged_attention_impl(const PagedAttentionArgs& a, ThreadPool& pool) {
  const int64_t n_tasks = static_cast<int64_t>(a.n_tokens) * a.n_kv_heads;
  pool.parallel_for(n_tasks, [&](int64_t task, int thread) {
    attend_group(a, static_cast<int32_t>(task / a.n_kv_heads),
                 static_cast<int32_t>(task % a.n_kv_heads), thread);
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace kvforge
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvforge {

HWY_EXPORT(paged_attention_impl);

namespace {

void check_side(const PagedSide& side, bool pages) {
  KVF_CHECK(side.codec != nullptr);
  // The kernel reads a rotated side only in its rotated form (attend_span).
  KVF_CHECK(!(side.staged && side.codec->rotated()));
  KVF_CHECK(pages ? side.head_tiles != nullptr && !side.staged : side.head_arenas != nullptr);
}

void check_formats(const PagedSide& keys, const PagedSide& values) {
  // Key column and pair tiles are read by the score kernel only, token pairs
  // by the value kernel only.
  const KvRowFormat value_format = values.codec->row_format();
  KVF_CHECK(!is_column_format(value_format) || is_token_pair_format(value_format));
  KVF_CHECK(!is_token_pair_format(keys.codec->row_format()));
}

}  // namespace

void paged_attention(const PagedAttentionArgs& a, ThreadPool& pool) {
  KVF_CHECK(a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0);
  KVF_CHECK(a.n_heads / a.n_kv_heads <= kPagedMaxGroup);
  KVF_CHECK(a.head_dim > 0 && a.head_dim <= kPagedMaxHeadDim);
  KVF_CHECK(a.block_tokens > 0 && a.block_tokens <= kPagedMaxBlockTokens);
  check_side(a.keys, false);
  check_side(a.values, false);
  check_formats(a.keys, a.values);
  // The queries' positions: the last one's block must be in the table.
  const int64_t last_pos = a.query_positions != nullptr
                               ? (a.n_tokens > 0 ? a.query_positions[a.n_tokens - 1] : 0)
                               : static_cast<int64_t>(a.first_pos) + a.n_tokens - 1;
  KVF_CHECK(static_cast<int64_t>(a.block_ids.size()) * a.block_tokens > last_pos);
  if (a.query_positions != nullptr) {
    for (int32_t t = 1; t < a.n_tokens; ++t) {
      KVF_CHECK(a.query_positions[t - 1] < a.query_positions[t]);
    }
    KVF_CHECK(a.n_tokens == 0 ||
              static_cast<int64_t>(a.first_block) * a.block_tokens <= a.query_positions[0]);
  }
  // Every query reads its own block: the block part starts at or before it.
  KVF_CHECK(a.first_block >= 0 &&
            (a.query_positions != nullptr ||
             static_cast<int64_t>(a.first_block) * a.block_tokens <= a.first_pos));
  KVF_CHECK((a.head_blocks == nullptr) == (a.head_block_counts == nullptr));
  KVF_CHECK(static_cast<int32_t>(a.pages.size()) <= kPagedMaxPageSpans);
  for (const PagedPages& pages : a.pages) {
    check_side(pages.keys, true);
    check_side(pages.values, true);
    check_formats(pages.keys, pages.values);
    KVF_CHECK(pages.head_rows != nullptr);
  }
  if (a.capture != nullptr) {
    KVF_CHECK(a.capture->thread_sums != nullptr && a.capture->row_scratch != nullptr);
  }
  HWY_DYNAMIC_DISPATCH(paged_attention_impl)(a, pool);
}

}  // namespace kvforge
#endif  // HWY_ONCE
