// Block records: a prefix-cache block (or the full-precision rows a hit on
// it needs) as one self-verifying byte string, for the tiers below the pool
// (tier/kv_tier.h, docs/tiers.md).
//
// Layout (little-endian), 96-byte header then tokens then payload:
//
//    0  magic "KVFREC01"
//    8  u32 version (1)       12  u32 kind (TierRecordKind)
//   16  key chain hash (low u64, high u64)
//   32  cache namespace       48  parent chain hash (blocks; 0 for windows)
//   64  u64 layout fingerprint: codec plan, block size, pool segment sizes
//       and KV shape, so that a record is only ever read by a cache that
//       lays blocks out the same way
//   72  i32 first position    76  u32 token count
//   80  u64 payload bytes     88  u64 XXH3-64 of every byte but these 8
//   96  i32 tokens[token count], then the payload
//
// decode_block_record() checks the envelope (magic, version, sizes,
// checksum); the cache then checks the meaning: key, namespace, parent,
// layout, tokens and the chain hash recomputed from them, so that a record
// that is corrupted, truncated, stored under the wrong key, or computed by
// another model or codec is refused (kCorrupt), never attended to.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kv/block_hash.h"
#include "kvforge/status.h"
#include "tier/kv_tier.h"

namespace kvforge {

struct BlockRecordHeader {
  TierRecordKind kind = TierRecordKind::kBlock;
  BlockHash key;  // the block's chain hash (windows: the hit end's)
  CacheNamespace cache_namespace;
  BlockHash parent;  // the previous block's chain hash (kRootChainHash for the first)
  uint64_t layout = 0;
  int32_t first_position = 0;  // blocks: index * block tokens; windows: their first row
};

inline constexpr size_t kBlockRecordHeaderBytes = 96;

// Header, tokens, then the payload pieces concatenated.
[[nodiscard]] TierRecord encode_block_record(const BlockRecordHeader& header,
                                             std::span<const int32_t> tokens,
                                             std::span<const std::span<const uint8_t>> payload);

struct DecodedBlockRecord {
  BlockRecordHeader header;
  std::vector<int32_t> tokens;
  std::span<const uint8_t> payload;  // into the record's bytes
};

// kCorrupt when the bytes are not a well-formed record of this version.
[[nodiscard]] Result<DecodedBlockRecord> decode_block_record(std::span<const uint8_t> bytes);

}  // namespace kvforge
