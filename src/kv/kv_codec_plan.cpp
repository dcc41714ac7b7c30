#include "kv/kv_codec_plan.h"

#include <optional>

#include <fmt/format.h>

#include "kv/kv_codec.h"
#include "kv/layer_range.h"

namespace kvforge {
namespace {

constexpr std::string_view kCodecFlag = "--kv-codec";
constexpr std::string_view kLayersFlag = "--kv-codec-layers";

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// Splits s at every `separator`.
std::vector<std::string_view> split(std::string_view s, char separator) {
  std::vector<std::string_view> parts;
  while (true) {
    const size_t at = s.find(separator);
    parts.push_back(trim(s.substr(0, at)));
    if (at == std::string_view::npos) return parts;
    s = s.substr(at + 1);
  }
}

struct SideSpecs {
  std::optional<std::string> key;
  std::optional<std::string> value;
};

Status check_spec(std::string_view flag, std::string_view spec) {
  if (spec.empty()) return invalid_argument(fmt::format("{}: empty codec name", flag));
  return check_kv_codec_spec(spec).with_context(flag);
}

// "SPEC" (both sides) or "k=SPEC<sep>v=SPEC" with either side optional.
Result<SideSpecs> parse_sides(std::string_view flag, std::string_view text, char separator) {
  SideSpecs sides;
  text = trim(text);
  if (!text.starts_with("k=") && !text.starts_with("v=")) {
    if (text.find(separator) != std::string_view::npos) {
      return invalid_argument(fmt::format("{}: '{}' names two codecs; write k=<codec>{}v=<codec>",
                                          flag, text, separator));
    }
    KVF_RETURN_IF_ERROR(check_spec(flag, text));
    sides.key = sides.value = std::string(text);
    return sides;
  }
  for (std::string_view part : split(text, separator)) {
    const bool is_key = part.starts_with("k=");
    if (!is_key && !part.starts_with("v=")) {
      return invalid_argument(
          fmt::format("{}: '{}' in '{}' must start with k= or v=", flag, part, text));
    }
    std::optional<std::string>& side = is_key ? sides.key : sides.value;
    if (side) {
      return invalid_argument(
          fmt::format("{}: '{}' sets the {} codec twice", flag, text, is_key ? "key" : "value"));
    }
    const std::string_view spec = part.substr(2);
    KVF_RETURN_IF_ERROR(check_spec(flag, spec));
    side = std::string(spec);
  }
  return sides;
}

}  // namespace

Result<std::vector<LayerCodecSpec>> plan_kv_codecs(std::string_view codec, std::string_view layers,
                                                   int32_t n_layers) {
  if (n_layers < 1) {
    return invalid_argument(fmt::format("{}: the model has no layers ({})", kCodecFlag, n_layers));
  }
  KVF_ASSIGN_OR_RETURN(const SideSpecs defaults, parse_sides(kCodecFlag, codec, ','));
  if (!defaults.key || !defaults.value) {
    return invalid_argument(
        fmt::format("{}: '{}' leaves the {} codec unset; write k=<codec>,v=<codec>", kCodecFlag,
                    trim(codec), defaults.key ? "value" : "key"));
  }
  std::vector<LayerCodecSpec> plan(static_cast<size_t>(n_layers),
                                   LayerCodecSpec{*defaults.key, *defaults.value});
  if (trim(layers).empty()) return plan;
  for (std::string_view entry : split(layers, ',')) {
    const size_t colon = entry.find(':');
    if (colon == std::string_view::npos) {
      return invalid_argument(fmt::format("{}: entry '{}' has no codec; expected <layers>:<codec>",
                                          kLayersFlag, entry));
    }
    KVF_ASSIGN_OR_RETURN(const LayerRange range,
                         parse_layer_range(kLayersFlag, trim(entry.substr(0, colon)), n_layers));
    KVF_ASSIGN_OR_RETURN(const SideSpecs sides,
                         parse_sides(kLayersFlag, entry.substr(colon + 1), '/'));
    for (int32_t layer = range.first; layer <= range.last; ++layer) {
      if (sides.key) plan[static_cast<size_t>(layer)].key = *sides.key;
      if (sides.value) plan[static_cast<size_t>(layer)].value = *sides.value;
    }
  }
  return plan;
}

}  // namespace kvforge
