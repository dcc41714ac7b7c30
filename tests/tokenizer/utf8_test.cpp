#include "tokenizer/utf8.h"

#include <gtest/gtest.h>

namespace kvforge::tokenizer {
namespace {

TEST(Utf8Test, UnitLengthsOfValidSequences) {
  const std::string text = "a\xC3\xA4\xE2\x96\x81\xF0\x9F\xA6\x99";  // a ä ▁ 🦙
  EXPECT_EQ(utf8_unit_length(text, 0), 1u);
  EXPECT_EQ(utf8_unit_length(text, 1), 2u);
  EXPECT_EQ(utf8_unit_length(text, 3), 3u);
  EXPECT_EQ(utf8_unit_length(text, 6), 4u);
  EXPECT_TRUE(is_valid_utf8(text));
  EXPECT_EQ(decode_utf8_unit(text, 6, 4), 0x1F999u);
}

TEST(Utf8Test, InvalidBytesAreSingleUnits) {
  EXPECT_EQ(utf8_unit_length("\x80", 0), 1u);              // lone continuation
  EXPECT_EQ(utf8_unit_length("\xC3", 0), 1u);              // truncated
  EXPECT_EQ(utf8_unit_length("\xC0\xAF", 0), 1u);          // overlong
  EXPECT_EQ(utf8_unit_length("\xED\xA0\x80", 0), 1u);      // surrogate
  EXPECT_EQ(utf8_unit_length("\xF4\x90\x80\x80", 0), 1u);  // past U+10FFFF
  EXPECT_EQ(utf8_unit_length("\xFF", 0), 1u);
  EXPECT_FALSE(is_valid_utf8("ab\xFF"));
}

TEST(Utf8Test, AppendRoundTrips) {
  for (uint32_t code_point : {0x24u, 0xE4u, 0x2581u, 0x1F999u, 0x10FFFFu}) {
    std::string text;
    append_utf8(code_point, text);
    const size_t length = utf8_unit_length(text, 0);
    EXPECT_EQ(length, text.size());
    EXPECT_EQ(decode_utf8_unit(text, 0, length), code_point);
  }
}

}  // namespace
}  // namespace kvforge::tokenizer
