// kvforge_machine_limits: measures the two limits our speed is held against,
// and prints them as JSON:
//   read_gb_per_s   streaming read bandwidth from DRAM with T threads (a
//                   buffer far larger than the last-level cache, summed)
//   fma_gflop_per_s peak f32 FMA throughput with T threads (independent
//                   AVX2 FMA chains; 0 when the CPU has no AVX2+FMA)
// Usage: kvforge_machine_limits [threads] [buffer_mib]
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs fn(thread) on `threads` threads at once; returns the wall time.
template <class F>
double timed_parallel(int threads, F fn) {
  std::vector<std::thread> pool;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  double start = 0;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load()) {
      }
      fn(t);
    });
  }
  while (ready.load() != threads) {
  }
  start = now();
  go.store(true);
  for (auto& th : pool) th.join();
  return now() - start;
}

uint64_t sum_words(const uint64_t* p, size_t n) {
  // Four independent sums keep several loads in flight.
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (size_t i = 0; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  return a + b + c + d;
}

double read_bandwidth(int threads, size_t bytes) {
  const size_t words = bytes / 8;
  std::vector<uint64_t> buf(words);
  // Touch the pages from the threads that will read them (first touch).
  timed_parallel(threads, [&](int t) {
    const size_t lo = words * t / threads, hi = words * (t + 1) / threads;
    for (size_t i = lo; i < hi; ++i) buf[i] = i;
  });
  std::atomic<uint64_t> sink{0};
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const double s = timed_parallel(threads, [&](int t) {
      const size_t lo = words * t / threads, hi = words * (t + 1) / threads;
      sink.fetch_add(sum_words(buf.data() + lo, hi - lo));
    });
    best = std::min(best, s);
  }
  return double(words * 8) / best / 1e9;
}

__attribute__((target("avx2,fma"))) float fma_chains(int64_t iters) {
  // 10 independent accumulators cover the FMA latency (4-5 cycles) on two
  // ports. Named variables, not an array: an array may live in memory, and
  // then store-to-load forwarding, not the FMA units, sets the pace.
  __m256 c0 = _mm256_set1_ps(0.000f), c1 = _mm256_set1_ps(0.001f), c2 = _mm256_set1_ps(0.002f),
         c3 = _mm256_set1_ps(0.003f), c4 = _mm256_set1_ps(0.004f), c5 = _mm256_set1_ps(0.005f),
         c6 = _mm256_set1_ps(0.006f), c7 = _mm256_set1_ps(0.007f), c8 = _mm256_set1_ps(0.008f),
         c9 = _mm256_set1_ps(0.009f);
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
  for (int64_t k = 0; k < iters; ++k) {
    c0 = _mm256_fmadd_ps(c0, m, a);
    c1 = _mm256_fmadd_ps(c1, m, a);
    c2 = _mm256_fmadd_ps(c2, m, a);
    c3 = _mm256_fmadd_ps(c3, m, a);
    c4 = _mm256_fmadd_ps(c4, m, a);
    c5 = _mm256_fmadd_ps(c5, m, a);
    c6 = _mm256_fmadd_ps(c6, m, a);
    c7 = _mm256_fmadd_ps(c7, m, a);
    c8 = _mm256_fmadd_ps(c8, m, a);
    c9 = _mm256_fmadd_ps(c9, m, a);
  }
  const __m256 s =
      _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                                  _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7))),
                    _mm256_add_ps(c8, c9));
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

double fma_throughput(int threads) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
  const int64_t iters = 50'000'000;
  std::atomic<int> sink{0};
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    best = std::min(best, timed_parallel(threads, [&](int) {
                      sink.fetch_add(fma_chains(iters) > 1e30f ? 1 : 0);
                    }));
  }
  const double flops = double(threads) * double(iters) * 10 * 8 * 2;
  return flops / best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : int(std::thread::hardware_concurrency());
  const size_t mib = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1024;
  if (threads < 1 || threads > 1024 || mib < 64) {
    std::fprintf(stderr, "usage: kvforge_machine_limits [threads >= 1] [buffer_mib >= 64]\n");
    return 2;
  }
  const double bw = read_bandwidth(threads, mib << 20);
  const double fma = fma_throughput(threads);
  std::printf("{\"threads\": %d, \"read_gb_per_s\": %.2f, \"fma_gflop_per_s\": %.1f}\n", threads,
              bw, fma);
  return 0;
}
