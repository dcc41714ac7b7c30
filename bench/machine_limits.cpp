// kvforge_machine_limits: measures the limits our speed is held against,
// and prints them as JSON:
//   read_gb_per_s   streaming read bandwidth from DRAM with T threads (a
//                   buffer far larger than the last-level cache, summed)
//   fma_gflop_per_s peak f32 FMA throughput with T threads (independent
//                   FMA chains on the widest vectors the CPU has: AVX-512
//                   or AVX2, named by fma_isa; 0 without AVX2+FMA)
//   int8_gop_per_s  peak int8 dot-product throughput with T threads, 2 ops
//                   per multiply-add, with the instructions the matmul
//                   kernels use (int8_isa): vpdpbusd on 512-bit vectors
//                   (AVX-512 VNNI), else vpmaddubsw + vpmaddwd + vpaddd on
//                   256-bit vectors (AVX2); 0 without AVX2. Where the
//                   kernels use AMX (kernels/amx.h), TDPBSSD on full tiles
//                   (amx-int8): the matrix unit's peak, of which kernels
//                   multiplying one 32-column block per tile product reach
//                   at most half (the unit takes as long for 32 columns as
//                   for 64)
// KVFORGE_SIMD_TARGET, the variable that pins kvforge's kernels to one
// Highway target, caps the instructions measured the same way: avx2 leaves
// out the AVX-512 ones, sse4 and emu128 both peaks (reported as 0), so a
// benchmark pinned to a target is held against that target's peak (AMX
// counts only without a target or with `amx`).
// Usage: kvforge_machine_limits [threads] [buffer_mib]
#include <immintrin.h>

#include <strings.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "kernels/amx.h"

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

__attribute__((target("avx512f"))) float fma512_chains(int64_t iters) {
  __m512 c0 = _mm512_set1_ps(0.000f), c1 = _mm512_set1_ps(0.001f), c2 = _mm512_set1_ps(0.002f),
         c3 = _mm512_set1_ps(0.003f), c4 = _mm512_set1_ps(0.004f), c5 = _mm512_set1_ps(0.005f),
         c6 = _mm512_set1_ps(0.006f), c7 = _mm512_set1_ps(0.007f), c8 = _mm512_set1_ps(0.008f),
         c9 = _mm512_set1_ps(0.009f);
  const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
  for (int64_t k = 0; k < iters; ++k) {
    c0 = _mm512_fmadd_ps(c0, m, a);
    c1 = _mm512_fmadd_ps(c1, m, a);
    c2 = _mm512_fmadd_ps(c2, m, a);
    c3 = _mm512_fmadd_ps(c3, m, a);
    c4 = _mm512_fmadd_ps(c4, m, a);
    c5 = _mm512_fmadd_ps(c5, m, a);
    c6 = _mm512_fmadd_ps(c6, m, a);
    c7 = _mm512_fmadd_ps(c7, m, a);
    c8 = _mm512_fmadd_ps(c8, m, a);
    c9 = _mm512_fmadd_ps(c9, m, a);
  }
  const __m512 s =
      _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                                  _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7))),
                    _mm512_add_ps(c8, c9));
  float out[16];
  _mm512_storeu_ps(out, s);
  return out[0];
}

// 10 independent vpdpbusd chains (64 multiply-adds each per instruction).
__attribute__((target("avx512f,avx512bw,avx512vnni"))) int vnni512_chains(int64_t iters) {
  __m512i c0 = _mm512_set1_epi32(0), c1 = _mm512_set1_epi32(1), c2 = _mm512_set1_epi32(2),
          c3 = _mm512_set1_epi32(3), c4 = _mm512_set1_epi32(4), c5 = _mm512_set1_epi32(5),
          c6 = _mm512_set1_epi32(6), c7 = _mm512_set1_epi32(7), c8 = _mm512_set1_epi32(8),
          c9 = _mm512_set1_epi32(9);
  const __m512i u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-2);
  for (int64_t k = 0; k < iters; ++k) {
    c0 = _mm512_dpbusd_epi32(c0, u, s);
    c1 = _mm512_dpbusd_epi32(c1, u, s);
    c2 = _mm512_dpbusd_epi32(c2, u, s);
    c3 = _mm512_dpbusd_epi32(c3, u, s);
    c4 = _mm512_dpbusd_epi32(c4, u, s);
    c5 = _mm512_dpbusd_epi32(c5, u, s);
    c6 = _mm512_dpbusd_epi32(c6, u, s);
    c7 = _mm512_dpbusd_epi32(c7, u, s);
    c8 = _mm512_dpbusd_epi32(c8, u, s);
    c9 = _mm512_dpbusd_epi32(c9, u, s);
  }
  const __m512i sum = _mm512_add_epi32(
      _mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
      _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7)),
                       _mm512_add_epi32(c8, c9)));
  int out[16];
  _mm512_storeu_si512(out, sum);
  return out[0];
}

// 8 independent vpmaddubsw + vpmaddwd + vpaddd chains (32 multiply-adds per
// three instructions), the AVX2 kernels' inner step.
__attribute__((target("avx2"))) int maddubs256_chains(int64_t iters) {
  __m256i c0 = _mm256_set1_epi32(0), c1 = _mm256_set1_epi32(1), c2 = _mm256_set1_epi32(2),
          c3 = _mm256_set1_epi32(3), c4 = _mm256_set1_epi32(4), c5 = _mm256_set1_epi32(5),
          c6 = _mm256_set1_epi32(6), c7 = _mm256_set1_epi32(7);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i u = _mm256_set1_epi8(3), s = _mm256_set1_epi8(-2);
  for (int64_t k = 0; k < iters; ++k) {
    // Vary an operand so that the products cannot be hoisted out of the loop.
    u = _mm256_add_epi8(u, ones);
    c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), ones));
    c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(_mm256_maddubs_epi16(u, c0), ones));
    c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(_mm256_maddubs_epi16(u, c1), ones));
    c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), ones));
    c4 = _mm256_add_epi32(c4, _mm256_madd_epi16(_mm256_maddubs_epi16(s, u), ones));
    c5 = _mm256_add_epi32(c5, _mm256_madd_epi16(_mm256_maddubs_epi16(u, c4), ones));
    c6 = _mm256_add_epi32(c6, _mm256_madd_epi16(_mm256_maddubs_epi16(u, c5), ones));
    c7 = _mm256_add_epi32(c7, _mm256_madd_epi16(_mm256_maddubs_epi16(c6, s), ones));
  }
  const __m256i sum =
      _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                       _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)));
  int out[8];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), sum);
  return out[0];
}

// TDPBSSD of full tiles (16 rows x 64 bytes by 16 rows of 64: 16384
// multiply-adds) into four independent sums tiles.
__attribute__((target("amx-tile,amx-int8"))) int amx_chains(int64_t iters) {
  struct alignas(64) {
    uint8_t palette = 1, start_row = 0, reserved[14] = {};
    uint16_t row_bytes[16] = {64, 64, 64, 64, 64, 64, 64, 64};
    uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
  } config;
  _tile_loadconfig(&config);
  for (int64_t k = 0; k < iters; ++k) {
    _tile_dpbssd(0, 4, 6);
    _tile_dpbssd(1, 4, 7);
    _tile_dpbssd(2, 5, 6);
    _tile_dpbssd(3, 5, 7);
  }
  alignas(64) int32_t sums[16 * 16];
  _tile_stored(0, sums, 64);
  _tile_release();
  return sums[0];
}

// Best of three runs of body(iters) on every thread, as operations per second
// for `ops_per_iter` operations per iteration and thread.
template <class F>
double peak_rate(int threads, int64_t iters, double ops_per_iter, F body) {
  std::atomic<int> sink{0};
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    best = std::min(best, timed_parallel(threads, [&](int) { sink.fetch_add(body(iters) == 0); }));
  }
  return double(threads) * double(iters) * ops_per_iter / best;
}

struct Peak {
  double giga_per_s = 0;
  const char* isa = "none";
};

// Widest instructions KVFORGE_SIMD_TARGET allows: 512, 256 (avx2) or 0.
int allowed_vector_bits() {
  const char* target = std::getenv("KVFORGE_SIMD_TARGET");
  if (target == nullptr || *target == '\0' || strncasecmp(target, "avx3", 4) == 0 ||
      strcasecmp(target, "amx") == 0) {
    return 512;
  }
  return strcasecmp(target, "avx2") == 0 ? 256 : 0;
}

Peak fma_throughput(int threads) {
  if (allowed_vector_bits() < 256) return {};
  if (allowed_vector_bits() >= 512 && __builtin_cpu_supports("avx512f")) {
    return {peak_rate(threads, 50'000'000, 10 * 16 * 2,
                      [](int64_t n) { return fma512_chains(n) > 1e30f ? 0 : 1; }) /
                1e9,
            "avx512f"};
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return {peak_rate(threads, 50'000'000, 10 * 8 * 2,
                      [](int64_t n) { return fma_chains(n) > 1e30f ? 0 : 1; }) /
                1e9,
            "avx2+fma"};
  }
  return {};
}

// Whether KVFORGE_SIMD_TARGET leaves the kernels AMX (unset, or `amx`).
bool amx_allowed() {
  const char* target = std::getenv("KVFORGE_SIMD_TARGET");
  return target == nullptr || *target == '\0' || strcasecmp(target, "amx") == 0;
}

Peak int8_throughput(int threads) {
  if (amx_allowed() && kvforge::kernels::amx_available()) {
    return {peak_rate(threads, 2'000'000, 4 * 16384 * 2, amx_chains) / 1e9, "amx-int8"};
  }
  if (allowed_vector_bits() < 256) return {};
  if (allowed_vector_bits() >= 512 && __builtin_cpu_supports("avx512vnni") &&
      __builtin_cpu_supports("avx512bw")) {
    return {peak_rate(threads, 50'000'000, 10 * 64 * 2, vnni512_chains) / 1e9, "avx512vnni"};
  }
  if (__builtin_cpu_supports("avx2")) {
    return {peak_rate(threads, 50'000'000, 8 * 32 * 2, maddubs256_chains) / 1e9, "avx2"};
  }
  return {};
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
  const Peak fma = fma_throughput(threads);
  const Peak int8 = int8_throughput(threads);
  std::printf(
      "{\"threads\": %d, \"read_gb_per_s\": %.2f, \"fma_gflop_per_s\": %.1f, \"fma_isa\": \"%s\", "
      "\"int8_gop_per_s\": %.1f, \"int8_isa\": \"%s\"}\n",
      threads, bw, fma.giga_per_s, fma.isa, int8.giga_per_s, int8.isa);
  return 0;
}
