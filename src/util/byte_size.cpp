#include "util/byte_size.h"

#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

namespace kvforge {

Result<size_t> parse_byte_size(const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || !(value > 0) || !std::isfinite(value)) {
    return invalid_argument(
        fmt::format("'{}' is not a memory size (use e.g. 512MiB or 4GiB)", text));
  }
  const std::string unit(end);
  double scale = 0;
  if (unit.empty() || unit == "B") {
    scale = 1;
  } else if (unit == "KiB" || unit == "K" || unit == "k") {
    scale = 1024.0;
  } else if (unit == "MiB" || unit == "M") {
    scale = 1024.0 * 1024;
  } else if (unit == "GiB" || unit == "G") {
    scale = 1024.0 * 1024 * 1024;
  } else if (unit == "KB") {
    scale = 1e3;
  } else if (unit == "MB") {
    scale = 1e6;
  } else if (unit == "GB") {
    scale = 1e9;
  } else {
    return invalid_argument(fmt::format(
        "unknown unit '{}' in memory size '{}' (use B, KiB, MiB, GiB, KB, MB, GB)", unit, text));
  }
  const double bytes = value * scale;
  if (bytes >= 1e18) return invalid_argument(fmt::format("memory size '{}' is too large", text));
  return static_cast<size_t>(bytes);
}

}  // namespace kvforge
