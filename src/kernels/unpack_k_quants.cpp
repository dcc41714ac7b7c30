// SIMD decoders for the K-quant formats (Q4_K, Q5_K, Q6_K), used by the
// matmul kernels to unpack weights into f32 scratch. They compute exactly
// what the scalar decoders in format_q*_k.cpp compute (same operations, no
// fused multiply-add), so either may be used for any row.
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

bool unpack_blocks_impl(TensorType type, const uint8_t* src, float* dst, int64_t n_blocks) {
  if (type == TensorType::kQ4_K) {
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
