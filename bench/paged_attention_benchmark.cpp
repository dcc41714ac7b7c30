// One decode step of the paged attention in one layer, at context depth, on
// the Llama-3.2-1B attention shape (32 query heads, 8 KV heads, head_dim 64,
// 16-token blocks; the <codec>_b32 cases in 32-token blocks, the engine's
// default for KIVI): BM_PagedDecode/<codec>/<depth>/<threads>.
// KVFORGE_SIMD_TARGET (e.g. avx2) restricts the kernels to a SIMD target.
//
// Tiles lie as the block pool lays them out for a fresh pool: one arena per
// side and KV head, consecutive blocks' tiles one after another. Like a
// model's decode step, successive iterations read different layers' tiles,
// enough of them (kStreamBytes) that no layer is still in the last-level
// cache when it is read again: bytes/s (tile bytes read per second) is then
// directly comparable with the machine's DRAM read bandwidth
// (bench/machine_limits.cpp). One layer of a 16k context is 6-64 MiB, about
// the size of a server L3, so a single layer read again and again would
// measure the cache instead. docs/performance.md lists results.
//
// BM_PagedDecodeWarm/<codec>/<depth> re-reads one layer on one thread
// (4096 deep: 2.5-16 MiB, held by the L2 and L3 caches): the kernel's
// arithmetic without DRAM, less disturbed by other tenants of a shared
// machine than the DRAM-bound runs. BM_PagedDecodeCapture/<codec>/<depth>
// is the same step with score capture requested (ScoreCapture covering the
// query, as a press that scores decode attention asks): its difference to
// BM_PagedDecodeWarm is what capture costs, and BM_PagedDecodeWarm itself is
// the path every step without such a press takes.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kv/kv_codec.h"
#include "kv/paged_attention.h"
#include "simd_target_from_env.h"
#include "util/thread_pool.h"

namespace kvforge {
namespace {

const bool kSimdTargetApplied = bench::apply_simd_target_from_env("paged_attention_benchmark");

constexpr int32_t kHeads = 32;
constexpr int32_t kKvHeads = 8;
constexpr int32_t kHeadDim = 64;
constexpr int32_t kDefaultBlockTokens = 16;         // the engine's default block, but for KIVI (32)
constexpr size_t kStreamBytes = size_t{256} << 20;  // tile bytes cycled through
constexpr size_t kMaxLayers = 64;

std::vector<float> gaussian(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& x : v) x = normal(rng);
  return v;
}

void run_paged_decode(benchmark::State& state, const char* spec, int32_t block_tokens,
                      int32_t depth, int threads, bool warm, bool capture = false) {
  const KvCodecParams params{block_tokens, kHeadDim};
  auto keys = make_kv_codec(spec, KvSide::kKey, params);
  auto values = make_kv_codec(spec, KvSide::kValue, params);
  if (!keys.ok() || !values.ok()) {
    state.SkipWithError("codec");
    return;
  }
  const size_t key_tile = (*keys)->tile_bytes();
  const size_t value_tile = (*values)->tile_bytes();
  const size_t block_bytes = kKvHeads * (key_tile + value_tile);
  const int32_t n_blocks = (depth + block_tokens - 1) / block_tokens;

  // Every tile holds the same encoded random rows: the cost does not depend on values.
  const std::vector<float> rows = gaussian(static_cast<size_t>(block_tokens) * kHeadDim, 1);
  std::vector<uint8_t> key_bytes(key_tile), value_bytes(value_tile);
  (*keys)->encode(rows.data(), kHeadDim, 0, block_tokens, key_bytes.data());
  (*values)->encode(rows.data(), kHeadDim, 0, block_tokens, value_bytes.data());
  // Per layer, one arena per KV head and side, block b's tile at arena + b * tile bytes.
  const size_t layer_bytes = static_cast<size_t>(n_blocks) * block_bytes;
  const size_t n_layers = warm ? 1 : std::clamp<size_t>(kStreamBytes / layer_bytes, 2, kMaxLayers);
  std::vector<std::vector<uint8_t>> arenas;
  std::vector<std::vector<const uint8_t*>> key_arenas(n_layers), value_arenas(n_layers);
  for (size_t l = 0; l < n_layers; ++l) {
    for (int32_t h = 0; h < 2 * kKvHeads; ++h) {
      const bool value_side = h >= kKvHeads;
      const std::vector<uint8_t>& tile = value_side ? value_bytes : key_bytes;
      std::vector<uint8_t>& arena =
          arenas.emplace_back(static_cast<size_t>(n_blocks) * tile.size());
      for (int32_t b = 0; b < n_blocks; ++b) {
        std::memcpy(arena.data() + static_cast<size_t>(b) * tile.size(), tile.data(), tile.size());
      }
      (value_side ? value_arenas : key_arenas)[l].push_back(arena.data());
    }
  }
  std::vector<int32_t> block_ids(static_cast<size_t>(n_blocks));
  for (int32_t b = 0; b < n_blocks; ++b) block_ids[static_cast<size_t>(b)] = b;

  const std::vector<float> q = gaussian(static_cast<size_t>(kHeads) * kHeadDim, 2);
  std::vector<float> out(q.size());
  PagedAttentionArgs a;
  a.q = q.data();
  a.out = out.data();
  a.n_tokens = 1;
  a.first_pos = depth - 1;
  a.n_heads = kHeads;
  a.n_kv_heads = kKvHeads;
  a.head_dim = kHeadDim;
  a.scale = 0.125f;
  a.block_tokens = block_tokens;
  a.block_ids = block_ids;
  ThreadPool pool(threads);
  // Capture buffers, per thread, sized as the cache sizes them.
  std::vector<std::vector<float>> sums(static_cast<size_t>(threads)),
      scratch(static_cast<size_t>(threads));
  std::vector<float*> sum_ptrs, scratch_ptrs;
  for (int t = 0; t < threads; ++t) {
    sums[static_cast<size_t>(t)].resize(static_cast<size_t>(kKvHeads) * depth);
    scratch[static_cast<size_t>(t)].resize(static_cast<size_t>(kPagedMaxGroup) * depth);
    sum_ptrs.push_back(sums[static_cast<size_t>(t)].data());
    scratch_ptrs.push_back(scratch[static_cast<size_t>(t)].data());
  }
  ScoreCapture score_capture;
  score_capture.first_pos = 0;
  score_capture.end_pos = depth;
  score_capture.max_rows = depth;
  score_capture.thread_sums = sum_ptrs.data();
  score_capture.row_scratch = scratch_ptrs.data();
  if (capture) a.capture = &score_capture;
  size_t layer = 0;
  for (auto _ : state) {
    a.keys = {keys->get(), key_arenas[layer].data(), nullptr, key_tile, false, 0, nullptr};
    a.values = {values->get(), value_arenas[layer].data(), nullptr, value_tile, false, 0, nullptr};
    layer = (layer + 1) % n_layers;
    paged_attention(a, pool);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const auto iterations = static_cast<int64_t>(state.iterations());
  state.SetBytesProcessed(iterations * n_blocks * static_cast<int64_t>(block_bytes));
  state.SetItemsProcessed(iterations * depth);  // keys read per head group
}

void BM_PagedDecode(benchmark::State& state, const char* spec, int32_t block_tokens) {
  run_paged_decode(state, spec, block_tokens, static_cast<int32_t>(state.range(0)),
                   static_cast<int>(state.range(1)), false);
}

void BM_PagedDecodeWarm(benchmark::State& state, const char* spec, int32_t block_tokens) {
  run_paged_decode(state, spec, block_tokens, static_cast<int32_t>(state.range(0)), 1, true);
}

void BM_PagedDecodeCapture(benchmark::State& state, const char* spec, int32_t block_tokens) {
  run_paged_decode(state, spec, block_tokens, static_cast<int32_t>(state.range(0)), 1, true, true);
}

#define KVF_PAGED_DECODE(name, spec, block_tokens)                   \
  BENCHMARK_CAPTURE(BM_PagedDecode, name, spec, block_tokens)        \
      ->ArgsProduct({{64, 256, 4096, 16384}, {1, 2}})                \
      ->Unit(benchmark::kMicrosecond)                                \
      ->UseRealTime();                                               \
  BENCHMARK_CAPTURE(BM_PagedDecodeWarm, name, spec, block_tokens)    \
      ->Arg(4096)                                                    \
      ->Unit(benchmark::kMicrosecond)                                \
      ->UseRealTime();                                               \
  BENCHMARK_CAPTURE(BM_PagedDecodeCapture, name, spec, block_tokens) \
      ->Arg(4096)                                                    \
      ->Unit(benchmark::kMicrosecond)                                \
      ->UseRealTime()

KVF_PAGED_DECODE(f32, "f32", kDefaultBlockTokens);
KVF_PAGED_DECODE(f16, "f16", kDefaultBlockTokens);
KVF_PAGED_DECODE(bf16, "bf16", kDefaultBlockTokens);
KVF_PAGED_DECODE(int8, "int8", kDefaultBlockTokens);
KVF_PAGED_DECODE(int4, "int4", kDefaultBlockTokens);
KVF_PAGED_DECODE(int4h, "int4h", kDefaultBlockTokens);
// KIVI in 16-token blocks (g = 16), as this benchmark measured it first, and
// in the engine's default 32-token blocks (g = 32, the paper's setting).
KVF_PAGED_DECODE(kivi4, "kivi4:r=0", kDefaultBlockTokens);
KVF_PAGED_DECODE(kivi2, "kivi2:r=0", kDefaultBlockTokens);
KVF_PAGED_DECODE(kivi4_b32, "kivi4:r=0", 32);
KVF_PAGED_DECODE(kivi2_b32, "kivi2:r=0", 32);

}  // namespace
}  // namespace kvforge
