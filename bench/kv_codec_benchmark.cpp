// Decode throughput of the KV codecs (docs/kv-codecs.md lists results), for
// head_dim 128 and 32-token tiles, one thread:
//   BM_KvDecode/<codec>/<side>/<tiles>
// decodes `tiles` tiles in turn into one 16 KiB, 64-byte aligned f32 scratch, as the attention
// does before its dot products. 8 tiles stay in L1/L2 (the decoder's own
// speed); 16384 tiles (≥ 24 MiB of tile bytes for every codec) come from
// DRAM as a long context does. Reports bytes/s of tile bytes read and rows/s
// (items: one row = one token of one head).
//   BM_KvEncode/<codec>/<side> encodes one such tile from f32 rows; rows/s.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kv/kv_codec.h"

namespace kvforge {
namespace {

constexpr int32_t kBlockTokens = 32;
constexpr int32_t kHeadDim = 128;

// One tile of N(0, 1) rows, the same every run.
std::vector<float> gaussian_tile_rows() {
  std::vector<float> rows(static_cast<size_t>(kBlockTokens) * kHeadDim);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& v : rows) v = normal(rng);
  return rows;
}

void BM_KvDecode(benchmark::State& state, const char* spec, KvSide side) {
  const auto n_tiles = static_cast<size_t>(state.range(0));
  auto made = make_kv_codec(spec, side, {kBlockTokens, kHeadDim});
  if (!made.ok()) {
    state.SkipWithError(made.status().to_string().c_str());
    return;
  }
  const KvCodec& codec = **made;
  const std::vector<float> rows = gaussian_tile_rows();
  const size_t tile_bytes = codec.tile_bytes();
  std::vector<uint8_t> tiles(n_tiles * tile_bytes);
  codec.encode(rows.data(), kHeadDim, 0, kBlockTokens, tiles.data());
  for (size_t t = 1; t < n_tiles; ++t) {
    std::memcpy(tiles.data() + t * tile_bytes, tiles.data(), tile_bytes);
  }
  alignas(64) static float scratch_buf[kBlockTokens * kHeadDim];
  float* scratch = scratch_buf;
  for (auto _ : state) {
    for (size_t t = 0; t < n_tiles; ++t) {
      codec.decode(tiles.data() + t * tile_bytes, kBlockTokens, scratch);
      benchmark::DoNotOptimize(scratch);
      benchmark::ClobberMemory();
    }
  }
  const auto iterations = static_cast<int64_t>(state.iterations());
  state.SetBytesProcessed(iterations * static_cast<int64_t>(n_tiles * tile_bytes));
  state.SetItemsProcessed(iterations * static_cast<int64_t>(n_tiles) * kBlockTokens);
  state.counters["bytes/row"] = codec.bytes_per_row();
}

// Encoding one 32-token tile from f32 rows (scalar; once per stored token).
void BM_KvEncode(benchmark::State& state, const char* spec, KvSide side) {
  auto made = make_kv_codec(spec, side, {kBlockTokens, kHeadDim});
  if (!made.ok()) {
    state.SkipWithError(made.status().to_string().c_str());
    return;
  }
  const KvCodec& codec = **made;
  const std::vector<float> rows = gaussian_tile_rows();
  std::vector<uint8_t> tile(codec.tile_bytes());
  for (auto _ : state) {
    codec.encode(rows.data(), kHeadDim, 0, kBlockTokens, tile.data());
    benchmark::DoNotOptimize(tile.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBlockTokens);
}

#define KVF_KV_DECODE(name, spec, side) \
  BENCHMARK_CAPTURE(BM_KvDecode, name, spec, side)->Arg(8)->Arg(16384)

#define KVF_KV_ENCODE(name, spec, side) BENCHMARK_CAPTURE(BM_KvEncode, name, spec, side)

KVF_KV_ENCODE(f16, "f16", KvSide::kKey);
KVF_KV_ENCODE(int8, "int8", KvSide::kKey);
KVF_KV_ENCODE(int4, "int4", KvSide::kKey);
KVF_KV_ENCODE(int4h, "int4h", KvSide::kKey);
KVF_KV_ENCODE(kivi2_keys, "kivi2", KvSide::kKey);
KVF_KV_ENCODE(kivi2_values, "kivi2", KvSide::kValue);

KVF_KV_DECODE(f32, "f32", KvSide::kKey);
KVF_KV_DECODE(f16, "f16", KvSide::kKey);
KVF_KV_DECODE(bf16, "bf16", KvSide::kKey);
KVF_KV_DECODE(int8, "int8", KvSide::kKey);
KVF_KV_DECODE(int4, "int4", KvSide::kKey);
KVF_KV_DECODE(int4h, "int4h", KvSide::kKey);
KVF_KV_DECODE(kivi4_keys, "kivi4", KvSide::kKey);
KVF_KV_DECODE(kivi4_values, "kivi4", KvSide::kValue);
KVF_KV_DECODE(kivi2_keys, "kivi2", KvSide::kKey);
KVF_KV_DECODE(kivi2_values, "kivi2", KvSide::kValue);

}  // namespace
}  // namespace kvforge
