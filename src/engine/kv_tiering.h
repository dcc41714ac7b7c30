// KvTiering: the scheduler's link to the KV tiers below the pool
// (docs/tiers.md).
//
// Down: blocks arrive as records through the cache's record sink and are
// written, write-behind, to the tiers that want them: disk and Redis every
// block as it enters the prefix cache (other instances and restarts read
// them), the host-memory tier every block the pool evicts (its overflow).
// Staged windows go to every tier as they are kept. A tier whose queue is
// full drops a write and counts it; a decode step never waits for a tier.
//
// Up: when a request is queued, its prompt's blocks beyond the pool's hit
// are looked up; if the cost model expects loading them to beat prefilling
// them, they are fetched from the tiers at once (each record from the first
// tier that has it), while the request waits for a slot. At admission the
// request waits until the run it can use is known (every read up to the
// first miss is back), and only as long as waiting still beats recomputing;
// then the records of that run are verified and loaded into the prefix
// cache, where the ordinary prefix match takes them.
//
// Cost model: one block read per tier costs an exponentially weighted mean
// of the measured backend time of its reads (hits), starting from a prior
// per tier kind; recompute costs tokens / the measured prefill rate (the
// exponentially weighted tokens per second of prefill steps). Before any
// prefill was measured, loading is assumed to win.
//
// Thread-safety: submitted / ready_to_admit / forget / note_prefill / the
// sink run on the scheduler thread; tier callbacks on tier threads; stats()
// from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kv/kv_cache.h"
#include "kvforge/generation.h"
#include "kvforge/status.h"
#include "tier/kv_tier.h"

namespace kvforge {

enum class TierLoadPolicy { kAuto, kAlways, kNever };

[[nodiscard]] Result<TierLoadPolicy> parse_tier_load_policy(const std::string& text);

class KvTiering {
 public:
  using Clock = std::chrono::steady_clock;

  // Takes the tiers (fastest first) and installs itself as kv's record
  // sink. `wake` is called from a tier thread when a fetch completes (the
  // scheduler may be asleep waiting for it).
  KvTiering(KvCache& kv, std::vector<std::unique_ptr<KvTier>> tiers, TierLoadPolicy policy,
            std::function<void()> wake);
  ~KvTiering();  // detaches the sink; queued writes still in the tiers are dropped
  KvTiering(const KvTiering&) = delete;
  KvTiering& operator=(const KvTiering&) = delete;

  // A request was queued: look its prompt up and maybe start fetching.
  void submitted(RequestId id, const std::string& salt, std::span<const int32_t> prompt);
  // False while the request should keep waiting for its fetch; otherwise
  // loads what arrived into the cache (once) and returns true.
  [[nodiscard]] bool ready_to_admit(RequestId id, const std::string& salt,
                                    std::span<const int32_t> prompt);
  // The request is gone (finished, cancelled, admitted): drop its fetch.
  void forget(RequestId id);
  // True while some fetch still has reads out (the scheduler then polls).
  [[nodiscard]] bool fetching() const;
  // A step prefilled `tokens` tokens in `seconds` (the recompute rate).
  void note_prefill(int64_t tokens, double seconds);

  [[nodiscard]] TieringStats stats() const;

 private:
  struct Fetch;
  void spill(KvCache::RecordEvent event, const TierKey& key, TierRecord record);
  void fetch_from(const std::shared_ptr<Fetch>& fetch, TierRecordKind kind, size_t index,
                  size_t tier);
  void record_done(const std::shared_ptr<Fetch>& fetch, TierRecordKind kind, size_t index,
                   TierRecord record);
  [[nodiscard]] double seconds_per_record(size_t tier) const;    // mutex_ held
  [[nodiscard]] double recompute_seconds(int64_t tokens) const;  // mutex_ held

  KvCache& kv_;
  std::vector<std::unique_ptr<KvTier>> tiers_;
  TierLoadPolicy policy_;
  std::function<void()> wake_;
  std::atomic<bool> closing_{false};

  mutable std::mutex mutex_;              // the cost model and counters
  std::vector<double> record_seconds_;    // per tier: EWMA of one block read
  double prefill_tokens_per_second_ = 0;  // 0: not measured yet
  int64_t block_record_bytes_ = 0;        // the cache's, from its lookups (for the priors)
  TieringStats counters_;

  // Scheduler thread only.
  std::unordered_map<RequestId, std::shared_ptr<Fetch>> fetches_;
  // Keys written recently: the same block offered again (another request
  // with the same prompt) is not rewritten. Cleared when it grows large.
  std::unordered_set<TierKey, TierKeyHasher> written_;
  std::atomic<int32_t> in_flight_{0};  // fetches with records pending
};

}  // namespace kvforge
