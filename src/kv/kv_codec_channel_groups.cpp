// Per-channel groups over tokens (KIVI keys): the tile's rows are split into
// groups of g tokens; within a group each channel c gets its own grid
// (min over the g tokens rounded down to f16, scale = range / (2^bits - 1)
// rounded up). Layout per token group (KvRowFormat::kKivi2Columns,
// kKivi4Columns):
//   [head_dim × f16 scale][head_dim × f16 min][head_dim columns × B bytes]
// with B = g * bits / 8: byte j of column c holds the codes of rows
// j, j + B, j + 2B, ... from its least significant bits up. Keys have outlier
// channels (KIVI §3); per-channel grids confine an outlier's range to its own
// channel. Stored by column, a column's codes for a vector of rows come from
// one load, and since the grid is per channel, the attention folds the scale
// into the query and the mins into one bias per token group: a row's score is
// bias + sum_c (q_c * scale_c) * code_c (kv-cache.md).
#include <algorithm>
#include <cmath>
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
  KvRowFormat row_format() const override {
    return options_.bits == 2 ? KvRowFormat::kKivi2Columns : KvRowFormat::kKivi4Columns;
  }
  int32_t grid_tokens() const override { return options_.group_tokens; }

  void encode(const float* rows, int64_t row_stride, int32_t first, int32_t n,
              void* tile) const override {
    KVF_CHECK(first == 0 && n == block_tokens());
    const int32_t d = head_dim();
    const int32_t g = options_.group_tokens;
    const int32_t qmax = (1 << options_.bits) - 1;
    const size_t column_bytes = static_cast<size_t>(g * options_.bits / 8);
    float inv_step[kMaxHeadDim];
    float min[kMaxHeadDim];
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
      uint8_t* codes = out + kv_kernels::channel_group_codes_offset(d);
      std::fill_n(codes, static_cast<size_t>(d) * column_bytes, uint8_t{0});
      for (int32_t t = 0; t < g; ++t) {
        const float* xt = x + t * row_stride;
        const int shift = options_.bits * (t / static_cast<int32_t>(column_bytes));
        const size_t byte = static_cast<size_t>(t) % column_bytes;
        for (int32_t c = 0; c < d; ++c) {
          const uint8_t code = kv_quant::affine_code(xt[c], min[c], inv_step[c], qmax);
          codes[c * column_bytes + byte] |= static_cast<uint8_t>(code << shift);
        }
      }
    }
  }

  // Scalar: the attention reads this layout in place (paged_attention.cpp);
  // decode serves the targets and shapes it cannot.
  void decode(const void* tile, int32_t n, float* out) const override {
    KVF_CHECK(n >= 0 && n <= block_tokens());
    const int32_t d = head_dim();
    const int32_t g = options_.group_tokens;
    const int32_t column_bytes = g * options_.bits / 8;
    const uint32_t mask = (1u << options_.bits) - 1;
    const auto* group = static_cast<const uint8_t*>(tile);
    for (int32_t t0 = 0; t0 < n; t0 += g, group += group_bytes()) {
      const uint8_t* codes = group + kv_kernels::channel_group_codes_offset(d);
      for (int32_t c = 0; c < d; ++c) {
        uint16_t scale_bits, min_bits;
        std::memcpy(&scale_bits, group + 2 * c, 2);
        std::memcpy(&min_bits, group + 2 * (d + c), 2);
        const float scale = fp16_to_fp32(scale_bits);
        const float min = fp16_to_fp32(min_bits);
        const uint8_t* column = codes + static_cast<size_t>(c) * column_bytes;
        for (int32_t t = 0; t < g && t0 + t < n; ++t) {
          const uint32_t code =
              (column[t % column_bytes] >> (options_.bits * (t / column_bytes))) & mask;
          out[static_cast<size_t>(t0 + t) * d + c] = std::fma(static_cast<float>(code), scale, min);
        }
      }
    }
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
  if (options.group_tokens * options.bits % 8 != 0) {
    return invalid_argument("codec '" + options.name +
                            "': the key token group g=" + std::to_string(options.group_tokens) +
                            " must be a multiple of " + std::to_string(8 / options.bits) +
                            " (a channel's " + std::to_string(options.bits) +
                            "-bit codes of one group fill whole bytes)");
  }
  return std::unique_ptr<KvCodec>(std::make_unique<ChannelGroupKvCodec>(options, params));
}

}  // namespace kvforge
