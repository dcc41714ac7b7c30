// Memory sizes on command lines: "512MiB", "4GiB", "1.5G", "1000000" (bytes).
#pragma once

#include <cstddef>
#include <string>

#include "kvforge/status.h"

namespace kvforge {

// kInvalidArgument naming the accepted units for anything else.
[[nodiscard]] Result<size_t> parse_byte_size(const std::string& text);

}  // namespace kvforge
