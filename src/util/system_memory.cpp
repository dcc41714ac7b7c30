#include "util/system_memory.h"

#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>

namespace kvforge {

std::optional<size_t> parse_mem_available(std::string_view meminfo) {
  constexpr std::string_view kKey = "MemAvailable:";
  size_t at = meminfo.find(kKey);
  if (at == std::string_view::npos || (at > 0 && meminfo[at - 1] != '\n')) return std::nullopt;
  at += kKey.size();
  while (at < meminfo.size() && meminfo[at] == ' ') ++at;
  size_t kib = 0;
  const auto [end, error] =
      std::from_chars(meminfo.data() + at, meminfo.data() + meminfo.size(), kib);
  if (error != std::errc() || end == meminfo.data() + at) return std::nullopt;
  // The kernel prints kB (KiB); anything else is not a format we know.
  if (std::string_view(end, static_cast<size_t>(meminfo.data() + meminfo.size() - end))
          .substr(0, 3) != " kB") {
    return std::nullopt;
  }
  if (kib > SIZE_MAX / 1024) return std::nullopt;
  return kib * 1024;
}

std::optional<size_t> available_memory_bytes() {
  std::ifstream file("/proc/meminfo");
  if (file) {
    std::ostringstream text;
    text << file.rdbuf();
    if (auto bytes = parse_mem_available(text.str())) return bytes;
  }
  const long pages = sysconf(_SC_AVPHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0)
    return static_cast<size_t>(pages) * static_cast<size_t>(page_size);
  return std::nullopt;
}

}  // namespace kvforge
