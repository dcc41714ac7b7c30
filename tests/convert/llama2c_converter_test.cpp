// The llama2.c converter: byte-exact reproduction of the committed
// models/stories260K.gguf, the metadata and tensors it writes, and clear
// errors for inputs that do not match their headers.
#include "convert/llama2c_converter.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "convert/file_bytes.h"
#include "convert/llama2c_tokenizer.h"
#include "gguf/gguf.h"

namespace kvforge::convert {
namespace {

const std::string kShared = KVFORGE_SHARED_DIR;
const std::string kStoriesModel = kShared + "/models/stories260K/stories260K.bin";
const std::string kStoriesTokenizer = kShared + "/models/stories260K/tok512.bin";
const std::string kAidreamsModel = kShared + "/models/aidreams260K/aidreams260K.bin";
const std::string kAidreamsTokenizer = kShared + "/models/aidreams260K/tok512.bin";
const std::string kCommittedGguf = std::string(KVFORGE_SOURCE_DIR) + "/models/stories260K.gguf";

std::vector<uint8_t> read_or_die(const std::string& path) {
  auto bytes = read_file_bytes(path);
  EXPECT_TRUE(bytes.ok()) << bytes.status().to_string();
  return bytes.ok() ? std::move(bytes).value() : std::vector<uint8_t>{};
}

// A small llama2.c checkpoint with every float equal to its index, so that
// tensor placement can be checked value by value.
std::vector<uint8_t> make_checkpoint(const int32_t header[7], size_t n_floats) {
  std::vector<uint8_t> bytes(28 + n_floats * 4);
  std::memcpy(bytes.data(), header, 28);
  for (size_t i = 0; i < n_floats; ++i) {
    const float v = static_cast<float>(i);
    std::memcpy(bytes.data() + 28 + i * 4, &v, 4);
  }
  return bytes;
}

// A tokenizer.bin for `n` tokens: specials, then single letters.
std::vector<uint8_t> make_tokenizer(int n) {
  std::vector<uint8_t> bytes;
  auto put = [&](const void* p, size_t size) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + size);
  };
  const int32_t max_len = 7;
  put(&max_len, 4);
  for (int id = 0; id < n; ++id) {
    std::string text = id == 0 ? "<unk>" : id == 1 ? "\n<s>\n" : id == 2 ? "\n</s>\n" : " a";
    text.back() = static_cast<char>(id >= 3 ? 'a' + id % 26 : text.back());
    const float score = -static_cast<float>(id);
    const auto length = static_cast<int32_t>(text.size());
    put(&score, 4);
    put(&length, 4);
    put(text.data(), text.size());
  }
  return bytes;
}

TEST(Llama2cConverter, ReproducesCommittedStories260kByteForByte) {
  const auto model = read_or_die(kStoriesModel);
  const auto tokenizer = read_or_die(kStoriesTokenizer);
  const auto committed = read_or_die(kCommittedGguf);
  auto converted = convert_llama2c_bytes(model, tokenizer, "stories260K");
  ASSERT_TRUE(converted.ok()) << converted.status().to_string();
  ASSERT_EQ(converted->size(), committed.size());
  EXPECT_TRUE(*converted == committed) << "models/stories260K.gguf differs from a fresh conversion";
}

TEST(Llama2cConverter, FileVariantWritesTheSameBytes) {
  const auto out = std::filesystem::temp_directory_path() / "kvforge_convert_test_stories.gguf";
  ASSERT_TRUE(convert_llama2c(kStoriesModel, kStoriesTokenizer, out.string()).ok());
  EXPECT_TRUE(read_or_die(out.string()) == read_or_die(kCommittedGguf));
  std::filesystem::remove(out);
}

TEST(Llama2cConverter, Stories260kMetadataAndTensors) {
  const auto model = read_or_die(kStoriesModel);
  auto converted = convert_llama2c_bytes(model, read_or_die(kStoriesTokenizer), "stories260K");
  ASSERT_TRUE(converted.ok());
  auto file = gguf::GgufFile::from_memory(*converted);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const gguf::GgufFile& f = **file;
  EXPECT_EQ(f.get_string("general.architecture").value(), "llama");
  EXPECT_EQ(f.get_uint("llama.embedding_length").value(), 64u);
  EXPECT_EQ(f.get_uint("llama.feed_forward_length").value(), 172u);
  EXPECT_EQ(f.get_uint("llama.block_count").value(), 5u);
  EXPECT_EQ(f.get_uint("llama.attention.head_count").value(), 8u);
  EXPECT_EQ(f.get_uint("llama.attention.head_count_kv").value(), 4u);
  EXPECT_EQ(f.get_uint("llama.rope.dimension_count").value(), 8u);
  EXPECT_EQ(f.get_uint("llama.context_length").value(), 512u);
  EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("llama.rope.freq_base").value()), 10000.0f);

  const auto tokens = f.get_string_array("tokenizer.ggml.tokens").value();
  const auto types = f.get_int_array("tokenizer.ggml.token_type").value();
  ASSERT_EQ(tokens.size(), 512u);
  EXPECT_EQ(tokens[0], "<unk>");
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(tokens[2], "</s>");
  EXPECT_EQ(tokens[3], "<0x00>");
  EXPECT_EQ(tokens[258], "<0xFF>");
  EXPECT_EQ(types[0], 2);
  EXPECT_EQ(types[1], 3);
  EXPECT_EQ(types[3], 6);
  EXPECT_EQ(types[300], 1);
  for (const std::string& piece : tokens) EXPECT_EQ(piece.find(' '), std::string::npos) << piece;
  EXPECT_EQ(f.get_string("tokenizer.ggml.model").value(), "llama");
  EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_space_prefix").value());

  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);  // tied to token_embd
  const gguf::TensorInfo* wk = f.find_tensor("blk.4.attn_k.weight");
  ASSERT_NE(wk, nullptr);
  EXPECT_EQ(wk->dims, (std::vector<uint64_t>{64, 32}));
  // The embedding starts at byte 28 and blk.0's attention norm at byte
  // 131,100 of the checkpoint (stories260K/README.md); data is copied as is.
  const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(std::memcmp(embd->data, model.data() + 28, embd->n_bytes), 0);
  const gguf::TensorInfo* norm0 = f.find_tensor("blk.0.attn_norm.weight");
  ASSERT_NE(norm0, nullptr);
  EXPECT_EQ(std::memcmp(norm0->data, model.data() + 131100, 64 * 4), 0);
}

TEST(Llama2cConverter, ConvertsAidreamsWithPlainMultiHeadAttention) {
  auto converted = convert_llama2c_bytes(read_or_die(kAidreamsModel),
                                         read_or_die(kAidreamsTokenizer), "aidreams260K");
  ASSERT_TRUE(converted.ok()) << converted.status().to_string();
  auto file = gguf::GgufFile::from_memory(*converted);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*file)->get_uint("llama.attention.head_count_kv").value(), 4u);
  EXPECT_EQ((*file)->get_uint("llama.rope.dimension_count").value(), 16u);
  EXPECT_EQ((*file)->get_uint("llama.context_length").value(), 128u);
  EXPECT_EQ((*file)->find_tensor("blk.3.ffn_down.weight")->dims, (std::vector<uint64_t>{172, 64}));
}

TEST(Llama2cConverter, NegativeVocabSizeMeansSeparateOutputMatrix) {
  // dim 8, hidden 16, 1 layer, 2 heads, 1 kv head, vocab -5, seq_len 4.
  const int32_t header[7] = {8, 16, 1, 2, 1, -5, 4};
  const size_t floats = 5 * 8 + 8 + 64 + 2 * 32 + 64 + 8 + 3 * 128 + 8 + 2 * 4 * 2 + 5 * 8;
  auto converted = convert_llama2c_bytes(make_checkpoint(header, floats), make_tokenizer(5), "t");
  ASSERT_TRUE(converted.ok()) << converted.status().to_string();
  auto file = gguf::GgufFile::from_memory(*converted);
  ASSERT_TRUE(file.ok());
  const gguf::TensorInfo* output = (*file)->find_tensor("output.weight");
  ASSERT_NE(output, nullptr);
  EXPECT_EQ(output->dims, (std::vector<uint64_t>{8, 5}));
  float first = 0;
  std::memcpy(&first, output->data, 4);
  EXPECT_EQ(first, static_cast<float>(floats - 40));  // the last 40 floats of the file
  EXPECT_EQ((*file)->get_string_array("tokenizer.ggml.tokens").value()[3],
            "\xE2\x96\x81"
            "d");
}

TEST(Llama2cConverter, RejectsTruncatedCheckpoint) {
  auto model = read_or_die(kStoriesModel);
  model.resize(model.size() - 4);
  auto converted = convert_llama2c_bytes(model, read_or_die(kStoriesTokenizer), "x");
  ASSERT_FALSE(converted.ok());
  EXPECT_EQ(converted.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(converted.status().message().find("1056536 bytes"), std::string::npos)
      << converted.status().message();
  EXPECT_NE(converted.status().message().find("truncated"), std::string::npos);
}

TEST(Llama2cConverter, RejectsTrailingBytesAndShortHeader) {
  auto model = read_or_die(kStoriesModel);
  model.push_back(0);
  EXPECT_EQ(convert_llama2c_bytes(model, read_or_die(kStoriesTokenizer), "x").status().code(),
            StatusCode::kCorrupt);
  model.resize(10);
  EXPECT_EQ(convert_llama2c_bytes(model, read_or_die(kStoriesTokenizer), "x").status().code(),
            StatusCode::kCorrupt);
}

TEST(Llama2cConverter, RejectsInconsistentHeaders) {
  const int32_t bad_heads[7] = {10, 16, 1, 3, 1, 5, 4};  // 10 not divisible by 3
  const int32_t bad_kv[7] = {8, 16, 1, 2, 3, 5, 4};      // more kv heads than heads
  const int32_t zero_layers[7] = {8, 16, 0, 2, 1, 5, 4};
  const int32_t huge[7] = {INT32_MAX, INT32_MAX, INT32_MAX, 1, 1, INT32_MIN, INT32_MAX};
  for (const int32_t* header : {bad_heads, bad_kv, zero_layers, huge}) {
    const auto result = parse_llama2c_config(make_checkpoint(header, 100));
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kCorrupt) << result.status().to_string();
  }
}

TEST(Llama2cConverter, RejectsGarbageTokenizer) {
  const auto model = read_or_die(kStoriesModel);
  std::vector<uint8_t> garbage(6227);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<uint8_t>(i * 131 + 7);
  auto converted = convert_llama2c_bytes(model, garbage, "x");
  ASSERT_FALSE(converted.ok());
  EXPECT_EQ(converted.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(converted.status().message().find("tokenizer"), std::string::npos);
}

TEST(Llama2cConverter, RejectsTokenizerOfTheWrongSize) {
  const auto model = read_or_die(kStoriesModel);
  auto tokenizer = read_or_die(kStoriesTokenizer);
  auto longer = tokenizer;
  longer.push_back(0);
  EXPECT_EQ(convert_llama2c_bytes(model, longer, "x").status().code(), StatusCode::kCorrupt);
  tokenizer.resize(tokenizer.size() - 3);
  const auto shorter = convert_llama2c_bytes(model, tokenizer, "x");
  EXPECT_EQ(shorter.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(shorter.status().message().find("token 511"), std::string::npos)
      << shorter.status().message();
}

TEST(Llama2cConverter, ParsesTokenizerPieces) {
  const auto vocab = parse_llama2c_tokenizer(read_or_die(kStoriesTokenizer), 512);
  ASSERT_TRUE(vocab.ok());
  EXPECT_EQ(vocab->pieces[259 + 0].substr(0, 3),
            "\xE2\x96\x81");  // first merge starts with a space
  EXPECT_FLOAT_EQ(vocab->scores[260], -1.0f);
}

TEST(Llama2cConverter, MissingFileIsNotFound) {
  const Status status = convert_llama2c("/nonexistent/model.bin", kStoriesTokenizer, "/tmp/x.gguf");
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find("/nonexistent/model.bin"), std::string::npos);
}

}  // namespace
}  // namespace kvforge::convert
