// int8: each row is [f16 scale][head_dim × int8 q], x ≈ q * scale, with
// scale = max|x| / 127 rounded up to f16 and q = round(x / scale). Rows are
// independent, so any row range can be written.
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
  explicit Int8KvCodec(const KvCodecParams& params) : KvCodec(params) {}

  std::string name() const override { return "int8"; }
  size_t tile_bytes() const override { return static_cast<size_t>(block_tokens()) * row_bytes(); }
  bool token_granular() const override { return true; }
  bool rotated() const override { return false; }
  int32_t residual_tokens() const override { return 0; }
  KvRowFormat row_format() const override { return KvRowFormat::kInt8; }

  void encode(const float* rows, int64_t row_stride, int32_t first, int32_t n,
              void* tile) const override {
    KVF_CHECK(first >= 0 && n >= 0 && first + n <= block_tokens());
    const int32_t d = head_dim();
    auto* row = static_cast<uint8_t*>(tile) + static_cast<size_t>(first) * row_bytes();
    for (int32_t r = 0; r < n; ++r, row += row_bytes()) {
      const float* x = rows + r * row_stride;
      float amax = 0.0f;
      for (int32_t i = 0; i < d; ++i) amax = std::max(amax, std::fabs(x[i]));
      const uint16_t scale_bits = kv_quant::symmetric_scale(amax, kQMax);
      std::memcpy(row, &scale_bits, sizeof scale_bits);
      const float inv_step = kv_quant::inverse_step(fp16_to_fp32(scale_bits));
      auto* codes = reinterpret_cast<int8_t*>(row + 2);
      for (int32_t i = 0; i < d; ++i) codes[i] = kv_quant::symmetric_code(x[i], inv_step, kQMax);
    }
  }

  void decode(const void* tile, int32_t n, float* out) const override {
    KVF_CHECK(n >= 0 && n <= block_tokens());
    kv_kernels::decode_int8_rows(static_cast<const uint8_t*>(tile), n, head_dim(), out);
  }

 private:
  size_t row_bytes() const { return kv_kernels::int8_row_bytes(head_dim()); }
};

}  // namespace

Result<std::unique_ptr<KvCodec>> make_int8_kv_codec(const KvCodecParams& params) {
  return std::unique_ptr<KvCodec>(std::make_unique<Int8KvCodec>(params));
}

}  // namespace kvforge
