// End-to-end checks on a real trained model: stories260K must reproduce the
// greedy continuation and per-token NLL of an independent NumPy reference
// (../shared/models/stories260K/reference_outputs.json).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "kernels/ops.h"
#include "kv/contiguous_kv_cache.h"
#include "model/model.h"
#include "test_models.h"

namespace kvforge {
namespace {

nlohmann::json reference() {
  std::ifstream in(testing::stories260k_reference_json());
  return nlohmann::json::parse(in);
}

std::unique_ptr<Model> load(int threads, int batch = 64,
                            const std::string& path = testing::stories260k_gguf()) {
  ModelOptions o;
  o.n_threads = threads;
  o.max_batch = batch;
  auto m = Model::load(path, o);
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  return m.ok() ? std::move(m).value() : nullptr;
}

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

TEST(Stories260K, ConfigFromMetadata) {
  auto m = load(1);
  ASSERT_TRUE(m);
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.n_ff, 172);
  EXPECT_EQ(c.n_ctx_train, 512);
  EXPECT_EQ(m->n_params(), 260032u);  // the README's parameter count
}

TEST(Stories260K, GreedyFromBosMatchesReference) {
  const auto ref = reference()["greedy_from_bos"];
  const auto expected = ref["generated_ids"].get<std::vector<int32_t>>();
  for (ContiguousKvType type : {ContiguousKvType::kF32, ContiguousKvType::kF16}) {
    auto m = load(2);
    ASSERT_TRUE(m);
    ContiguousKvCache kv(m->kv_shape(), 1, 512, type);
    std::vector<float> logits(512);
    std::vector<int32_t> got;
    int32_t token = 1;
    for (int32_t pos = 0; pos < static_cast<int32_t>(expected.size()); ++pos) {
      const int32_t one[1] = {token};
      ASSERT_TRUE(m->forward(one, pos, kv, SeqId{0}, LogitsFor::kLastToken, logits.data()).ok());
      token = argmax(logits);
      got.push_back(token);
    }
    EXPECT_EQ(got, expected) << (type == ContiguousKvType::kF32 ? "f32" : "f16") << " cache";
  }
}

// Mean NLL of the first validation story: within 1e-4 of the reference, and
// every per-token NLL within 1e-3.
TEST(Stories260K, StoryNllMatchesReference) {
  const auto ref = reference()["nll_first_story"];
  const auto ids = ref["input_ids"].get<std::vector<int32_t>>();
  const auto per_token = ref["per_token_nll"].get<std::vector<double>>();
  const double mean_expected = ref["mean_nll"].get<double>();
  for (int batch : {1, 7, 256}) {
    auto m = load(2, batch);
    ASSERT_TRUE(m);
    ContiguousKvCache kv(m->kv_shape(), 1, 512, ContiguousKvType::kF32);
    std::vector<float> logits(ids.size() * 512);
    ASSERT_TRUE(m->forward(ids, 0, kv, SeqId{0}, LogitsFor::kAllTokens, logits.data()).ok());
    double sum = 0;
    ASSERT_EQ(per_token.size(), ids.size() - 1);
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      const float* row = logits.data() + i * 512;
      const double nll = kernels::log_sum_exp(row, 512) - row[ids[i + 1]];
      EXPECT_NEAR(nll, per_token[i], 1e-3) << "token " << i;
      sum += nll;
    }
    EXPECT_NEAR(sum / double(per_token.size()), mean_expected, 1e-4) << "batch " << batch;
  }
}

// Prefill in one call and token-by-token decode give the same logits, and
// so do different thread counts.
TEST(Stories260K, PrefillEqualsDecodeAndThreadCountsAgree) {
  const auto ids = reference()["nll_first_story"]["input_ids"].get<std::vector<int32_t>>();
  const size_t n = 40;
  std::vector<float> all(n * 512);
  {
    auto m = load(1, 256);
    ContiguousKvCache kv(m->kv_shape(), 1, 512, ContiguousKvType::kF32);
    ASSERT_TRUE(
        m->forward(std::span(ids.data(), n), 0, kv, SeqId{0}, LogitsFor::kAllTokens, all.data())
            .ok());
  }
  for (int threads : {1, 3}) {
    auto m = load(threads, 256);
    ContiguousKvCache kv(m->kv_shape(), 1, 512, ContiguousKvType::kF32);
    std::vector<float> logits(512);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_TRUE(m->forward(std::span(ids.data() + i, 1), static_cast<int32_t>(i), kv, SeqId{0},
                             LogitsFor::kLastToken, logits.data())
                      .ok());
      for (int v = 0; v < 512; ++v) ASSERT_NEAR(logits[v], all[i * 512 + v], 1e-4) << i;
    }
  }
}

// Many sequences' last rows go through the output matrix in groups
// (Model::last_token_logits): 41 decoding sequences make a group of 32 and
// one of 9, next to an item that wants every row's logits. Each item's
// logits must equal, bit for bit, those of the same tokens run alone
// (this also holds the element-wise kernels to it: n_ff = 172 puts rows'
// elements at every position of a vector, swiglu's tail included).
// The items' logits either in buffers of their own (copied out of the
// model's group rows) or as consecutive rows of one array, which the model
// writes in place (as the scheduler lays them out), with one item out of
// line to break a group's run. Each sequence but the last has
// `tokens_each` tokens (more than one puts rows past position 0, where RoPE
// rotates).
void expect_batched_logits_equal_each_sequence_alone(const std::string& path, int n_seqs,
                                                     int tokens_each) {
  auto batched = load(2, 128, path);
  auto alone = load(2, 128, path);
  ASSERT_TRUE(batched && alone);
  const int32_t vocab = batched->config().n_vocab;
  for (const bool one_array : {false, true}) {
    ContiguousKvCache kv(batched->kv_shape(), n_seqs, 64, ContiguousKvType::kF32);
    std::vector<std::vector<int32_t>> tokens(n_seqs);
    std::vector<std::vector<float>> own(n_seqs);
    std::vector<float> rows(static_cast<size_t>(n_seqs) * static_cast<size_t>(vocab), 0.0f);
    std::vector<ForwardItem> items(n_seqs);
    for (int s = 0; s < n_seqs; ++s) {
      const bool all_rows = s == n_seqs - 1;
      const bool out_of_line = s == 5;
      if (all_rows) {
        tokens[s] = {1, 403, 75};
      } else {
        for (int i = 0; i < tokens_each; ++i) tokens[s].push_back((s * 37 + i * 11) % vocab);
      }
      const size_t logit_rows = all_rows ? tokens[s].size() : 1;
      own[s].assign(logit_rows * static_cast<size_t>(vocab), 0.0f);
      float* logits = one_array && !all_rows && !out_of_line
                          ? rows.data() + static_cast<size_t>(s) * static_cast<size_t>(vocab)
                          : own[s].data();
      items[s] = ForwardItem{SeqId{s}, 0, tokens[s],
                             all_rows ? LogitsFor::kAllTokens : LogitsFor::kLastToken, logits};
    }
    ASSERT_TRUE(batched->forward_batch(items, kv).ok());
    for (int s = 0; s < n_seqs; ++s) {
      ContiguousKvCache one(alone->kv_shape(), 1, 64, ContiguousKvType::kF32);
      std::vector<float> expected(own[s].size());
      ASSERT_TRUE(
          alone->forward(tokens[s], 0, one, SeqId{0}, items[s].which, expected.data()).ok());
      const std::vector<float> got(items[s].logits, items[s].logits + expected.size());
      EXPECT_EQ(got, expected) << "sequence " << s << (one_array ? ", one array" : "");
    }
  }
}

TEST(Stories260K, BatchedLogitsEqualEachSequenceAlone) {
  expect_batched_logits_equal_each_sequence_alone(testing::stories260k_gguf(), 42, 1);
}

// kvtest-1k's rows are wide enough (81 rows of 256 to 512 elements) for
// the batch's norms, RoPE, residual adds and SwiGLU to be shared out over
// the threads (Model::for_rows).
TEST(KvTest1k, BatchedLogitsEqualEachSequenceAlone) {
  expect_batched_logits_equal_each_sequence_alone(testing::kvtest_1k_gguf(), 40, 2);
}

}  // namespace
}  // namespace kvforge
