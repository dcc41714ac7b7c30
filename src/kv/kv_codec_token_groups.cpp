// Per-token groups (int4, int4h, KIVI values): each row is head_dim / G
// groups of G = min(32, head_dim) channels, each group
//   [f16 scale][f16 min][G * bits / 8 bytes of codes]   x ≈ q * scale + min,
// with min = min(x) rounded down to f16, scale = (max(x) - min) / (2^bits - 1)
// rounded up, q = round((x - min) / scale). Like GGML's Q4_1 for bits = 4.
// int4h quantizes H·x (hadamard.h) instead of x. Rows are independent.
#include <algorithm>
#include <cstring>

#include "kv/hadamard.h"
#include "kv/kv_codec_factories.h"
#include "kv/kv_codec_kernels.h"
#include "kv/kv_codec_quantize.h"
#include "util/fp16.h"

namespace kvforge {
namespace {

class TokenGroupKvCodec final : public KvCodec {
 public:
  TokenGroupKvCodec(const TokenGroupOptions& options, const KvCodecParams& params)
      : KvCodec(params), options_(options), group_(kv_quant::channel_group(params.head_dim)) {}

  std::string name() const override { return options_.name; }
  size_t tile_bytes() const override { return static_cast<size_t>(block_tokens()) * row_bytes(); }
  bool token_granular() const override { return true; }
  bool rotated() const override { return options_.rotated; }
  int32_t residual_tokens() const override { return options_.residual_tokens; }

  void encode(const float* rows, int64_t row_stride, int32_t first, int32_t n,
              void* tile) const override {
    KVF_CHECK(first >= 0 && n >= 0 && first + n <= block_tokens());
    const int32_t d = head_dim();
    const int32_t qmax = (1 << options_.bits) - 1;
    const size_t code_bytes = static_cast<size_t>(group_ * options_.bits / 8);
    float rotated_row[kMaxHadamardOrder];
    uint8_t codes[kv_quant::kMaxChannelGroup];
    auto* out = static_cast<uint8_t*>(tile) + static_cast<size_t>(first) * row_bytes();
    for (int32_t r = 0; r < n; ++r) {
      const float* x = rows + r * row_stride;
      if (options_.rotated) {
        std::copy(x, x + d, rotated_row);
        hadamard_transform(rotated_row, d);
        x = rotated_row;
      }
      for (int32_t g = 0; g < d; g += group_, out += 4 + code_bytes) {
        const auto [lo, hi] = std::minmax_element(x + g, x + g + group_);
        const kv_quant::AffineGrid grid = kv_quant::affine_grid(*lo, *hi, qmax);
        std::memcpy(out, &grid.scale, 2);
        std::memcpy(out + 2, &grid.min, 2);
        const float inv_step = kv_quant::inverse_step(fp16_to_fp32(grid.scale));
        const float min = fp16_to_fp32(grid.min);
        for (int32_t i = 0; i < group_; ++i) {
          codes[i] = kv_quant::affine_code(x[g + i], min, inv_step, qmax);
        }
        kv_quant::pack_codes(codes, group_, group_, options_.bits, out + 4);
      }
    }
  }

  void decode(const void* tile, int32_t n, float* out) const override {
    KVF_CHECK(n >= 0 && n <= block_tokens());
    kv_kernels::decode_token_group_rows(static_cast<const uint8_t*>(tile), n, head_dim(),
                                        options_.bits, out);
  }

 private:
  size_t row_bytes() const { return kv_kernels::token_group_row_bytes(head_dim(), options_.bits); }

  TokenGroupOptions options_;
  int32_t group_;
};

}  // namespace

Result<std::unique_ptr<KvCodec>> make_token_group_kv_codec(const TokenGroupOptions& options,
                                                           const KvCodecParams& params) {
  KVF_CHECK(options.bits == 2 || options.bits == 4);
  KVF_RETURN_IF_ERROR(kv_quant::check_quantized_head_dim(options.name, params.head_dim));
  if (options.rotated && !is_hadamard_order(params.head_dim)) {
    return invalid_argument("codec '" + options.name +
                            "' rotates head vectors by a Walsh-Hadamard matrix, which needs a "
                            "power-of-two head_dim (8 ... 256), got " +
                            std::to_string(params.head_dim));
  }
  return std::unique_ptr<KvCodec>(std::make_unique<TokenGroupKvCodec>(options, params));
}

}  // namespace kvforge
