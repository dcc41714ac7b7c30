// Redis Cluster key slots, as the Redis Cluster specification defines them
// (https://redis.io/docs/reference/cluster-spec/, "Key distribution model"):
//
//   HASH_SLOT = CRC16(key) mod 16384
//
// with CRC16 the XMODEM variant (polynomial 0x1021, initial value 0, no
// reflection, no final xor), and a hash tag: when the key holds a '{' with
// a '}' somewhere after it and at least one byte between the two, only the
// bytes between the first '{' and the first '}' after it are hashed, so
// that "{user1000}.following" and "{user1000}.followers" share a slot.
#pragma once

#include <cstdint>
#include <string_view>

namespace kvforge {

inline constexpr int kRedisClusterSlots = 16384;

// CRC16/XMODEM of the bytes; 0x31C3 for "123456789" (the spec's check value).
[[nodiscard]] uint16_t redis_crc16(std::string_view bytes);

// The slot (0..16383) a Redis Cluster stores the key in.
[[nodiscard]] uint16_t redis_key_slot(std::string_view key);

}  // namespace kvforge
