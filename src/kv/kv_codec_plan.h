// Per-layer choice of KV codecs from the command line (--kv-codec and
// --kv-codec-layers), e.g. KVTuner-style "keys at 8 bits, values at 4" or
// "the first layers at higher precision".
//
// --kv-codec (codec):   SPEC                  both sides, every layer
//                       k=SPEC,v=SPEC         keys and values apart (either order)
// --kv-codec-layers (layers), may be empty: comma-separated overrides
//                       RANGE:SPEC            both sides
//                       RANGE:k=SPEC/v=SPEC   both, apart ('/' because ',' separates overrides)
//                       RANGE:k=SPEC          keys only (likewise v=SPEC)
//   RANGE is N (one layer), N-M (inclusive) or N- (N to the last layer).
//   Overrides apply left to right; a later one wins where ranges overlap.
// SPEC is a make_kv_codec spec ("int8", "kivi2:g=32:r=128", ...).
// Example: codec "k=int8,v=int4h", layers "0-1:f16,2-:v=kivi2".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kvforge/status.h"

namespace kvforge {

struct LayerCodecSpec {
  std::string key;
  std::string value;
};

// One entry per layer. kInvalidArgument naming the flag and the offending
// part: unknown codec or parameter, malformed entry, range past n_layers - 1.
[[nodiscard]] Result<std::vector<LayerCodecSpec>> plan_kv_codecs(std::string_view codec,
                                                                 std::string_view layers,
                                                                 int32_t n_layers);

}  // namespace kvforge
