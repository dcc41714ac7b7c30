// A fixed pool of worker threads for data-parallel kernels.
//
// parallel_for(n, fn) runs fn(task, thread) for task in [0, n) on the calling
// thread plus the workers and returns when all tasks are done. Tasks are
// handed out dynamically (an atomic counter), so uneven rows balance. A call
// allocates nothing: the callable is passed by pointer, not copied into a
// std::function. Workers spin briefly, then sleep on an atomic wait.
//
// Thread-safety: one parallel_for at a time per pool (calls from several
// threads must be serialized by the caller).
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
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

 private:
  using Thunk = void (*)(void*, int64_t, int);
  void run(int64_t n_tasks, Thunk thunk, void* ctx);
  void worker_loop(int thread);
  void drain(int thread);

  int n_threads_;
  std::vector<std::thread> workers_;
  Thunk thunk_ = nullptr;
  void* ctx_ = nullptr;
  int64_t n_tasks_ = 0;
  alignas(64) std::atomic<int64_t> next_task_{0};
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<int> busy_workers_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace kvforge
