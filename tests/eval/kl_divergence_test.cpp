// KL divergence of a candidate KV cache against a reference: the per-row
// comparison against a naive double-precision computation and closed forms,
// the percentile arithmetic on known vectors, and runs on stories260K
// (identical caches give exactly 0; the perplexities are those of
// perplexity(); f16 against f32 gives a small positive KL).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "eval/kl_divergence.h"
#include "eval/perplexity.h"
#include "kv/contiguous_kv_cache.h"
#include "kv/kv_cache_factory.h"
#include "model/model.h"
#include "stories_fixture.h"
#include "tokenizer/tokenizer.h"

namespace kvforge {
namespace {

// ---- naive references -------------------------------------------------------

std::vector<double> naive_softmax(const std::vector<float>& x) {
  const double m = *std::max_element(x.begin(), x.end());
  std::vector<double> p(x.size());
  double sum = 0;
  for (size_t i = 0; i < x.size(); ++i) sum += p[i] = std::exp(double(x[i]) - m);
  for (double& v : p) v /= sum;
  return p;
}

double naive_kl(const std::vector<float>& a, const std::vector<float>& b) {
  const std::vector<double> p = naive_softmax(a), q = naive_softmax(b);
  double kl = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] > 0) kl += p[i] * std::log(p[i] / q[i]);
  }
  return kl;
}

std::vector<float> random_logits(std::mt19937& rng, int n, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = d(rng);
  return x;
}

// ---- compare_logits -----------------------------------------------------------

TEST(CompareLogits, TwoTokenClosedForm) {
  // P = (1/2, 1/2), Q = (1, e) / (1 + e):
  // KL = 1/2 log((1+e)/2) + 1/2 log((1+e)/(2e)) = log((1+e)/2) - 1/2 = 0.1201145...
  const float p[] = {0.0f, 0.0f};
  const float q[] = {0.0f, 1.0f};
  const KlToken t = compare_logits(p, q, 2, /*target=*/1);
  EXPECT_NEAR(t.kl, 0.12011451, 1e-8);
  EXPECT_NEAR(t.kl, std::log((1 + std::exp(1.0)) / 2) - 0.5, 1e-15);
  EXPECT_NEAR(t.nll_p, std::log(2.0), 1e-15);
  EXPECT_NEAR(t.nll_q, std::log(1 + std::exp(1.0)) - 1, 1e-15);
  EXPECT_FALSE(t.top1_agree);  // P's tie resolves to token 0, Q's top is token 1
}

TEST(CompareLogits, IdenticalRowsGiveExactlyZero) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    const std::vector<float> x = random_logits(rng, 512, 4.0f);
    const KlToken t = compare_logits(x.data(), x.data(), 512, trial);
    EXPECT_EQ(t.kl, 0.0);
    EXPECT_EQ(t.nll_p, t.nll_q);
    EXPECT_TRUE(t.top1_agree);
  }
}

TEST(CompareLogits, MatchesNaiveDoubleReference) {
  std::mt19937 rng(42);
  for (int trial = 0; trial < 50; ++trial) {
    const int n = 1 + trial * 13;
    const std::vector<float> p = random_logits(rng, n, 3.0f);
    std::vector<float> q = p;
    std::normal_distribution<float> noise(0.0f, trial % 2 ? 0.01f : 1.0f);
    for (float& v : q) v += noise(rng);
    const int32_t target = trial % n;
    const KlToken t = compare_logits(p.data(), q.data(), n, target);
    const double expected = naive_kl(p, q);
    EXPECT_NEAR(t.kl, expected, 1e-12 + 1e-9 * expected) << "n=" << n;
    EXPECT_GE(t.kl, -1e-15);
    EXPECT_NEAR(t.nll_p, -std::log(naive_softmax(p)[static_cast<size_t>(target)]), 1e-12);
    EXPECT_NEAR(t.nll_q, -std::log(naive_softmax(q)[static_cast<size_t>(target)]), 1e-12);
  }
}

TEST(CompareLogits, InvariantUnderShiftOfLogits) {
  // Logits on a 1/64 grid, shifted by 512: every float is exact, so Q = P.
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> k(-512, 512);
  std::vector<float> p(300), q(300);
  for (size_t i = 0; i < p.size(); ++i) {
    p[i] = float(k(rng)) / 64;
    q[i] = p[i] + 512.0f;
  }
  const KlToken t = compare_logits(p.data(), q.data(), 300, 5);
  EXPECT_NEAR(t.kl, 0.0, 1e-12);
  EXPECT_NEAR(t.nll_p, t.nll_q, 1e-9);
  EXPECT_TRUE(t.top1_agree);
}

TEST(CompareLogits, IsNotSymmetric) {
  const float p[] = {2.0f, 0.0f, -1.0f};
  const float q[] = {0.0f, 1.0f, 0.5f};
  const std::vector<float> vp(p, p + 3), vq(q, q + 3);
  const double pq = compare_logits(p, q, 3, 0).kl;
  const double qp = compare_logits(q, p, 3, 0).kl;
  EXPECT_NEAR(pq, naive_kl(vp, vq), 1e-14);
  EXPECT_NEAR(qp, naive_kl(vq, vp), 1e-14);
  EXPECT_GT(std::abs(pq - qp), 1e-3);
}

TEST(CompareLogits, ImpossibleTokensUnderP) {
  // P gives token 2 probability 0: it contributes nothing to KL(P || Q).
  const float inf = std::numeric_limits<float>::infinity();
  const float p[] = {0.0f, 0.0f, -inf};
  const float q[] = {0.0f, 0.0f, 0.0f};
  const KlToken t = compare_logits(p, q, 3, 0);
  EXPECT_NEAR(t.kl, std::log(1.5), 1e-15);  // 2 · 1/2 · log((1/2) / (1/3))
  // And the other way round Q gives probability 0 where P does not: infinite.
  EXPECT_EQ(compare_logits(q, p, 3, 0).kl, inf);
}

TEST(CompareLogits, TopOneAgreementAndTies) {
  const float a[] = {1.0f, 3.0f, 3.0f};
  const float b[] = {3.0f, 1.0f, 3.0f};
  const float c[] = {0.0f, 3.0f, 2.9f};
  EXPECT_FALSE(compare_logits(a, b, 3, 0).top1_agree);  // ties: lowest id, 1 vs 0
  EXPECT_TRUE(compare_logits(a, c, 3, 0).top1_agree);
  EXPECT_FALSE(compare_logits(b, c, 3, 0).top1_agree);
}

// ---- percentile -----------------------------------------------------------------

double sorted_percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double h = (double(v.size()) - 1) * p / 100;
  const size_t lo = static_cast<size_t>(h);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (h - double(lo)) * (v[hi] - v[lo]);
}

TEST(Percentile, KnownVectors) {
  std::vector<double> v = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(percentile(v, 25), 1.75);
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile(v, 90), 3.7);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 4);
  std::vector<double> hundred(101);
  for (int i = 0; i <= 100; ++i) hundred[static_cast<size_t>(i)] = 100 - i;
  EXPECT_DOUBLE_EQ(percentile(hundred, 99), 99);
  EXPECT_DOUBLE_EQ(percentile(hundred, 99.5), 99.5);
  std::vector<double> one = {0.25};
  EXPECT_EQ(percentile(one, 99), 0.25);
  std::vector<double> none;
  EXPECT_EQ(percentile(none, 50), 0);
  std::vector<double> dup = {5, 5, 5, 1};
  EXPECT_DOUBLE_EQ(percentile(dup, 50), 5);
  EXPECT_DOUBLE_EQ(percentile(dup, 10), 1 + 0.3 * 4);
}

TEST(Percentile, NanOrdersLast) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> v = {3, nan, 1, 2};
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);
  EXPECT_TRUE(std::isnan(percentile(v, 100)));
  EXPECT_TRUE(std::isnan(percentile(v, 99)));
}

TEST(Percentile, MatchesFullSort) {
  std::mt19937 rng(11);
  std::exponential_distribution<double> d(1e4);
  for (int n : {2, 3, 10, 99, 100, 1001}) {
    std::vector<double> v(static_cast<size_t>(n));
    for (double& x : v) x = d(rng);
    for (double p : {0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0}) {
      std::vector<double> copy = v;
      EXPECT_DOUBLE_EQ(percentile(copy, p), sorted_percentile(v, p)) << n << " " << p;
    }
  }
}

// ---- stories260K ----------------------------------------------------------------

class Stories260K : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = &eval_test::stories_model();
    tokens_ = new std::vector<int32_t>(eval_test::stories_text_tokens(40000));
    bos_ = eval_test::stories_tokenizer().bos_id().value_or(-1);
  }
  static void TearDownTestSuite() { delete tokens_; }

  static KlOptions options(int32_t n_ctx, int32_t windows) {
    KlOptions o;
    o.n_ctx = n_ctx;
    o.bos_id = bos_;
    o.max_windows = windows;
    return o;
  }
  static std::unique_ptr<KvCache> cache(ContiguousKvType type, int32_t n_ctx = 128) {
    return std::make_unique<ContiguousKvCache>(model_->kv_shape(), 1, n_ctx, type);
  }

  static Model* model_;
  static std::vector<int32_t>* tokens_;
  static int32_t bos_;
};

Model* Stories260K::model_ = nullptr;
std::vector<int32_t>* Stories260K::tokens_ = nullptr;
int32_t Stories260K::bos_ = -1;

TEST_F(Stories260K, IdenticalCachesGiveZeroKlAndFullAgreement) {
  for (ContiguousKvType type : {ContiguousKvType::kF32, ContiguousKvType::kF16}) {
    auto a = cache(type), b = cache(type);
    auto r = kl_divergence(*model_, *a, *b, *tokens_, options(128, 3));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    ASSERT_EQ(r->n_windows, 3);
    ASSERT_EQ(r->n_scored(), 3 * (128 - 1 - 64));
    for (double kl : r->token_kl) ASSERT_EQ(kl, 0.0);
    EXPECT_EQ(r->mean_kl(), 0.0);
    EXPECT_EQ(r->kl_percentile(99), 0.0);
    EXPECT_EQ(r->top1_agreement(), 1.0);
    EXPECT_EQ(r->n_top1_agree, r->n_scored());
    EXPECT_EQ(r->reference.sum_nll, r->candidate.sum_nll);
    EXPECT_EQ(a->n_tokens(SeqId{0}), 0);  // emptied afterwards
  }
}

TEST_F(Stories260K, PerplexitiesAreThoseOfPerplexity) {
  auto ref = cache(ContiguousKvType::kF32), cand = cache(ContiguousKvType::kF16);
  const KlOptions o = options(128, 4);
  auto r = kl_divergence(*model_, *ref, *cand, *tokens_, o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  PerplexityOptions po;
  po.n_ctx = o.n_ctx;
  po.bos_id = o.bos_id;
  po.max_windows = o.max_windows;
  auto p32 = perplexity(*model_, *cache(ContiguousKvType::kF32), *tokens_, po);
  auto p16 = perplexity(*model_, *cache(ContiguousKvType::kF16), *tokens_, po);
  ASSERT_TRUE(p32.ok() && p16.ok());
  EXPECT_EQ(r->reference.n_scored, p32->n_scored);
  EXPECT_EQ(r->reference.n_windows, p32->n_windows);
  EXPECT_EQ(r->reference.sum_nll, p32->sum_nll);
  EXPECT_EQ(r->reference.sum_nll_sq, p32->sum_nll_sq);
  EXPECT_EQ(r->reference.perplexity(), p32->perplexity());
  EXPECT_EQ(r->candidate.sum_nll, p16->sum_nll);
  EXPECT_EQ(r->candidate.perplexity(), p16->perplexity());
  EXPECT_EQ(r->candidate.perplexity_stderr(), p16->perplexity_stderr());
}

TEST_F(Stories260K, F16AgainstF32IsSmallAndPositive) {
  auto ref = cache(ContiguousKvType::kF32), cand = cache(ContiguousKvType::kF16);
  auto r = kl_divergence(*model_, *ref, *cand, *tokens_, options(128, 16));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->n_windows, 16);
  EXPECT_GT(r->mean_kl(), 0.0);
  EXPECT_LT(r->mean_kl(), 1e-4);  // f16 keeps ~11 significant bits of K and V
  EXPECT_LT(r->kl_percentile(99), 1e-3);
  EXPECT_GE(r->kl_percentile(99), r->kl_percentile(50));
  EXPECT_GE(r->kl_percentile(100), r->kl_percentile(99));
  EXPECT_GT(r->top1_agreement(), 0.98);
  for (double kl : r->token_kl) ASSERT_GE(kl, -1e-12);
  EXPECT_NEAR(r->candidate.perplexity() / r->reference.perplexity(), 1.0, 0.01);
  EXPECT_NE(r->candidate.sum_nll, r->reference.sum_nll);
  EXPECT_GT(r->mean_kl_stderr(), 0.0);
  EXPECT_LT(r->mean_kl_stderr(), r->mean_kl());
}

TEST_F(Stories260K, PagedCodecsOrderedByPrecision) {
  // Paged caches from the factory against the contiguous f32 cache: fewer
  // bits give a larger KL and lower agreement; a KIVI codec whose
  // full-precision window covers the whole context stores everything in f32.
  auto paged = [](const std::string& codec) {
    KvCacheOptions o;
    o.codec = codec;
    o.n_ctx = 128;
    auto kv = make_kv_cache(model_->kv_shape(), o);
    EXPECT_TRUE(kv.ok()) << codec << ": " << kv.status().to_string();
    return kv.ok() ? std::move(kv).value() : nullptr;
  };
  auto ref = cache(ContiguousKvType::kF32);
  std::vector<KlResult> results;
  for (const char* codec : {"f32", "f16", "bf16", "int8", "int4", "kivi2:r=128"}) {
    auto cand = paged(codec);
    ASSERT_TRUE(cand);
    auto r = kl_divergence(*model_, *ref, *cand, *tokens_, options(128, 8));
    ASSERT_TRUE(r.ok()) << codec << ": " << r.status().to_string();
    results.push_back(std::move(r).value());
  }
  const KlResult &f32 = results[0], &f16 = results[1], &bf16 = results[2], &int8 = results[3],
                 &int4 = results[4], &kivi = results[5];
  EXPECT_LT(f32.mean_kl(), 1e-9);
  EXPECT_EQ(f32.top1_agreement(), 1.0);
  EXPECT_GT(f16.mean_kl(), 0.0);
  EXPECT_LT(f16.mean_kl(), bf16.mean_kl());
  EXPECT_LT(bf16.mean_kl(), int8.mean_kl());
  EXPECT_LT(int8.mean_kl(), int4.mean_kl());
  EXPECT_LT(int8.mean_kl(), 1e-2);
  EXPECT_GT(int8.top1_agreement(), 0.95);
  EXPECT_GE(f16.top1_agreement(), int4.top1_agreement());
  EXPECT_LT(kivi.mean_kl(), 1e-9);
  // Whatever the codec, the reference side is the same computation.
  for (const KlResult& r : results) EXPECT_EQ(r.reference.sum_nll, f32.reference.sum_nll);
}

TEST_F(Stories260K, PerTokenKlMatchesNaiveRecomputation) {
  // Re-run the first window with both caches independently and compute KL of
  // every scored position with the naive formula.
  const int32_t n_ctx = 128, n_vocab = model_->config().n_vocab;
  auto ref = cache(ContiguousKvType::kF32), cand = cache(ContiguousKvType::kF16);
  auto r = kl_divergence(*model_, *ref, *cand, *tokens_, options(n_ctx, 1));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  std::vector<int32_t> window(tokens_->begin(), tokens_->begin() + n_ctx);
  window[0] = bos_;
  std::vector<float> lp(static_cast<size_t>(n_ctx) * n_vocab), lq(lp.size());
  auto ref2 = cache(ContiguousKvType::kF32), cand2 = cache(ContiguousKvType::kF16);
  for (int32_t start = 0; start < n_ctx; start += 64) {
    const std::span<const int32_t> part(window.data() + start, 64);
    const size_t off = static_cast<size_t>(start) * n_vocab;
    ASSERT_TRUE(
        model_->forward(part, start, *ref2, SeqId{0}, LogitsFor::kAllTokens, &lp[off]).ok());
    ASSERT_TRUE(
        model_->forward(part, start, *cand2, SeqId{0}, LogitsFor::kAllTokens, &lq[off]).ok());
  }
  ASSERT_EQ(r->token_kl.size(), size_t(n_ctx - 1 - n_ctx / 2));
  int64_t agree = 0;
  for (int32_t i = n_ctx / 2; i + 1 < n_ctx; ++i) {
    const auto row = [&](const std::vector<float>& l) {
      return std::vector<float>(l.begin() + int64_t(i) * n_vocab,
                                l.begin() + int64_t(i + 1) * n_vocab);
    };
    const std::vector<float> p = row(lp), q = row(lq);
    const double expected = naive_kl(p, q);
    EXPECT_NEAR(r->token_kl[size_t(i - n_ctx / 2)], expected, 1e-12 + 1e-6 * expected) << i;
    agree += (std::max_element(p.begin(), p.end()) - p.begin()) ==
             (std::max_element(q.begin(), q.end()) - q.begin());
  }
  EXPECT_EQ(r->n_top1_agree, agree);
}

TEST_F(Stories260K, ProgressAndWindowLimit) {
  auto ref = cache(ContiguousKvType::kF32), cand = cache(ContiguousKvType::kF16);
  std::vector<int32_t> seen;
  auto r = kl_divergence(*model_, *ref, *cand, *tokens_, options(64, 5),
                         [&](int32_t done, int32_t total, const KlResult& running) {
                           EXPECT_EQ(total, 5);
                           EXPECT_EQ(running.n_windows, done);
                           EXPECT_EQ(running.n_scored(), int64_t(done) * (64 - 1 - 32));
                           seen.push_back(done);
                         });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(seen, (std::vector<int32_t>{1, 2, 3, 4, 5}));
}

TEST_F(Stories260K, BadInputIsAnError) {
  auto a = cache(ContiguousKvType::kF32), b = cache(ContiguousKvType::kF16);
  // The same cache twice.
  auto same = kl_divergence(*model_, *a, *a, *tokens_, options(128, 1));
  EXPECT_EQ(same.status().code(), StatusCode::kInvalidArgument);
  // Fewer tokens than one window.
  const std::vector<int32_t> few(tokens_->begin(), tokens_->begin() + 100);
  auto short_text = kl_divergence(*model_, *a, *b, few, options(128, 0));
  EXPECT_EQ(short_text.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(short_text.status().message().find("fewer than one window"), std::string::npos);
  auto empty = kl_divergence(*model_, *a, *b, std::span<const int32_t>(), options(128, 0));
  EXPECT_FALSE(empty.ok());
  auto tiny_ctx = kl_divergence(*model_, *a, *b, *tokens_, options(2, 0));
  EXPECT_EQ(tiny_ctx.status().code(), StatusCode::kInvalidArgument);
  // A candidate that cannot hold a window.
  auto small = cache(ContiguousKvType::kF16, 64);
  auto too_small = kl_divergence(*model_, *a, *small, *tokens_, options(128, 1));
  EXPECT_FALSE(too_small.ok());
  // Token ids outside the vocabulary.
  std::vector<int32_t> bad(*tokens_);
  bad[200] = 1 << 20;
  auto bad_ids = kl_divergence(*model_, *a, *b, bad, options(128, 2));
  EXPECT_FALSE(bad_ids.ok());
}

}  // namespace
}  // namespace kvforge
