#include "kv/layer_range.h"

#include <charconv>

#include <fmt/format.h>

namespace kvforge {
namespace {

Result<int32_t> parse_layer(std::string_view flag, std::string_view range, std::string_view text) {
  int32_t layer = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), layer);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || layer < 0) {
    return invalid_argument(fmt::format("{}: layer range '{}' is not N, N-M or N-", flag, range));
  }
  return layer;
}

}  // namespace

Result<LayerRange> parse_layer_range(std::string_view flag, std::string_view range,
                                     int32_t n_layers) {
  LayerRange parsed;
  const size_t dash = range.find('-');
  KVF_ASSIGN_OR_RETURN(parsed.first, parse_layer(flag, range, range.substr(0, dash)));
  if (dash == std::string_view::npos) {
    parsed.last = parsed.first;
  } else if (dash + 1 == range.size()) {
    parsed.last = n_layers - 1;
  } else {
    KVF_ASSIGN_OR_RETURN(parsed.last, parse_layer(flag, range, range.substr(dash + 1)));
  }
  if (parsed.first >= n_layers || parsed.last >= n_layers) {
    return invalid_argument(
        fmt::format("{}: layer range '{}' is past the last layer {} ({} layers)", flag, range,
                    n_layers - 1, n_layers));
  }
  if (parsed.last < parsed.first) {
    return invalid_argument(fmt::format("{}: layer range '{}' is reversed", flag, range));
  }
  return parsed;
}

}  // namespace kvforge
