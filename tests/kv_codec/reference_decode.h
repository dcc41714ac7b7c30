// Scalar decoders of the KV codec tile layouts, written from the layout
// description in docs/kv-codecs.md (not from the library's code), to check
// the SIMD decoders and the byte layout itself.
#pragma once

#include <cstdint>
#include <vector>

#include "kv/kv_codec.h"

namespace kvforge::testing {

// Decodes rows [0, n) of a tile of `codec` (any codec make_kv_codec builds).
[[nodiscard]] std::vector<float> reference_decode(const KvCodec& codec, const uint8_t* tile,
                                                  int32_t n);

}  // namespace kvforge::testing
