// QueuedTier: the queue and threads every KvTier backend shares.
//
// A backend implements the four operations synchronously (do_get, do_put,
// ...) as if it were alone; QueuedTier gives them the KvTier contract:
// operations are queued and run on the tier's own threads, reads before
// writes, callbacks afterwards on the same thread; a read of a key whose
// latest queued write is a put is answered with that put's record (a block
// written a moment ago is not a miss because the write has not run yet);
// at most max_queued operations (and max_queued_write_bytes of records to
// write) wait, and one more is rejected (kRejected) instead of blocking the
// caller. The statistics common to every tier are counted here.
//
// A derived class must call stop() at the start of its destructor, before
// the members its do_* functions use are destroyed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tier/kv_tier.h"

namespace kvforge {

struct QueuedTierOptions {
  // Operations waiting (reads and writes together). A 4096-token prompt of
  // a 16-token-block cache writes 256 records at once, so room for a few.
  int32_t max_queued = 4096;
  int32_t n_threads = 1;  // threads running operations
  // Bytes of records waiting to be written: what write-behind may hold in
  // memory beyond the pool.
  size_t max_queued_write_bytes = size_t{512} << 20;
};

class QueuedTier : public KvTier {
 public:
  QueuedTier(std::string name, const QueuedTierOptions& options);
  ~QueuedTier() override;

  [[nodiscard]] const std::string& name() const override { return name_; }
  void put(const TierKey& key, TierRecord record, TierCallback done = nullptr) override;
  void get(const TierKey& key, TierCallback done) override;
  void contains(const TierKey& key, TierCallback done) override;
  void evict(const TierKey& key, TierCallback done = nullptr) override;
  [[nodiscard]] TierStats stats() const override;
  void flush() override;
  bool drain(std::chrono::steady_clock::time_point deadline) override;

 protected:
  // Run on a tier thread, one call per operation; several at once when
  // n_threads > 1. They fill outcome, error and (do_get) record; seconds is
  // measured here.
  virtual TierResult do_put(const TierKey& key, const TierRecord& record) = 0;
  virtual TierResult do_get(const TierKey& key) = 0;
  virtual TierResult do_contains(const TierKey& key) = 0;
  virtual TierResult do_evict(const TierKey& key) = 0;
  // The backend's part of stats(): stored_*, capacity_bytes, evictions,
  // available. Called with no lock of QueuedTier held.
  virtual void add_backend_stats(TierStats& stats) const = 0;

  // Finishes the running operations, rejects the queued ones (their
  // callbacks run with kRejected) and joins the threads. Idempotent.
  void stop();

 private:
  enum class Op { kPut, kGet, kContains, kEvict };
  struct Job {
    Op op;
    TierKey key;
    TierRecord record;  // put: the bytes; get/contains: the queued put's, if any
    TierCallback done;
  };
  void enqueue(Job job);
  void worker();
  void run(Job& job);
  void run_backend(Job& job, TierResult& result);
  void count(Op op, const TierResult& result, size_t put_bytes);
  [[nodiscard]] bool idle() const;  // nothing queued or running; mutex_ held

  std::string name_;
  QueuedTierOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable work_;
  std::condition_variable idle_;
  std::deque<Job> reads_;
  std::deque<Job> writes_;
  std::deque<Job> rejected_;  // callbacks still to run with kRejected
  int32_t running_ = 0;
  size_t queued_write_bytes_ = 0;  // records in writes_
  bool stopping_ = false;
  bool stopped_ = false;  // threads joined
  TierStats counted_;
  std::vector<std::thread> threads_;
};

}  // namespace kvforge
