// int8: each row is [f16 scale][head_dim × int8 q], x ≈ q * scale, with
// scale = max|x| / 127 rounded up to f16 and q = round(x / scale). Rows are
// independent, so any row range can be written. Value tiles store the rows
// one after another; key tiles store all scales, then the codes by column
// (KvRowFormat::kInt8Columns), which the score kernel reads a vector of rows
// at a time.
//
// Why an f16 scale: it is rounded up and the codes are computed against the
// rounded value, so it costs nothing in accuracy (error <= scale / 2, scale
// at most 2^-10 above max|x| / 127) and saves 2 bytes per row over f32.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kv/kv_codec_factories.h"
#include "kv/kv_codec_kernels.h"
#include "kv/kv_codec_quantize.h"
#include "util/fp16.h"

namespace kvforge {
namespace {

constexpr int32_t kQMax = 127;

class Int8KvCodec final : public KvCodec {
 public:
  Int8KvCodec(KvSide side, const KvCodecParams& params)
      : KvCodec(params), by_column_(side == KvSide::kKey) {}

  std::string name() const override { return "int8"; }
  size_t tile_bytes() const override { return static_cast<size_t>(block_tokens()) * row_bytes(); }
  bool token_granular() const override { return true; }
  bool rotated() const override { return false; }
  int32_t residual_tokens() const override { return 0; }
  KvRowFormat row_format() const override {
    return by_column_ ? KvRowFormat::kInt8Columns : KvRowFormat::kInt8;
  }

  void encode(const float* rows, int64_t row_stride, int32_t first, int32_t n,
              void* tile) const override {
    KVF_CHECK(first >= 0 && n >= 0 && first + n <= block_tokens());
    const int32_t d = head_dim();
    const auto b = static_cast<size_t>(block_tokens());
    auto* bytes = static_cast<uint8_t*>(tile);
    for (int32_t r = 0; r < n; ++r) {
      const float* x = rows + r * row_stride;
      const auto row = static_cast<size_t>(first + r);
      float amax = 0.0f;
      for (int32_t i = 0; i < d; ++i) amax = std::max(amax, std::fabs(x[i]));
      const uint16_t scale_bits = kv_quant::symmetric_scale(amax, kQMax);
      const float inv_step = kv_quant::inverse_step(fp16_to_fp32(scale_bits));
      // Scale and code i of this row: [scale][codes] per row, or the column layout.
      uint8_t* scale = by_column_ ? bytes + 2 * row : bytes + row * row_bytes();
      uint8_t* code = by_column_ ? bytes + 2 * b + row : scale + 2;
      const size_t code_stride = by_column_ ? b : 1;
      std::memcpy(scale, &scale_bits, sizeof scale_bits);
      for (int32_t i = 0; i < d; ++i) {
        code[i * code_stride] =
            static_cast<uint8_t>(kv_quant::symmetric_code(x[i], inv_step, kQMax));
      }
    }
  }

  void decode(const void* tile, int32_t n, float* out) const override {
    KVF_CHECK(n >= 0 && n <= block_tokens());
    if (by_column_) {
      const auto* bytes = static_cast<const uint8_t*>(tile);
      const auto b = static_cast<size_t>(block_tokens());
      const int32_t d = head_dim();
      for (int32_t r = 0; r < n; ++r) {
        uint16_t scale_bits;
        std::memcpy(&scale_bits, bytes + 2 * r, sizeof scale_bits);
        const float scale = fp16_to_fp32(scale_bits);
        for (int32_t i = 0; i < d; ++i) {
          const auto q = static_cast<int8_t>(bytes[2 * b + i * b + r]);
          out[static_cast<size_t>(r) * d + i] = static_cast<float>(q) * scale;
        }
      }
      return;
    }
    kv_kernels::decode_int8_rows(static_cast<const uint8_t*>(tile), n, head_dim(), out);
  }

 private:
  size_t row_bytes() const { return kv_kernels::int8_row_bytes(head_dim()); }

  bool by_column_;  // keys: the score kernel reads whole columns (kv_codec.h)
};

}  // namespace

Result<std::unique_ptr<KvCodec>> make_int8_kv_codec(KvSide side, const KvCodecParams& params) {
  return std::unique_ptr<KvCodec>(std::make_unique<Int8KvCodec>(side, params));
}

}  // namespace kvforge
