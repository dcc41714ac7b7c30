// How much memory the machine can still give this process.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace kvforge {

// MemAvailable of /proc/meminfo (what the kernel estimates can be allocated
// without swapping), else free physical pages; nullopt when neither is known.
[[nodiscard]] std::optional<size_t> available_memory_bytes();

// The "MemAvailable:" value of a /proc/meminfo text in bytes; nullopt when
// absent or malformed.
[[nodiscard]] std::optional<size_t> parse_mem_available(std::string_view meminfo);

}  // namespace kvforge
