// The decode protocol of the KL evaluation (eval/scored_logits.h) on
// stories260K: a press at full budget changes nothing (KL exactly 0 and full
// agreement, for every registered press), the per-position KL equals a
// direct re-implementation of the protocol with the cache hooks, a recorded
// reference gives the same result as running it alongside, the footprint
// measured follows the press, and the prefill protocol measures the codec's
// bytes per token.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "eval/kl_divergence.h"
#include "kv/kv_cache_factory.h"
#include "kv/press/kv_press.h"
#include "model/model.h"
#include "stories_fixture.h"
#include "tokenizer/tokenizer.h"

namespace kvforge {
namespace {

class DecodeProtocol : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = &eval_test::stories_model();
    tokens_ = new std::vector<int32_t>(eval_test::stories_text_tokens(30000));
    bos_ = eval_test::stories_tokenizer().bos_id().value_or(-1);
  }
  static void TearDownTestSuite() { delete tokens_; }

  static constexpr int32_t kCtx = 256;

  static KlOptions decode_options(int32_t windows) {
    KlOptions o;
    o.n_ctx = kCtx;
    o.bos_id = bos_;
    o.max_windows = windows;
    o.protocol = KlProtocol::kDecode;
    return o;
  }
  static std::unique_ptr<KvCache> paged(const std::string& codec, const std::string& press = "") {
    KvCacheOptions o;
    o.codec = codec;
    o.press = press;
    o.n_ctx = kCtx;
    o.prefix_sharing = false;
    auto kv = make_kv_cache(model_->kv_shape(), o);
    EXPECT_TRUE(kv.ok()) << codec << " " << press << ": " << kv.status().to_string();
    return kv.ok() ? std::move(kv).value() : nullptr;
  }

  static Model* model_;
  static std::vector<int32_t>* tokens_;
  static int32_t bos_;
};

Model* DecodeProtocol::model_ = nullptr;
std::vector<int32_t>* DecodeProtocol::tokens_ = nullptr;
int32_t DecodeProtocol::bos_ = -1;

double decode_test_kl(const float* p, const float* q, int32_t n) {
  double mp = p[0], mq = q[0];
  for (int32_t i = 1; i < n; ++i) {
    mp = std::max<double>(mp, p[i]);
    mq = std::max<double>(mq, q[i]);
  }
  double sp = 0, sq = 0;
  for (int32_t i = 0; i < n; ++i) {
    sp += std::exp(p[i] - mp);
    sq += std::exp(q[i] - mq);
  }
  double kl = 0;
  for (int32_t i = 0; i < n; ++i) {
    const double pi = std::exp(p[i] - mp) / sp;
    const double qi = std::exp(q[i] - mq) / sq;
    if (pi > 0) kl += pi * std::log(pi / qi);
  }
  return kl;
}

TEST_F(DecodeProtocol, EveryPressAtFullBudgetGivesExactlyZero) {
  ASSERT_FALSE(kv_press_names().empty());
  auto ref = paged("f32");
  for (const std::string& name : kv_press_names()) {
    auto cand = paged("f32", name + ":ratio=1");
    ASSERT_TRUE(cand);
    auto r = kl_divergence(*model_, *ref, *cand, *tokens_, decode_options(2));
    ASSERT_TRUE(r.ok()) << name << ": " << r.status().to_string();
    ASSERT_EQ(r->n_scored(), 2 * (kCtx - 1 - kCtx / 2));
    for (double kl : r->token_kl) ASSERT_EQ(kl, 0.0) << name;
    EXPECT_EQ(r->top1_agreement(), 1.0) << name;
    EXPECT_EQ(r->reference.sum_nll, r->candidate.sum_nll) << name;
    // Nothing was pressed: the candidate holds what the reference holds.
    EXPECT_EQ(r->context_bytes_per_token(), 4.0 * 2 * model_->config().n_layers *
                                                model_->kv_shape().n_kv_heads *
                                                model_->kv_shape().head_dim)
        << name;
  }
}

TEST_F(DecodeProtocol, MatchesTheProtocolWrittenOut) {
  // One window, run by hand: the first half through the prompt hooks, then
  // one teacher-forced token per forward call with the decode hook.
  const std::string press = "snapkv:ratio=0.25";
  auto ref = paged("f32"), cand = paged("int8", press);
  auto r = kl_divergence(*model_, *ref, *cand, *tokens_, decode_options(1));
  ASSERT_TRUE(r.ok()) << r.status().to_string();

  std::vector<int32_t> window(tokens_->begin(), tokens_->begin() + kCtx);
  window[0] = bos_;
  const int32_t n_vocab = model_->config().n_vocab;
  auto run = [&](KvCache& kv) {
    std::vector<float> rows;
    std::vector<float> logits(static_cast<size_t>(n_vocab));
    const int32_t half = kCtx / 2;
    kv.begin_prompt(SeqId{0}, half);
    EXPECT_TRUE(model_
                    ->forward(std::span<const int32_t>(window.data(), half), 0, kv, SeqId{0},
                              LogitsFor::kLastToken, logits.data())
                    .ok());
    EXPECT_TRUE(kv.end_prompt(SeqId{0}).ok());
    for (int32_t i = half; i + 1 < kCtx; ++i) {
      EXPECT_TRUE(model_
                      ->forward(std::span<const int32_t>(window.data() + i, 1), i, kv, SeqId{0},
                                LogitsFor::kLastToken, logits.data())
                      .ok());
      EXPECT_TRUE(kv.end_decode_step(SeqId{0}).ok());
      rows.insert(rows.end(), logits.begin(), logits.end());
    }
    return rows;
  };
  auto ref2 = paged("f32"), cand2 = paged("int8", press);
  const std::vector<float> p = run(*ref2), q = run(*cand2);
  const size_t n = p.size() / static_cast<size_t>(n_vocab);
  ASSERT_EQ(r->token_kl.size(), n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const double expected = decode_test_kl(p.data() + i * static_cast<size_t>(n_vocab),
                                           q.data() + i * static_cast<size_t>(n_vocab), n_vocab);
    EXPECT_NEAR(r->token_kl[i], expected, 1e-9 + 1e-6 * expected) << i;
    sum += expected;
  }
  // The press makes a real difference here, far above f32 rounding.
  EXPECT_GT(sum / static_cast<double>(n), 1e-3);
}

TEST_F(DecodeProtocol, RecordedReferenceGivesTheSameResult) {
  auto ref = paged("f32");
  const KlOptions o = decode_options(2);
  auto rows = record_reference(*model_, *ref, *tokens_, o);
  ASSERT_TRUE(rows.ok()) << rows.status().to_string();
  EXPECT_EQ(rows->logits.size(), reference_rows_bytes(static_cast<int64_t>(tokens_->size()),
                                                      model_->config().n_vocab, o) /
                                     sizeof(float));
  for (const std::string press : {"h2o:ratio=0.5", "streaming:ratio=0.25"}) {
    auto a = paged("f16", press), b = paged("f16", press);
    auto stored = kl_divergence(*model_, *rows, *a, *tokens_);
    auto ref2 = paged("f32");
    auto alongside = kl_divergence(*model_, *ref2, *b, *tokens_, o);
    ASSERT_TRUE(stored.ok() && alongside.ok());
    EXPECT_EQ(stored->token_kl, alongside->token_kl) << press;
    EXPECT_EQ(stored->n_top1_agree, alongside->n_top1_agree) << press;
    EXPECT_EQ(stored->reference.sum_nll, alongside->reference.sum_nll) << press;
    EXPECT_EQ(stored->context_bytes_per_token(), alongside->context_bytes_per_token()) << press;
  }
  // The reference's own footprint: f32, nothing pressed, 128 positions in 8
  // whole blocks of 16.
  EXPECT_EQ(rows->context_bytes_per_token, 4.0 * 2 * model_->config().n_layers *
                                               model_->kv_shape().n_kv_heads *
                                               model_->kv_shape().head_dim);
  // Rows of another text are refused.
  const std::vector<int32_t> shorter(tokens_->begin(), tokens_->begin() + kCtx);
  auto c = paged("f16");
  EXPECT_FALSE(kl_divergence(*model_, *rows, *c, shorter).ok());
}

TEST_F(DecodeProtocol, FootprintFollowsThePress) {
  auto ref = paged("f32");
  const double f16_bytes = 2.0 * 2 * model_->config().n_layers * model_->kv_shape().n_kv_heads *
                           model_->kv_shape().head_dim;
  auto none = paged("f16");
  auto r_none = kl_divergence(*model_, *ref, *none, *tokens_, decode_options(2));
  ASSERT_TRUE(r_none.ok());
  EXPECT_EQ(r_none->context_bytes_per_token(), f16_bytes);
  double previous = f16_bytes;
  double previous_kl = r_none->mean_kl();
  for (const char* ratio : {"0.75", "0.5"}) {
    auto cand = paged("f16", std::string("streaming:ratio=") + ratio);
    auto r = kl_divergence(*model_, *ref, *cand, *tokens_, decode_options(2));
    ASSERT_TRUE(r.ok());
    // Fewer bytes after the press, and more KL, the smaller the budget.
    EXPECT_LT(r->context_bytes_per_token(), previous) << ratio;
    EXPECT_GT(r->mean_kl(), previous_kl) << ratio;
    // The decode steps add uncompressed tokens: the scored mean lies between.
    EXPECT_GT(r->scored_bytes_per_token(), r->context_bytes_per_token()) << ratio;
    EXPECT_LT(r->scored_bytes_per_token(), f16_bytes * 1.1) << ratio;
    previous = r->context_bytes_per_token();
    previous_kl = r->mean_kl();
  }
}

TEST_F(DecodeProtocol, PrefillProtocolMeasuresTheCodec) {
  auto ref = paged("f32"), cand = paged("int8");
  KlOptions o = decode_options(2);
  o.protocol = KlProtocol::kPrefill;
  auto r = kl_divergence(*model_, *ref, *cand, *tokens_, o);
  ASSERT_TRUE(r.ok());
  // A window of 256 positions fills 16 blocks: bytes per position is the
  // codec's bytes per token exactly.
  EXPECT_EQ(r->context_bytes_per_token(), static_cast<double>(cand->bytes_per_token()));
  EXPECT_EQ(r->scored_bytes_per_token(), r->context_bytes_per_token());
}

}  // namespace
}  // namespace kvforge
