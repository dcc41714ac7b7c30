#include "tokenizer/regex_splitter.h"

#include <gtest/gtest.h>

#include "tokenizer/pre_tokenizer_registry.h"

namespace kvforge::tokenizer {
namespace {

std::vector<std::string> split_with(std::string_view pre, std::string_view text) {
  auto spec = find_pre_tokenizer(pre);
  EXPECT_TRUE(spec.ok()) << spec.status().to_string();
  auto splitter = RegexSplitter::create(spec->patterns);
  EXPECT_TRUE(splitter.ok()) << splitter.status().to_string();
  std::vector<std::string_view> pieces;
  (*splitter)->split(text, pieces);
  return {pieces.begin(), pieces.end()};
}

using Words = std::vector<std::string>;

// Expected words worked out by hand from the GPT-2 pattern.
TEST(RegexSplitterTest, Gpt2Words) {
  EXPECT_EQ(split_with("gpt-2", "Hello, y'all!  3.14"),
            (Words{"Hello", ",", " y", "'", "all", "!", " ", " 3", ".", "14"}));
  EXPECT_EQ(split_with("gpt-2", "we'll"), (Words{"we", "'ll"}));
  EXPECT_EQ(split_with("gpt-2", "a \n b"), (Words{"a", " \n", " b"}));
}

TEST(RegexSplitterTest, SequentialPatternsSplitEveryPiece) {
  // StarCoder: digits one by one, then GPT-2 on the rest.
  EXPECT_EQ(split_with("starcoder", "ab 123"), (Words{"ab", " ", "1", "2", "3"}));
  // Llama 3: digits in groups of at most three.
  EXPECT_EQ(split_with("llama-bpe", "1234567 x"), (Words{"123", "456", "7", " x"}));
}

// No tokenizer.ggml.pre: llama.cpp's fallback list (punctuation runs, GPT-2,
// digit runs, groups of three digits), worked out by hand.
TEST(RegexSplitterTest, DefaultListCutsPunctuationAndDigitGroups) {
  const Words expected = {"Order",  " ", "#", "123", "456", "7",
                          " costs", " ", "$", "89",  ".",   "99"};
  EXPECT_EQ(split_with("", "Order #1234567 costs $89.99"), expected);
  EXPECT_EQ(split_with("default", "Order #1234567 costs $89.99"), expected);
  // ` is not in the punctuation class (it is a symbol), unlike Falcon's list.
  EXPECT_EQ(split_with("", "a+=b `c`"), (Words{"a", "+=", "b", " `", "c", "`"}));
  // GPT-2 alone keeps the number whole and the space with the symbol.
  EXPECT_EQ(split_with("gpt-2", "Order #1234567 costs $89.99"),
            (Words{"Order", " #", "1234567", " costs", " $", "89", ".", "99"}));
}

TEST(RegexSplitterTest, InvalidUtf8StaysInTheGaps) {
  const std::string text = "ab\xFF\xFE cd";
  const Words words = split_with("gpt-2", text);
  std::string joined;
  for (const auto& word : words) joined += word;
  EXPECT_EQ(joined, text);
}

TEST(RegexSplitterTest, UnknownPreTokenizerIsUnsupported) {
  auto spec = find_pre_tokenizer("no-such-model");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(spec.status().message().find("no-such-model"), std::string::npos);
}

TEST(RegexSplitterTest, BadPatternIsAnError) {
  const std::string_view patterns[] = {"(unclosed"};
  auto splitter = RegexSplitter::create(patterns);
  EXPECT_FALSE(splitter.ok());
}

}  // namespace
}  // namespace kvforge::tokenizer
