// f32, f16 and bf16 tiles: block_tokens rows of head_dim elements, row-major;
// f16 and bf16 key tiles column-major instead (KvRowFormat::kF16Columns,
// kBF16Columns).
#include <cstring>

#include <fmt/format.h>

#include "kv/kv_codec_factories.h"
#include "kv/kv_codec_kernels.h"
#include "util/fp16.h"

namespace kvforge {
namespace {

class FloatKvCodec final : public KvCodec {
 public:
  FloatKvCodec(KvFloatFormat format, KvSide side, const KvCodecParams& params)
      : KvCodec(params),
        format_(format),
        by_column_(format != KvFloatFormat::kF32 && side == KvSide::kKey) {}

  std::string name() const override {
    switch (format_) {
      case KvFloatFormat::kF32:
        return "f32";
      case KvFloatFormat::kF16:
        return "f16";
      case KvFloatFormat::kBF16:
        return "bf16";
    }
    return "?";
  }
  size_t tile_bytes() const override {
    return static_cast<size_t>(block_tokens()) * static_cast<size_t>(head_dim()) * element_bytes();
  }
  bool token_granular() const override { return true; }
  bool rotated() const override { return false; }
  int32_t residual_tokens() const override { return 0; }
  KvRowFormat row_format() const override {
    switch (format_) {
      case KvFloatFormat::kF32:
        return KvRowFormat::kF32;
      case KvFloatFormat::kF16:
        return by_column_ ? KvRowFormat::kF16Columns : KvRowFormat::kF16;
      case KvFloatFormat::kBF16:
        return by_column_ ? KvRowFormat::kBF16Columns : KvRowFormat::kBF16;
    }
    return KvRowFormat::kOpaque;
  }

  void encode(const float* rows, int64_t row_stride, int32_t first, int32_t n,
              void* tile) const override {
    KVF_CHECK(first >= 0 && n >= 0 && first + n <= block_tokens());
    const int32_t d = head_dim();
    if (by_column_) {
      auto* columns = static_cast<uint16_t*>(tile);
      for (int32_t r = 0; r < n; ++r) {
        const float* x = rows + r * row_stride;
        for (int32_t i = 0; i < d; ++i) {
          columns[static_cast<size_t>(i) * block_tokens() + first + r] = to_half(x[i]);
        }
      }
      return;
    }
    auto* bytes = static_cast<uint8_t*>(tile) + static_cast<size_t>(first) * d * element_bytes();
    for (int32_t r = 0; r < n; ++r) {
      const float* x = rows + r * row_stride;
      uint8_t* row = bytes + static_cast<size_t>(r) * d * element_bytes();
      if (format_ == KvFloatFormat::kF32) {
        std::memcpy(row, x, static_cast<size_t>(d) * sizeof(float));
        continue;
      }
      for (int32_t i = 0; i < d; ++i) {
        const uint16_t h = to_half(x[i]);
        std::memcpy(row + 2 * i, &h, sizeof h);
      }
    }
  }

  void decode(const void* tile, int32_t n, float* out) const override {
    KVF_CHECK(n >= 0 && n <= block_tokens());
    if (by_column_) {
      const auto* columns = static_cast<const uint16_t*>(tile);
      const int32_t d = head_dim();
      for (int32_t r = 0; r < n; ++r) {
        for (int32_t i = 0; i < d; ++i) {
          const uint16_t h = columns[static_cast<size_t>(i) * block_tokens() + r];
          out[static_cast<size_t>(r) * d + i] =
              format_ == KvFloatFormat::kF16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
        }
      }
      return;
    }
    const int64_t count = static_cast<int64_t>(n) * head_dim();
    switch (format_) {
      case KvFloatFormat::kF32:
        kv_kernels::decode_f32(static_cast<const float*>(tile), count, out);
        break;
      case KvFloatFormat::kF16:
        kv_kernels::decode_f16(static_cast<const uint16_t*>(tile), count, out);
        break;
      case KvFloatFormat::kBF16:
        kv_kernels::decode_bf16(static_cast<const uint16_t*>(tile), count, out);
        break;
    }
  }

 private:
  size_t element_bytes() const { return format_ == KvFloatFormat::kF32 ? 4 : 2; }
  // x as the 16-bit format's bits (f16 or bf16).
  uint16_t to_half(float x) const {
    return format_ == KvFloatFormat::kF16 ? fp32_to_fp16(x) : fp32_to_bf16(x);
  }

  KvFloatFormat format_;
  bool by_column_;  // f16 and bf16 keys: the score kernel reads whole columns (kv_codec.h)
};

}  // namespace

Result<std::unique_ptr<KvCodec>> make_float_kv_codec(KvFloatFormat format, KvSide side,
                                                     const KvCodecParams& params) {
  return std::unique_ptr<KvCodec>(std::make_unique<FloatKvCodec>(format, side, params));
}

}  // namespace kvforge
