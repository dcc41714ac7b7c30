// A llama2.c model as llama.cpp's own converter writes it (see
// llama_cpp_llama2c_gguf.h): "no token" special ids stored as uint32
// 4294967295 are absent with a note, not an error, and the file computes
// exactly what the bundled conversion of the same checkpoint computes.
#include <gtest/gtest.h>

#include "gguf/gguf.h"
#include "kv/contiguous_kv_cache.h"
#include "llama_cpp_llama2c_gguf.h"
#include "model/model.h"
#include "test_models.h"
#include "tokenizer/tokenizer.h"

namespace kvforge {
namespace {

class LlamaCppLlama2cGguf : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ours = gguf::GgufFile::open(testing::stories260k_gguf());
    ASSERT_TRUE(ours.ok()) << ours.status().to_string();
    ours_ = std::move(ours).value();
    gguf::GgufWriter writer;
    ASSERT_TRUE(testing::llama_cpp_llama2c_gguf(*ours_, writer).ok());
    bytes_ = writer.serialize();
  }

  std::unique_ptr<gguf::GgufFile> theirs() {
    auto file = gguf::GgufFile::from_memory(bytes_);
    EXPECT_TRUE(file.ok()) << file.status().to_string();
    return file.ok() ? std::move(file).value() : nullptr;
  }

  std::unique_ptr<gguf::GgufFile> ours_;
  std::vector<uint8_t> bytes_;
};

TEST_F(LlamaCppLlama2cGguf, NoTokenIdsAreAbsentWithANote) {
  auto file = theirs();
  ASSERT_TRUE(file);
  EXPECT_EQ(file->get_uint("tokenizer.ggml.padding_token_id").value(), 4294967295u);
  auto tok = tokenizer::Tokenizer::from_gguf(*file);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  const tokenizer::Tokenizer& t = **tok;
  EXPECT_EQ(t.padding_id(), std::nullopt);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.unknown_id(), 0);
  EXPECT_EQ(t.vocabulary().notes,
            (std::vector<std::string>{
                "tokenizer.ggml.padding_token_id = 4294967295: treated as absent",
                "tokenizer.ggml.seperator_token_id = 4294967295: treated as absent"}));
  // The same ids as the bundled file's tokenizer (cli_test: tokenize_ids).
  EXPECT_EQ(t.encode("Once upon a time", true, false),
            (std::vector<tokenizer::TokenId>{1, 403, 407, 261, 378}));
}

TEST_F(LlamaCppLlama2cGguf, ComputesWhatTheBundledConversionComputes) {
  auto file = theirs();
  ASSERT_TRUE(file);
  auto theirs_model = Model::from_file(std::move(file), ModelOptions{1, 16});
  ASSERT_TRUE(theirs_model.ok()) << theirs_model.status().to_string();
  auto ours_model = Model::load(testing::stories260k_gguf(), ModelOptions{1, 16});
  ASSERT_TRUE(ours_model.ok()) << ours_model.status().to_string();
  EXPECT_EQ((*theirs_model)->config().n_ctx_train, 128);
  EXPECT_EQ((*ours_model)->config().n_ctx_train, 512);

  const std::vector<int32_t> ids = {1, 403, 407, 261, 378};
  std::vector<std::vector<float>> logits;
  for (Model* m : {theirs_model->get(), ours_model->get()}) {
    ContiguousKvCache kv(m->kv_shape(), 1, 16, ContiguousKvType::kF32);
    logits.emplace_back(ids.size() * 512);
    ASSERT_TRUE(m->forward(ids, 0, kv, SeqId{0}, LogitsFor::kAllTokens, logits.back().data()).ok());
  }
  EXPECT_EQ(logits[0], logits[1]);
}

}  // namespace
}  // namespace kvforge
