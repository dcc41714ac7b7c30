// Redis Cluster hash slots against the specification's CRC16 check value
// and against slots a real server computed.
#include <gtest/gtest.h>

#include <utility>

#include "tier/redis_slot.h"

namespace kvforge {
namespace {

// The Redis Cluster specification gives the CRC16 check value for
// "123456789" (Appendix A: "Output for "123456789": 31C3").
TEST(RedisSlot, Crc16MatchesTheSpecificationCheckValue) {
  EXPECT_EQ(redis_crc16("123456789"), 0x31C3);
  EXPECT_EQ(redis_crc16(""), 0);
}

// Expected values from a real server, computed once with
// `redis-cli -p PORT CLUSTER KEYSLOT KEY` on redis-server 7.0.15
// (cluster-enabled): an independent implementation.
TEST(RedisSlot, SlotsMatchRedisCliClusterKeyslot) {
  const std::pair<const char*, int> expected[] = {
      {"123456789", 12739},
      {"foo", 12182},
      {"bar", 5061},
      {"hello", 866},
      {"{user1000}.following", 3443},  // the spec's hash tag example: same slot
      {"{user1000}.followers", 3443},
      {"foo{}{bar}", 8363},     // empty tag: the whole key
      {"foo{{bar}}zap", 4015},  // tag "{bar"
      {"foo{bar}{zap}", 5061},  // tag "bar", the first one
      {"a{b", 13340},           // no closing brace: the whole key
      {"{a}}", 15495},
      {"{}", 15257},
      {"", 0},
      {"kvforge:bfffffffffffffffe0000000000000001", 6198},
      {"kvforge:w000000000000001200000000000000ab", 7599},
  };
  for (const auto& [key, slot] : expected) EXPECT_EQ(redis_key_slot(key), slot) << key;
}

}  // namespace
}  // namespace kvforge
