// Decode kernels (n_tokens <= kMaxDecodeTokens) for quantized weights on the
// x86 vector targets: the weight matrix is read once from memory, so these
// should be bandwidth bound.
//
// They compute each output with exactly the operations of the integer
// prefill kernel (matmul_prefill_int8.cpp), so that a row's result does not
// depend on how many tokens share the call (matmul_internal.h, "batch
// invariance"): per sub-block j of 16 or 32 columns, in column order,
//
//   I_j = exact integer dot product of the weight codes w with the int8
//         activation codes q
//   out = fma(f32(I_j), scale_j * d_x, out)   (+ out = fma(offset_j, sum_x, out))
//
// Rows are taken in groups of G (16 with AVX-512 VNNI, 8 otherwise). Each
// row's codes are dotted with the activations as usual, one row at a time
// (u8 x s8 products summed in fours into i32 lanes of 4 columns), and the
// lanes of 4 rows at a time are summed per sub-block by a transpose-and-add
// (quad_sum, 9 instructions), so that I_j, the scales and `out` hold one row
// per lane and the f32 steps run on G rows at once, like the prefill's.
// Integer sums are exact in any order; the f32 steps are the same
// operations on the same values.
//
// Weight codes enter the products unsigned: where the format's code is
// signed (Q4_0 q - 8, Q6_K q - 32, and Q8_0 with VNNI as q + 128), the
// unsigned code u = w + z is multiplied and z * (sum of the activation codes
// of the sub-block) is subtracted from the i32 sum (QuantizedActivations::
// qsum16). Without VNNI, Q8_0 uses the sign trick |w| * (q with w's sign).
//
// Other targets (SSE4, NEON, portable) and the float formats have no integer
// kernels: matmul.cpp runs prefill_panel for every token count there.
//
// Compiled once per SIMD target (Highway foreach_target) and dispatched at
// run time; see matmul_internal.h for the contract.
#define KVFORGE_SIMD_WITH_AVX3_DL
#include "kernels/simd_targets.h"
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul_decode.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on

#include <algorithm>
#include <cstring>

#include "kernels/matmul_internal.h"
#include "kvforge/status.h"

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
// Highway's AVX3_DL target string names AVX-VNNI but not AVX512-VNNI, which
// its run-time check for the target requires.
#pragma GCC target("avx512vnni")
#endif
namespace kvforge::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---------------------------------------------------------------------------
// Activations to int8 blocks (see QuantizedActivations). Any target.

void quantize_activations_impl(const float* x, int64_t n_values, int8_t* q, float* d, float* sum,
                               int32_t* qsum16, int32_t* q4_0_term, bool biased) {
  // At most 8 lanes, so that 16 is a whole number of vectors.
  const hn::CappedTag<float, 8> df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> d8;
  const size_t n = hn::Lanes(df);
  for (int64_t b = 0; b < n_values / kActivationBlock; ++b) {
    const float* xb = x + b * kActivationBlock;
    int8_t* qb = q + b * kActivationBlock;
    auto amax = hn::Zero(df);
    for (size_t i = 0; i < static_cast<size_t>(kActivationBlock); i += n) {
      amax = hn::Max(amax, hn::Abs(hn::LoadU(df, xb + i)));
    }
    const float max = hn::GetLane(hn::MaxOfLanes(df, amax));
    // |x * inv| <= 127 up to rounding, so the codes stay in [-127, 127] and
    // their negation fits in int8 (the sign trick needs that).
    const auto inv = hn::Set(df, max > 0.0f ? 127.0f / max : 0.0f);
    int32_t halves[2];
    for (int h = 0; h < 2; ++h) {
      auto qsum = hn::Zero(di);
      for (size_t i = 16 * h; i < 16 * static_cast<size_t>(h + 1); i += n) {
        const auto qi = hn::NearestInt(hn::Mul(hn::LoadU(df, xb + i), inv));
        qsum = hn::Add(qsum, qi);
        const auto codes = hn::DemoteTo(d8, qi);
        hn::StoreU(biased ? hn::Xor(codes, hn::Set(d8, -128)) : codes, d8, qb + i);
      }
      halves[h] = hn::GetLane(hn::SumOfLanes(di, qsum));
    }
    if (qsum16 != nullptr) {
      qsum16[2 * b] = halves[0];
      qsum16[2 * b + 1] = halves[1];
      q4_0_term[b] = -8 * (halves[0] + halves[1]);
    }
    d[b] = max / 127.0f;
    sum[b] = d[b] * static_cast<float>(halves[0] + halves[1]);
  }
}

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL

// The activations of a call: int8 codes (integer kernels; token t at
// q + t * n_cols, d + t * n_blocks, qsum16 + t * 2 * n_blocks) or f32 (the
// float kernels; token t at xf + t * n_cols).
struct Acts {
  const int8_t* q;
  const float* d;
  const float* sum;
  const int32_t* qsum16;
  const float* xf;
  int64_t n_cols, n_blocks;
};

HWY_INLINE float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return _cvtsh_ss(h);
}

HWY_INLINE uint16_t word_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return h;
}

HWY_INLINE __m256i load32(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// Software prefetch in the order a group reads its rows: a group's G rows
// are read in parallel, a step of columns at a time, and when it is done
// the next group's rows are read the same way. At step s every row's lines
// for step s + ahead are requested, or, past the end of the rows, the next
// group's lines for step s + ahead - n_steps, so that about kPrefetchBytes
// per row are in flight. (One thread alone keeps too few lines in flight
// with the hardware prefetcher only; G streams row_bytes apart are not a
// pattern it follows far enough.)
constexpr int64_t kPrefetchBytes = 512;
constexpr int kGroupRows = HWY_TARGET == HWY_AVX3_DL ? 16 : 8;

class GroupPrefetch {
 public:
  // first: the group's first row; n_rows, n_next: rows of this group and of
  // the next one in the task's range (0: none), which starts stride_rows
  // rows after this one.
  GroupPrefetch(const uint8_t* first, size_t row_bytes, int64_t n_rows, int64_t n_next,
                int64_t n_steps, bool warm_up, int64_t stride_rows = kGroupRows)
      : first_(first),
        stride_rows_(stride_rows),
        row_bytes_(row_bytes),
        n_rows_(n_rows),
        n_next_(n_next),
        n_steps_(n_steps),
        step_q16_((row_bytes << 16) / static_cast<size_t>(n_steps)),
        ahead_(std::clamp<int64_t>(kPrefetchBytes * n_steps / static_cast<int64_t>(row_bytes), 1,
                                   n_steps)) {
    if (warm_up) {
      for (int64_t s = 0; s < ahead_; ++s) request(first_, n_rows_, s);
    }
  }
  HWY_INLINE void step() {
    const int64_t s = step_++ + ahead_;
    if (s < n_steps_) {
      request(first_, n_rows_, s);
    } else if (s - n_steps_ < n_steps_) {
      request(first_ + static_cast<size_t>(stride_rows_) * row_bytes_, n_next_, s - n_steps_);
    }
  }

 private:
  HWY_INLINE void request(const uint8_t* rows, int64_t n, int64_t s) const {
    const size_t offset = (static_cast<size_t>(s) * step_q16_) >> 16;  // ~ s * row_bytes / n_steps
    for (int64_t i = 0; i < n; ++i) {
      _mm_prefetch(
          reinterpret_cast<const char*>(rows + static_cast<size_t>(i) * row_bytes_ + offset),
          _MM_HINT_T0);
    }
  }
  const uint8_t* first_;
  int64_t stride_rows_;
  size_t row_bytes_;
  int64_t n_rows_, n_next_, n_steps_;
  size_t step_q16_;
  int64_t ahead_;
  int64_t step_ = 0;
};

#if HWY_TARGET == HWY_AVX3_DL
#include "kernels/matmul_decode_512-inl.h"
#else  // AVX2, AVX3
#include "kernels/matmul_decode_256-inl.h"
#endif  // HWY_TARGET == HWY_AVX3_DL

// Groups of rows a format's kernel takes per pass (Format::kGroupsPerPass,
// default 1): a float kernel runs two groups' FMA chains side by side.
template <class Format>
constexpr int groups_per_pass() {
  if constexpr (requires { Format::kGroupsPerPass; }) {
    return Format::kGroupsPerPass;
  } else {
    return 1;
  }
}

// One pass over kG groups of rows for kT tokens starting at token t0.
template <class Format, int kT>
HWY_INLINE void group_pass(const MatmulArgs& a, const uint8_t* const* rows, int64_t r0,
                           int64_t n_live, int64_t t0, GroupPrefetch& pf) {
  constexpr int kG = groups_per_pass<Format>();
  const MatrixView& w = *a.w;
  const int64_t n_blocks = w.n_cols / kActivationBlock;
  const Acts x{a.xq.q == nullptr ? nullptr : a.xq.q + t0 * w.n_cols,
               a.xq.d == nullptr ? nullptr : a.xq.d + t0 * n_blocks,
               a.xq.sum == nullptr ? nullptr : a.xq.sum + t0 * n_blocks,
               a.xq.qsum16 == nullptr ? nullptr : a.xq.qsum16 + t0 * 2 * n_blocks,
               a.x + t0 * w.n_cols,
               w.n_cols,
               n_blocks};
  VOut out[kG][kT];
  for (int g = 0; g < kG; ++g) {
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) out[g][t] = zero_out();
  }
  if constexpr (kG == 1) {
    Format::template run<kT>(rows, x, pf, out[0]);
  } else {
    Format::template run<kT>(rows, x, pf, out);
  }
  for (int g = 0; g < kG; ++g) {
    const int64_t live = std::min<int64_t>(kGroup, n_live - g * kGroup);
    if (live <= 0) break;
#pragma GCC unroll 4
    for (int t = 0; t < kT; ++t) {
      store_rows(a.y + (t0 + t) * w.n_rows + r0 + g * kGroup, out[g][t], live);
    }
  }
}

// Rows [row_begin, row_end) in passes of kG groups of kGroup rows; the last
// pass repeats its last row in the lanes past the range (computed, not
// stored). Tokens go kDecodePassTokens at a time; only the last pass over
// a set of rows prefetches the next one's.
template <class Format>
void group_rows(const MatmulArgs& a, int64_t row_begin, int64_t row_end, ThreadScratch) {
  constexpr int kRows = kGroup * groups_per_pass<Format>();
  const MatrixView& w = *a.w;
  const auto* data = static_cast<const uint8_t*>(w.data);
  const int64_t n_steps = (w.n_cols + Format::kStepCols - 1) / Format::kStepCols;
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kRows) {
    const int64_t n_live = std::min<int64_t>(kRows, row_end - r0);
    const uint8_t* rows[kRows];
    for (int64_t i = 0; i < kRows; ++i) {
      rows[i] = data + static_cast<size_t>(r0 + std::min(i, n_live - 1)) * w.row_bytes;
    }
    const int64_t n_next = std::clamp<int64_t>(row_end - r0 - kRows, 0, kRows);
    for (int64_t t0 = 0; t0 < a.n_tokens; t0 += kDecodePassTokens) {
      const int64_t n_pass = std::min<int64_t>(kDecodePassTokens, a.n_tokens - t0);
      const bool last = t0 + n_pass == a.n_tokens;
      GroupPrefetch pf(rows[0], w.row_bytes, n_live, last ? n_next : 0, n_steps,
                       r0 == row_begin && t0 == 0, kRows);
      switch (n_pass) {
        case 1:
          group_pass<Format, 1>(a, rows, r0, n_live, t0, pf);
          break;
        case 2:
          group_pass<Format, 2>(a, rows, r0, n_live, t0, pf);
          break;
        case 3:
          group_pass<Format, 3>(a, rows, r0, n_live, t0, pf);
          break;
        default:
          group_pass<Format, 4>(a, rows, r0, n_live, t0, pf);
          break;
      }
    }
  }
}
static_assert(kDecodePassTokens == 4, "group_rows dispatches passes of 1 to 4 tokens");

using RowsFn = void (*)(const MatmulArgs&, int64_t, int64_t, ThreadScratch);

// The kernel of each weight type.
struct DecodeKernels {
  TensorType type;
  RowsFn rows;
};

#define KVF_DECODE_KERNELS(type, Format) \
  DecodeKernels {                        \
    type, group_rows<Format>             \
  }

const DecodeKernels kDecodeKernels[] = {
    KVF_DECODE_KERNELS(TensorType::kF32, GroupFloat<LoadF32>),
    KVF_DECODE_KERNELS(TensorType::kF16, GroupFloat<LoadF16>),
    KVF_DECODE_KERNELS(TensorType::kBF16, GroupFloat<LoadBF16>),
    KVF_DECODE_KERNELS(TensorType::kQ8_0, GroupQ8_0),
    KVF_DECODE_KERNELS(TensorType::kQ4_0, GroupQ4<false>),
    KVF_DECODE_KERNELS(TensorType::kQ4_1, GroupQ4<true>),
    KVF_DECODE_KERNELS(TensorType::kQ4_K, GroupQK45<false>),
    KVF_DECODE_KERNELS(TensorType::kQ5_K, GroupQK45<true>),
    KVF_DECODE_KERNELS(TensorType::kQ6_K, GroupQ6_K),
};

#undef KVF_DECODE_KERNELS

const DecodeKernels* find_kernels(TensorType type) {
  for (const DecodeKernels& k : kDecodeKernels) {
    if (k.type == type) return &k;
  }
  return nullptr;
}

void decode_rows_impl(const MatmulArgs& a, int64_t row_begin, int64_t row_end,
                      ThreadScratch scratch) {
  const DecodeKernels* kernels = find_kernels(a.w->type);
  KVF_CHECK(kernels != nullptr && a.n_tokens >= 1 && a.n_tokens <= kMaxDecodeTokens);
  kernels->rows(a, row_begin, row_end, scratch);
}

bool decode_has_kernel_impl(TensorType type) {
  return find_kernels(type) != nullptr;
}

bool decode_uses_quantized_activations_impl(TensorType type) {
  return find_kernels(type) != nullptr && type != TensorType::kF32 && type != TensorType::kF16 &&
         type != TensorType::kBF16;
}

int64_t decode_group_rows_impl() {
  return kGroup;
}

#else  // no integer kernels on this target

void decode_rows_impl(const MatmulArgs&, int64_t, int64_t, ThreadScratch) {
  KVF_CHECK(false);
}

bool decode_has_kernel_impl(TensorType) {
  return false;
}

bool decode_uses_quantized_activations_impl(TensorType) {
  return false;
}

int64_t decode_group_rows_impl() {
  return 1;
}

#endif  // x86 vector targets

}  // namespace HWY_NAMESPACE
}  // namespace kvforge::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvforge::kernels {

HWY_EXPORT(decode_rows_impl);
HWY_EXPORT(decode_uses_quantized_activations_impl);
HWY_EXPORT(decode_has_kernel_impl);
HWY_EXPORT(decode_group_rows_impl);
HWY_EXPORT(quantize_activations_impl);

bool decode_uses_quantized_activations(TensorType type) {
  return HWY_DYNAMIC_DISPATCH(decode_uses_quantized_activations_impl)(type);
}

bool decode_has_kernel(TensorType type) {
  return HWY_DYNAMIC_DISPATCH(decode_has_kernel_impl)(type);
}

int64_t decode_group_rows() {
  return HWY_DYNAMIC_DISPATCH(decode_group_rows_impl)();
}

void quantize_activations(const float* x, int64_t n_values, int8_t* q, float* d, float* sum,
                          int32_t* qsum16, int32_t* q4_0_term, bool biased) {
  HWY_DYNAMIC_DISPATCH(quantize_activations_impl)
  (x, n_values, q, d, sum, qsum16, q4_0_term, biased);
}

void decode_rows(const MatmulArgs& args, int64_t row_begin, int64_t row_end,
                 ThreadScratch scratch) {
  HWY_DYNAMIC_DISPATCH(decode_rows_impl)(args, row_begin, row_end, scratch);
}

}  // namespace kvforge::kernels
#endif
