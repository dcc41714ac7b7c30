// Per-token groups (int4, int4h, KIVI values): each row is head_dim / G
// groups of G = min(32, head_dim) channels, each group
//   [f16 scale][f16 min][G * bits / 8 bytes of codes]   x ≈ q * scale + min,
// with min = min(x) rounded down to f16, scale = (max(x) - min) / (2^bits - 1)
// rounded up, q = round((x - min) / scale). Like GGML's Q4_1 for bits = 4.
// int4h quantizes H·x (hadamard.h) instead of x. Rows are independent.
//
// Tiles with a block_tokens that is a multiple of 16 hold the same numbers in
// one of the pair layouts (kv_codec.h): all scales, all mins, then the codes
// per chunk of 16 rows. 4-bit keys go by channel pairs (KvRowFormat::
// kInt4Pairs), which the score kernel multiplies with the int8 query's
// channel pairs in integer multiply-adds; 4- and 2-bit values (groups of 32
// channels) by token pairs (kInt4TokenPairs, kInt2TokenPairs), which the
// value kernel multiplies with alternating pairs of weights (kv-cache.md).
#include <algorithm>
#include <cmath>
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
  TokenGroupKvCodec(const TokenGroupOptions& options, KvSide side, const KvCodecParams& params)
      : KvCodec(params),
        options_(options),
        group_(kv_quant::channel_group(params.head_dim)),
        layout_(pick_layout(options, side, params)) {}

  std::string name() const override { return options_.name; }
  size_t tile_bytes() const override { return static_cast<size_t>(block_tokens()) * row_bytes(); }
  bool token_granular() const override { return true; }
  bool rotated() const override { return options_.rotated; }
  int32_t residual_tokens() const override { return options_.residual_tokens; }
  KvRowFormat row_format() const override { return layout_; }

  void encode(const float* rows, int64_t row_stride, int32_t first, int32_t n,
              void* tile) const override {
    encode_rows(rows, row_stride, first, n, tile, options_.rotated);
  }
  void encode_stored(const float* rows, int64_t row_stride, int32_t first, int32_t n,
                     void* tile) const override {
    encode_rows(rows, row_stride, first, n, tile, false);
  }

 private:
  // rotate: apply H first (encode); encode_stored's rows are rotated already.
  void encode_rows(const float* rows, int64_t row_stride, int32_t first, int32_t n, void* tile,
                   bool rotate) const {
    KVF_CHECK(first >= 0 && n >= 0 && first + n <= block_tokens());
    const int32_t d = head_dim();
    const int32_t qmax = (1 << options_.bits) - 1;
    const size_t code_bytes = static_cast<size_t>(group_ * options_.bits / 8);
    float rotated_row[kMaxHadamardOrder];
    uint8_t codes[kv_quant::kMaxChannelGroup];
    auto* bytes = static_cast<uint8_t*>(tile);
    for (int32_t r = 0; r < n; ++r) {
      const int32_t row = first + r;
      const float* x = rows + r * row_stride;
      if (rotate) {
        std::copy(x, x + d, rotated_row);
        hadamard_transform(rotated_row, d);
        x = rotated_row;
      }
      for (int32_t g = 0; g < d; g += group_) {
        const auto [lo, hi] = std::minmax_element(x + g, x + g + group_);
        const kv_quant::AffineGrid grid = kv_quant::affine_grid(*lo, *hi, qmax);
        const float inv_step = kv_quant::inverse_step(fp16_to_fp32(grid.scale));
        const float min = fp16_to_fp32(grid.min);
        for (int32_t i = 0; i < group_; ++i) {
          codes[i] = kv_quant::affine_code(x[g + i], min, inv_step, qmax);
        }
        if (layout_ != KvRowFormat::kOpaque) {
          store_pair_group(grid, codes, row, g, bytes);
        } else {
          uint8_t* out = bytes + static_cast<size_t>(row) * row_bytes() +
                         static_cast<size_t>(g / group_) * (4 + code_bytes);
          std::memcpy(out, &grid.scale, 2);
          std::memcpy(out + 2, &grid.min, 2);
          kv_quant::pack_codes(codes, group_, group_, options_.bits, out + 4);
        }
      }
    }
  }

 public:
  void decode(const void* tile, int32_t n, float* out) const override {
    KVF_CHECK(n >= 0 && n <= block_tokens());
    if (layout_ != KvRowFormat::kOpaque) {
      decode_pairs(static_cast<const uint8_t*>(tile), n, out);
      return;
    }
    kv_kernels::decode_token_group_rows(static_cast<const uint8_t*>(tile), n, head_dim(),
                                        options_.bits, out);
  }

 private:
  size_t row_bytes() const { return kv_kernels::token_group_row_bytes(head_dim(), options_.bits); }

  // Rows per chunk of the pair layouts (kv_codec.h).
  static constexpr int32_t kPairChunkRows = 16;

  static KvRowFormat pick_layout(const TokenGroupOptions& options, KvSide side,
                                 const KvCodecParams& params) {
    if (params.block_tokens % kPairChunkRows != 0) return KvRowFormat::kOpaque;
    if (side == KvSide::kKey) {
      return options.bits == 4 ? KvRowFormat::kInt4Pairs : KvRowFormat::kOpaque;
    }
    // Values: the value kernel takes whole groups of 32 channels.
    if (kv_quant::channel_group(params.head_dim) != 32) return KvRowFormat::kOpaque;
    return options.bits == 4 ? KvRowFormat::kInt4TokenPairs : KvRowFormat::kInt2TokenPairs;
  }

  // Byte offsets of the pair layouts, and where a row's code of a channel sits.
  size_t scale_offset(int32_t group_index, int32_t row) const {
    return 2 * (static_cast<size_t>(group_index) * block_tokens() + row);
  }
  size_t min_offset(int32_t group_index, int32_t row) const {
    return scale_offset(head_dim() / group_ + group_index, row);
  }
  struct CodeAt {
    size_t offset;
    int shift;
  };
  CodeAt code_at(int32_t channel, int32_t row) const {
    const size_t codes = min_offset(head_dim() / group_, 0);
    const auto chunk = static_cast<size_t>(row / kPairChunkRows);
    const int32_t in_chunk = row % kPairChunkRows;
    if (layout_ == KvRowFormat::kInt4Pairs) {  // 16 bytes per channel pair
      const size_t pair = chunk * (head_dim() / 2) + channel / 2;
      return {codes + pair * kPairChunkRows + 2 * static_cast<size_t>(in_chunk % 8) + channel % 2,
              in_chunk < 8 ? 0 : 4};
    }
    const int32_t in_group = channel % 32;
    const size_t chunk_group = chunk * (head_dim() / 32) + channel / 32;
    const size_t byte = 2 * static_cast<size_t>(in_group % 16) + in_chunk % 2;
    if (layout_ == KvRowFormat::kInt4TokenPairs) {  // 32 bytes per row pair and group
      return {codes + (chunk_group * 8 + in_chunk / 2) * 32 + byte, in_group < 16 ? 0 : 4};
    }
    // kInt2TokenPairs: 32 bytes per row quad and group.
    return {codes + (chunk_group * 4 + in_chunk / 4) * 32 + byte,
            4 * (in_chunk % 4 / 2) + (in_group < 16 ? 0 : 2)};
  }

  // Writes one row's group (channels [first_channel, first_channel + G)) into
  // a pair layout; the other nibble of each code byte is kept.
  void store_pair_group(const kv_quant::AffineGrid& grid, const uint8_t* codes, int32_t row,
                        int32_t first_channel, uint8_t* tile) const {
    const int32_t group_index = first_channel / group_;
    std::memcpy(tile + scale_offset(group_index, row), &grid.scale, 2);
    std::memcpy(tile + min_offset(group_index, row), &grid.min, 2);
    const int mask = (1 << options_.bits) - 1;
    for (int32_t i = 0; i < group_; ++i) {
      const CodeAt at = code_at(first_channel + i, row);
      uint8_t& byte = tile[at.offset];
      byte = static_cast<uint8_t>((byte & ~(mask << at.shift)) | (codes[i] << at.shift));
    }
  }

  // Scalar, in the order of the code bytes: the attention reads these
  // layouts in place (paged_attention.cpp); decode serves the targets it
  // cannot, and tests.
  void decode_pairs(const uint8_t* tile, int32_t n, float* out) const {
    const int32_t d = head_dim();
    const int32_t n_groups = d / group_;
    // First the codes, then each row group's scale and min applied in place.
    auto put = [&](int32_t r, int32_t c, int code) {
      if (r < n) out[static_cast<size_t>(r) * d + c] = static_cast<float>(code);
    };
    const uint8_t* codes = tile + min_offset(n_groups, 0);
    for (int32_t chunk = 0; chunk * kPairChunkRows < n; ++chunk) {
      const int32_t r0 = chunk * kPairChunkRows;
      if (layout_ == KvRowFormat::kInt4Pairs) {  // 16 bytes per channel pair
        for (int32_t p = 0; p < d / 2; ++p, codes += 16) {
          for (int32_t j = 0; j < 16; ++j) {
            put(r0 + j / 2, 2 * p + j % 2, codes[j] & 0xF);
            put(r0 + 8 + j / 2, 2 * p + j % 2, codes[j] >> 4);
          }
        }
      } else if (layout_ == KvRowFormat::kInt4TokenPairs) {  // 32 bytes per row pair and group
        for (int32_t k = 0; k < n_groups; ++k) {
          for (int32_t i = 0; i < 8; ++i, codes += 32) {
            for (int32_t j = 0; j < 32; ++j) {
              put(r0 + 2 * i + j % 2, 32 * k + j / 2, codes[j] & 0xF);
              put(r0 + 2 * i + j % 2, 32 * k + 16 + j / 2, codes[j] >> 4);
            }
          }
        }
      } else {  // kInt2TokenPairs: 32 bytes per row quad and group
        for (int32_t k = 0; k < n_groups; ++k) {
          for (int32_t q = 0; q < 4; ++q, codes += 32) {
            for (int32_t j = 0; j < 32; ++j) {
              for (int32_t level = 0; level < 2; ++level) {
                const int32_t r = r0 + 4 * q + 2 * level + j % 2;
                put(r, 32 * k + j / 2, (codes[j] >> (4 * level)) & 3);
                put(r, 32 * k + 16 + j / 2, (codes[j] >> (4 * level + 2)) & 3);
              }
            }
          }
        }
      }
    }
    for (int32_t r = 0; r < n; ++r) {
      for (int32_t k = 0; k < n_groups; ++k) {
        uint16_t scale_bits, min_bits;
        std::memcpy(&scale_bits, tile + scale_offset(k, r), 2);
        std::memcpy(&min_bits, tile + min_offset(k, r), 2);
        const float scale = fp16_to_fp32(scale_bits);
        const float min = fp16_to_fp32(min_bits);
        float* x = out + static_cast<size_t>(r) * d + k * group_;
        for (int32_t c = 0; c < group_; ++c) x[c] = std::fma(x[c], scale, min);
      }
    }
  }

  TokenGroupOptions options_;
  int32_t group_;
  KvRowFormat layout_;  // kOpaque: by row; else one of the pair layouts
};

}  // namespace

Result<std::unique_ptr<KvCodec>> make_token_group_kv_codec(const TokenGroupOptions& options,
                                                           KvSide side,
                                                           const KvCodecParams& params) {
  KVF_CHECK(options.bits == 2 || options.bits == 4);
  KVF_RETURN_IF_ERROR(kv_quant::check_quantized_head_dim(options.name, params.head_dim));
  if (options.rotated && !is_hadamard_order(params.head_dim)) {
    return invalid_argument("codec '" + options.name +
                            "' rotates head vectors by a Walsh-Hadamard matrix, which needs a "
                            "power-of-two head_dim (8 ... 256), got " +
                            std::to_string(params.head_dim));
  }
  return std::unique_ptr<KvCodec>(std::make_unique<TokenGroupKvCodec>(options, side, params));
}

}  // namespace kvforge
