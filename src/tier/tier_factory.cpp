#include "tier/tier_factory.h"

#include <fmt/format.h>

#include "tier/memory_tier.h"
#include "util/byte_size.h"

namespace kvforge {

const char* kv_tier_spec_help() {
  return "host:SIZE";
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
  return bad("unknown tier");
}

}  // namespace kvforge
