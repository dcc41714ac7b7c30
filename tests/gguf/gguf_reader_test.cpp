// Reader tests on hand-assembled images and on the real vocabulary files in
// the shared assets.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "gguf/gguf.h"
#include "raw_gguf.h"

namespace kvforge::gguf {
namespace {

using testing::RawGguf;

std::string vocab_path(std::string_view name) {
  return std::string(KVFORGE_SHARED_DIR) + "/vocab/" + std::string(name);
}

TEST(GgufReader, ReadsHandAssembledFile) {
  // Two keys, one f32 tensor [3, 2] and one q8_0 tensor [32] at offset 32.
  RawGguf raw;
  raw.header(3, 2, 2).kv_string("general.architecture", "llama").kv_u32("llama.block_count", 7);
  raw.tensor_info("a", {3, 2}, 0, 0).tensor_info("b", {32}, 8, 32).pad_to(32);
  for (int i = 0; i < 6; ++i) raw.f32(static_cast<float>(i) + 0.5f);
  raw.pad_to(32).zeros(34);

  auto file = GgufFile::from_memory(raw.bytes);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const GgufFile& f = **file;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.file_bytes(), raw.bytes.size());
  ASSERT_EQ(f.metadata().size(), 2u);
  EXPECT_EQ(f.metadata()[0].first, "general.architecture");
  EXPECT_EQ(f.get_string("general.architecture").value(), "llama");
  EXPECT_EQ(f.get_uint("llama.block_count").value(), 7u);
  EXPECT_EQ(f.get_int("llama.block_count").value(), 7);
  EXPECT_DOUBLE_EQ(f.get_float("llama.block_count").value(), 7.0);

  ASSERT_EQ(f.tensors().size(), 2u);
  const TensorInfo* a = f.find_tensor("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dims, (std::vector<uint64_t>{3, 2}));
  EXPECT_EQ(a->type, TensorType::kF32);
  EXPECT_EQ(a->n_elements(), 6u);
  EXPECT_EQ(a->n_bytes, 24u);
  float third;
  std::memcpy(&third, a->data + 2 * sizeof(float), sizeof third);
  EXPECT_EQ(third, 2.5f);
  // The data section starts at the first multiple of 32 after the infos.
  EXPECT_EQ((a->data - raw.bytes.data()) % 32, 0);

  const TensorInfo* b = f.find_tensor("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->type, TensorType::kQ8_0);
  EXPECT_EQ(b->n_bytes, 34u);  // one block of 32 q8_0 values
  EXPECT_EQ(b->data, a->data + 32);
  EXPECT_EQ(f.find_tensor("c"), nullptr);
}

TEST(GgufReader, VersionTwoIsAccepted) {
  RawGguf raw;
  raw.header(2, 0, 1).kv_u32("x", 1);
  auto file = GgufFile::from_memory(raw.bytes);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  EXPECT_EQ((*file)->version(), 2u);
}

TEST(GgufReader, GettersReportMissingAndWrongTypes) {
  RawGguf raw;
  raw.header(3, 0, 3).kv_string("s", "text").kv_u32("n", 5);
  raw.str("neg").u32(5).i32(-3);  // int32 -3
  auto file = GgufFile::from_memory(raw.bytes);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const GgufFile& f = **file;

  EXPECT_EQ(f.get_uint("absent").status().code(), StatusCode::kNotFound);
  EXPECT_NE(f.get_uint("absent").status().message().find("absent"), std::string::npos);
  EXPECT_EQ(f.get_uint("s").status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(f.get_string("n").status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(f.get_uint("neg").status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(f.get_int("neg").value(), -3);
  EXPECT_EQ(f.get_bool("n").status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(f.get_string_array("s").status().code(), StatusCode::kCorrupt);

  EXPECT_FALSE(f.find_uint("absent").value().has_value());
  EXPECT_EQ(f.find_uint("n").value().value(), 5u);
  EXPECT_EQ(f.find_string("s").value().value(), "text");
  EXPECT_FALSE(f.find_bool("absent").value().has_value());
  EXPECT_EQ(f.find_bool("s").status().code(), StatusCode::kCorrupt);
  EXPECT_EQ(f.find_float("n").value().value(), 5.0);
}

TEST(GgufReader, OpenReportsMissingDirectoryAndEmptyFiles) {
  auto missing = GgufFile::open(std::string(KVFORGE_BINARY_DIR) + "/no-such-file.gguf");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("no-such-file.gguf"), std::string::npos);

  auto directory = GgufFile::open(KVFORGE_BINARY_DIR);
  EXPECT_EQ(directory.status().code(), StatusCode::kIoError);
  EXPECT_NE(directory.status().message().find("directory"), std::string::npos);

  const std::string empty_path = std::string(KVFORGE_BINARY_DIR) + "/gguf_reader_empty.gguf";
  std::ofstream(empty_path).close();
  auto empty = GgufFile::open(empty_path);
  EXPECT_EQ(empty.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(empty.status().message().find("empty"), std::string::npos);
  std::filesystem::remove(empty_path);

  EXPECT_EQ(GgufFile::from_memory({}).status().code(), StatusCode::kCorrupt);
}

TEST(GgufReader, LlamaSpmVocabularyHasKnownContents) {
  auto file = GgufFile::open(vocab_path("ggml-vocab-llama-spm.gguf"));
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const GgufFile& f = **file;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(f.get_string("tokenizer.ggml.model").value(), "llama");
  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status().to_string();
  ASSERT_EQ(tokens->size(), 32000u);
  // Llama 2's SentencePiece vocabulary: <unk>, <s>, </s>, then 256 byte tokens.
  EXPECT_EQ((*tokens)[0], "<unk>");
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ((*tokens)[2], "</s>");
  EXPECT_EQ((*tokens)[3], "<0x00>");
  auto scores = f.get_float_array("tokenizer.ggml.scores");
  ASSERT_TRUE(scores.ok()) << scores.status().to_string();
  EXPECT_EQ(scores->size(), 32000u);
  auto types = f.get_int_array("tokenizer.ggml.token_type");
  ASSERT_TRUE(types.ok()) << types.status().to_string();
  EXPECT_EQ(types->size(), 32000u);
}

TEST(GgufReader, Gpt2VocabularyHasKnownContents) {
  auto file = GgufFile::open(vocab_path("ggml-vocab-gpt-2.gguf"));
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const GgufFile& f = **file;
  EXPECT_EQ(f.get_string("tokenizer.ggml.model").value(), "gpt2");
  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status().to_string();
  ASSERT_EQ(tokens->size(), 50257u);
  EXPECT_EQ((*tokens)[0], "!");  // GPT-2's byte-level vocabulary starts with '!'
  EXPECT_EQ(tokens->back(), "<|endoftext|>");
  auto merges = f.get_string_array("tokenizer.ggml.merges");
  ASSERT_TRUE(merges.ok()) << merges.status().to_string();
  EXPECT_EQ(merges->size(), 50000u);
}

TEST(GgufReader, EveryVocabularyFileParses) {
  int n_files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(vocab_path(""))) {
    if (entry.path().extension() != ".gguf") continue;
    ++n_files;
    SCOPED_TRACE(entry.path().string());
    auto file = GgufFile::open(entry.path().string());
    ASSERT_TRUE(file.ok()) << file.status().to_string();
    EXPECT_EQ((*file)->version(), 3u);
    EXPECT_TRUE((*file)->tensors().empty());
    EXPECT_TRUE((*file)->get_string("tokenizer.ggml.model").ok());
    auto tokens = (*file)->get_string_array("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens.ok()) << tokens.status().to_string();
    EXPECT_GT(tokens->size(), 1000u);
  }
  EXPECT_GE(n_files, 12);
}

}  // namespace
}  // namespace kvforge::gguf
