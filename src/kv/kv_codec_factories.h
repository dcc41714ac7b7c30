// Constructors of the codec families, one per kv_codec_<family>.cpp; the
// registry (kv_codec_registry.cpp) maps spec names onto them. Each checks
// the tile shape it needs and says what is wrong.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kv/kv_codec.h"
#include "kvforge/status.h"

namespace kvforge {

enum class KvFloatFormat { kF32, kF16, kBF16 };
// Plain f32, f16 or bf16 elements (round to nearest even): rows, except f16
// and bf16 keys, whose tiles are stored by column (KvRowFormat::kF16Columns,
// kBF16Columns).
[[nodiscard]] Result<std::unique_ptr<KvCodec>> make_float_kv_codec(KvFloatFormat format,
                                                                   KvSide side,
                                                                   const KvCodecParams& params);

// Symmetric int8 per row with one f16 scale; key tiles stored by column
// (KvRowFormat::kInt8Columns), value tiles by row.
[[nodiscard]] Result<std::unique_ptr<KvCodec>> make_int8_kv_codec(KvSide side,
                                                                  const KvCodecParams& params);

// Asymmetric `bits`-bit quantization of each row in groups of min(32, head_dim)
// channels (int4, int4h, and the values of KIVI). `name` and `residual_tokens`
// are what the codec reports; `rotated` quantizes H·x instead of x. 4-bit key
// tiles with a block_tokens that is a multiple of 16 are stored by channel
// pairs (KvRowFormat::kInt4Pairs); the others row after row.
struct TokenGroupOptions {
  std::string name;
  int32_t bits = 4;  // 2 or 4
  bool rotated = false;
  int32_t residual_tokens = 0;
};
[[nodiscard]] Result<std::unique_ptr<KvCodec>> make_token_group_kv_codec(
    const TokenGroupOptions& options, KvSide side, const KvCodecParams& params);

// Asymmetric `bits`-bit quantization of each channel over groups of
// `group_tokens` rows (the keys of KIVI). Whole tiles only.
struct ChannelGroupOptions {
  std::string name;
  int32_t bits = 2;  // 2 or 4
  int32_t group_tokens = 32;
  int32_t residual_tokens = 0;
};
[[nodiscard]] Result<std::unique_ptr<KvCodec>> make_channel_group_kv_codec(
    const ChannelGroupOptions& options, const KvCodecParams& params);

}  // namespace kvforge
