// Micro benchmarks of the weight kernels and of the machine limits they are
// held against (docs/kernels.md lists results):
//   BM_MemoryRead      streaming read of a buffer far larger than the LLC
//   BM_FmaPeak         independent AVX2 FMA chains (x86 with AVX2+FMA only)
//   BM_Decode/<type>   matvec, n_tokens = 1; reports weight bytes/s
//   BM_DecodeHot/<type> the same with weights in L2 (compute limit)
//   BM_Prefill/<type>  GEMM, n_tokens = 128 or 512; reports FLOP/s (2 per MAC)
// The first argument of each case is the thread count. KVFORGE_SIMD_TARGET
// (e.g. avx2) restricts the kernels to a SIMD target; the context line
// "simd_target" names the one that ran.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "hwy/aligned_allocator.h"
#include "kernels/matmul.h"
#include "kernels/q4_0_strips.h"
#include "kernels/quant.h"
#include "kernels/simd_target_select.h"
#include "simd_target_from_env.h"
#include "util/tensor_type.h"
#include "util/thread_pool.h"

namespace kvforge::kernels {
namespace {

const bool kSimdTargetApplied = bench::apply_simd_target_from_env("kernels_benchmark");

// Larger than any last-level cache we run on (32 MiB here), so weights come
// from DRAM as they do when a model's layers are walked in turn.
constexpr size_t kColdBytes = size_t{256} << 20;

void BM_MemoryRead(benchmark::State& state) {
  const int n_threads = static_cast<int>(state.range(0));
  ThreadPool pool(n_threads);
  std::vector<uint64_t> buffer(kColdBytes / sizeof(uint64_t), 1);
  constexpr int64_t kTasks = 256;
  const size_t per_task = buffer.size() / kTasks;
  std::vector<uint64_t> sums(kTasks);
  for (auto _ : state) {
    pool.parallel_for(kTasks, [&](int64_t task, int) {
      const uint64_t* p = buffer.data() + static_cast<size_t>(task) * per_task;
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (size_t i = 0; i < per_task; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
      }
      sums[static_cast<size_t>(task)] = s0 + s1 + s2 + s3;
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(kColdBytes));
}
BENCHMARK(BM_MemoryRead)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

#if defined(__x86_64__)
// 12 independent 8-lane FMA chains: enough to cover 4-cycle latency on 2
// ports. Counts 16 flops per FMA.
__attribute__((target("avx2,fma"))) float fma_chains(int64_t iterations) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.001f);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12  // keeps acc[] in registers
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 sum = acc[0];
  for (int i = 1; i < 12; ++i) sum = _mm256_add_ps(sum, acc[i]);
  float lanes[8];
  _mm256_storeu_ps(lanes, sum);
  return lanes[0];
}

void BM_FmaPeak(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    state.SkipWithError("no AVX2+FMA");
    return;
  }
  const int n_threads = static_cast<int>(state.range(0));
  ThreadPool pool(n_threads);
  constexpr int64_t kIterations = 1 << 22;
  std::vector<float> out(static_cast<size_t>(n_threads));
  for (auto _ : state) {
    pool.parallel_for(n_threads, [&](int64_t task, int) {
      out[static_cast<size_t>(task)] = fma_chains(kIterations);
    });
    benchmark::DoNotOptimize(out.data());
  }
  const double flops = 16.0 * 12 * kIterations * n_threads;
  state.counters["FLOP/s"] = benchmark::Counter(flops * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FmaPeak)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
#endif

// Several copies of one random matrix, cycled so that each call reads
// weights from DRAM rather than from cache.
// With `strips`, each copy's views also carry the Q4_0 strips the model
// repacks at load (q4_0_strips.h), which matmul then reads instead.
struct ColdMatrices {
  std::vector<std::vector<uint8_t>> copies;
  std::vector<hwy::AlignedFreeUniquePtr<uint8_t[]>> strips;
  std::vector<MatrixView> views;
};

ColdMatrices make_matrices(TensorType type, int64_t n_rows, int64_t n_cols, size_t min_total,
                           bool strips = false) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const size_t row_bytes = tensor_row_bytes(type, static_cast<uint64_t>(n_cols));
  std::vector<uint8_t> bytes(row_bytes * static_cast<size_t>(n_rows));
  std::vector<float> row(static_cast<size_t>(n_cols));
  for (int64_t r = 0; r < n_rows; ++r) {
    for (float& v : row) v = normal(rng);
    quantize_row(type, row.data(), bytes.data() + static_cast<size_t>(r) * row_bytes, n_cols);
  }
  ColdMatrices m;
  const size_t n_copies = min_total / bytes.size() + 1;
  for (size_t i = 0; i < n_copies; ++i) m.copies.push_back(bytes);
  for (auto& c : m.copies) {
    MatrixView view{type, c.data(), n_rows, n_cols, row_bytes};
    if (strips) {
      m.strips.push_back(hwy::AllocateAligned<uint8_t>(q4_0_strips_bytes(n_rows, n_cols)));
      repack_q4_0_strips(view, 0, (n_rows + kStripRows - 1) / kStripRows, m.strips.back().get());
      view.strips = m.strips.back().get();
    }
    m.views.push_back(view);
  }
  return m;
}

// n_tokens rows of activations times a 2048 x 8192 matrix whose copies are
// cycled, so that each call reads its weights from DRAM. Returns the bytes
// of one copy.
size_t run_cold_matmul(benchmark::State& state, TensorType type, int n_threads, int64_t n_tokens,
                       bool strips) {
  constexpr int64_t kRows = 2048, kCols = 8192;
  const ColdMatrices m = make_matrices(type, kRows, kCols, kColdBytes, strips);
  ThreadPool pool(n_threads);
  MatmulScratch scratch(n_threads, n_tokens, kCols);
  std::vector<float> x(static_cast<size_t>(n_tokens * kCols), 0.5f);
  std::vector<float> y(static_cast<size_t>(n_tokens * kRows));
  size_t next = 0;
  for (auto _ : state) {
    matmul(m.views[next], x.data(), n_tokens, y.data(), pool, scratch);
    next = (next + 1) % m.views.size();
    benchmark::DoNotOptimize(y.data());
  }
  return m.copies[0].size();
}

void BM_Decode(benchmark::State& state, TensorType type, bool strips = false) {
  const size_t bytes = run_cold_matmul(state, type, static_cast<int>(state.range(0)), 1, strips);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(bytes));
}

// The same kernel on a 64 x 4096 matrix that stays in L2: what the decode
// kernels compute per second when memory is not the limit.
void BM_DecodeHot(benchmark::State& state, TensorType type) {
  const int n_threads = static_cast<int>(state.range(0));
  constexpr int64_t kRows = 64, kCols = 4096;
  const ColdMatrices m = make_matrices(type, kRows, kCols, 0);
  ThreadPool pool(n_threads);
  MatmulScratch scratch(n_threads, 1, kCols);
  std::vector<float> x(kCols, 0.5f), y(kRows);
  for (auto _ : state) {
    matmul(m.views[0], x.data(), 1, y.data(), pool, scratch);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(m.copies[0].size()));
}

void BM_Prefill(benchmark::State& state, TensorType type, bool strips = false) {
  const int n_threads = static_cast<int>(state.range(0));
  const int64_t n_tokens = state.range(1);
  constexpr int64_t kRows = 2048, kCols = 2048;
  const ColdMatrices m = make_matrices(type, kRows, kCols, 0, strips);
  ThreadPool pool(n_threads);
  MatmulScratch scratch(n_threads, n_tokens, kCols);
  std::vector<float> x(static_cast<size_t>(n_tokens * kCols), 0.5f);
  std::vector<float> y(static_cast<size_t>(n_tokens * kRows));
  for (auto _ : state) {
    matmul(m.views[0], x.data(), n_tokens, y.data(), pool, scratch);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["FLOP/s"] = benchmark::Counter(
      2.0 * kRows * kCols * static_cast<double>(n_tokens) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}

// A few tokens at once over cold weights: the weight products of a decode
// step that batches several sequences (docs/kernels.md, "Small batches").
void BM_SmallBatch(benchmark::State& state, TensorType type, bool strips = false) {
  const int64_t n_tokens = state.range(1);
  (void)run_cold_matmul(state, type, static_cast<int>(state.range(0)), n_tokens, strips);
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(n_tokens) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}

#define KVF_TYPE_BENCHMARKS(Type)                             \
  BENCHMARK_CAPTURE(BM_Decode, Type, TensorType::k##Type)     \
      ->Arg(1)                                                \
      ->Arg(2)                                                \
      ->UseRealTime()                                         \
      ->Unit(benchmark::kMicrosecond);                        \
  BENCHMARK_CAPTURE(BM_DecodeHot, Type, TensorType::k##Type)  \
      ->Arg(1)                                                \
      ->UseRealTime()                                         \
      ->Unit(benchmark::kMicrosecond);                        \
  BENCHMARK_CAPTURE(BM_SmallBatch, Type, TensorType::k##Type) \
      ->ArgsProduct({{2}, {4, 8, 12, 16, 24, 32, 64}})        \
      ->UseRealTime()                                         \
      ->Unit(benchmark::kMicrosecond);                        \
  BENCHMARK_CAPTURE(BM_Prefill, Type, TensorType::k##Type)    \
      ->Args({1, 128})                                        \
      ->Args({2, 128})                                        \
      ->Args({1, 512})                                        \
      ->Args({2, 512})                                        \
      ->UseRealTime()                                         \
      ->Unit(benchmark::kMillisecond)

KVF_TYPE_BENCHMARKS(F32);
KVF_TYPE_BENCHMARKS(F16);
KVF_TYPE_BENCHMARKS(BF16);
KVF_TYPE_BENCHMARKS(Q8_0);
KVF_TYPE_BENCHMARKS(Q4_0);
KVF_TYPE_BENCHMARKS(Q4_1);
KVF_TYPE_BENCHMARKS(Q4_K);
KVF_TYPE_BENCHMARKS(Q5_K);
KVF_TYPE_BENCHMARKS(Q6_K);

// Q4_0 repacked into strips at load, as models are where the target has the
// strip kernel.
BENCHMARK_CAPTURE(BM_Decode, Q4_0_strips, TensorType::kQ4_0, true)
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_SmallBatch, Q4_0_strips, TensorType::kQ4_0, true)
    ->ArgsProduct({{2}, {4, 8, 12, 16, 24, 32, 64}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Prefill, Q4_0_strips, TensorType::kQ4_0, true)
    ->Args({2, 16})
    ->Args({1, 16})
    ->Args({1, 512})
    ->Args({2, 512})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace kvforge::kernels
