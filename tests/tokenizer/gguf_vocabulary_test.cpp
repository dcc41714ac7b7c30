// Vocabularies read from GGUF metadata: missing, mistyped or inconsistent
// tokenizer keys give a Status, never a crash.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <iterator>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace kvforge::tokenizer {
namespace {

// A small valid SentencePiece vocabulary: <unk> <s> </s> ▁ a ▁a.
gguf::GgufWriter small_vocabulary_writer() {
  gguf::GgufWriter writer;
  writer.set_string("tokenizer.ggml.model", "llama");
  writer.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a",
                                                    "\xE2\x96\x81"
                                                    "a"});
  writer.set_float32_array("tokenizer.ggml.scores", {0, 0, 0, -1, -1, -2});
  writer.set_int32_array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1, 1});
  writer.set_uint32("tokenizer.ggml.bos_token_id", 1);
  writer.set_uint32("tokenizer.ggml.eos_token_id", 2);
  writer.set_uint32("tokenizer.ggml.unknown_token_id", 0);
  return writer;
}

Result<std::unique_ptr<Tokenizer>> tokenizer_from(const gguf::GgufWriter& writer) {
  const std::vector<uint8_t> image = writer.serialize();
  KVF_ASSIGN_OR_RETURN(auto file, gguf::GgufFile::from_memory(image));
  return Tokenizer::from_gguf(*file);
}

TEST(GgufVocabularyTest, SmallVocabularyLoads) {
  auto tokenizer = tokenizer_from(small_vocabulary_writer());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().to_string();
  EXPECT_EQ((*tokenizer)->encode("a a", true, false), (std::vector<TokenId>{1, 5, 5}));
  EXPECT_TRUE((*tokenizer)->add_bos());
}

TEST(GgufVocabularyTest, BrokenMetadataIsAStatus) {
  struct Case {
    const char* what;
    void (*edit)(gguf::GgufWriter&);
    StatusCode code;
  };
  const Case cases[] = {
      {"model not a string",
       [](gguf::GgufWriter& w) { w.set_value("tokenizer.ggml.model", gguf::Value{}); },
       StatusCode::kCorrupt},
      {"model unknown", [](gguf::GgufWriter& w) { w.set_string("tokenizer.ggml.model", "rwkv"); },
       StatusCode::kUnsupported},
      {"tokens not strings",
       [](gguf::GgufWriter& w) {
         w.set_int32_array("tokenizer.ggml.tokens", {1, 2});
       },
       StatusCode::kCorrupt},
      {"too few scores",
       [](gguf::GgufWriter& w) {
         w.set_float32_array("tokenizer.ggml.scores", {0, 0});
       },
       StatusCode::kCorrupt},
      {"too many types",
       [](gguf::GgufWriter& w) {
         w.set_int32_array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1, 1, 1});
       },
       StatusCode::kCorrupt},
      {"bad type",
       [](gguf::GgufWriter& w) {
         w.set_int32_array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1, 99});
       },
       StatusCode::kCorrupt},
      {"eos not an integer",
       [](gguf::GgufWriter& w) { w.set_string("tokenizer.ggml.eos_token_id", "2"); },
       StatusCode::kCorrupt},
      {"mask id not an integer",
       [](gguf::GgufWriter& w) { w.set_float32("tokenizer.ggml.mask_token_id", 2); },
       StatusCode::kCorrupt},
      {"flag not a bool",
       [](gguf::GgufWriter& w) { w.set_string("tokenizer.ggml.add_bos_token", "yes"); },
       StatusCode::kCorrupt},
      {"gpt2 without merges",
       [](gguf::GgufWriter& w) { w.set_string("tokenizer.ggml.model", "gpt2"); },
       StatusCode::kCorrupt},
  };
  for (const Case& c : cases) {
    gguf::GgufWriter writer = small_vocabulary_writer();
    c.edit(writer);
    auto tokenizer = tokenizer_from(writer);
    ASSERT_FALSE(tokenizer.ok()) << c.what;
    EXPECT_EQ(tokenizer.status().code(), c.code)
        << c.what << ": " << tokenizer.status().to_string();
  }
  gguf::GgufWriter no_tokens;
  no_tokens.set_string("tokenizer.ggml.model", "llama");
  auto tokenizer = tokenizer_from(no_tokens);
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), StatusCode::kNotFound);
}

// Special ids are optional: "none" written as -1 (int32, or uint32 4294967295
// as llama.cpp writes it) and ids outside the vocabulary leave the token
// unset and add a note; the rest of the vocabulary works as before.
TEST(GgufVocabularyTest, OptionalSpecialIdsOutOfRangeAreAbsentWithANote) {
  gguf::GgufWriter writer = small_vocabulary_writer();
  writer.set_uint32("tokenizer.ggml.padding_token_id", 0xFFFFFFFFu);
  writer.set_uint32("tokenizer.ggml.seperator_token_id", 0xFFFFFFFFu);
  writer.set_int32("tokenizer.ggml.eot_token_id", -1);
  writer.set_uint32("tokenizer.ggml.eos_token_id", 6);  // the vocabulary has 6 tokens
  writer.set_value("tokenizer.ggml.fim_pre_token_id",
                   gguf::Value{gguf::ValueType::kUint64, uint64_t{1} << 40});
  writer.set_uint32("tokenizer.ggml.mask_token_id", 4);  // valid, unused
  auto tokenizer = tokenizer_from(writer);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().to_string();
  const Tokenizer& t = **tokenizer;
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), std::nullopt);
  EXPECT_EQ(t.padding_id(), std::nullopt);
  EXPECT_EQ(t.unknown_id(), 0);
  EXPECT_FALSE(t.is_end_of_generation(2));  // "</s>" is no longer EOS
  EXPECT_EQ(t.encode("a a", true, false), (std::vector<TokenId>{1, 5, 5}));
  EXPECT_EQ(t.vocabulary().notes,
            (std::vector<std::string>{
                "tokenizer.ggml.eos_token_id = 6 is outside the vocabulary of 6 tokens: treated "
                "as absent",
                "tokenizer.ggml.padding_token_id = 4294967295: treated as absent",
                "tokenizer.ggml.eot_token_id = -1: treated as absent",
                "tokenizer.ggml.seperator_token_id = 4294967295: treated as absent",
                "tokenizer.ggml.fim_pre_token_id = 1099511627776 is outside the vocabulary of 6 "
                "tokens: treated as absent",
            }));
  // A file without such keys has no notes.
  auto clean = tokenizer_from(small_vocabulary_writer());
  ASSERT_TRUE(clean.ok());
  EXPECT_TRUE((*clean)->vocabulary().notes.empty());
}

// Real text, about 1 MB, through two real vocabularies: it round-trips, and
// the time is printed (no timed assertion: a slow, shared or sanitizer
// machine must not fail it; ctest's timeout catches a runaway).
TEST(GgufVocabularyTest, OneMegabyteOfRealTextRoundTrips) {
  const std::string shared = KVFORGE_SHARED_DIR;
  std::ifstream in(shared + "/text/tiny-shakespeare/input.txt", std::ios::binary);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  ASSERT_GT(text.size(), 1000000u);
  for (const char* name : {"llama-spm", "gpt-2"}) {
    auto file = gguf::GgufFile::open(shared + "/vocab/ggml-vocab-" + name + ".gguf");
    ASSERT_TRUE(file.ok()) << file.status().to_string();
    auto tokenizer = Tokenizer::from_gguf(**file);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().to_string();
    const auto start = std::chrono::steady_clock::now();
    const std::vector<TokenId> ids = (*tokenizer)->encode(text, false, false);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("[ speed    ] %s: %zu bytes -> %zu tokens in %.3f s\n", name, text.size(),
                ids.size(), seconds);
    EXPECT_EQ((*tokenizer)->decode(ids, false), text);
  }
}

}  // namespace
}  // namespace kvforge::tokenizer
