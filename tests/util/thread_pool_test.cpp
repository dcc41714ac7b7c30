#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace kvforge {
namespace {

TEST(ThreadPool, EveryTaskRunsExactlyOnce) {
  for (int n_threads : {1, 2, 4}) {
    ThreadPool pool(n_threads);
    for (int64_t n_tasks : {0, 1, 3, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n_tasks));
      std::atomic<int> bad_thread{0};
      for (int rep = 0; rep < 20; ++rep) {
        pool.parallel_for(n_tasks, [&](int64_t task, int thread) {
          hits[static_cast<size_t>(task)].fetch_add(1);
          if (thread < 0 || thread >= n_threads) bad_thread.fetch_add(1);
        });
      }
      for (auto& h : hits) EXPECT_EQ(h.load(), 20);
      EXPECT_EQ(bad_thread.load(), 0);
    }
  }
}

TEST(ThreadPool, ResultsVisibleAfterReturn) {
  ThreadPool pool(3);
  std::vector<int64_t> out(4096, 0);
  for (int rep = 0; rep < 50; ++rep) {
    pool.parallel_for(static_cast<int64_t>(out.size()),
                      [&](int64_t i, int) { out[static_cast<size_t>(i)] = i * rep; });
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], static_cast<int64_t>(i) * rep);
  }
}

// Runs one region of n_threads tasks in which every task waits until all of
// them have started: it completes only if every worker joins. Returns the
// set of thread indices that ran a task, empty if the tasks gave up waiting
// (a liveness bound far above any wake-up latency, so a lost wake-up fails
// the test instead of hanging it).
std::set<int> run_barrier_region(ThreadPool& pool) {
  const int n = pool.n_threads();
  std::atomic<int> arrived{0};
  std::atomic<bool> gave_up{false};
  std::vector<int> thread_of_task(static_cast<size_t>(n), -1);
  pool.parallel_for(n, [&](int64_t task, int thread) {
    thread_of_task[static_cast<size_t>(task)] = thread;
    arrived.fetch_add(1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (arrived.load() < n) {
      if (std::chrono::steady_clock::now() > deadline) {
        gave_up.store(true);
        return;
      }
      std::this_thread::yield();
    }
  });
  if (gave_up.load()) return {};
  return {thread_of_task.begin(), thread_of_task.end()};
}

// Waits (without a time limit that could fail the test) until every worker
// has gone to sleep on the futex at least `sleeps` times in total.
void wait_until_workers_sleep(const ThreadPool& pool, uint64_t sleeps) {
  while (pool.worker_sleeps() < sleeps) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST(ThreadPool, SleepingWorkersWakeUpAndRunTheirTasks) {
  for (int n_threads : {2, 4}) {
    ThreadPool pool(n_threads);
    const auto n_workers = static_cast<uint64_t>(n_threads - 1);
    std::set<int> all_threads;
    for (int t = 0; t < n_threads; ++t) all_threads.insert(t);
    for (int round = 1; round <= 3; ++round) {
      // Idle long enough for every worker to be asleep, then publish work
      // that needs every one of them.
      wait_until_workers_sleep(pool, n_workers * static_cast<uint64_t>(round));
      EXPECT_EQ(run_barrier_region(pool), all_threads) << n_threads << " threads, round " << round;
    }
  }
}

// Tasks that outlast the caller's spinning make it sleep until the last
// worker leaves; their results are visible when parallel_for returns.
TEST(ThreadPool, CallerSleepsUntilLongTasksFinish) {
  ThreadPool pool(3);
  std::vector<int> out(6, 0);
  for (int rep = 1; rep <= 5; ++rep) {
    pool.parallel_for(static_cast<int64_t>(out.size()), [&](int64_t i, int) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      out[static_cast<size_t>(i)] = rep;
    });
    for (int v : out) ASSERT_EQ(v, rep);
  }
}

// Many short regions with random task counts and random pauses between them,
// so that workers are caught spinning, yielding, asleep, or just waking up
// when a region opens and closes. Every task runs exactly once per region,
// and every few regions one needs all workers (a lost wake-up fails it).
TEST(ThreadPool, RandomizedStressLosesNoTaskAndNoWakeUp) {
  std::mt19937 rng(12345);
  for (int n_threads : {2, 3, 8}) {
    ThreadPool pool(n_threads);
    std::vector<std::atomic<int>> hits(64);
    for (int region = 0; region < 3000; ++region) {
      const int choice = static_cast<int>(rng() % 100);
      if (choice < 5) {
        ASSERT_EQ(run_barrier_region(pool).size(), static_cast<size_t>(n_threads))
            << n_threads << " threads, region " << region;
        continue;
      }
      const auto n_tasks = static_cast<int64_t>(1 + rng() % hits.size());
      for (auto& h : hits) h.store(0, std::memory_order_relaxed);
      std::atomic<int> bad_thread{0};
      pool.parallel_for(n_tasks, [&](int64_t task, int thread) {
        hits[static_cast<size_t>(task)].fetch_add(1, std::memory_order_relaxed);
        if (thread < 0 || thread >= n_threads) bad_thread.fetch_add(1);
      });
      for (int64_t t = 0; t < static_cast<int64_t>(hits.size()); ++t) {
        ASSERT_EQ(hits[static_cast<size_t>(t)].load(std::memory_order_relaxed), t < n_tasks ? 1 : 0)
            << n_threads << " threads, region " << region << ", task " << t;
      }
      ASSERT_EQ(bad_thread.load(), 0);
      // Pauses from none to past the spin and yield phases.
      if (choice < 20) {
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 1000));
      } else if (choice < 40) {
        std::this_thread::yield();
      }
    }
  }
}

TEST(ThreadPool, DestroysWhileWorkersSleepOrSpin) {
  for (int rep = 0; rep < 20; ++rep) {
    ThreadPool pool(4);
    pool.parallel_for(8, [](int64_t, int) {});
    if (rep % 2 == 0) wait_until_workers_sleep(pool, 3);
  }
}

}  // namespace
}  // namespace kvforge
