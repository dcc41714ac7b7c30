// Generation requests as a serving engine takes them: parameters, the events
// it reports back (one per generated token, then a final one), usage, and
// the engine's counters. Plain data; see engine.h for the Engine that uses
// them and docs/serving.md for the scheduling behind them.
#pragma once

#include <cstdint>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "kvforge/sampling.h"
#include "kvforge/status.h"

namespace kvforge {

using RequestId = int64_t;

enum class FinishReason {
  kNone,           // still running
  kEndOfText,      // an end-of-generation token
  kLength,         // max_tokens reached
  kContextFull,    // the sequence reached the context size
  kStoppedByUser,  // the sink returned false
  kCancelled,      // cancel()
  kError,          // see RequestEvent::error
};

struct RequestParams {
  std::vector<int32_t> prompt;  // token ids, not empty
  int32_t max_tokens = 128;     // > 0
  SamplingParams sampling;
  bool stop_at_end_of_generation = true;
  std::string cache_salt;  // prefix-cache isolation (PagedKvCache::set_salt)
  // Retention press for this request's sequence (a --press spec); empty:
  // the engine's. See docs/kv-compression.md.
  std::string press;
  // Multi-agent pipelines (docs/serving.md, relay): the workflow this
  // request belongs to, the agent that issues it, and how many steps until
  // this agent runs again (-1: unknown), for workflow-aware eviction.
  std::string workflow;
  std::string agent;
  int32_t next_use_steps = -1;
};

struct RequestUsage {
  int32_t prompt_tokens = 0;    // the prompt's length
  int32_t reused_tokens = 0;    // prompt tokens whose KV came from the prefix cache
  int32_t computed_tokens = 0;  // prompt (and recomputed) tokens prefilled
  // Relay (docs/relay.md): prompt tokens whose KV came from an earlier
  // output of the workflow, and of those the ones recomputed through every
  // layer (counted in computed_tokens too).
  int32_t relay_tokens = 0;
  int32_t relay_recomputed_tokens = 0;
  int32_t generated_tokens = 0;
  int32_t preemptions = 0;
  double queue_seconds = 0;        // submit to admission
  double time_to_first_token = 0;  // submit to first token, seconds
  double decode_seconds = 0;       // first token to the last
};

struct RequestEvent {
  RequestId id = 0;
  int32_t token = -1;  // the new token, or -1 for the final event only
  FinishReason finish = FinishReason::kNone;
  Status error;        // with kError
  RequestUsage usage;  // filled on the final event
};

// Returns false to stop the request (FinishReason::kStoppedByUser).
using RequestSink = std::function<bool(const RequestEvent&)>;

// Fixed-bucket histogram of seconds (Prometheus style: cumulative buckets).
struct Histogram {
  static constexpr double kBounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,  0.5,    1.0,   2.5,  5.0,   10.0, 30.0};
  int64_t counts[std::size(kBounds) + 1] = {};  // last: +Inf
  double sum = 0;
  int64_t total = 0;
  void add(double seconds);
};

// The KV cache at a glance (blocks of the paged cache; zeros for others).
struct CacheStats {
  int64_t blocks_total = 0;
  int64_t blocks_free = 0;
  int64_t blocks_cached = 0;  // held by the prefix cache only (evictable or shared)
  int64_t bytes_capacity = 0;
  int64_t bytes_used = 0;
  int64_t prefix_lookups = 0;
  int64_t prefix_hits = 0;
  int64_t prefix_lookup_tokens = 0;  // prompt tokens offered to the prefix cache
  int64_t prefix_hit_tokens = 0;     // of those, served from it
  int64_t prefix_evicted_blocks = 0;
};

// The relay store: outputs kept with their KV for later agents.
struct RelayStats {
  int64_t outputs = 0;  // kept now
  int64_t bytes = 0;    // kept now
  int64_t stored = 0;   // outputs ever kept
  int64_t evicted = 0;  // outputs evicted for room
  int64_t lookups = 0;  // prompts searched
  int64_t matches = 0;  // quoted runs found
};

// One KV tier below the pool (docs/tiers.md).
struct TierUsage {
  std::string name;  // its --kv-tier spec
  bool available = true;
  int64_t puts = 0;  // records written
  int64_t put_bytes = 0;
  int64_t put_rejected = 0;  // not attempted: queue full, tier read-only or full
  int64_t put_errors = 0;
  int64_t gets = 0;
  int64_t hits = 0;
  int64_t misses = 0;
  int64_t get_errors = 0;
  int64_t get_bytes = 0;
  int64_t evictions = 0;   // records the tier dropped for room
  int64_t corrupt = 0;     // stored records the tier found damaged and dropped
  int64_t reconnects = 0;  // a server came back after being down (Redis)
  int64_t connection_failures = 0;
  int64_t stored_bytes = -1;    // -1: unknown (a shared server)
  int64_t capacity_bytes = -1;  // -1: unknown
  int32_t queued = 0;
  double read_seconds = 0;        // backend time of all reads
  double seconds_per_record = 0;  // the cost model's estimate of one block read
};

// Loading prefix blocks from the tiers instead of recomputing them.
struct TieringStats {
  int64_t lookups = 0;            // prompts with blocks beyond the pool's hit
  int64_t decided_load = 0;       // ... whose blocks were fetched (the estimate favoured it)
  int64_t decided_recompute = 0;  // ... left to prefill (recompute estimated faster)
  int64_t gave_up_waiting = 0;    // fetches still running when recompute would have won
  int64_t blocks_loaded = 0;      // blocks verified and put into the prefix cache
  int64_t windows_loaded = 0;
  int64_t records_refused = 0;             // failed verification: treated as misses
  int64_t records_spilled = 0;             // records handed to the tiers
  double estimated_load_seconds = 0;       // of the fetches that completed
  double actual_load_seconds = 0;          // their measured time, submission to last record
  double estimated_recompute_seconds = 0;  // for the same tokens
  std::vector<TierUsage> tiers;
};

struct ServingStats {
  int64_t submitted = 0;
  int64_t finished = 0;
  int64_t cancelled = 0;
  int64_t preemptions = 0;
  int64_t steps = 0;
  int64_t prompt_tokens = 0;  // prompt tokens of admitted requests
  int64_t reused_tokens = 0;  // of those, taken from the prefix cache
  int64_t relay_tokens = 0;   // of those, taken from earlier outputs (relay)
  int64_t relay_recomputed_tokens = 0;
  int64_t computed_tokens = 0;  // tokens prefilled (prompts and recomputation)
  int64_t generated_tokens = 0;
  int32_t waiting = 0;
  int32_t running = 0;
  Histogram time_to_first_token;
  Histogram time_per_output_token;
  CacheStats cache;  // as of the end of the last step
  RelayStats relay;
  TieringStats tiering;
};

[[nodiscard]] const char* finish_reason_name(FinishReason reason);

}  // namespace kvforge
