#include "tier/tier_factory.h"

#include <fmt/format.h>

#include "tier/disk_tier.h"
#include "tier/memory_tier.h"
#include "util/byte_size.h"

namespace kvforge {

const char* kv_tier_spec_help() {
  return "host:SIZE, disk:DIR:SIZE";
}

Result<std::unique_ptr<KvTier>> make_kv_tier(const std::string& spec) {
  auto bad = [&](const std::string& why) {
    return invalid_argument(
        fmt::format("--kv-tier '{}': {} (valid forms: {})", spec, why, kv_tier_spec_help()));
  };
  if (spec.starts_with("host:")) {
    auto bytes = parse_byte_size(spec.substr(5));
    if (!bytes.ok()) return bad(bytes.status().message());
    return std::unique_ptr<KvTier>(std::make_unique<MemoryTier>(spec, *bytes));
  }
  if (spec.starts_with("disk:")) {
    // SIZE follows the last ':', so DIR may contain ':' itself.
    const std::string rest = spec.substr(5);
    const size_t colon = rest.rfind(':');
    if (colon == std::string::npos || colon == 0) return bad("disk needs DIR:SIZE");
    auto bytes = parse_byte_size(rest.substr(colon + 1));
    if (!bytes.ok()) return bad(bytes.status().message());
    auto tier = DiskTier::open(spec, rest.substr(0, colon), *bytes);
    if (!tier.ok()) return tier.status();
    return std::unique_ptr<KvTier>(std::move(*tier));
  }
  return bad("unknown tier");
}

}  // namespace kvforge
