// KvTier: a store of KV block records below the working pool (docs/tiers.md).
//
// The paged cache's prefix cache holds blocks in the pool's memory. A tier
// keeps them somewhere slower and larger (host memory, a disk directory, a
// Redis server shared by several kvforge instances) so that a later prompt,
// possibly in another process, can load them instead of recomputing them.
//
// A tier stores opaque records under 17-byte keys: the block's chain hash
// (kv/block_hash.h, which already covers model, codec plan, block size, salt
// and every token before and in the block) and a record kind. The records
// are self-verifying (kv/block_record.h): a tier never interprets them, and
// the cache checks every record it loads, so a tier that returns garbage
// costs a miss, never a wrong answer.
//
// Every operation is asynchronous: it is queued and its callback runs later
// on one of the tier's threads (never inside the call), so that the caller's
// thread (the scheduler's, between decode steps) never waits for a disk or a
// network. Callbacks must be quick and must not call back into the tier
// synchronously; they typically hand the result to the scheduler's queue.
// Reads are served before writes. A tier that cannot take more work (its
// queue is full, its disk is read-only, its server is down) answers
// kRejected or kError at once, and the caller goes on without it.
//
// Thread-safety: every member may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kv/block_hash.h"

namespace kvforge {

enum class TierRecordKind : uint8_t {
  kBlock = 0,         // one pool block: every segment's bytes
  kStagedWindow = 1,  // the f32 rows a hit ending at this chain hash reads (KIVI r > 0)
};

struct TierKey {
  BlockHash hash;
  TierRecordKind kind = TierRecordKind::kBlock;
  bool operator==(const TierKey&) const = default;
  // "b" or "w" followed by 32 lowercase hex digits (high then low word):
  // a file name, a Redis key suffix.
  [[nodiscard]] std::string to_string() const;
};

struct TierKeyHasher {
  size_t operator()(const TierKey& key) const {
    return static_cast<size_t>(key.hash.low ^ static_cast<uint64_t>(key.kind));
  }
};

// A record's bytes, shared so that several tiers can write one copy.
using TierRecord = std::shared_ptr<const std::vector<uint8_t>>;

enum class TierOutcome {
  kOk,        // done (get: the record is there; contains: it is stored)
  kMiss,      // get / contains / evict: no such key
  kRejected,  // not attempted: queue full, record too large, tier read-only
  kError,     // attempted and failed: I/O error, server unreachable, timeout
};

[[nodiscard]] const char* tier_outcome_name(TierOutcome outcome);

struct TierResult {
  TierOutcome outcome = TierOutcome::kError;
  TierRecord record;   // get with kOk only
  std::string error;   // kRejected / kError: one line for logs
  double seconds = 0;  // time the backend spent on it (queueing excluded)
};

using TierCallback = std::function<void(TierResult)>;

struct TierStats {
  int64_t puts = 0;  // records written
  int64_t put_bytes = 0;
  int64_t put_rejected = 0;  // writes not attempted (queue full, read-only, too large)
  int64_t put_errors = 0;
  int64_t gets = 0;  // reads attempted
  int64_t hits = 0;
  int64_t misses = 0;
  int64_t get_errors = 0;
  int64_t get_bytes = 0;  // bytes of records returned by hits
  int64_t evictions = 0;  // records the tier dropped to stay within its size
  // Stored records found damaged when read (truncated, bad checksum, stored
  // under another key's name) and dropped; each read of one is also a miss.
  int64_t corrupt = 0;
  int64_t stored_records = -1;  // -1: the tier cannot tell (a shared server)
  int64_t stored_bytes = -1;
  int64_t capacity_bytes = -1;
  int32_t queued = 0;       // operations waiting or running
  bool available = true;    // false while the backend is down or read-only
  double read_seconds = 0;  // backend time of all reads (hits and misses)
  double write_seconds = 0;
  // Networked tiers (0 for the others): times a server came back after being
  // down, and connection failures (failed connects, connections dropped
  // after a timeout or an I/O error). Operations that fail fast while a
  // server is down count in *_errors only.
  int64_t reconnects = 0;
  int64_t connection_failures = 0;
};

// When the cache writes a block to a tier. A tier that other processes read
// or that outlives this one (disk, Redis) gets every block as soon as it is
// cached; a private in-memory tier only gets what the pool evicts (it would
// otherwise hold a second copy of the pool).
enum class TierWrites { kOnCache, kOnEvict };

class KvTier {
 public:
  virtual ~KvTier() = default;

  [[nodiscard]] virtual TierWrites writes() const { return TierWrites::kOnCache; }

  // The spec the tier was made from (tier_factory.h), for logs and metrics.
  [[nodiscard]] virtual const std::string& name() const = 0;

  // Stores the record under key, replacing any record stored there. done may
  // be null (write-behind).
  virtual void put(const TierKey& key, TierRecord record, TierCallback done = nullptr) = 0;
  // kOk with the record, kMiss, or kRejected / kError.
  virtual void get(const TierKey& key, TierCallback done) = 0;
  // kOk if stored, kMiss if not, or kRejected / kError.
  virtual void contains(const TierKey& key, TierCallback done) = 0;
  // Removes the record: kOk, kMiss, or kRejected / kError.
  virtual void evict(const TierKey& key, TierCallback done = nullptr) = 0;

  [[nodiscard]] virtual TierStats stats() const = 0;
  // Returns once every operation queued before the call has completed and
  // its callback has returned (tests).
  virtual void flush() = 0;
  // Like flush(), but returns false at the deadline if operations are still
  // queued (shutdown: writes get a bounded time to land).
  virtual bool drain(std::chrono::steady_clock::time_point deadline) = 0;
};

}  // namespace kvforge
