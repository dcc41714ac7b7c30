#include "util/thread_pool.h"

#include <sched.h>

#include <chrono>

namespace kvforge {
namespace {

// How long an idle thread spins, then yields, before it sleeps. Spinning
// covers the gap between the parallel regions of one decode step (a few
// microseconds of single-threaded work: norms, RoPE, sampling); yielding
// hands the core to a thread that needs it (the caller, or another process)
// while still noticing new work without a futex wake-up; a sleeper costs
// nothing but wakes some microseconds later.
constexpr auto kSpinTime = std::chrono::microseconds(50);
constexpr auto kYieldTime = std::chrono::microseconds(200);
// Spin iterations between clock reads.
constexpr int kSpinsPerClockRead = 64;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Waits until ready() is true: spins for kSpinTime, yields for kYieldTime,
// then returns false so that the caller can go to sleep (and re-check).
template <class Ready>
bool spin_then_yield(Ready ready) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  for (;;) {
    for (int i = 0; i < kSpinsPerClockRead; ++i) {
      if (ready()) return true;
      cpu_relax();
    }
    if (Clock::now() - start >= kSpinTime) break;
  }
  for (;;) {
    if (ready()) return true;
    sched_yield();
    if (Clock::now() - start >= kSpinTime + kYieldTime) return ready();
  }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  workers_.reserve(static_cast<size_t>(n_threads_ - 1));
  for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { worker_loop(t); });
  // Wait until every worker runs: a thread's start-up (stack and TLS set-up,
  // and under AddressSanitizer heap allocations) then never lands inside the
  // first parallel regions, which would make their cost depend on when the
  // kernel first scheduled the thread.
  const auto n_workers = static_cast<uint32_t>(workers_.size());
  for (uint32_t running = workers_running_.load(); running < n_workers;
       running = workers_running_.load()) {
    workers_running_.wait(running);
  }
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
  wake_seq_.fetch_add(1, std::memory_order_seq_cst);
  wake_seq_.notify_all();
  for (auto& w : workers_) w.join();
}

int ThreadPool::hardware_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void ThreadPool::drain(int thread) {
  for (;;) {
    const int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
    if (task >= n_tasks_) return;
    thunk_(ctx_, task, thread);
  }
}

void ThreadPool::run(int64_t n_tasks, Thunk thunk, void* ctx) {
  if (workers_.empty() || n_tasks == 1) {
    for (int64_t t = 0; t < n_tasks; ++t) thunk(ctx, t, 0);
    return;
  }
  // The previous region is closed with no worker in it, so nobody reads the
  // job fields while they change.
  thunk_ = thunk;
  ctx_ = ctx;
  n_tasks_ = n_tasks;
  next_task_.store(0, std::memory_order_relaxed);
  ++region_number_;
  // Release: a worker that joins (acquire) sees the job above.
  region_.store((uint64_t{region_number_} << 32) | kOpen, std::memory_order_release);
  wake_seq_.fetch_add(1, std::memory_order_seq_cst);
  wake_seq_.notify_all();
  drain(0);
  // Every task is claimed: close the region to late workers, then wait for
  // the ones inside to finish their last task.
  const uint64_t before = region_.fetch_and(~kOpen, std::memory_order_acq_rel);
  if ((before & kJoinedMask) != 0) wait_for_joined_workers();
}

void ThreadPool::wait_for_joined_workers() {
  auto all_left = [this] { return (region_.load(std::memory_order_acquire) & kJoinedMask) == 0; };
  if (spin_then_yield(all_left)) return;
  for (;;) {
    // Read the sequence before the check: a worker that leaves after the
    // check bumps it, so wait() returns at once instead of missing the wake.
    const uint32_t seq = left_seq_.load(std::memory_order_seq_cst);
    if (all_left()) return;
    left_seq_.wait(seq, std::memory_order_seq_cst);
  }
}

bool ThreadPool::wait_for_region(uint32_t& seen) {
  auto woken = [&] { return wake_seq_.load(std::memory_order_seq_cst) != seen; };
  if (!spin_then_yield(woken)) {
    for (;;) {
      // The caller bumps wake_seq_ after opening a region; if that happens
      // between this load and wait(), wait() sees a changed value and
      // returns at once.
      const uint32_t seq = wake_seq_.load(std::memory_order_seq_cst);
      if (seq != seen) break;
      worker_sleeps_.fetch_add(1, std::memory_order_relaxed);
      wake_seq_.wait(seq, std::memory_order_seq_cst);
    }
  }
  seen = wake_seq_.load(std::memory_order_seq_cst);
  return !stop_.load(std::memory_order_seq_cst);
}

bool ThreadPool::join_region(int thread, uint64_t& last_region) {
  uint64_t state = region_.load(std::memory_order_acquire);
  for (;;) {
    const uint64_t number = state >> 32;
    // Closed (the caller claimed every task), or one we already ran.
    if ((state & kOpen) == 0 || number == last_region) return false;
    if (region_.compare_exchange_weak(state, state + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
      break;
    }
  }
  last_region = state >> 32;
  regions_joined_.fetch_add(1, std::memory_order_relaxed);
  drain(thread);
  const uint64_t after = region_.fetch_sub(1, std::memory_order_acq_rel) - 1;
  // The last worker out of a closed region wakes the caller.
  if ((after & (kOpen | kJoinedMask)) == 0) {
    left_seq_.fetch_add(1, std::memory_order_seq_cst);
    left_seq_.notify_one();
  }
  return true;
}

void ThreadPool::worker_loop(int thread) {
  workers_running_.fetch_add(1);
  workers_running_.notify_all();
  uint32_t seen = 0;
  uint64_t last_region = 0;
  while (wait_for_region(seen)) {
    // A region may have opened and closed while this worker was away; then
    // there is nothing to join and it goes back to waiting.
    join_region(thread, last_region);
  }
}

}  // namespace kvforge
