#include "tier/queued_tier.h"

#include <fmt/format.h>

#include <utility>

namespace kvforge {

QueuedTier::QueuedTier(std::string name, const QueuedTierOptions& options)
    : name_(std::move(name)), options_(options) {
  if (options_.max_queued < 1) options_.max_queued = 1;
  if (options_.n_threads < 1) options_.n_threads = 1;
  threads_.reserve(static_cast<size_t>(options_.n_threads));
  for (int32_t t = 0; t < options_.n_threads; ++t) threads_.emplace_back([this] { worker(); });
}

QueuedTier::~QueuedTier() {
  stop();
}

void QueuedTier::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopping_ = true;
  }
  work_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  // No thread is left: run what was still queued as rejected, here.
  std::deque<Job> left;
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    for (auto* queue : {&rejected_, &reads_, &writes_}) {
      for (Job& job : *queue) left.push_back(std::move(job));
      queue->clear();
    }
    queued_write_bytes_ = 0;
  }
  for (Job& job : left) {
    if (job.done)
      job.done(TierResult{TierOutcome::kRejected, nullptr, "the tier is shutting down", 0});
  }
  idle_.notify_all();
}

void QueuedTier::put(const TierKey& key, TierRecord record, TierCallback done) {
  enqueue(Job{Op::kPut, key, std::move(record), std::move(done)});
}
void QueuedTier::get(const TierKey& key, TierCallback done) {
  enqueue(Job{Op::kGet, key, nullptr, std::move(done)});
}
void QueuedTier::contains(const TierKey& key, TierCallback done) {
  enqueue(Job{Op::kContains, key, nullptr, std::move(done)});
}
void QueuedTier::evict(const TierKey& key, TierCallback done) {
  enqueue(Job{Op::kEvict, key, nullptr, std::move(done)});
}

void QueuedTier::enqueue(Job job) {
  {
    std::lock_guard lock(mutex_);
    const bool is_read = job.op == Op::kGet || job.op == Op::kContains;
    const auto waiting = static_cast<int32_t>(reads_.size() + writes_.size());
    const size_t record_bytes = job.record ? job.record->size() : 0;
    if (stopping_ || waiting >= options_.max_queued ||
        queued_write_bytes_ + record_bytes > options_.max_queued_write_bytes) {
      if (job.op == Op::kPut) ++counted_.put_rejected;
      // Rejections without a callback need no thread.
      if (job.done) rejected_.push_back(std::move(job));
    } else {
      queued_write_bytes_ += record_bytes;
      if (is_read) {
        // A record still waiting to be written is answered from the queue:
        // reads overtake writes, and a block evicted a moment ago must not
        // read as a miss. The key's latest queued write decides.
        for (auto it = writes_.rbegin(); it != writes_.rend(); ++it) {
          if (it->key == job.key) {
            if (it->op == Op::kPut) job.record = it->record;
            break;
          }
        }
      }
      (is_read ? reads_ : writes_).push_back(std::move(job));
    }
  }
  work_.notify_one();
}

void QueuedTier::worker() {
  for (;;) {
    Job job;
    bool rejected = false;
    {
      std::unique_lock lock(mutex_);
      work_.wait(lock, [&] {
        return stopping_ || !rejected_.empty() || !reads_.empty() || !writes_.empty();
      });
      if (!rejected_.empty()) {
        job = std::move(rejected_.front());
        rejected_.pop_front();
        rejected = true;
      } else if (stopping_) {
        return;
      } else if (!reads_.empty()) {
        job = std::move(reads_.front());
        reads_.pop_front();
      } else {
        job = std::move(writes_.front());
        writes_.pop_front();
        queued_write_bytes_ -= job.record ? job.record->size() : 0;
      }
      ++running_;
    }
    if (rejected) {
      job.done(TierResult{
          TierOutcome::kRejected, nullptr,
          fmt::format("tier {}: queue full ({} operations)", name_, options_.max_queued), 0});
    } else {
      run(job);
    }
    {
      std::lock_guard lock(mutex_);
      --running_;
    }
    idle_.notify_all();
  }
}

void QueuedTier::run(Job& job) {
  const auto start = std::chrono::steady_clock::now();
  TierResult result;
  const bool from_queue = (job.op == Op::kGet || job.op == Op::kContains) && job.record;
  if (from_queue) {
    result = TierResult{TierOutcome::kOk, job.record, "", 0};
  } else {
    run_backend(job, result);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (job.op != Op::kGet) result.record = nullptr;
  count(job.op, result, job.op == Op::kPut && job.record ? job.record->size() : 0);
  if (job.done) job.done(std::move(result));
}

void QueuedTier::run_backend(Job& job, TierResult& result) {
  switch (job.op) {
    case Op::kPut:
      result = do_put(job.key, job.record);
      break;
    case Op::kGet:
      result = do_get(job.key);
      break;
    case Op::kContains:
      result = do_contains(job.key);
      break;
    case Op::kEvict:
      result = do_evict(job.key);
      break;
  }
}

void QueuedTier::count(Op op, const TierResult& result, size_t put_bytes) {
  std::lock_guard lock(mutex_);
  TierStats& s = counted_;
  const bool ok = result.outcome == TierOutcome::kOk;
  switch (op) {
    case Op::kPut:
      s.write_seconds += result.seconds;
      if (ok) {
        ++s.puts;
        s.put_bytes += static_cast<int64_t>(put_bytes);
      } else if (result.outcome == TierOutcome::kRejected) {
        ++s.put_rejected;
      } else {
        ++s.put_errors;
      }
      break;
    case Op::kGet:
      ++s.gets;
      s.read_seconds += result.seconds;
      if (ok) {
        ++s.hits;
        s.get_bytes += result.record ? static_cast<int64_t>(result.record->size()) : 0;
      } else if (result.outcome == TierOutcome::kMiss) {
        ++s.misses;
      } else {
        ++s.get_errors;
      }
      break;
    case Op::kContains:
    case Op::kEvict:
      break;
  }
}

TierStats QueuedTier::stats() const {
  TierStats s;
  {
    std::lock_guard lock(mutex_);
    s = counted_;
    s.queued = static_cast<int32_t>(reads_.size() + writes_.size()) + running_;
  }
  add_backend_stats(s);
  return s;
}

bool QueuedTier::idle() const {
  return (reads_.empty() && writes_.empty() && rejected_.empty() && running_ == 0) || stopped_;
}

void QueuedTier::flush() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [&] { return idle(); });
}

bool QueuedTier::drain(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  return idle_.wait_until(lock, deadline, [&] { return idle(); });
}

}  // namespace kvforge
