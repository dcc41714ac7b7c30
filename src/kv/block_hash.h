// Content keys for KV blocks that may outlive the sequence that computed them.
//
// A cached block is identified by its token-chain hash: the hash of its parent
// block's chain hash, the cache namespace and the block's own token ids. Two
// blocks with equal chain hashes hold KV for the same tokens after the same
// prefix, under the same model and codec, so one can stand in for the other
// (the chained-hash scheme of vLLM's automatic prefix caching).
//
// The namespace folds together what else the KV bytes depend on: the model
// fingerprint, the codec, and an optional salt that callers set per tenant so
// that tenants never share blocks (a shared block leaks, through timing, that
// someone else sent the same prefix).
//
// All values here are plain 128-bit XXH3 digests; they are compared, never
// trusted blindly: the prefix index also compares the token ids.
// Thread-safety: pure functions and value types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace kvforge {

struct BlockHash {
  uint64_t low = 0;
  uint64_t high = 0;
  bool operator==(const BlockHash&) const = default;
};

// For unordered containers: the digest is already uniformly distributed.
struct BlockHashHasher {
  size_t operator()(const BlockHash& hash) const { return static_cast<size_t>(hash.low); }
};

// Everything besides the tokens that KV bytes depend on. Blocks whose
// namespaces differ are never shared.
struct CacheNamespace {
  BlockHash value;
  bool operator==(const CacheNamespace&) const = default;
};

// Combines the model fingerprint (e.g. a hash of the weights' metadata), the
// codec's id ("f16", "kivi2") and the salt ("" for no isolation).
[[nodiscard]] CacheNamespace make_cache_namespace(uint64_t model_fingerprint,
                                                  std::string_view codec_id, std::string_view salt);

// The chain hash a first block uses as its parent's.
inline constexpr BlockHash kRootChainHash{};

// hash(parent_chain_hash, namespace, tokens). `tokens` are the block's token
// ids in position order (a full block: block_tokens of them).
[[nodiscard]] BlockHash chain_block_hash(const BlockHash& parent_chain_hash,
                                         const CacheNamespace& cache_namespace,
                                         std::span<const int32_t> tokens);

}  // namespace kvforge
