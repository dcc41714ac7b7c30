// make_kv_codec: parses a codec spec ("name[:key=value]...") and builds the
// codec from the family that implements the name.
#include <algorithm>
#include <charconv>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "kv/kv_codec.h"
#include "kv/kv_codec_factories.h"
#include "kv/kv_codec_kernels.h"

namespace kvforge {
namespace {

// KIVI defaults. g = 32 and r = 128 are the KIVI paper's main setting
// (docs/kv-codecs.md); g is capped at block_tokens so the default fits a
// 16-token block.
constexpr int32_t kKiviDefaultGroupTokens = 32;
constexpr int32_t kKiviDefaultResidualTokens = 128;
constexpr int32_t kMaxHeadDim = 256;

struct ParsedSpec {
  std::string name;
  int32_t group_tokens = 0;  // g; 0 = default
  int32_t residual_tokens = kKiviDefaultResidualTokens;
};

using Factory = Result<std::unique_ptr<KvCodec>> (*)(const ParsedSpec&, KvSide,
                                                     const KvCodecParams&);

template <int kBits>
Result<std::unique_ptr<KvCodec>> make_kivi(const ParsedSpec& spec, KvSide side,
                                           const KvCodecParams& params) {
  const int32_t g = spec.group_tokens > 0 ? spec.group_tokens
                                          : std::min(kKiviDefaultGroupTokens, params.block_tokens);
  const std::string name = fmt::format("{}:g={}:r={}", spec.name, g, spec.residual_tokens);
  if (params.block_tokens % g != 0) {
    return invalid_argument(fmt::format(
        "codec '{}': the key token group g={} must divide block_tokens={}{}", name, g,
        params.block_tokens, spec.group_tokens > 0 ? "" : " (pass g=<divisor> explicitly)"));
  }
  if (side == KvSide::kKey) {
    return make_channel_group_kv_codec({name, kBits, g, spec.residual_tokens}, params);
  }
  return make_token_group_kv_codec({name, kBits, false, spec.residual_tokens}, side, params);
}

struct CodecEntry {
  std::string_view name;
  bool kivi;  // takes g and r
  Factory factory;
};

const CodecEntry kCodecs[] = {
    {"f32", false,
     [](const ParsedSpec&, KvSide side, const KvCodecParams& p) {
       return make_float_kv_codec(KvFloatFormat::kF32, side, p);
     }},
    {"f16", false,
     [](const ParsedSpec&, KvSide side, const KvCodecParams& p) {
       return make_float_kv_codec(KvFloatFormat::kF16, side, p);
     }},
    {"bf16", false,
     [](const ParsedSpec&, KvSide side, const KvCodecParams& p) {
       return make_float_kv_codec(KvFloatFormat::kBF16, side, p);
     }},
    {"int8", false,
     [](const ParsedSpec&, KvSide side, const KvCodecParams& p) {
       return make_int8_kv_codec(side, p);
     }},
    {"int4", false,
     [](const ParsedSpec&, KvSide side, const KvCodecParams& p) {
       return make_token_group_kv_codec({"int4", 4, false, 0}, side, p);
     }},
    {"int4h", false,
     [](const ParsedSpec&, KvSide side, const KvCodecParams& p) {
       return make_token_group_kv_codec({"int4h", 4, true, 0}, side, p);
     }},
    {"kivi2", true, make_kivi<2>},
    {"kivi4", true, make_kivi<4>},
};

const CodecEntry* find_codec(std::string_view name) {
  for (const CodecEntry& entry : kCodecs) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

std::string valid_names() {
  std::string names;
  for (const CodecEntry& entry : kCodecs) {
    if (!names.empty()) names += ", ";
    names += entry.name;
  }
  return names;
}

Result<int32_t> parse_count(std::string_view spec, std::string_view key, std::string_view text) {
  int32_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < 0) {
    return invalid_argument(
        fmt::format("KV codec '{}': {}='{}' is not a non-negative integer", spec, key, text));
  }
  return value;
}

Result<ParsedSpec> parse_spec(std::string_view spec) {
  ParsedSpec parsed;
  const size_t colon = spec.find(':');
  parsed.name = std::string(spec.substr(0, colon));
  const CodecEntry* entry = find_codec(parsed.name);
  if (entry == nullptr) {
    return invalid_argument(
        fmt::format("unknown KV codec '{}'; valid codecs: {}", parsed.name, valid_names()));
  }
  if (colon == std::string_view::npos) return parsed;
  if (!entry->kivi) {
    return invalid_argument(fmt::format("KV codec '{}' takes no parameters, got '{}'", parsed.name,
                                        spec.substr(colon + 1)));
  }
  bool seen_g = false;
  bool seen_r = false;
  std::string_view rest = spec.substr(colon + 1);
  while (true) {
    const size_t next = rest.find(':');
    const std::string_view item = rest.substr(0, next);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return invalid_argument(
          fmt::format("KV codec '{}': parameter '{}' needs a value (key=value)", spec, item));
    }
    const std::string_view key = item.substr(0, eq);
    const std::string_view text = item.substr(eq + 1);
    if (key == "g" || key == "r") {
      bool& seen = key == "g" ? seen_g : seen_r;
      if (seen) return invalid_argument(fmt::format("KV codec '{}': {} given twice", spec, key));
      seen = true;
      KVF_ASSIGN_OR_RETURN(const int32_t value, parse_count(spec, key, text));
      if (key == "g") {
        if (value == 0) {
          return invalid_argument(fmt::format("KV codec '{}': g must be at least 1", spec));
        }
        parsed.group_tokens = value;
      } else {
        parsed.residual_tokens = value;
      }
    } else {
      return invalid_argument(fmt::format(
          "KV codec '{}': unknown parameter '{}' (known: g = key token group, r = residual "
          "window)",
          spec, key));
    }
    if (next == std::string_view::npos) break;
    rest = rest.substr(next + 1);
  }
  return parsed;
}

}  // namespace

size_t kv_row_bytes(KvRowFormat format, int32_t head_dim) {
  const auto d = static_cast<size_t>(head_dim);
  switch (format) {
    case KvRowFormat::kF32:
      return 4 * d;
    case KvRowFormat::kF16:
    case KvRowFormat::kBF16:
      return 2 * d;
    case KvRowFormat::kInt8:
      return kv_kernels::int8_row_bytes(head_dim);
    case KvRowFormat::kOpaque:
    case KvRowFormat::kF16Columns:
    case KvRowFormat::kBF16Columns:
    case KvRowFormat::kInt8Columns:
    case KvRowFormat::kInt4Pairs:
    case KvRowFormat::kInt4TokenPairs:
    case KvRowFormat::kInt2TokenPairs:
    case KvRowFormat::kKivi2Columns:
    case KvRowFormat::kKivi4Columns:
      break;
  }
  return 0;
}

double KvCodec::bytes_per_row() const {
  return static_cast<double>(tile_bytes()) / static_cast<double>(block_tokens());
}

Status check_kv_codec_spec(std::string_view spec) {
  return parse_spec(spec).status();
}

const std::vector<std::string>& kv_codec_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const CodecEntry& entry : kCodecs) v.emplace_back(entry.name);
    return v;
  }();
  return names;
}

Result<std::unique_ptr<KvCodec>> make_kv_codec(std::string_view spec, KvSide side,
                                               const KvCodecParams& params) {
  KVF_ASSIGN_OR_RETURN(const ParsedSpec parsed, parse_spec(spec));
  if (params.block_tokens < 1) {
    return invalid_argument(fmt::format("KV codec '{}': block_tokens must be at least 1, got {}",
                                        spec, params.block_tokens));
  }
  if (params.head_dim < 1 || params.head_dim > kMaxHeadDim) {
    return invalid_argument(fmt::format("KV codec '{}': head_dim must be in [1, {}], got {}", spec,
                                        kMaxHeadDim, params.head_dim));
  }
  return find_codec(parsed.name)->factory(parsed, side, params);
}

}  // namespace kvforge
