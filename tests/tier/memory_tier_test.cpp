// MemoryTier and the QueuedTier contract every backend inherits: callbacks
// on the tier's thread, reads before writes, a bounded queue that rejects
// instead of blocking, LRU within the capacity.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "tier/memory_tier.h"
#include "tier/tier_factory.h"

namespace kvforge {
namespace {

TierKey key_of(uint64_t n, TierRecordKind kind = TierRecordKind::kBlock) {
  return TierKey{BlockHash{n, ~n}, kind};
}

TierRecord record_of(size_t bytes, uint8_t fill) {
  return std::make_shared<const std::vector<uint8_t>>(bytes, fill);
}

TierResult get_now(KvTier& tier, const TierKey& key) {
  std::promise<TierResult> done;
  tier.get(key, [&](TierResult r) { done.set_value(std::move(r)); });
  return done.get_future().get();
}

// Keeps a one-thread tier's thread busy inside a callback until release(),
// so that the operations queued meanwhile wait.
class ThreadHold {
 public:
  explicit ThreadHold(KvTier& tier) {
    std::shared_future<void> released = release_.get_future().share();
    auto holding = std::make_shared<std::promise<void>>();
    std::future<void> held = holding->get_future();
    tier.get(key_of(0), [released, holding](TierResult) {
      holding->set_value();
      released.wait();
    });
    held.wait();
  }
  void release() { release_.set_value(); }

 private:
  std::promise<void> release_;
};

TEST(TierKey, NamesKindAndBothWords) {
  EXPECT_EQ(key_of(1).to_string(), "bfffffffffffffffe0000000000000001");
  EXPECT_EQ(TierKey({BlockHash{0xab, 0x12}, TierRecordKind::kStagedWindow}).to_string(),
            "w000000000000001200000000000000ab");
}

TEST(MemoryTier, StoresReplacesAndEvicts) {
  MemoryTier tier("host:1KiB", 1024);
  tier.put(key_of(1), record_of(100, 1));
  tier.put(key_of(1), record_of(200, 2));  // replaces
  tier.flush();
  TierResult got = get_now(tier, key_of(1));
  ASSERT_EQ(got.outcome, TierOutcome::kOk);
  ASSERT_EQ(got.record->size(), 200u);
  EXPECT_EQ((*got.record)[0], 2);
  EXPECT_EQ(get_now(tier, key_of(1, TierRecordKind::kStagedWindow)).outcome, TierOutcome::kMiss);
  EXPECT_EQ(get_now(tier, key_of(2)).outcome, TierOutcome::kMiss);

  std::promise<TierResult> evicted;
  tier.evict(key_of(1), [&](TierResult r) { evicted.set_value(std::move(r)); });
  EXPECT_EQ(evicted.get_future().get().outcome, TierOutcome::kOk);
  EXPECT_EQ(get_now(tier, key_of(1)).outcome, TierOutcome::kMiss);

  // The last get counts as queued until its callback has returned.
  tier.flush();
  const TierStats s = tier.stats();
  EXPECT_EQ(s.puts, 2);
  EXPECT_EQ(s.put_bytes, 300);
  EXPECT_EQ(s.gets, 4);
  EXPECT_EQ(s.hits, 1);
  EXPECT_EQ(s.misses, 3);
  EXPECT_EQ(s.stored_records, 0);
  EXPECT_EQ(s.queued, 0);
}

TEST(MemoryTier, DropsLeastRecentlyUsedBeyondCapacity) {
  MemoryTier tier("host:1000B", 1000);
  for (uint64_t k = 0; k < 3; ++k) tier.put(key_of(k), record_of(300, static_cast<uint8_t>(k)));
  tier.flush();
  ASSERT_EQ(get_now(tier, key_of(0)).outcome, TierOutcome::kOk);  // 0 is now the newest
  tier.put(key_of(3), record_of(300, 3));                         // drops 1, the oldest
  tier.flush();
  EXPECT_EQ(get_now(tier, key_of(1)).outcome, TierOutcome::kMiss);
  for (uint64_t k : {0, 2, 3}) EXPECT_EQ(get_now(tier, key_of(k)).outcome, TierOutcome::kOk) << k;
  EXPECT_EQ(tier.stats().evictions, 1);
  EXPECT_EQ(tier.stats().stored_bytes, 900);
  // Larger than the whole tier: refused, nothing dropped.
  std::promise<TierResult> put;
  tier.put(key_of(9), record_of(1001, 9), [&](TierResult r) { put.set_value(std::move(r)); });
  EXPECT_EQ(put.get_future().get().outcome, TierOutcome::kRejected);
  EXPECT_EQ(tier.stats().stored_records, 3);
}

TEST(QueuedTier, CallbacksRunOnTheTiersThread) {
  MemoryTier tier("host:1KiB", 1024);
  std::promise<std::thread::id> where;
  tier.get(key_of(1), [&](TierResult) { where.set_value(std::this_thread::get_id()); });
  EXPECT_NE(where.get_future().get(), std::this_thread::get_id());
}

// A full queue rejects at once (the caller never blocks), with every
// callback still run exactly once.
TEST(QueuedTier, FullQueueRejectsWithoutBlocking) {
  QueuedTierOptions options;
  options.max_queued = 2;
  MemoryTier tier("host:1MiB", 1 << 20, options);
  // Hold the tier's only thread inside a callback.
  ThreadHold hold(tier);
  std::atomic<int> ok{0}, rejected{0};
  auto tally = [&](TierResult r) {
    (r.outcome == TierOutcome::kRejected ? rejected : ok).fetch_add(1);
  };
  for (uint64_t k = 1; k <= 5; ++k) tier.put(key_of(k), record_of(10, 1), tally);
  hold.release();
  tier.flush();
  EXPECT_EQ(ok.load(), 2);
  EXPECT_EQ(rejected.load(), 3);
  EXPECT_EQ(tier.stats().put_rejected, 3);
  EXPECT_EQ(tier.stats().stored_records, 2);
}

// Writes are bounded by their bytes too: write-behind never holds more
// than max_queued_write_bytes of records.
TEST(QueuedTier, QueuedWriteBytesAreBounded) {
  QueuedTierOptions options;
  options.max_queued_write_bytes = 25;
  MemoryTier tier("host:1MiB", 1 << 20, options);
  ThreadHold hold(tier);
  for (uint64_t k = 1; k <= 3; ++k) tier.put(key_of(k), record_of(10, 1));
  hold.release();
  tier.flush();
  EXPECT_EQ(tier.stats().stored_records, 2);
  EXPECT_EQ(tier.stats().put_rejected, 1);
  // Written bytes leave the bound: more fit now.
  tier.put(key_of(4), record_of(10, 1));
  tier.flush();
  EXPECT_EQ(tier.stats().stored_records, 3);
}

// Reads overtake queued writes: a read queued behind writes runs first.
TEST(QueuedTier, ReadsBeforeWrites) {
  MemoryTier tier("host:1MiB", 1 << 20);
  ThreadHold hold(tier);
  std::mutex m;
  std::vector<std::string> order;
  auto note = [&](std::string what) {
    return [&, what](TierResult) {
      std::lock_guard lock(m);
      order.push_back(what);
    };
  };
  tier.put(key_of(1), record_of(10, 1), note("put"));
  tier.get(key_of(1), note("get"));
  hold.release();
  tier.flush();
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[0], "get");
  EXPECT_EQ(order[1], "put");
}

// A read that overtakes a queued put of its key gets that put's record; a
// queued evict after the put means the queue has no answer (the backend
// decides), and an unrelated key is still a miss.
TEST(QueuedTier, ReadsSeeTheirKeysQueuedWrite) {
  MemoryTier tier("host:1MiB", 1 << 20);
  ThreadHold hold(tier);
  std::mutex m;
  std::vector<std::pair<std::string, TierResult>> results;
  auto keep = [&](std::string what) {
    return [&, what](TierResult r) {
      std::lock_guard lock(m);
      results.emplace_back(what, std::move(r));
    };
  };
  tier.put(key_of(1), record_of(10, 1), nullptr);
  tier.put(key_of(1), record_of(12, 2), nullptr);  // the latest put wins
  tier.put(key_of(3), record_of(10, 3), nullptr);
  tier.evict(key_of(3), nullptr);
  tier.get(key_of(1), keep("get 1"));
  tier.contains(key_of(1), keep("contains 1"));
  tier.get(key_of(2), keep("get 2"));
  tier.get(key_of(3), keep("get 3"));
  hold.release();
  tier.flush();
  ASSERT_EQ(results.size(), 4u);
  for (const auto& [what, r] : results) {
    if (what == "get 1") {
      ASSERT_EQ(r.outcome, TierOutcome::kOk);
      ASSERT_TRUE(r.record);
      EXPECT_EQ(*r.record, std::vector<uint8_t>(12, 2));
    } else if (what == "contains 1") {
      EXPECT_EQ(r.outcome, TierOutcome::kOk);
    } else {
      // Reads run before the writes: key 3's put and evict have not run.
      EXPECT_EQ(r.outcome, TierOutcome::kMiss) << what;
    }
  }
  EXPECT_EQ(tier.stats().hits, 1);
  EXPECT_EQ(get_now(tier, key_of(1)).record->size(), 12u);
  EXPECT_EQ(get_now(tier, key_of(3)).outcome, TierOutcome::kMiss);
}

TEST(TierFactory, ParsesHostAndRefusesTheRest) {
  auto host = make_kv_tier("host:64MiB");
  ASSERT_TRUE(host.ok()) << host.status().to_string();
  EXPECT_EQ((*host)->name(), "host:64MiB");
  EXPECT_EQ((*host)->stats().capacity_bytes, 64 << 20);
  for (const char* bad : {"host:", "host:lots", "tape:/dev/st0", "", "HOST:1GiB"}) {
    auto tier = make_kv_tier(bad);
    ASSERT_FALSE(tier.ok()) << bad;
    EXPECT_EQ(tier.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(tier.status().message().find("host:SIZE"), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace kvforge
