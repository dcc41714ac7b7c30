// The tokenizer of the project's default model, stories260K (llama2.c), with
// expected ids from ../shared/models/stories260K/reference_outputs.json, which
// were produced by an independent implementation of llama2.c's encoder.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace kvforge::tokenizer {
namespace {

const std::string kModelDir = std::string(KVFORGE_SHARED_DIR) + "/models/stories260K";
constexpr int kVocabSize = 512;  // from the model header; tok512.bin does not store it

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// tok512.bin (format in the model's README) turned into the GGUF-style
// vocabulary a converter produces: "▁" for spaces, <s>/</s> as control
// tokens, <0xHH> byte tokens.
Vocabulary read_llama2c_vocabulary(const std::string& path) {
  const std::string bytes = read_file(path);
  Vocabulary vocabulary;
  vocabulary.model = "llama";
  size_t pos = 4;  // skip the longest-token length
  auto read_u32 = [&](void* value) {
    if (pos + 4 > bytes.size()) throw std::runtime_error("tok512.bin truncated");
    std::memcpy(value, bytes.data() + pos, 4);
    pos += 4;
  };
  for (int id = 0; id < kVocabSize; ++id) {
    float score = 0;
    int32_t length = 0;
    read_u32(&score);
    read_u32(&length);
    if (length < 0 || pos + length > bytes.size()) throw std::runtime_error("bad token length");
    std::string text = bytes.substr(pos, length);
    pos += length;
    TokenType type = TokenType::kNormal;
    if (id == 0) {
      type = TokenType::kUnknown;
    } else if (id <= 2) {
      type = TokenType::kControl;
      text = id == 1 ? "<s>" : "</s>";
    } else if (id <= 258) {
      type = TokenType::kByte;
    }
    std::string escaped;
    for (char c : text) escaped += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
    vocabulary.tokens.push_back(escaped);
    vocabulary.scores.push_back(score);
    vocabulary.types.push_back(type);
  }
  vocabulary.unknown_id = 0;
  vocabulary.bos_id = 1;
  vocabulary.eos_id = 2;
  return vocabulary;
}

class Stories260kTokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto created = Tokenizer::from_vocabulary(read_llama2c_vocabulary(kModelDir + "/tok512.bin"));
    ASSERT_TRUE(created.ok()) << created.status().to_string();
    tokenizer_ = std::move(created).value().release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
  }
  static const Tokenizer* tokenizer_;
};
const Tokenizer* Stories260kTokenizerTest::tokenizer_ = nullptr;

TEST_F(Stories260kTokenizerTest, VocabularyShape) {
  EXPECT_EQ(tokenizer_->n_vocab(), kVocabSize);
  EXPECT_EQ(tokenizer_->token_text(3), "<0x00>");
  EXPECT_EQ(tokenizer_->token_to_piece(13), "\n");  // <0x0A>
  EXPECT_TRUE(tokenizer_->add_bos());
  EXPECT_TRUE(tokenizer_->is_end_of_generation(2));
  EXPECT_FALSE(tokenizer_->is_end_of_generation(1));
}

TEST_F(Stories260kTokenizerTest, EncodeExamplesMatchReference) {
  const auto reference = nlohmann::json::parse(read_file(kModelDir + "/reference_outputs.json"));
  const auto& examples = reference.at("encode_examples");
  ASSERT_EQ(examples.size(), 3u);
  for (const auto& [text, expected] : examples.items()) {
    EXPECT_EQ(tokenizer_->encode(text, false, false), expected.get<std::vector<TokenId>>())
        << "text: " << text;
    std::vector<TokenId> with_bos = expected.get<std::vector<TokenId>>();
    if (!text.empty())
      with_bos.insert(with_bos.begin(), 1);
    else
      with_bos = {1};
    EXPECT_EQ(tokenizer_->encode(text, true, false), with_bos) << "text: " << text;
    EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text, true, false), true), text);
  }
  EXPECT_EQ(
      tokenizer_->encode("Once upon a time, there was a little girl named Lily.", false, false),
      (std::vector<TokenId>{403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317,
                            426}));
}

TEST_F(Stories260kTokenizerTest, GreedyReferenceTextDecodes) {
  const auto reference = nlohmann::json::parse(read_file(kModelDir + "/reference_outputs.json"));
  const auto& greedy = reference.at("greedy_from_bos");
  const auto ids = greedy.at("generated_ids").get<std::vector<TokenId>>();
  std::string raw;
  for (TokenId id : ids) raw += tokenizer_->token_to_piece(id);
  EXPECT_EQ(raw, greedy.at("generated_text").get<std::string>());
  // After BOS the leading space of the first piece is dropped, as llama2.c does.
  std::vector<TokenId> with_bos = {1};
  with_bos.insert(with_bos.end(), ids.begin(), ids.end());
  EXPECT_EQ(tokenizer_->decode(with_bos, true), raw.substr(1));
}

TEST_F(Stories260kTokenizerTest, StoryWithBosMatchesReference) {
  const auto reference = nlohmann::json::parse(read_file(kModelDir + "/reference_outputs.json"));
  const auto& story = reference.at("nll_first_story");
  const std::string text = story.at("text").get<std::string>();
  EXPECT_EQ(tokenizer_->encode(text, true, false),
            story.at("input_ids").get<std::vector<TokenId>>());
}

}  // namespace
}  // namespace kvforge::tokenizer
