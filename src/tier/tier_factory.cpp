#include "tier/tier_factory.h"

#include <fmt/format.h>

#include "tier/disk_tier.h"
#include "tier/memory_tier.h"
#include "tier/redis_tier.h"
#include "util/byte_size.h"

namespace kvforge {

const char* kv_tier_spec_help() {
  return "host:SIZE\n"
         "disk:DIR:SIZE\n"
         "redis://HOST:PORT[/PREFIX][?OPTIONS]\n"
         "redis-cluster://HOST:PORT[,HOST:PORT...][/PREFIX][?OPTIONS]";
}

Result<std::unique_ptr<KvTier>> make_kv_tier(const std::string& spec) {
  auto bad = [&](const std::string& why) {
    // One line: the help's forms separated by commas.
    std::string forms = kv_tier_spec_help();
    for (size_t at = forms.find('\n'); at != std::string::npos; at = forms.find('\n', at))
      forms.replace(at, 1, ", ");
    return invalid_argument(fmt::format("--kv-tier '{}': {} (valid forms: {})", spec, why, forms));
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
  if (spec.starts_with("redis://") || spec.starts_with("redis-cluster://")) {
    auto options = parse_redis_tier_spec(spec);
    if (!options.ok()) return bad(options.status().message());
    return std::unique_ptr<KvTier>(std::make_unique<RedisTier>(spec, std::move(*options)));
  }
  return bad("unknown tier");
}

}  // namespace kvforge
