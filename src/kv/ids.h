// Strong index types for the KV subsystem: a sequence, a layer. They keep
// interfaces honest (a layer index can't be passed where a sequence is meant).
#pragma once

#include <compare>
#include <cstdint>

namespace kvforge {

struct SeqId {
  int32_t value = 0;
  auto operator<=>(const SeqId&) const = default;
};

struct LayerId {
  int32_t value = 0;
  auto operator<=>(const LayerId&) const = default;
};

}  // namespace kvforge
