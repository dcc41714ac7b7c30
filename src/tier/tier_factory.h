// Tiers from their command-line specs (--kv-tier, docs/tiers.md):
//
//   host:SIZE                 this process's memory (memory_tier.h)
//   disk:DIR:SIZE             files in DIR, kept across restarts (disk_tier.h);
//                             SIZE follows the last ':', so DIR may hold ':'
//   redis://HOST:PORT[/PREFIX][?OPTIONS]
//                             a Redis server several instances share
//   redis-cluster://HOST:PORT[,HOST:PORT...][/PREFIX][?OPTIONS]
//                             a Redis Cluster, from its seed nodes
//
// SIZE as for --kv-mem (e.g. 2GiB); PREFIX and OPTIONS in redis_tier.h. A
// bad spec is kInvalidArgument naming the valid forms; a backend that cannot
// start (a directory that cannot be created) is the backend's error. A Redis
// server that is down is not an error: the tier starts unavailable.
#pragma once

#include <memory>
#include <string>

#include "kvforge/status.h"
#include "tier/kv_tier.h"

namespace kvforge {

[[nodiscard]] Result<std::unique_ptr<KvTier>> make_kv_tier(const std::string& spec);

// The forms above, one per line (errors join them with commas).
[[nodiscard]] const char* kv_tier_spec_help();

}  // namespace kvforge
