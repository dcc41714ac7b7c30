// Layer ranges of the per-layer flags (--kv-codec-layers, --press-layers):
// "N" (one layer), "N-M" (inclusive) or "N-" (N to the last layer).
#pragma once

#include <cstdint>
#include <string_view>

#include "kvforge/status.h"

namespace kvforge {

struct LayerRange {
  int32_t first = 0;
  int32_t last = 0;  // inclusive
};

// kInvalidArgument naming `flag` when the text is malformed, reversed or
// past the last of n_layers layers.
[[nodiscard]] Result<LayerRange> parse_layer_range(std::string_view flag, std::string_view range,
                                                   int32_t n_layers);

}  // namespace kvforge
