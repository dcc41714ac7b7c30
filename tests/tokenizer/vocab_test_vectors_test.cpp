// llama.cpp's tokenizer test vectors (../shared/vocab/ggml-vocab-*.gguf with
// .inp/.out): each test string must encode to the listed ids. The vectors were
// made with llama.cpp's test-tokenizer-0, which tokenizes without BOS/EOS and
// without parsing control tokens (user-defined tokens still match), i.e.
// encode(text, add_special=false, parse_special=false). llama.cpp ships no
// vectors for gpt-neox; ours (tests/data/tokenizer/, README there) were made
// with llama.cpp's llama-tokenize in the same mode.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace kvforge::tokenizer {
namespace {

const std::string kVocabDir = std::string(KVFORGE_SHARED_DIR) + "/vocab/";
const std::string kOwnVectorDir = std::string(KVFORGE_TEST_DATA_DIR) + "/tokenizer/";

// Where a vocabulary's .inp/.out vectors are, and how many strings they hold.
struct Vectors {
  std::string base;  // path without ".inp" / ".out"
  size_t n_strings;
};

Vectors vectors_for(const std::string& name) {
  if (name == "gpt-neox") return {kOwnVectorDir + "ggml-vocab-gpt-neox.gguf", 59};
  return {kVocabDir + "ggml-vocab-" + name + ".gguf", 46};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The .inp file: strings separated by "\n__ggml_vocab_test__\n"; the file ends
// with a separator, so the text after the last one is not a test string.
std::vector<std::string> read_test_strings(const std::string& path) {
  const std::string text = read_file(path);
  const std::string separator = "\n__ggml_vocab_test__\n";
  std::vector<std::string> strings;
  size_t start = 0;
  for (size_t end; (end = text.find(separator, start)) != std::string::npos;) {
    strings.push_back(text.substr(start, end - start));
    start = end + separator.size();
  }
  return strings;
}

// The .out file: one line of space-separated ids per test string.
std::vector<std::vector<TokenId>> read_expected_ids(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<std::vector<TokenId>> all;
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::vector<TokenId> ids;
    for (TokenId id; fields >> id;) ids.push_back(id);
    all.push_back(ids);
  }
  return all;
}

std::unique_ptr<Tokenizer> load(const std::string& name) {
  auto file = gguf::GgufFile::open(kVocabDir + "ggml-vocab-" + name + ".gguf");
  EXPECT_TRUE(file.ok()) << file.status().to_string();
  if (!file.ok()) return nullptr;
  auto tokenizer = Tokenizer::from_gguf(**file);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status().to_string();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

std::string show(const std::vector<TokenId>& ids) {
  std::string text;
  for (TokenId id : ids) text += " " + std::to_string(id);
  return text;
}

class VocabTestVectorsTest : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabTestVectorsTest, EncodesEveryStringToTheExpectedIds) {
  const std::string& name = GetParam();
  const auto tokenizer = load(name);
  ASSERT_TRUE(tokenizer);
  const Vectors vectors = vectors_for(name);
  const auto strings = read_test_strings(vectors.base + ".inp");
  const auto expected = read_expected_ids(vectors.base + ".out");
  ASSERT_EQ(strings.size(), vectors.n_strings);
  ASSERT_EQ(expected.size(), strings.size());
  size_t passed = 0;
  for (size_t i = 0; i < strings.size(); ++i) {
    const std::vector<TokenId> ids = tokenizer->encode(strings[i], false, false);
    if (ids == expected[i]) {
      ++passed;
    } else {
      ADD_FAILURE() << name << " string " << i << " '" << strings[i]
                    << "'\n  expected:" << show(expected[i]) << "\n  got:     " << show(ids);
    }
  }
  std::printf("[ vectors  ] %s: %zu/%zu strings pass\n", name.c_str(), passed, strings.size());
}

TEST_P(VocabTestVectorsTest, DecodeOfEncodeIsTheOriginalText) {
  const std::string& name = GetParam();
  const auto tokenizer = load(name);
  ASSERT_TRUE(tokenizer);
  auto strings = read_test_strings(vectors_for(name).base + ".inp");
  strings.push_back("<s></s><|endoftext|> text");  // control tokens written out
  for (const std::string& text : strings) {
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(text, false, false), false), text)
        << name << ": '" << text << "'";
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(text, true, false), true), text)
        << name << " (with BOS/EOS): '" << text << "'";
  }
}

// Invalid UTF-8 gives a defined result. Byte-fallback vocabularies and GPT-2
// spell every byte, so the text survives; the other byte-level vocabularies
// lack tokens for bytes that never occur in UTF-8 (0xC0, 0xC1, 0xF5..0xFF),
// which are dropped (or, in DeepSeek's, are user-defined tokens that decode
// as the character they are written with), while the rest survives.
TEST_P(VocabTestVectorsTest, InvalidUtf8GivesADefinedResult) {
  const std::string& name = GetParam();
  const auto tokenizer = load(name);
  ASSERT_TRUE(tokenizer);
  const std::string text = "broken \xC3 utf-8 \xFF\xFE\x80\xED\xA0\x80 end";
  for (bool parse_special : {false, true}) {
    const std::vector<TokenId> ids = tokenizer->encode(text, true, parse_special);
    for (TokenId id : ids) ASSERT_TRUE(id >= 0 && id < tokenizer->n_vocab());
    const std::string decoded = tokenizer->decode(ids, true);
    if (name == "llama-spm" || name == "phi-3" || name == "gpt-2") {
      EXPECT_EQ(decoded, text);
    } else {
      EXPECT_EQ(decoded.substr(0, 8), "broken \xC3");
      EXPECT_EQ(decoded.substr(decoded.size() - 4), " end");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllVocabularies, VocabTestVectorsTest,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "deepseek-llm",
                                           "deepseek-coder", "starcoder", "falcon", "mpt", "refact",
                                           "gpt-neox", "llama-bpe", "qwen2"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) c = c == '-' ? '_' : c;
                           return name;
                         });

TEST(VocabGgufTest, BertIsReportedUnsupported) {
  auto file = gguf::GgufFile::open(kVocabDir + "ggml-vocab-bert-bge.gguf");
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  auto tokenizer = Tokenizer::from_gguf(**file);
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(tokenizer.status().message().find("unsupported tokenizer model 'bert'"),
            std::string::npos);
}

TEST(VocabGgufTest, SpecialIdsAndFlagsFromMetadata) {
  const auto llama = load("llama-spm");
  ASSERT_TRUE(llama);
  EXPECT_EQ(llama->n_vocab(), 32000);
  EXPECT_EQ(llama->bos_id(), 1);
  EXPECT_EQ(llama->eos_id(), 2);
  EXPECT_TRUE(llama->add_bos());
  EXPECT_EQ(llama->encode("Hello", true, false), (std::vector<TokenId>{1, 15043}));
  EXPECT_EQ(llama->encode("<s>Hello", false, true), (std::vector<TokenId>{1, 15043}));
  EXPECT_EQ(llama->token_to_piece(15043), " Hello");
  EXPECT_EQ(llama->token_to_piece(13), "\n");  // <0x0A>
  EXPECT_EQ(llama->decode(std::vector<TokenId>{1, 15043}, true), "Hello");

  const auto phi3 = load("phi-3");
  ASSERT_TRUE(phi3);
  EXPECT_EQ(phi3->eos_id(), 32000);
  EXPECT_TRUE(phi3->is_end_of_generation(32000));  // <|endoftext|>
  EXPECT_TRUE(phi3->is_end_of_generation(32007));  // <|end|>
  EXPECT_FALSE(phi3->is_end_of_generation(1));
  // <|user|> is a control token: spelled out unless parse_special.
  EXPECT_EQ(phi3->encode("<|user|>", false, true), (std::vector<TokenId>{32010}));
  EXPECT_GT(phi3->encode("<|user|>", false, false).size(), 1u);

  const auto gpt2 = load("gpt-2");
  ASSERT_TRUE(gpt2);
  EXPECT_FALSE(gpt2->add_bos());
  EXPECT_EQ(gpt2->encode("Hello<|endoftext|>", true, true), (std::vector<TokenId>{15496, 50256}));
  EXPECT_EQ(gpt2->decode(std::vector<TokenId>{15496, 50256}, true), "Hello");
  EXPECT_EQ(gpt2->decode(std::vector<TokenId>{15496, 50256}, false), "Hello<|endoftext|>");
}

}  // namespace
}  // namespace kvforge::tokenizer
