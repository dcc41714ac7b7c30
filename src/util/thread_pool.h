// A fixed pool of worker threads for data-parallel kernels.
//
// parallel_for(n, fn) runs fn(task, thread) for task in [0, n) on the calling
// thread plus the workers and returns when all tasks are done. Tasks are
// handed out dynamically (an atomic counter), so uneven rows balance. A call
// allocates nothing: the callable is passed by pointer, not copied into a
// std::function.
//
// Waiting. A decode step is a chain of many short parallel regions, so an
// idle worker first spins (a new region usually follows within microseconds),
// then yields its core, then sleeps on a futex (std::atomic::wait) until the
// next region is published. The caller waits for the workers the same way.
// A region is open to workers only until the caller has claimed the last
// task: a worker that wakes up later (its core busy with another process)
// skips the region, and the caller waits only for workers that joined it and
// may still be running a task. So a descheduled worker never stalls a call
// it did not join, which keeps a pool with more threads than free cores
// close to the speed of one thread (bench/busy_cpu.sh, docs/performance.md).
//
// The constructor returns once every worker thread is running.
//
// Thread-safety: one parallel_for at a time per pool (calls from several
// threads must be serialized by the caller).
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

namespace kvforge {

class ThreadPool {
 public:
  // n_threads counts the caller: 1 means no worker threads.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  [[nodiscard]] int n_threads() const { return n_threads_; }

  template <class F>
  void parallel_for(int64_t n_tasks, F&& fn) {
    if (n_tasks <= 0) return;
    auto thunk = [](void* ctx, int64_t task, int thread) {
      (*static_cast<std::remove_reference_t<F>*>(ctx))(task, thread);
    };
    run(n_tasks, thunk, const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Number of CPUs this process may run on.
  [[nodiscard]] static int hardware_threads();

  // Counters for tests: how many times a worker went to sleep on the futex,
  // and how many regions workers joined. Relaxed; exact once the pool is idle.
  [[nodiscard]] uint64_t worker_sleeps() const {
    return worker_sleeps_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] uint64_t regions_joined() const {
    return regions_joined_.load(std::memory_order_relaxed);
  }

 private:
  using Thunk = void (*)(void*, int64_t, int);
  void run(int64_t n_tasks, Thunk thunk, void* ctx);
  void worker_loop(int thread);
  void drain(int thread);
  // Blocks until wake_seq_ differs from seen; false when the pool stops.
  bool wait_for_region(uint32_t& seen);
  // Tries to join the open region; true if it ran the region's tasks.
  bool join_region(int thread, uint64_t& last_region);
  void wait_for_joined_workers();

  // region_: [region number : 32 | open : 1 | joined workers : 31]. Workers
  // join an open region with a compare-exchange; the caller closes it after
  // claiming the last task and then waits for the joined count to reach 0.
  static constexpr uint64_t kOpen = uint64_t{1} << 31;
  static constexpr uint64_t kJoinedMask = kOpen - 1;

  int n_threads_;
  std::vector<std::thread> workers_;
  // The region's job, written by the caller before it opens the region and
  // read by workers only after joining it.
  Thunk thunk_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_tasks_ = 0;
  uint32_t region_number_ = 0;
  alignas(64) std::atomic<int64_t> next_task_{0};
  alignas(64) std::atomic<uint64_t> region_{0};
  // Bumped (and notified) when a region opens or the pool stops; idle
  // workers wait on it.
  alignas(64) std::atomic<uint32_t> wake_seq_{0};
  // Bumped (and notified) by the last joined worker to leave a closed
  // region; the caller waits on it.
  alignas(64) std::atomic<uint32_t> left_seq_{0};
  std::atomic<bool> stop_{false};
  // Workers that have started; the constructor waits for all of them.
  std::atomic<uint32_t> workers_running_{0};
  std::atomic<uint64_t> worker_sleeps_{0};
  std::atomic<uint64_t> regions_joined_{0};
};

}  // namespace kvforge
