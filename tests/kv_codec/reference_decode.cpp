#include "reference_decode.h"

#include <cmath>
#include <cstring>
#include <string>

#include "kvforge/status.h"
#include "util/fp16.h"

namespace kvforge::testing {
namespace {

float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

// Code i of a packed chunk of `group` codes of `bits`: byte i % B, bit field i / B,
// with B = group * bits / 8 bytes per chunk.
int code_at(const uint8_t* chunk, int32_t i, int32_t group, int32_t bits) {
  const int32_t chunk_bytes = group * bits / 8;
  return (chunk[i % chunk_bytes] >> (bits * (i / chunk_bytes))) & ((1 << bits) - 1);
}

int32_t bits_of(const std::string& name) {
  if (name.starts_with("int4") || name.starts_with("kivi4")) return 4;
  return 2;
}

}  // namespace

std::vector<float> reference_decode(const KvCodec& codec, const uint8_t* tile, int32_t n) {
  const int32_t d = codec.head_dim();
  const std::string name = codec.name();
  std::vector<float> out(static_cast<size_t>(n) * static_cast<size_t>(d));
  auto at = [&](int32_t r, int32_t c) -> float& { return out[static_cast<size_t>(r) * d + c]; };
  const int32_t group = d < 32 ? d : 32;

  if (name == "f32") {
    std::memcpy(out.data(), tile, out.size() * sizeof(float));
  } else if (codec.row_format() == KvRowFormat::kF16Columns ||
             codec.row_format() == KvRowFormat::kBF16Columns) {  // f16, bf16 keys: by column
    for (int32_t r = 0; r < n; ++r) {
      for (int32_t c = 0; c < d; ++c) {
        const uint8_t* p = tile + 2 * (static_cast<size_t>(c) * codec.block_tokens() + r);
        uint16_t h;
        std::memcpy(&h, p, sizeof h);
        at(r, c) = name == "f16" ? fp16_to_fp32(h) : bf16_to_fp32(h);
      }
    }
  } else if (codec.row_format() == KvRowFormat::kInt8Columns) {  // int8 keys: by column
    const int32_t b = codec.block_tokens();
    for (int32_t r = 0; r < n; ++r) {
      const float scale = half_at(tile + 2 * r);
      for (int32_t c = 0; c < d; ++c) {
        at(r, c) = static_cast<float>(static_cast<int8_t>(
                       tile[2 * static_cast<size_t>(b) + static_cast<size_t>(c) * b + r])) *
                   scale;
      }
    }
  } else if (codec.row_format() == KvRowFormat::kInt4Pairs ||
             codec.row_format() == KvRowFormat::kInt4TokenPairs ||
             codec.row_format() == KvRowFormat::kInt2TokenPairs) {  // by pairs
    // n_groups scales per row, then as many mins, then the codes by chunks of
    // 16 rows. Keys (channel pairs): per pair 16 bytes, byte j holding channel
    // j % 2 of the pair for row j / 2 (low nibble) and row 8 + j / 2 (high).
    // Values (token pairs, groups of 32): per group and row pair 32 bytes,
    // byte j holding row j % 2 of the pair for channel j / 2 (low nibble) and
    // channel 16 + j / 2 (high) of the group. 2-bit values: per group and
    // row quad 32 bytes, byte j holding 2-bit fields, from bit 0: channel j / 2
    // and 16 + j / 2 of row j % 2 of the quad, then the same of row 2 + j % 2.
    const bool keys = codec.row_format() == KvRowFormat::kInt4Pairs;
    const bool two_bits = codec.row_format() == KvRowFormat::kInt2TokenPairs;
    const int32_t b = codec.block_tokens();
    const int32_t n_groups = d / group;
    const uint8_t* codes = tile + 4 * static_cast<size_t>(n_groups) * b;
    for (int32_t r = 0; r < n; ++r) {
      const int32_t chunk = r / 16;
      const int32_t in_chunk = r % 16;
      for (int32_t c = 0; c < d; ++c) {
        const size_t k = static_cast<size_t>(c / group) * b + r;
        const float scale = half_at(tile + 2 * k);
        const float min = half_at(tile + 2 * (static_cast<size_t>(n_groups) * b + k));
        int code = 0;
        if (keys) {
          const uint8_t byte = codes[(static_cast<size_t>(chunk) * (d / 2) + c / 2) * 16 +
                                     2 * (in_chunk % 8) + c % 2];
          code = in_chunk < 8 ? byte & 0xF : byte >> 4;
        } else if (!two_bits) {
          const size_t row_pair =
              (static_cast<size_t>(chunk) * n_groups + c / group) * 8 + in_chunk / 2;
          const uint8_t byte = codes[row_pair * 32 + 2 * ((c % group) % 16) + in_chunk % 2];
          code = c % group < 16 ? byte & 0xF : byte >> 4;
        } else {
          const size_t quad =
              (static_cast<size_t>(chunk) * n_groups + c / group) * 4 + in_chunk / 4;
          const uint8_t byte = codes[quad * 32 + 2 * ((c % group) % 16) + in_chunk % 2];
          const int field = 2 * (in_chunk % 4 / 2) + (c % group < 16 ? 0 : 1);
          code = (byte >> (2 * field)) & 3;
        }
        at(r, c) = std::fma(static_cast<float>(code), scale, min);
      }
    }
  } else if (name == "f16" || name == "bf16") {
    for (size_t i = 0; i < out.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, tile + 2 * i, 2);
      out[i] = name == "f16" ? fp16_to_fp32(h) : bf16_to_fp32(h);
    }
  } else if (name == "int8") {
    for (int32_t r = 0; r < n; ++r) {
      const uint8_t* row = tile + static_cast<size_t>(r) * (2 + d);
      const float scale = half_at(row);
      for (int32_t c = 0; c < d; ++c)
        at(r, c) = static_cast<float>(static_cast<int8_t>(row[2 + c])) * scale;
    }
  } else if (codec.token_granular()) {  // int4, int4h, KIVI values: per-token groups
    const int32_t bits = bits_of(name);
    const int32_t block_bytes = 4 + group * bits / 8;
    const uint8_t* block = tile;
    for (int32_t r = 0; r < n; ++r) {
      for (int32_t g = 0; g < d; g += group, block += block_bytes) {
        const float scale = half_at(block);
        const float min = half_at(block + 2);
        for (int32_t i = 0; i < group; ++i) {
          at(r, g + i) =
              std::fma(static_cast<float>(code_at(block + 4, i, group, bits)), scale, min);
        }
      }
    }
  } else {  // KIVI keys: per-channel grids over token groups, codes by column
    const int32_t bits = bits_of(name);
    const size_t g_pos = name.find(":g=");
    KVF_CHECK(g_pos != std::string::npos);
    const int32_t g = std::stoi(name.substr(g_pos + 3));
    const int32_t column_bytes = g * bits / 8;  // byte j holds rows j, j + B, j + 2B, ...
    const size_t group_bytes = 4 * static_cast<size_t>(d) + static_cast<size_t>(d) * column_bytes;
    for (int32_t r = 0; r < n; ++r) {
      const uint8_t* token_group = tile + (r / g) * group_bytes;
      const int32_t t = r % g;
      for (int32_t c = 0; c < d; ++c) {
        const float scale = half_at(token_group + 2 * c);
        const float min = half_at(token_group + 2 * (d + c));
        const uint8_t byte = token_group[4 * d + c * column_bytes + t % column_bytes];
        const int code = (byte >> (bits * (t / column_bytes))) & ((1 << bits) - 1);
        at(r, c) = std::fma(static_cast<float>(code), scale, min);
      }
    }
  }
  return out;
}

}  // namespace kvforge::testing
