// Per-channel groups over tokens (KIVI keys): the tile's rows are split into
// groups of g tokens; within a group each channel c gets its own grid
// (min over the g tokens rounded down to f16, scale = range / (2^bits - 1)
// rounded up). Layout per token group:
//   [head_dim × f16 scale][head_dim × f16 min][g rows × head_dim * bits / 8 codes]
// with each row's codes packed in chunks of min(32, head_dim) channels, so a
// row decodes as one vector multiply-add against the group's scale and min
// arrays. Keys have outlier channels (KIVI §3); per-channel grids confine an
// outlier's range to its own channel.
#include <algorithm>
#include <cstring>

#include "kv/kv_codec_factories.h"
#include "kv/kv_codec_kernels.h"
#include "kv/kv_codec_quantize.h"
#include "util/fp16.h"

namespace kvforge {
namespace {

constexpr int32_t kMaxHeadDim = 256;

class ChannelGroupKvCodec final : public KvCodec {
 public:
  ChannelGroupKvCodec(const ChannelGroupOptions& options, const KvCodecParams& params)
      : KvCodec(params), options_(options) {}

  std::string name() const override { return options_.name; }
  size_t tile_bytes() const override {
    return static_cast<size_t>(block_tokens() / options_.group_tokens) * group_bytes();
  }
  bool token_granular() const override { return false; }
  bool rotated() const override { return false; }
  int32_t residual_tokens() const override { return options_.residual_tokens; }

  void encode(const float* rows, int64_t row_stride, int32_t first, int32_t n,
              void* tile) const override {
    KVF_CHECK(first == 0 && n == block_tokens());
    const int32_t d = head_dim();
    const int32_t g = options_.group_tokens;
    const int32_t qmax = (1 << options_.bits) - 1;
    const size_t row_code_bytes = static_cast<size_t>(d * options_.bits / 8);
    float inv_step[kMaxHeadDim];
    float min[kMaxHeadDim];
    uint8_t codes[kMaxHeadDim];
    auto* out = static_cast<uint8_t*>(tile);
    for (int32_t t0 = 0; t0 < n; t0 += g, out += group_bytes()) {
      const float* x = rows + t0 * row_stride;
      for (int32_t c = 0; c < d; ++c) {
        float lo = x[c];
        float hi = x[c];
        for (int32_t t = 1; t < g; ++t) {
          lo = std::min(lo, x[t * row_stride + c]);
          hi = std::max(hi, x[t * row_stride + c]);
        }
        const kv_quant::AffineGrid grid = kv_quant::affine_grid(lo, hi, qmax);
        std::memcpy(out + 2 * c, &grid.scale, 2);
        std::memcpy(out + 2 * (d + c), &grid.min, 2);
        inv_step[c] = kv_quant::inverse_step(fp16_to_fp32(grid.scale));
        min[c] = fp16_to_fp32(grid.min);
      }
      uint8_t* row_codes = out + 4 * static_cast<size_t>(d);
      for (int32_t t = 0; t < g; ++t, row_codes += row_code_bytes) {
        const float* xt = x + t * row_stride;
        for (int32_t c = 0; c < d; ++c) {
          codes[c] = kv_quant::affine_code(xt[c], min[c], inv_step[c], qmax);
        }
        kv_quant::pack_codes(codes, d, kv_quant::channel_group(d), options_.bits, row_codes);
      }
    }
  }

  void decode(const void* tile, int32_t n, float* out) const override {
    KVF_CHECK(n >= 0 && n <= block_tokens());
    kv_kernels::decode_channel_group_rows(static_cast<const uint8_t*>(tile), n, head_dim(),
                                          options_.bits, options_.group_tokens, out);
  }

 private:
  size_t group_bytes() const {
    return kv_kernels::channel_group_bytes(head_dim(), options_.bits, options_.group_tokens);
  }

  ChannelGroupOptions options_;
};

}  // namespace

Result<std::unique_ptr<KvCodec>> make_channel_group_kv_codec(const ChannelGroupOptions& options,
                                                             const KvCodecParams& params) {
  KVF_CHECK(options.bits == 2 || options.bits == 4);
  KVF_RETURN_IF_ERROR(kv_quant::check_quantized_head_dim(options.name, params.head_dim));
  if (options.group_tokens <= 0 || params.block_tokens % options.group_tokens != 0) {
    return invalid_argument("codec '" + options.name +
                            "': the key token group g=" + std::to_string(options.group_tokens) +
                            " must divide block_tokens=" + std::to_string(params.block_tokens));
  }
  return std::unique_ptr<KvCodec>(std::make_unique<ChannelGroupKvCodec>(options, params));
}

}  // namespace kvforge
