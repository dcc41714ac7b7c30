#include "tokenizer/special_token_matcher.h"

#include <gtest/gtest.h>

namespace kvforge::tokenizer {
namespace {

std::vector<std::pair<std::string, TokenId>> split(const SpecialTokenMatcher& matcher,
                                                   std::string_view text, bool match_control) {
  std::vector<TextFragment> fragments;
  matcher.split(text, match_control, fragments);
  std::vector<std::pair<std::string, TokenId>> result;
  for (const auto& fragment : fragments) result.emplace_back(fragment.text, fragment.special_id);
  return result;
}

using Pieces = std::vector<std::pair<std::string, TokenId>>;

TEST(SpecialTokenMatcherTest, ControlTokensOnlyOnRequest) {
  SpecialTokenMatcher matcher;
  matcher.add("<s>", 1, false);
  matcher.add("  ", 7, true);
  EXPECT_EQ(split(matcher, "a<s>b", false), (Pieces{{"a<s>b", -1}}));
  EXPECT_EQ(split(matcher, "a<s>b", true), (Pieces{{"a", -1}, {"<s>", 1}, {"b", -1}}));
  EXPECT_EQ(split(matcher, "x  y", false), (Pieces{{"x", -1}, {"  ", 7}, {"y", -1}}));
}

TEST(SpecialTokenMatcherTest, LeftmostLongest) {
  SpecialTokenMatcher matcher;
  matcher.add("<|end|>", 5, false);
  matcher.add("<|endoftext|>", 6, false);
  matcher.add("ab", 8, false);
  matcher.add("bcd", 9, false);
  EXPECT_EQ(split(matcher, "<|endoftext|><|end|>", true),
            (Pieces{{"<|endoftext|>", 6}, {"<|end|>", 5}}));
  EXPECT_EQ(split(matcher, "abcd", true), (Pieces{{"ab", 8}, {"cd", -1}}));
  EXPECT_EQ(split(matcher, "<|en", true), (Pieces{{"<|en", -1}}));
  EXPECT_TRUE(split(matcher, "", true).empty());
}

}  // namespace
}  // namespace kvforge::tokenizer
