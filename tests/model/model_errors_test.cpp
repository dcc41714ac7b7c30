// Bad input to the model layer gives a Status naming the problem, never a
// crash: out-of-vocabulary ids, a full context, files that are not models.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>

#include "gguf/gguf.h"
#include "kv/contiguous_kv_cache.h"
#include "model/model.h"
#include "test_models.h"

namespace kvforge {
namespace {

TEST(ModelErrors, TokenOutsideVocabulary) {
  auto m = Model::load(testing::stories260k_gguf(), ModelOptions{1, 16});
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  ContiguousKvCache kv((*m)->kv_shape(), 1, 16, ContiguousKvType::kF32);
  std::vector<float> logits(512);
  const int32_t bad[2] = {1, 512};
  Status s = (*m)->forward(bad, 0, kv, SeqId{0}, LogitsFor::kLastToken, logits.data());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("512"), std::string::npos);
  EXPECT_EQ(kv.n_tokens(SeqId{0}), 0);  // nothing was appended
}

TEST(ModelErrors, ContextFullIsReportedAndLeavesCacheUnchanged) {
  auto m = Model::load(testing::stories260k_gguf(), ModelOptions{1, 16});
  ASSERT_TRUE(m.ok());
  ContiguousKvCache kv((*m)->kv_shape(), 1, 8, ContiguousKvType::kF32);
  std::vector<int32_t> ids(6, 300);
  ASSERT_TRUE((*m)->forward(ids, 0, kv, SeqId{0}, LogitsFor::kNone, nullptr).ok());
  Status s = (*m)->forward(ids, 6, kv, SeqId{0}, LogitsFor::kNone, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("ctx-size"), std::string::npos);
  EXPECT_EQ(kv.n_tokens(SeqId{0}), 6);
}

TEST(ModelErrors, VocabularyOnlyFileIsNotAModel) {
  auto m = Model::load(std::string(KVFORGE_SHARED_DIR) + "/vocab/ggml-vocab-gpt-2.gguf",
                       ModelOptions{1, 16});
  ASSERT_FALSE(m.ok());
  // The vocab file declares architecture gpt2, which is not a supported model.
  EXPECT_NE(m.status().message().find("gpt2"), std::string::npos) << m.status().to_string();
}

TEST(ModelErrors, MissingTensorAndUnknownArchitecture) {
  gguf::GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_uint32("llama.embedding_length", 8);
  w.set_uint32("llama.block_count", 1);
  w.set_uint32("llama.attention.head_count", 2);
  w.set_uint32("llama.feed_forward_length", 16);
  w.set_uint32("llama.context_length", 32);
  std::vector<float> embd(8 * 4, 0.5f), norm(8, 1.0f);
  w.add_tensor("token_embd.weight", TensorType::kF32, {8, 4},
               {reinterpret_cast<const uint8_t*>(embd.data()), embd.size() * 4});
  w.add_tensor("output_norm.weight", TensorType::kF32, {8},
               {reinterpret_cast<const uint8_t*>(norm.data()), norm.size() * 4});
  std::vector<uint8_t> bytes = w.serialize();
  auto file = gguf::GgufFile::from_memory(bytes);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  auto m = Model::from_file(std::move(file).value(), ModelOptions{1, 4});
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("blk.0.attn_norm.weight"), std::string::npos)
      << m.status().to_string();

  w.set_string("general.architecture", "mamba");
  bytes = w.serialize();
  auto file2 = gguf::GgufFile::from_memory(bytes);
  ASSERT_TRUE(file2.ok());
  auto m2 = Model::from_file(std::move(file2).value(), ModelOptions{1, 4});
  ASSERT_FALSE(m2.ok());
  EXPECT_EQ(m2.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(m2.status().message().find("mamba"), std::string::npos);
}

TEST(ModelErrors, TruncatedModelFile) {
  std::ifstream in(testing::stories260k_gguf(), std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(bytes.size(), 1000u);
  const std::string path = ::testing::TempDir() + "/truncated.gguf";
  for (size_t keep : {size_t(10), bytes.size() / 2, bytes.size() - 1}) {
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(keep));
    auto m = Model::load(path, ModelOptions{1, 4});
    EXPECT_FALSE(m.ok()) << keep;
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace kvforge
