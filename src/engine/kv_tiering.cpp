#include "engine/kv_tiering.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace kvforge {
namespace {

constexpr double kEwmaWeight = 0.25;  // of the newest observation
// Written keys remembered, at most (a set of 17-byte keys: ~40 MiB).
constexpr size_t kMaxWrittenKeys = size_t{1} << 20;
// How long shutdown waits for queued writes.
constexpr auto kShutdownDrain = std::chrono::seconds(10);

// Before a tier has served a block: latency + bytes / bandwidth, from rough
// loopback figures of each kind (docs/tiers.md); replaced by measurements.
double prior_seconds_per_record(const std::string& tier_name, int64_t record_bytes) {
  const auto bytes = static_cast<double>(record_bytes);
  if (tier_name.starts_with("host:")) return 20e-6 + bytes / 8e9;
  if (tier_name.starts_with("disk:")) return 200e-6 + bytes / 1.5e9;
  return 300e-6 + bytes / 0.8e9;  // a server over the network
}

// Exponentially weighted mean; the first observation (mean <= 0) is taken
// as it is.
void update_mean(double& mean, double observed) {
  mean = mean <= 0 ? observed : (1 - kEwmaWeight) * mean + kEwmaWeight * observed;
}

double seconds_since(KvTiering::Clock::time_point t) {
  return std::chrono::duration<double>(KvTiering::Clock::now() - t).count();
}

}  // namespace

Result<TierLoadPolicy> parse_tier_load_policy(const std::string& text) {
  if (text == "auto" || text.empty()) return TierLoadPolicy::kAuto;
  if (text == "always") return TierLoadPolicy::kAlways;
  if (text == "never") return TierLoadPolicy::kNever;
  return invalid_argument(
      fmt::format("tier load policy '{}' is not one of auto, always, never", text));
}

struct KvTiering::Fetch {
  enum class Slot : uint8_t { kPending, kHit, kMiss };
  // The reads of one record kind: records[i] for lookup.blocks[i].
  struct Reads {
    std::vector<TierRecord> records;
    std::vector<Slot> slots;
  };
  TierLookup lookup;
  Clock::time_point started;
  double estimated_load = 0;       // seconds
  double estimated_recompute = 0;  // seconds; +inf: not measured yet
  double wait_limit = 0;           // seconds a request waits for it at most
  std::mutex mutex;                // the fields below
  Reads reads[2];                  // by TierRecordKind: blocks, staged windows
  int32_t pending = 0;
  bool resolved = false;    // the usable run is known (see is_resolved)
  double load_seconds = 0;  // start to resolution

  Reads& of(TierRecordKind kind) { return reads[static_cast<size_t>(kind)]; }
  const Reads& of(TierRecordKind kind) const { return reads[static_cast<size_t>(kind)]; }

  // Only the run of hits from the first block can be loaded: the fetch is
  // resolved once that run and the windows inside it are all known, even
  // while reads past a miss are still out.
  [[nodiscard]] bool is_resolved() const {
    const std::vector<Slot>& blocks = of(TierRecordKind::kBlock).slots;
    const std::vector<Slot>& windows = of(TierRecordKind::kStagedWindow).slots;
    size_t run = 0;
    while (run < blocks.size() && blocks[run] == Slot::kHit) ++run;
    if (run < blocks.size() && blocks[run] == Slot::kPending) return false;
    for (size_t i = 0; i < run && i < windows.size(); ++i) {
      if (windows[i] == Slot::kPending) return false;
    }
    return true;
  }
};

KvTiering::KvTiering(KvCache& kv, std::vector<std::unique_ptr<KvTier>> tiers, TierLoadPolicy policy,
                     std::function<void()> wake)
    : kv_(kv), tiers_(std::move(tiers)), policy_(policy), wake_(std::move(wake)) {
  record_seconds_.assign(tiers_.size(), 0);
  bool on_cache = false, on_evict = false;
  for (const auto& tier : tiers_) {
    (tier->writes() == TierWrites::kOnCache ? on_cache : on_evict) = true;
  }
  kv_.set_record_sink([this](KvCache::RecordEvent event, const TierKey& key,
                             TierRecord record) { spill(event, key, std::move(record)); },
                      on_cache, on_evict);
}

KvTiering::~KvTiering() {
  kv_.set_record_sink(nullptr, false, false);
  closing_ = true;
  // Writes still queued get a few seconds to land (a restart then finds
  // them); a tier that is down fails them fast.
  const auto deadline = Clock::now() + kShutdownDrain;
  for (auto& tier : tiers_) {
    if (!tier->drain(deadline)) {
      fmt::print(stderr, "kvforge: tier {}: writes still queued at shutdown are dropped\n",
                 tier->name());
    }
  }
  // First to last: a tier's callbacks may pass a miss on to the next tier,
  // so each tier stops (joining its threads) before the one after it.
  for (auto& tier : tiers_) tier.reset();
}

void KvTiering::spill(KvCache::RecordEvent event, const TierKey& key, TierRecord record) {
  const TierWrites when =
      event == KvCache::RecordEvent::kCached ? TierWrites::kOnCache : TierWrites::kOnEvict;
  // A block cached again (another request with the same prompt) is not
  // rewritten; an evicted one may come back and be evicted again, so
  // evictions are always written.
  if (when == TierWrites::kOnCache) {
    if (written_.size() >= kMaxWrittenKeys) written_.clear();
    if (!written_.insert(key).second) return;
  }
  if (key.kind == TierRecordKind::kBlock) {
    std::lock_guard lock(mutex_);
    ++counters_.records_spilled;
  }
  for (const auto& tier : tiers_) {
    // Windows go to every tier as they are kept: they are small, and a
    // block loaded without its window cannot serve a hit.
    const bool wanted = tier->writes() == when || (key.kind == TierRecordKind::kStagedWindow &&
                                                   event == KvCache::RecordEvent::kCached);
    if (wanted) tier->put(key, record);
  }
}

double KvTiering::seconds_per_record(size_t tier) const {
  if (record_seconds_[tier] > 0) return record_seconds_[tier];
  return prior_seconds_per_record(tiers_[tier]->name(), block_record_bytes_);
}

double KvTiering::recompute_seconds(int64_t tokens) const {
  if (prefill_tokens_per_second_ <= 0) return std::numeric_limits<double>::infinity();
  return static_cast<double>(tokens) / prefill_tokens_per_second_;
}

void KvTiering::note_prefill(int64_t tokens, double seconds) {
  // Short chunks are dominated by the decode tokens beside them.
  if (tokens < 16 || seconds <= 0) return;
  const double rate = static_cast<double>(tokens) / seconds;
  std::lock_guard lock(mutex_);
  update_mean(prefill_tokens_per_second_, rate);
}

void KvTiering::submitted(RequestId id, const std::string& salt, std::span<const int32_t> prompt) {
  if (policy_ == TierLoadPolicy::kNever || tiers_.empty()) return;
  TierLookup lookup = kv_.tier_lookup(salt, prompt);
  if (lookup.blocks.empty()) return;
  auto fetch = std::make_shared<Fetch>();
  const auto n = static_cast<int64_t>(lookup.blocks.size());
  {
    std::lock_guard lock(mutex_);
    ++counters_.lookups;
    block_record_bytes_ = lookup.block_record_bytes;
    // One tier thread reads the blocks one after another; the first tier is
    // assumed to hold them (a miss there costs its latency on top).
    fetch->estimated_load = static_cast<double>(n) * seconds_per_record(0);
    fetch->estimated_recompute = recompute_seconds(n * lookup.block_tokens);
    if (policy_ == TierLoadPolicy::kAuto && fetch->estimated_load >= fetch->estimated_recompute) {
      ++counters_.decided_recompute;
      return;
    }
    ++counters_.decided_load;
  }
  fetch->wait_limit = std::isfinite(fetch->estimated_recompute)
                          ? fetch->estimated_recompute
                          : std::max(0.5, 4 * fetch->estimated_load);
  fetch->lookup = std::move(lookup);
  const size_t n_blocks = fetch->lookup.blocks.size();
  const size_t n_windows = fetch->lookup.windows ? n_blocks : 0;
  fetch->of(TierRecordKind::kBlock).records.resize(n_blocks);
  fetch->of(TierRecordKind::kBlock).slots.assign(n_blocks, Fetch::Slot::kPending);
  fetch->of(TierRecordKind::kStagedWindow).records.resize(n_windows);
  fetch->of(TierRecordKind::kStagedWindow).slots.assign(n_windows, Fetch::Slot::kPending);
  fetch->pending = static_cast<int32_t>(n_blocks + n_windows);
  fetch->started = Clock::now();
  in_flight_.fetch_add(1);
  fetches_[id] = fetch;
  for (size_t i = 0; i < n_blocks; ++i) fetch_from(fetch, TierRecordKind::kBlock, i, 0);
  for (size_t i = 0; i < n_windows; ++i) fetch_from(fetch, TierRecordKind::kStagedWindow, i, 0);
}

void KvTiering::fetch_from(const std::shared_ptr<Fetch>& fetch, TierRecordKind kind, size_t index,
                           size_t tier) {
  const TierKey key{fetch->lookup.blocks[index], kind};
  tiers_[tier]->get(key, [this, fetch, kind, index, tier](TierResult result) {
    const bool hit = result.outcome == TierOutcome::kOk && result.record != nullptr;
    if (hit && kind == TierRecordKind::kBlock) {
      std::lock_guard lock(mutex_);
      update_mean(record_seconds_[tier], result.seconds);
    }
    if (!hit && tier + 1 < tiers_.size() && !closing_) {
      fetch_from(fetch, kind, index, tier + 1);  // the next tier may have it
      return;
    }
    record_done(fetch, kind, index, hit ? std::move(result.record) : nullptr);
  });
}

void KvTiering::record_done(const std::shared_ptr<Fetch>& fetch, TierRecordKind kind, size_t index,
                            TierRecord record) {
  bool now_resolved = false;
  bool last = false;
  {
    std::lock_guard lock(fetch->mutex);
    Fetch::Reads& reads = fetch->of(kind);
    reads.slots[index] = record ? Fetch::Slot::kHit : Fetch::Slot::kMiss;
    reads.records[index] = std::move(record);
    last = --fetch->pending == 0;
    if (!fetch->resolved && fetch->is_resolved()) {
      fetch->resolved = now_resolved = true;
      fetch->load_seconds = seconds_since(fetch->started);
    }
  }
  if (last) in_flight_.fetch_sub(1);
  if (now_resolved && wake_ && !closing_) wake_();
}

bool KvTiering::fetching() const {
  return in_flight_.load() > 0;
}

bool KvTiering::ready_to_admit(RequestId id, const std::string& salt,
                               std::span<const int32_t> prompt) {
  const auto found = fetches_.find(id);
  if (found == fetches_.end()) return true;
  Fetch& f = *found->second;
  std::vector<TierRecord> blocks, windows;
  double load_seconds = 0;
  {
    std::lock_guard lock(f.mutex);
    if (!f.resolved && seconds_since(f.started) < f.wait_limit) return false;
    blocks = f.of(TierRecordKind::kBlock).records;
    windows = f.of(TierRecordKind::kStagedWindow).records;
    load_seconds = f.resolved ? f.load_seconds : -1;
  }
  const TierImport imported =
      kv_.import_records(salt, prompt, f.lookup.cached_blocks, blocks, windows);
  {
    std::lock_guard lock(mutex_);
    counters_.blocks_loaded += imported.blocks;
    counters_.windows_loaded += imported.windows;
    counters_.records_refused += imported.refused;
    if (load_seconds < 0) {
      ++counters_.gave_up_waiting;
    } else {
      counters_.estimated_load_seconds += f.estimated_load;
      counters_.actual_load_seconds += load_seconds;
      if (std::isfinite(f.estimated_recompute)) {
        counters_.estimated_recompute_seconds += f.estimated_recompute;
      }
    }
  }
  if (imported.refused > 0) {
    fmt::print(stderr, "kvforge: {} tier record(s) refused, loaded as misses: {}\n",
               imported.refused, imported.first_error);
  }
  fetches_.erase(found);
  return true;
}

void KvTiering::forget(RequestId id) {
  fetches_.erase(id);
}

TieringStats KvTiering::stats() const {
  TieringStats s;
  std::vector<double> per_record;
  {
    std::lock_guard lock(mutex_);
    s = counters_;
    for (size_t t = 0; t < tiers_.size(); ++t) per_record.push_back(seconds_per_record(t));
  }
  for (size_t t = 0; t < tiers_.size(); ++t) {
    const TierStats ts = tiers_[t]->stats();
    TierUsage u;
    u.name = tiers_[t]->name();
    u.available = ts.available;
    u.puts = ts.puts;
    u.put_bytes = ts.put_bytes;
    u.put_rejected = ts.put_rejected;
    u.put_errors = ts.put_errors;
    u.gets = ts.gets;
    u.hits = ts.hits;
    u.misses = ts.misses;
    u.get_errors = ts.get_errors;
    u.get_bytes = ts.get_bytes;
    u.evictions = ts.evictions;
    u.corrupt = ts.corrupt;
    u.reconnects = ts.reconnects;
    u.connection_failures = ts.connection_failures;
    u.stored_bytes = ts.stored_bytes;
    u.capacity_bytes = ts.capacity_bytes;
    u.queued = ts.queued;
    u.read_seconds = ts.read_seconds;
    u.seconds_per_record = per_record[t];
    s.tiers.push_back(std::move(u));
  }
  return s;
}

}  // namespace kvforge
