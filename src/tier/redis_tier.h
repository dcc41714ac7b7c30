// RedisTier: records in a Redis server or Redis Cluster that several kvforge
// instances share, so that a prefix one of them computed is a hit for all.
//
//   redis://HOST:PORT[/PREFIX][?OPTIONS]                       one server
//   redis-cluster://HOST:PORT[,HOST:PORT...][/PREFIX][?OPTIONS] cluster seeds
//
// HOST is a name, an IPv4 address or a bracketed IPv6 address. A record is
// the Redis string PREFIX + TierKey::to_string() (PREFIX "kvforge:" by
// default; letters, digits and "_.:/-"), holding the record's bytes as they
// are: put = SET [EX ttl], get = GET, contains = EXISTS, evict = DEL.
// OPTIONS, "&"-separated NAME=VALUE:
//   timeout_ms          each command, sending to last reply byte   (300)
//   connect_timeout_ms  each connection attempt                    (200)
//   ttl                 seconds a record lives; 0 = until evicted  (0)
//   backoff_ms, backoff_max_ms  reconnect back-off, doubling  (100, 5000)
//   threads, queue      QueuedTierOptions                          (2, 4096)
//
// Redis decides what to drop (maxmemory with allkeys-lru is the intended
// deployment), so stored_* and capacity_bytes stay -1 and evictions 0.
//
// A server that is down, slow or flapping costs misses, never a stall: an
// operation waits at most connect_timeout_ms + timeout_ms for a server,
// then fails with kError naming HOST:PORT, and the server is left alone for
// the back-off (operations fail at once) before one operation tries it
// again (redis_node.h). available is false while the server is down;
// reconnects and connection_failures count the episodes. Construction never
// fails for a server that is down.
//
// Cluster: keys are routed by hash slot (redis_slot.h) with the slot map
// from CLUSTER SLOTS (read at start, on a MOVED, and when a node fails;
// at most once per backoff_ms), one connection pool per node; MOVED updates
// the map, ASK retries once on the named node after ASKING, and more than
// 5 redirects is kError. Each redirect or map refresh is one more command
// under the same bounds (nodes in back-off are skipped at no cost). A dead
// node costs only the keys in its slots; available is true while any node
// owning slots answers.
//
// Not supported: AUTH, database numbers, TLS, Sentinel, reading replicas.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "kvforge/status.h"
#include "tier/queued_tier.h"
#include "tier/redis_node.h"

namespace kvforge {

struct RedisTierOptions {
  bool cluster = false;
  std::vector<RedisEndpoint> seeds;  // the server; a cluster's seed nodes
  std::string prefix = "kvforge:";
  int64_t ttl_seconds = 0;  // 0: no expiry
  RedisNodeOptions node;
  QueuedTierOptions queue{4096, 2};
};

// The options of a redis:// or redis-cluster:// spec; kInvalidArgument
// saying what is wrong with any other.
[[nodiscard]] Result<RedisTierOptions> parse_redis_tier_spec(const std::string& spec);

class RedisTier final : public QueuedTier {
 public:
  // Connects (or fails to and starts down); never fails.
  RedisTier(std::string name, RedisTierOptions options);
  ~RedisTier() override;

 protected:
  TierResult do_put(const TierKey& key, const TierRecord& record) override;
  TierResult do_get(const TierKey& key) override;
  TierResult do_contains(const TierKey& key) override;
  TierResult do_evict(const TierKey& key) override;
  void add_backend_stats(TierStats& stats) const override;

 private:
  struct Routed {
    RedisReplyPtr reply;  // null on failure
    std::string failure;
    RedisNode* node = nullptr;  // the node that replied
  };
  using Clock = std::chrono::steady_clock;

  [[nodiscard]] std::string redis_key(const TierKey& key) const;
  Routed route(std::string_view redis_key, const RedisCommand& command);
  Routed route_in_cluster(std::string_view redis_key, const RedisCommand& command);
  RedisNode* node_at(const RedisEndpoint& endpoint);
  RedisNode* slot_owner(uint16_t slot) const;
  // Reads CLUSTER SLOTS from a known node; unless forced, at most once per
  // backoff_min and never while another thread is at it.
  void refresh_slots(bool force);

  const RedisTierOptions config_;
  const std::string ttl_text_;

  mutable std::shared_mutex map_mutex_;                      // nodes_, slots_, owners_
  std::map<std::string, std::unique_ptr<RedisNode>> nodes_;  // by address; kept until the end
  std::vector<RedisNode*> seeds_;
  std::vector<RedisNode*> slots_;   // cluster: each slot's master, null if unknown
  std::vector<RedisNode*> owners_;  // cluster: the distinct masters in slots_

  std::mutex refresh_mutex_;
  Clock::time_point last_refresh_;
};

}  // namespace kvforge
