// Block records (kv/block_record.h): what is encoded decodes to the same
// header, tokens and payload; every single-byte change and every truncation
// is refused as kCorrupt.
#include <gtest/gtest.h>

#include <numeric>

#include "kv/block_record.h"

namespace kvforge {
namespace {

struct SampleRecord {
  BlockRecordHeader header;
  std::vector<int32_t> tokens = {1, 20, 300, 4000, -1, 7};
  std::vector<uint8_t> first = std::vector<uint8_t>(40), second = std::vector<uint8_t>(9);
  SampleRecord() {
    header.kind = TierRecordKind::kBlock;
    header.key = BlockHash{0x1111, 0x2222};
    header.cache_namespace.value = BlockHash{0x3333, 0x4444};
    header.parent = BlockHash{0x5555, 0x6666};
    header.layout = 0x7777;
    header.first_position = 96;
    std::iota(first.begin(), first.end(), uint8_t{3});
    std::iota(second.begin(), second.end(), uint8_t{200});
  }
  TierRecord encode() const {
    const std::span<const uint8_t> pieces[] = {first, second};
    return encode_block_record(header, tokens, pieces);
  }
};

TEST(BlockRecord, RoundTrip) {
  const SampleRecord sample;
  const TierRecord bytes = sample.encode();
  ASSERT_EQ(bytes->size(), kBlockRecordHeaderBytes + 6 * 4 + 49);
  auto decoded = decode_block_record(*bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().to_string();
  const BlockRecordHeader& h = decoded->header;
  EXPECT_EQ(h.kind, TierRecordKind::kBlock);
  EXPECT_EQ(h.key, sample.header.key);
  EXPECT_EQ(h.cache_namespace, sample.header.cache_namespace);
  EXPECT_EQ(h.parent, sample.header.parent);
  EXPECT_EQ(h.layout, sample.header.layout);
  EXPECT_EQ(h.first_position, 96);
  EXPECT_EQ(decoded->tokens, sample.tokens);
  std::vector<uint8_t> payload(decoded->payload.begin(), decoded->payload.end());
  std::vector<uint8_t> expected = sample.first;
  expected.insert(expected.end(), sample.second.begin(), sample.second.end());
  EXPECT_EQ(payload, expected);
}

TEST(BlockRecord, EveryChangedByteIsRefused) {
  const TierRecord bytes = SampleRecord().encode();
  for (size_t i = 0; i < bytes->size(); ++i) {
    std::vector<uint8_t> damaged = *bytes;
    damaged[i] ^= 0x01;
    auto decoded = decode_block_record(damaged);
    ASSERT_FALSE(decoded.ok()) << "byte " << i;
    EXPECT_EQ(decoded.status().code(), StatusCode::kCorrupt) << "byte " << i;
  }
}

TEST(BlockRecord, EveryTruncationAndExtensionIsRefused) {
  const TierRecord bytes = SampleRecord().encode();
  for (size_t n = 0; n < bytes->size(); ++n) {
    auto decoded = decode_block_record(std::span<const uint8_t>(*bytes).first(n));
    EXPECT_EQ(decoded.status().code(), StatusCode::kCorrupt) << n << " bytes";
  }
  std::vector<uint8_t> longer = *bytes;
  longer.push_back(0);
  EXPECT_EQ(decode_block_record(longer).status().code(), StatusCode::kCorrupt);
}

}  // namespace
}  // namespace kvforge
