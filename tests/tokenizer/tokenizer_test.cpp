// Tokenizer behaviour on small hand-made vocabularies, where the expected ids
// follow from the algorithm by hand.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <chrono>

#include "tokenizer/byte_unicode_map.h"

namespace kvforge::tokenizer {
namespace {

using Ids = std::vector<TokenId>;
constexpr std::string_view kSpace = "\xE2\x96\x81";  // ▁

// A SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, then pieces.
Vocabulary make_spm_vocabulary(const std::vector<std::pair<std::string, float>>& pieces) {
  Vocabulary vocabulary;
  vocabulary.model = "llama";
  vocabulary.tokens = {"<unk>", "<s>", "</s>"};
  vocabulary.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  vocabulary.scores = {0, 0, 0};
  for (int byte = 0; byte < 256; ++byte) {
    char text[8];
    std::snprintf(text, sizeof(text), "<0x%02X>", byte);
    vocabulary.tokens.emplace_back(text);
    vocabulary.types.push_back(TokenType::kByte);
    vocabulary.scores.push_back(0);
  }
  for (const auto& [text, score] : pieces) {
    std::string escaped;
    for (char c : text) escaped += c == ' ' ? std::string(kSpace) : std::string(1, c);
    vocabulary.tokens.push_back(escaped);
    vocabulary.types.push_back(TokenType::kNormal);
    vocabulary.scores.push_back(score);
  }
  vocabulary.unknown_id = 0;
  vocabulary.bos_id = 1;
  vocabulary.eos_id = 2;
  return vocabulary;
}

std::unique_ptr<Tokenizer> make(Vocabulary vocabulary) {
  auto tokenizer = Tokenizer::from_vocabulary(std::move(vocabulary));
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status().to_string();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

// ids of the pieces appended after the 259 fixed tokens
constexpr TokenId kFirstPiece = 259;

TEST(SentencePieceTest, MergesHighestScoreFirst) {
  // pieces: 259 " ", 260 "a", 261 "b", 262 "ab", 263 " a", 264 " ab"
  auto tokenizer = make(
      make_spm_vocabulary({{" ", -1}, {"a", -1}, {"b", -1}, {"ab", -2}, {" a", -3}, {" ab", -4}}));
  ASSERT_TRUE(tokenizer);
  // "▁ab": pairs "▁a" (-3) and "ab" (-2): "ab" wins, then "▁"+"ab" = "▁ab".
  EXPECT_EQ(tokenizer->encode("ab", false, false), (Ids{kFirstPiece + 5}));
  // "ba": no merges apply: ▁ b a
  EXPECT_EQ(tokenizer->encode("ba", false, false),
            (Ids{kFirstPiece + 0, kFirstPiece + 2, kFirstPiece + 1}));
  EXPECT_EQ(tokenizer->encode("ab", true, false), (Ids{1, kFirstPiece + 5}));
  EXPECT_EQ(tokenizer->encode("", false, false), Ids{});
  EXPECT_EQ(tokenizer->encode("", true, false), Ids{1});
}

TEST(SentencePieceTest, TiesMergeLeftmostFirst) {
  // "aaa" with only "aa": leftmost pair merges, leaving "aa" "a".
  auto tokenizer = make(make_spm_vocabulary({{" ", -1}, {"a", -1}, {"aa", -2}}));
  ASSERT_TRUE(tokenizer);
  EXPECT_EQ(tokenizer->encode("aaa", false, false),
            (Ids{kFirstPiece, kFirstPiece + 2, kFirstPiece + 1}));
}

TEST(SentencePieceTest, ByteFallbackAndRoundTrip) {
  auto tokenizer = make(make_spm_vocabulary({{" ", -1}, {"a", -1}}));
  ASSERT_TRUE(tokenizer);
  // "ä" is not a piece: its two UTF-8 bytes 0xC3 0xA4 become <0xC3> <0xA4>.
  EXPECT_EQ(tokenizer->encode("\xC3\xA4", false, false), (Ids{kFirstPiece, 3 + 0xC3, 3 + 0xA4}));
  for (std::string text : {"a a", " a", "a\xC3\xA4 ", "\xFF\xFE broken \xC3", "  "}) {
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(text, false, false), false), text);
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(text, true, false), true), text);
  }
}

TEST(SentencePieceTest, ParseSpecialAndDummyPrefixAfterIt) {
  auto tokenizer =
      make(make_spm_vocabulary({{" ", -1}, {"a", -1}, {"<", -1}, {"s", -1}, {">", -1}, {"/", -1}}));
  ASSERT_TRUE(tokenizer);
  const TokenId space = kFirstPiece, a = kFirstPiece + 1;
  // Not parsed: "<s>" is spelled with pieces.
  EXPECT_EQ(tokenizer->encode("<s>a", false, false),
            (Ids{space, kFirstPiece + 2, kFirstPiece + 3, kFirstPiece + 4, a}));
  // Parsed: the control token, and the dummy prefix again after it.
  EXPECT_EQ(tokenizer->encode("a</s>a", false, true), (Ids{space, a, 2, space, a}));
  EXPECT_EQ(tokenizer->decode(Ids{space, a, 2, space, a}, false), "a</s>a");
  EXPECT_EQ(tokenizer->decode(Ids{space, a, 2, space, a}, true), "aa");
}

TEST(SentencePieceTest, NoDummyPrefixWhenMetadataSaysSo) {
  Vocabulary vocabulary = make_spm_vocabulary({{" ", -1}, {"a", -1}});
  vocabulary.add_space_prefix = false;
  auto tokenizer = make(std::move(vocabulary));
  ASSERT_TRUE(tokenizer);
  EXPECT_EQ(tokenizer->encode("a", false, false), (Ids{kFirstPiece + 1}));
  EXPECT_EQ(tokenizer->decode(Ids{kFirstPiece, kFirstPiece + 1}, false), " a");
}

TEST(SentencePieceTest, OutOfRangeIdsAreSkipped) {
  auto tokenizer = make(make_spm_vocabulary({{" ", -1}, {"a", -1}}));
  ASSERT_TRUE(tokenizer);
  EXPECT_EQ(tokenizer->token_to_piece(-1), "");
  EXPECT_EQ(tokenizer->token_to_piece(100000), "");
  EXPECT_EQ(tokenizer->token_text(100000), "");
  EXPECT_EQ(tokenizer->decode(Ids{-5, kFirstPiece + 1, 1 << 30}, false), "a");
}

// A byte-level BPE vocabulary: the 256 byte stand-ins, then merged tokens.
Vocabulary make_bpe_vocabulary(const std::vector<std::string>& merges) {
  Vocabulary vocabulary;
  vocabulary.model = "gpt2";
  vocabulary.pre = "gpt-2";
  for (int byte = 0; byte < 256; ++byte) {
    vocabulary.tokens.emplace_back(byte_to_unicode_text(static_cast<uint8_t>(byte)));
  }
  for (const std::string& merge : merges) {
    std::string merged = merge;
    merged.erase(merged.find(' '), 1);
    vocabulary.tokens.push_back(merged);
    vocabulary.merges.push_back(merge);
  }
  vocabulary.tokens.push_back("<|endoftext|>");
  vocabulary.types.assign(vocabulary.tokens.size(), TokenType::kNormal);
  vocabulary.types.back() = TokenType::kControl;
  vocabulary.eos_id = static_cast<TokenId>(vocabulary.tokens.size() - 1);
  return vocabulary;
}

TEST(ByteLevelBpeTest, MergesByRank) {
  // 256 "h e", 257 "l l", 258 "he ll", 259 "Ġ w"; 260 <|endoftext|>
  auto tokenizer = make(make_bpe_vocabulary({"h e", "l l", "he ll", "\xC4\xA0 w"}));
  ASSERT_TRUE(tokenizer);
  EXPECT_EQ(tokenizer->encode("hello w", false, false), (Ids{258, 'o', 259}));
  EXPECT_EQ(tokenizer->encode("hello w", true, false), (Ids{258, 'o', 259}));  // no BOS
  EXPECT_EQ(tokenizer->encode("<|endoftext|>", false, true), (Ids{260}));
  EXPECT_EQ(tokenizer->encode("<|endoftext|>", false, false).size(), 13u);
  EXPECT_TRUE(tokenizer->is_end_of_generation(260));
  EXPECT_EQ(tokenizer->token_to_piece(259), " w");
}

TEST(ByteLevelBpeTest, RoundTripsAnyBytes) {
  auto tokenizer = make(make_bpe_vocabulary({"h e", "l l"}));
  ASSERT_TRUE(tokenizer);
  std::string all_bytes;
  for (int byte = 0; byte < 256; ++byte) all_bytes.push_back(static_cast<char>(byte));
  for (std::string text : {std::string("hello\n\n  world"), all_bytes, std::string("\xC3")}) {
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(text, false, false), false), text);
  }
}

TEST(TokenizerErrorsTest, BadVocabulariesAreRejected) {
  Vocabulary vocabulary = make_spm_vocabulary({{" ", -1}});
  vocabulary.scores.pop_back();
  EXPECT_EQ(Tokenizer::from_vocabulary(vocabulary).status().code(), StatusCode::kCorrupt);

  vocabulary = make_spm_vocabulary({{" ", -1}});
  vocabulary.bos_id = 1 << 20;
  EXPECT_EQ(Tokenizer::from_vocabulary(vocabulary).status().code(), StatusCode::kCorrupt);

  vocabulary = make_spm_vocabulary({{" ", -1}});
  vocabulary.types[5] = static_cast<TokenType>(42);
  EXPECT_EQ(Tokenizer::from_vocabulary(vocabulary).status().code(), StatusCode::kCorrupt);

  vocabulary = make_spm_vocabulary({{" ", -1}});
  vocabulary.model = "bert";
  auto status = Tokenizer::from_vocabulary(vocabulary).status();
  EXPECT_EQ(status.code(), StatusCode::kUnsupported);
  EXPECT_NE(status.message().find("unsupported tokenizer model 'bert'"), std::string::npos);

  Vocabulary bpe = make_bpe_vocabulary({"h e"});
  bpe.merges.push_back("nospace");
  EXPECT_EQ(Tokenizer::from_vocabulary(bpe).status().code(), StatusCode::kCorrupt);
  bpe = make_bpe_vocabulary({"h e"});
  bpe.merges.clear();
  EXPECT_EQ(Tokenizer::from_vocabulary(bpe).status().code(), StatusCode::kCorrupt);
  bpe = make_bpe_vocabulary({"h e"});
  bpe.pre = "unknown-pre";
  EXPECT_EQ(Tokenizer::from_vocabulary(bpe).status().code(), StatusCode::kUnsupported);
  bpe = make_bpe_vocabulary({"h e"});
  bpe.tokens.clear();
  bpe.types.clear();
  bpe.eos_id.reset();
  EXPECT_EQ(Tokenizer::from_vocabulary(bpe).status().code(), StatusCode::kCorrupt);
}

TEST(TokenizerSpeedTest, OneMegabyteEncodesQuickly) {
  auto spm = make(make_spm_vocabulary({{" ", -1}, {"a", -1}, {"b", -1}, {"ab", -2}, {" ab", -3}}));
  auto bpe = make(make_bpe_vocabulary({"a b", "\xC4\xA0 ab"}));
  ASSERT_TRUE(spm && bpe);
  std::string text;
  while (text.size() < (1u << 20)) text += "ab ab  ab\n\xC3\xA4 x ";
  for (const Tokenizer* tokenizer : {spm.get(), bpe.get()}) {
    const auto start = std::chrono::steady_clock::now();
    const Ids ids = tokenizer->encode(text, false, false);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 5.0);  // generous: sanitizer builds; optimized builds take ~0.1 s
    EXPECT_EQ(tokenizer->decode(ids, false), text);
  }
  // A long run of one character: no quadratic blow-up and no matcher failure.
  const std::string spaces(1u << 20, ' ');
  EXPECT_EQ(bpe->decode(bpe->encode(spaces, false, false), false), spaces);
}

}  // namespace
}  // namespace kvforge::tokenizer
