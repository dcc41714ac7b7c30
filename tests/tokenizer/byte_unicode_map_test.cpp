#include "tokenizer/byte_unicode_map.h"

#include <gtest/gtest.h>

#include <set>

#include "tokenizer/utf8.h"

namespace kvforge::tokenizer {
namespace {

// Expected values from GPT-2's published mapping: printable bytes stand for
// themselves, the rest are shifted to U+0100 upwards in byte order.
TEST(ByteUnicodeMapTest, KnownStandIns) {
  EXPECT_EQ(byte_to_unicode_text('a'), "a");
  EXPECT_EQ(byte_to_unicode_text(' '), "\xC4\xA0");   // U+0120 'Ġ'
  EXPECT_EQ(byte_to_unicode_text('\n'), "\xC4\x8A");  // U+010A 'Ċ'
  EXPECT_EQ(byte_to_unicode_text(0x00), "\xC4\x80");  // U+0100
  EXPECT_EQ(byte_to_unicode_text(0xAD), "\xC5\x83");  // U+0143, the last shifted byte
  EXPECT_EQ(byte_to_unicode_text(0xE9), "\xC3\xA9");  // 'é' stands for itself
}

TEST(ByteUnicodeMapTest, IsABijection) {
  std::set<std::string> seen;
  for (int byte = 0; byte < 256; ++byte) {
    const std::string text(byte_to_unicode_text(static_cast<uint8_t>(byte)));
    EXPECT_TRUE(seen.insert(text).second);
    const uint32_t code_point = decode_utf8_unit(text, 0, text.size());
    ASSERT_EQ(unicode_to_byte(code_point), static_cast<uint8_t>(byte));
  }
  EXPECT_FALSE(unicode_to_byte(0x2581).has_value());
  EXPECT_FALSE(unicode_to_byte(0x144).has_value());
}

}  // namespace
}  // namespace kvforge::tokenizer
