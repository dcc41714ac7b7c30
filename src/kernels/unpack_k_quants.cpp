// SIMD decoders for F16, BF16, Q8_0, Q4_0, Q4_1 and the K-quant formats
// (Q4_K, Q5_K, Q6_K), used by the matmul kernels to unpack weights into f32
// scratch. They compute exactly what the scalar decoders in format_*.cpp
// compute (same operations, no fused multiply-add), so either may be used
// for any row.
//
// Compiled once per SIMD target (Highway foreach_target) and dispatched at
// run time.
#include "kernels/simd_targets.h"
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/unpack_k_quants.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on

#include <cstring>
#include <type_traits>

#include "kernels/block_io.h"
#include "kernels/k_quant_scales.h"
#include "kernels/matmul_internal.h"

HWY_BEFORE_NAMESPACE();
namespace kvforge::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 lanes: Q6_K's scales change every 16 elements.
using DF = hn::CappedTag<float, 16>;
using DI = hn::Rebind<int32_t, DF>;
using D8 = hn::Rebind<uint8_t, DF>;

// Q4_K and Q5_K (layouts in format_q4_k.cpp / format_q5_k.cpp). qh is null
// for Q4_K.
void unpack_q4_q5_k(const uint8_t* src, float* dst, int64_t n_blocks, size_t block_bytes,
                    bool has_high_bits) {
  const DF df;
  const DI di;
  const D8 d8;
  const size_t n = hn::Lanes(df);
  const size_t qs_offset = has_high_bits ? 48 : 16;
  for (int64_t b = 0; b < n_blocks; ++b, src += block_bytes, dst += 256) {
    const float d = load_f16(src);
    const float dmin = load_f16(src + 2);
    const uint8_t* qh = src + 16;
    const uint8_t* qs = src + qs_offset;
    for (int j = 0; j < 8; ++j) {
      const SubBlockScaleMin sm = unpack_scale_min(src + 4, j);
      const auto step = hn::Set(df, d * static_cast<float>(sm.scale));
      const auto offset = hn::Set(df, dmin * static_cast<float>(sm.min));
      const uint8_t* bytes = qs + 32 * (j / 2);
      for (size_t l = 0; l < 32; l += n) {
        auto q = hn::PromoteTo(di, hn::LoadU(d8, bytes + l));
        q = (j & 1) ? hn::ShiftRight<4>(q) : hn::And(q, hn::Set(di, 0x0f));
        if (has_high_bits) {
          const auto high = hn::And(hn::ShiftRightSame(hn::PromoteTo(di, hn::LoadU(d8, qh + l)), j),
                                    hn::Set(di, 1));
          q = hn::Or(q, hn::ShiftLeft<4>(high));
        }
        hn::StoreU(hn::Sub(hn::Mul(step, hn::ConvertTo(df, q)), offset), df, dst + 32 * j + l);
      }
    }
  }
}

// Q6_K (layout in format_q6_k.cpp).
void unpack_q6_k(const uint8_t* src, float* dst, int64_t n_blocks) {
  const DF df;
  const DI di;
  const D8 d8;
  const size_t n = hn::Lanes(df);
  for (int64_t b = 0; b < n_blocks; ++b, src += 210, dst += 256) {
    const auto* scales = reinterpret_cast<const int8_t*>(src + 192);
    const float d = load_f16(src + 208);
    for (int h = 0; h < 2; ++h) {
      for (int k = 0; k < 4; ++k) {
        const uint8_t* ql = src + 64 * h + 32 * (k & 1);
        const uint8_t* qh = src + 128 + 32 * h;
        const int low_shift = 4 * (k >> 1);
        for (size_t l = 0; l < 32; l += n) {
          const int e = 128 * h + 32 * k + static_cast<int>(l);
          const auto low =
              hn::And(hn::ShiftRightSame(hn::PromoteTo(di, hn::LoadU(d8, ql + l)), low_shift),
                      hn::Set(di, 0x0f));
          const auto high = hn::And(
              hn::ShiftRightSame(hn::PromoteTo(di, hn::LoadU(d8, qh + l)), 2 * k), hn::Set(di, 3));
          const auto q = hn::Sub(hn::Or(low, hn::ShiftLeft<4>(high)), hn::Set(di, 32));
          // Same association as the scalar decoder: (d * scale) * (q - 32).
          const auto step = hn::Set(df, d * static_cast<float>(scales[e / 16]));
          hn::StoreU(hn::Mul(step, hn::ConvertTo(df, q)), df, dst + e);
        }
      }
    }
  }
}

// F16 and BF16 (one element per block): hardware conversion where the
// target has it; exact either way, so equal to the scalar decoders.
template <class T>
void unpack_half(const uint8_t* src, float* dst, int64_t n) {
  const DF df;
  const hn::Rebind<T, DF> dh;
  const auto* h = reinterpret_cast<const T*>(src);
  const auto lanes = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, h + i)), df, dst + i);
  for (; i < n; ++i) {
    if constexpr (std::is_same_v<T, hwy::float16_t>) {
      dst[i] = load_f16(src + 2 * i);
    } else {
      uint16_t bits;
      std::memcpy(&bits, src + 2 * i, sizeof bits);
      const uint32_t wide = static_cast<uint32_t>(bits) << 16;
      std::memcpy(&dst[i], &wide, sizeof wide);
    }
  }
}

// Q8_0, Q4_0 and Q4_1 (layouts in format_q8_0.cpp, format_q4_0.cpp,
// format_q4_1.cpp), with the scalar decoders' operations: d * q,
// d * (q - 8), d * q + m.
void unpack_q8_0(const uint8_t* src, float* dst, int64_t n_blocks) {
  const DF df;
  const hn::Rebind<int8_t, DF> d8;
  const size_t n = hn::Lanes(df);
  for (int64_t b = 0; b < n_blocks; ++b, src += 34, dst += 32) {
    const auto d = hn::Set(df, load_f16(src));
    const auto* q = reinterpret_cast<const int8_t*>(src + 2);
    for (size_t l = 0; l < 32; l += n) {
      hn::StoreU(hn::Mul(d, hn::ConvertTo(df, hn::PromoteTo(DI(), hn::LoadU(d8, q + l)))), df,
                 dst + l);
    }
  }
}

template <bool kHasMin>
void unpack_q4(const uint8_t* src, float* dst, int64_t n_blocks) {
  const DF df;
  const DI di;
  const D8 d8;
  const size_t n = hn::Lanes(df);
  constexpr size_t kBytes = kHasMin ? 20 : 18;
  for (int64_t b = 0; b < n_blocks; ++b, src += kBytes, dst += 32) {
    const auto d = hn::Set(df, load_f16(src));
    const auto m = hn::Set(df, kHasMin ? load_f16(src + 2) : 0.0f);
    const uint8_t* qs = src + (kHasMin ? 4 : 2);
    for (size_t l = 0; l < 16; l += n) {
      const auto bytes = hn::PromoteTo(di, hn::LoadU(d8, qs + l));
      auto lo = hn::And(bytes, hn::Set(di, 0x0f));
      auto hi = hn::ShiftRight<4>(bytes);
      if (!kHasMin) {
        lo = hn::Sub(lo, hn::Set(di, 8));
        hi = hn::Sub(hi, hn::Set(di, 8));
      }
      auto lo_f = hn::Mul(d, hn::ConvertTo(df, lo));
      auto hi_f = hn::Mul(d, hn::ConvertTo(df, hi));
      if (kHasMin) {
        lo_f = hn::Add(lo_f, m);
        hi_f = hn::Add(hi_f, m);
      }
      hn::StoreU(lo_f, df, dst + l);
      hn::StoreU(hi_f, df, dst + 16 + l);
    }
  }
}

bool unpack_blocks_impl(TensorType type, const uint8_t* src, float* dst, int64_t n_blocks) {
  if (type == TensorType::kF16) {
    unpack_half<hwy::float16_t>(src, dst, n_blocks);
  } else if (type == TensorType::kBF16) {
    unpack_half<hwy::bfloat16_t>(src, dst, n_blocks);
  } else if (type == TensorType::kQ8_0) {
    unpack_q8_0(src, dst, n_blocks);
  } else if (type == TensorType::kQ4_0) {
    unpack_q4<false>(src, dst, n_blocks);
  } else if (type == TensorType::kQ4_1) {
    unpack_q4<true>(src, dst, n_blocks);
  } else if (type == TensorType::kQ4_K) {
    unpack_q4_q5_k(src, dst, n_blocks, 144, false);
  } else if (type == TensorType::kQ5_K) {
    unpack_q4_q5_k(src, dst, n_blocks, 176, true);
  } else if (type == TensorType::kQ6_K) {
    unpack_q6_k(src, dst, n_blocks);
  } else {
    return false;
  }
  return true;
}

}  // namespace HWY_NAMESPACE
}  // namespace kvforge::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvforge::kernels {

HWY_EXPORT(unpack_blocks_impl);

void unpack_blocks(const WeightFormat& format, const uint8_t* src, float* dst, int64_t n_blocks) {
  if (!HWY_DYNAMIC_DISPATCH(unpack_blocks_impl)(format.type, src, dst, n_blocks)) {
    format.dequantize_blocks(src, dst, n_blocks);
  }
}

}  // namespace kvforge::kernels
#endif
