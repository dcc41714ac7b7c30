// Compiled once per SIMD target (Highway foreach_target) and dispatched at
// run time. Layouts: kv_codec_kernels.h.
#include "kernels/simd_targets.h"
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kv/kv_codec_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on
#include "kernels/vector_ops-inl.h"

#include <cstdint>

#include "kv/kv_codec_kernels.h"
#include "kvforge/status.h"
#include "util/fp16.h"

HWY_BEFORE_NAMESPACE();
namespace kvforge::kv_kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

using kernels::HWY_NAMESPACE::vec::load_f16;

// A plain copy: glibc's memcpy (rep movsb) is several times slower than this for
// 16 KiB tiles on the AMD machine the benchmarks ran on.
void decode_f32_impl(const float* src, int64_t n, float* out) {
  const DF df;
  const auto lanes = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(hn::LoadU(df, src + i), df, out + i);
  for (; i < n; ++i) out[i] = src[i];
}

void decode_f16_impl(const uint16_t* src, int64_t n, float* out) {
  const DF df;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const auto* h = reinterpret_cast<const hwy::float16_t*>(src);
  const auto lanes = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, h + i)), df, out + i);
  for (; i < n; ++i) out[i] = fp16_to_fp32(src[i]);
}

void decode_bf16_impl(const uint16_t* src, int64_t n, float* out) {
  const DF df;
  const hn::RebindToUnsigned<DF> du32;
  const hn::Rebind<uint16_t, DF> du16;
  const auto lanes = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto wide = hn::ShiftLeft<16>(hn::PromoteTo(du32, hn::LoadU(du16, src + i)));
    hn::StoreU(hn::BitCast(df, wide), df, out + i);
  }
  for (; i < n; ++i) out[i] = bf16_to_fp32(src[i]);
}

void decode_int8_rows_impl(const uint8_t* src, int32_t n_rows, int32_t head_dim, float* out) {
  const DF df;
  const hn::RebindToSigned<DF> di32;
  const hn::Rebind<int8_t, DF> di8;
  const auto lanes = static_cast<int32_t>(hn::Lanes(df));
  const size_t row_bytes = 2 + static_cast<size_t>(head_dim);
  for (int32_t r = 0; r < n_rows; ++r, src += row_bytes, out += head_dim) {
    const float scale = load_f16(src);
    const auto* codes = reinterpret_cast<const int8_t*>(src + 2);
    const auto vscale = hn::Set(df, scale);
    int32_t i = 0;
    for (; i + lanes <= head_dim; i += lanes) {
      const auto q = hn::ConvertTo(df, hn::PromoteTo(di32, hn::LoadU(di8, codes + i)));
      hn::StoreU(hn::Mul(q, vscale), df, out + i);
    }
    for (; i < head_dim; ++i) out[i] = static_cast<float>(codes[i]) * scale;
  }
}

// Packed chunks (layout: kv_quant::pack_codes): a chunk of kGroup codes is
// kBytes = kGroup * kBits / 8 bytes, byte j holding codes j, j + kBytes, ...
// Widening kBytes bytes to 32-bit lanes and shifting by kBits yields each run
// of kBytes consecutive codes in order, with no byte shuffles. Vectors are
// capped at kBytes lanes so that every target walks the same chunk shape.
template <int kBits, int kGroup>
struct ChunkShape {
  static constexpr int kBytes = kGroup * kBits / 8;
  static constexpr int kPerByte = 8 / kBits;
  using D = hn::CappedTag<float, kBytes>;
};

// out[i] = code_i * scale + min for the kGroup codes of one chunk.
template <int kBits, int kGroup>
HWY_INLINE void affine_chunk(const uint8_t* src, float scale, float min, float* out) {
  using Shape = ChunkShape<kBits, kGroup>;
  const typename Shape::D df;
  const hn::RebindToUnsigned<decltype(df)> du32;
  const hn::RebindToSigned<decltype(df)> di32;
  const hn::Rebind<uint8_t, decltype(df)> du8;
  const auto mask = hn::Set(du32, (1u << kBits) - 1);
  const auto vscale = hn::Set(df, scale);
  const auto vmin = hn::Set(df, min);
  for (int j = 0; j < Shape::kBytes; j += static_cast<int>(hn::Lanes(df))) {
    auto bytes = hn::PromoteTo(du32, hn::LoadU(du8, src + j));
    for (int s = 0; s < Shape::kPerByte; ++s) {
      const auto q = hn::ConvertTo(df, hn::BitCast(di32, hn::And(bytes, mask)));
      hn::StoreU(hn::MulAdd(q, vscale, vmin), df, out + s * Shape::kBytes + j);
      bytes = hn::ShiftRight<kBits>(bytes);
    }
  }
}

template <int kBits, int kGroup>
void token_group_rows(const uint8_t* src, int32_t n_rows, int32_t head_dim, float* out) {
  constexpr int kBlockBytes = 4 + ChunkShape<kBits, kGroup>::kBytes;
  const int32_t n_groups = n_rows * (head_dim / kGroup);
  for (int32_t g = 0; g < n_groups; ++g, src += kBlockBytes, out += kGroup) {
    affine_chunk<kBits, kGroup>(src + 4, load_f16(src), load_f16(src + 2), out);
  }
}

void decode_token_group_rows_impl(const uint8_t* src, int32_t n_rows, int32_t head_dim,
                                  int32_t bits, float* out) {
  const int32_t group = head_dim < 32 ? head_dim : 32;
  const int32_t key = bits * 100 + group;
  switch (key) {
    case 432:
      return token_group_rows<4, 32>(src, n_rows, head_dim, out);
    case 416:
      return token_group_rows<4, 16>(src, n_rows, head_dim, out);
    case 408:
      return token_group_rows<4, 8>(src, n_rows, head_dim, out);
    case 232:
      return token_group_rows<2, 32>(src, n_rows, head_dim, out);
    case 216:
      return token_group_rows<2, 16>(src, n_rows, head_dim, out);
    case 208:
      return token_group_rows<2, 8>(src, n_rows, head_dim, out);
    default:
      KVF_CHECK(false && "unsupported bits / head_dim");
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace kvforge::kv_kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvforge::kv_kernels {

HWY_EXPORT(decode_f32_impl);
HWY_EXPORT(decode_f16_impl);
HWY_EXPORT(decode_bf16_impl);
HWY_EXPORT(decode_int8_rows_impl);
HWY_EXPORT(decode_token_group_rows_impl);

void decode_f32(const float* src, int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(decode_f32_impl)(src, n, out);
}

void decode_f16(const uint16_t* src, int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(decode_f16_impl)(src, n, out);
}

void decode_bf16(const uint16_t* src, int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(decode_bf16_impl)(src, n, out);
}

void decode_int8_rows(const uint8_t* src, int32_t n_rows, int32_t head_dim, float* out) {
  HWY_DYNAMIC_DISPATCH(decode_int8_rows_impl)(src, n_rows, head_dim, out);
}

void decode_token_group_rows(const uint8_t* src, int32_t n_rows, int32_t head_dim, int32_t bits,
                             float* out) {
  HWY_DYNAMIC_DISPATCH(decode_token_group_rows_impl)(src, n_rows, head_dim, bits, out);
}

}  // namespace kvforge::kv_kernels
#endif  // HWY_ONCE
