// Builds the KV cache a run asks for from its command-line options.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "kv/kv_cache.h"
#include "kvforge/status.h"
#include "util/byte_size.h"  // parse_byte_size, for --kv-mem

namespace kvforge {

struct KvCacheOptions {
  std::string codec = "f16";  // --kv-codec: "f32", "int8", "k=int8,v=int4h", "kivi2:r=128", ...
  std::string codec_layers;   // --kv-codec-layers: per-layer overrides, "0-1:int8,2-:kivi2"
  int32_t block_tokens = 0;   // --kv-block; 0: 16, or 32 when a KIVI codec is used (its G)
  size_t memory_bytes = 0;    // --kv-mem; 0: n_seq full contexts, grown for cached prefixes
  // With memory_bytes 0: see PagedKvCacheOptions::default_budget_fraction.
  double default_budget_fraction = 0;
  int32_t n_ctx = 0;  // most positions per sequence
  int32_t n_seq = 1;  // sequence slots
  uint64_t model_fingerprint = 0;
  std::string cache_salt;  // --cache-salt: tenants with different salts never share KV
  bool prefix_sharing = true;
  std::string press;         // --press: "snapkv:ratio=0.25", "" or "none" for none
  std::string press_layers;  // --press-layers: per-layer overrides, "0-1:none,2-:h2o:tokens=256"
  std::string select;        // --select: "quest:tokens=1024", "" or "none" for none
};

[[nodiscard]] Result<std::unique_ptr<KvCache>> make_kv_cache(const KvShape& shape,
                                                             const KvCacheOptions& options);

}  // namespace kvforge
