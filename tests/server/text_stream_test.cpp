// TextStream: stop sequences found across token boundaries and removed,
// UTF-8 characters split across tokens sent whole, invalid bytes replaced.
// The expectation for the stop cases is a plain search of the text so far
// after every token (the output is the text before the first stop sequence
// to appear).
#include <random>

#include <gtest/gtest.h>

#include "server/text_stream.h"

namespace kvforge::server {
namespace {

std::string run_pieces(const std::vector<std::string>& stops,
                       const std::vector<std::string>& pieces, bool* stopped = nullptr) {
  TextStream s(stops);
  std::string out;
  for (const std::string& p : pieces) {
    out += s.push(p);
    if (s.stopped()) break;
  }
  if (!s.stopped()) out += s.flush();
  if (stopped != nullptr) *stopped = s.stopped();
  return out;
}

TEST(TextStreamTest, StopSequenceSplitAcrossTokensIsFoundAndRemoved) {
  bool stopped = false;
  EXPECT_EQ(run_pieces({"END"}, {"Hello E", "N", "D more"}, &stopped), "Hello ");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(run_pieces({"\n\n"}, {"a\n", "\nb"}, &stopped), "a");
  EXPECT_TRUE(stopped);
  // A partial match that does not complete is sent after all.
  EXPECT_EQ(run_pieces({"END"}, {"EN", "X", "E"}, &stopped), "ENXE");
  EXPECT_FALSE(stopped);
  // The earliest of several stop sequences wins.
  EXPECT_EQ(run_pieces({"cd", "b"}, {"abcd"}, &stopped), "a");
  EXPECT_EQ(run_pieces({"yz", "xyz"}, {"wxy", "z"}, &stopped), "w");
}

TEST(TextStreamTest, HeldTextIsNotSentEarly) {
  TextStream s({"STOP"});
  EXPECT_EQ(s.push("abc S"), "abc ");
  EXPECT_EQ(s.push("T"), "");
  EXPECT_EQ(s.push("x"), "STx");
  EXPECT_EQ(s.flush(), "");
}

TEST(TextStreamTest, MatchesAPlainSearchForRandomSplits) {
  std::mt19937 rng(7);
  const std::string alphabet = "ab\n";
  for (int trial = 0; trial < 2000; ++trial) {
    std::string text;
    const int len = 1 + static_cast<int>(rng() % 24);
    for (int i = 0; i < len; ++i) text += alphabet[rng() % alphabet.size()];
    std::vector<std::string> stops;
    for (int k = 0; k < 1 + static_cast<int>(rng() % 3); ++k) {
      std::string stop;
      for (int i = 0; i < 1 + static_cast<int>(rng() % 3); ++i) stop += alphabet[rng() % 3];
      stops.push_back(stop);
    }
    std::vector<std::string> pieces;
    for (size_t i = 0; i < text.size();) {
      const size_t n = std::min<size_t>(1 + rng() % 4, text.size() - i);
      pieces.push_back(text.substr(i, n));
      i += n;
    }
    // After each token, the text so far is searched; the first time a stop
    // sequence is in it, the output is the text before the earliest one.
    std::string expected = text;
    std::string so_far;
    for (const std::string& piece : pieces) {
      so_far += piece;
      size_t first = std::string::npos;
      for (const auto& stop : stops) first = std::min(first, so_far.find(stop));
      if (first != std::string::npos) {
        expected = so_far.substr(0, first);
        break;
      }
    }
    std::string described = "text '" + text + "', stops";
    for (const auto& stop : stops) described += " '" + stop + "'";
    described += ", pieces";
    for (const auto& piece : pieces) described += " '" + piece + "'";
    ASSERT_EQ(run_pieces(stops, pieces), expected) << described;
  }
}

TEST(TextStreamTest, Utf8CharactersSplitAcrossTokensAreSentWhole) {
  TextStream s({});
  // "é" = C3 A9, "€" = E2 82 AC, "😀" = F0 9F 98 80, one byte per token.
  EXPECT_EQ(s.push("caf\xC3"), "caf");
  EXPECT_EQ(s.push("\xA9 "), "\xC3\xA9 ");
  EXPECT_EQ(s.push("\xE2"), "");
  EXPECT_EQ(s.push("\x82"), "");
  EXPECT_EQ(s.push("\xAC"), "\xE2\x82\xAC");
  EXPECT_EQ(s.push("\xF0\x9F"), "");
  EXPECT_EQ(s.push("\x98\x80!"), "\xF0\x9F\x98\x80!");
  // An unfinished character at the end becomes U+FFFD.
  EXPECT_EQ(s.push("\xE2\x82"), "");
  EXPECT_EQ(s.flush(), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(TextStreamTest, InvalidBytesBecomeReplacementCharacters) {
  EXPECT_EQ(valid_utf8("a\xFF"
                       "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(valid_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong
  EXPECT_EQ(valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(valid_utf8("\xC3\xA9"), "\xC3\xA9");
  EXPECT_EQ(incomplete_utf8_tail("ab\xF0\x9F\x98"), 3u);
  EXPECT_EQ(incomplete_utf8_tail("ab\xC3"), 1u);
  EXPECT_EQ(incomplete_utf8_tail("ab\xC3\xA9"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("ab\x80"), 0u);  // a stray continuation byte is not held
  // A lead byte followed by a non-continuation is not an unfinished character.
  TextStream s({});
  EXPECT_EQ(s.push("\xE2"
                   "a"),
            "\xEF\xBF\xBD"
            "a");
}

}  // namespace
}  // namespace kvforge::server
