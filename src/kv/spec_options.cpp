#include "kv/spec_options.h"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

namespace kvforge {

std::string SpecOptions::prefix() const {
  return fmt::format("{} '{}'", kind_, name_);
}

Status SpecOptions::parse_into(std::string_view spec) {
  spec_ = std::string(spec);
  const size_t colon = spec.find(':');
  name_ = std::string(spec.substr(0, colon));
  if (colon == std::string_view::npos) return Status();
  std::string_view rest = spec.substr(colon + 1);
  while (true) {
    const size_t next = rest.find(':');
    const std::string_view item = rest.substr(0, next);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return invalid_argument(fmt::format("{}: '{}' is not key=value", prefix(), item));
    }
    const std::string key(item.substr(0, eq));
    if (!values_.emplace(key, std::string(item.substr(eq + 1))).second) {
      return invalid_argument(fmt::format("{}: {} given twice", prefix(), key));
    }
    if (next == std::string_view::npos) break;
    rest = rest.substr(next + 1);
  }
  return Status();
}

Result<double> SpecOptions::take_number(std::string_view key, double fallback, double min,
                                        double max, bool min_exclusive) {
  const auto it = values_.find(std::string(key));
  if (it == values_.end()) return fallback;
  const std::string text = it->second;
  values_.erase(it);
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  const bool low = min_exclusive ? value <= min : value < min;
  if (text.empty() || error != std::errc() || end != text.data() + text.size() ||
      !std::isfinite(value) || low || value > max) {
    return invalid_argument(fmt::format("{}: {}={} must be a number in {}{}, {}]", prefix(), key,
                                        text, min_exclusive ? "(" : "[", min, max));
  }
  return value;
}

Result<int32_t> SpecOptions::take_count(std::string_view key, int32_t fallback, int32_t min,
                                        int32_t max) {
  const auto it = values_.find(std::string(key));
  if (it == values_.end()) return fallback;
  const std::string text = it->second;
  values_.erase(it);
  int32_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < min ||
      value > max) {
    return invalid_argument(
        fmt::format("{}: {}={} must be an integer in [{}, {}]", prefix(), key, text, min, max));
  }
  return value;
}

Result<std::string> SpecOptions::take_text(std::string_view key, std::string fallback) {
  const auto it = values_.find(std::string(key));
  if (it == values_.end()) return fallback;
  std::string text = it->second;
  values_.erase(it);
  if (text.empty()) return invalid_argument(fmt::format("{}: {} is empty", prefix(), key));
  return text;
}

Status SpecOptions::finish(std::string_view valid_keys) const {
  if (values_.empty()) return Status();
  return invalid_argument(fmt::format("{}: unknown key '{}' (valid: {}{}{})", prefix(),
                                      values_.begin()->first, valid_keys,
                                      extra_valid_keys_.empty() ? "" : ", ", extra_valid_keys_));
}

}  // namespace kvforge
