#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
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

}  // namespace
}  // namespace kvforge
