#include "kv/block_hash.h"

#include <array>
#include <cstring>

#include <xxhash.h>

namespace kvforge {
namespace {

BlockHash from_xxh128(const XXH128_hash_t& digest) {
  return {digest.low64, digest.high64};
}

}  // namespace

CacheNamespace make_cache_namespace(uint64_t model_fingerprint, std::string_view codec_id,
                                    std::string_view salt) {
  // Hash each variable-length part separately so that ("ab", "c") and
  // ("a", "bc") give different namespaces.
  const XXH128_hash_t codec_digest = XXH3_128bits(codec_id.data(), codec_id.size());
  const XXH128_hash_t salt_digest = XXH3_128bits(salt.data(), salt.size());
  const std::array<uint64_t, 5> parts = {model_fingerprint, codec_digest.low64, codec_digest.high64,
                                         salt_digest.low64, salt_digest.high64};
  return CacheNamespace{from_xxh128(XXH3_128bits(parts.data(), sizeof(parts)))};
}

BlockHash chain_block_hash(const BlockHash& parent_chain_hash,
                           const CacheNamespace& cache_namespace, std::span<const int32_t> tokens) {
  // Two fixed-size passes instead of one streaming state: the token digest is
  // folded with the parent and namespace, which keeps the call allocation-free
  // and the state on the stack small.
  const XXH128_hash_t token_digest = XXH3_128bits(tokens.data(), tokens.size_bytes());
  const std::array<uint64_t, 6> parts = {parent_chain_hash.low,     parent_chain_hash.high,
                                         cache_namespace.value.low, cache_namespace.value.high,
                                         token_digest.low64,        token_digest.high64};
  return from_xxh128(XXH3_128bits(parts.data(), sizeof(parts)));
}

}  // namespace kvforge
