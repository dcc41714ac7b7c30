#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <numeric>
#include <vector>

// Every heap allocation in this binary goes through these replacements, so
// the test below can count the ones made inside sample().
namespace {
std::atomic<bool> g_counting_allocations{false};
std::atomic<int64_t> g_allocation_count{0};

void* counted_allocation(std::size_t size_bytes, std::size_t alignment) {
  if (g_counting_allocations.load(std::memory_order_relaxed)) {
    g_allocation_count.fetch_add(1, std::memory_order_relaxed);
  }
  if (size_bytes == 0) size_bytes = 1;
  void* p = nullptr;
  if (alignment <= alignof(std::max_align_t)) {
    p = std::malloc(size_bytes);
  } else {
    // aligned_alloc wants a size that is a multiple of the alignment.
    p = std::aligned_alloc(alignment, (size_bytes + alignment - 1) / alignment * alignment);
  }
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

// Out of line so that, after inlining, the compiler does not see free() on a
// pointer from operator new and warn (-Wmismatched-new-delete): here they are
// a matched pair by construction.
[[gnu::noinline]] void counted_release(void* p) noexcept {
  std::free(p);
}
}  // namespace

void* operator new(std::size_t size_bytes) {
  return counted_allocation(size_bytes, 0);
}
void* operator new(std::size_t size_bytes, std::align_val_t alignment) {
  return counted_allocation(size_bytes, static_cast<std::size_t>(alignment));
}
void operator delete(void* p) noexcept {
  counted_release(p);
}
void operator delete(void* p, std::size_t) noexcept {
  counted_release(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  counted_release(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  counted_release(p);
}

namespace kvforge {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Parameters with every truncation off, so tests enable one stage at a time.
SamplingParams plain_params(uint64_t seed) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  return p;
}

// Lowest id among the largest values, computed independently of the sampler.
int32_t reference_argmax(const std::vector<float>& logits) {
  const float best = *std::max_element(logits.begin(), logits.end());
  return static_cast<int32_t>(std::find(logits.begin(), logits.end(), best) - logits.begin());
}

// softmax(logits / T) in double, with probability 0 for ids not in `allowed`
// (renormalized over the allowed ones). An empty `allowed` allows every id.
std::vector<double> reference_softmax(const std::vector<float>& logits, double temperature,
                                      const std::vector<int32_t>& allowed = {}) {
  std::vector<double> p(logits.size(), 0.0);
  std::vector<int32_t> ids = allowed;
  if (ids.empty()) {
    ids.resize(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
  }
  double total = 0.0;
  for (int32_t id : ids) {
    p[id] = std::exp(logits[id] / temperature);
    total += p[id];
  }
  for (double& v : p) v /= total;
  return p;
}

// Draws n_draws tokens from fresh copies of `logits` and counts each id.
std::vector<int64_t> draw_histogram(Sampler& sampler, const std::vector<float>& logits,
                                    int n_draws) {
  std::vector<int64_t> counts(logits.size(), 0);
  std::vector<float> work(logits.size());
  for (int i = 0; i < n_draws; ++i) {
    work = logits;
    const int32_t token = sampler.sample(work, {});
    EXPECT_GE(token, 0);
    EXPECT_LT(token, static_cast<int32_t>(logits.size()));
    ++counts[token];
  }
  return counts;
}

// Pearson's chi-square statistic of observed counts against expected
// probabilities; ids with probability 0 must never be observed.
double chi_square(const std::vector<int64_t>& counts, const std::vector<double>& expected) {
  int64_t n = 0;
  for (int64_t c : counts) n += c;
  double statistic = 0.0;
  for (size_t id = 0; id < counts.size(); ++id) {
    if (expected[id] == 0.0) {
      EXPECT_EQ(counts[id], 0) << "token " << id << " has probability 0";
      continue;
    }
    const double e = expected[id] * static_cast<double>(n);
    const double d = static_cast<double>(counts[id]) - e;
    statistic += d * d / e;
  }
  return statistic;
}

// A deterministic, irregular logit vector (no ties) of the given size.
std::vector<float> wavy_logits(int32_t n_vocab) {
  std::vector<float> logits(n_vocab);
  for (int32_t i = 0; i < n_vocab; ++i) {
    logits[i] = 3.0f * std::sin(1.7f * static_cast<float>(i)) + 0.01f * static_cast<float>(i);
  }
  return logits;
}

std::vector<int32_t> top_ids(const std::vector<float>& logits, int32_t k) {
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  ids.resize(k);
  return ids;
}

// Logits whose softmax at T = 1 is exactly `probabilities`.
std::vector<float> logits_from_probabilities(const std::vector<double>& probabilities) {
  std::vector<float> logits;
  for (double p : probabilities) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

// ---------------------------------------------------------------- parameters

TEST(SamplingParams, DefaultsMatchLlamaCppCommandLine) {
  const SamplingParams p;
  EXPECT_FLOAT_EQ(p.temperature, 0.8f);
  EXPECT_EQ(p.top_k, 40);
  EXPECT_FLOAT_EQ(p.top_p, 0.95f);
  EXPECT_FLOAT_EQ(p.min_p, 0.05f);
  EXPECT_FLOAT_EQ(p.repeat_penalty, 1.0f);
  EXPECT_EQ(p.repeat_last_n, 64);
  EXPECT_FLOAT_EQ(p.presence_penalty, 0.0f);
  EXPECT_FLOAT_EQ(p.frequency_penalty, 0.0f);
  EXPECT_EQ(p.seed, 0xFFFFFFFFu);
  EXPECT_TRUE(p.validate().ok());
}

TEST(SamplingParams, AcceptsDocumentedSpecialValues) {
  SamplingParams p;
  p.temperature = -1.0f;  // greedy
  p.top_k = -5;           // disabled
  p.top_p = 1.0f;         // disabled
  p.min_p = 0.0f;         // disabled
  p.repeat_last_n = -1;   // whole history
  p.presence_penalty = -2.0f;
  p.frequency_penalty = 2.0f;
  EXPECT_TRUE(p.validate().ok()) << p.validate().to_string();
}

std::string validation_message(void (*edit)(SamplingParams&)) {
  SamplingParams p;
  edit(p);
  const Status status = p.validate();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  return status.message();
}

TEST(SamplingParams, ValidateNamesTheOptionAndTheValue) {
  EXPECT_EQ(validation_message([](SamplingParams& p) { p.top_p = 1.5f; }),
            "top-p must be in (0, 1], got 1.5");
  EXPECT_EQ(validation_message([](SamplingParams& p) { p.top_p = 0.0f; }),
            "top-p must be in (0, 1], got 0");
  EXPECT_EQ(validation_message([](SamplingParams& p) { p.top_p = kNaN; }),
            "top-p must be in (0, 1], got nan");
  EXPECT_EQ(validation_message([](SamplingParams& p) { p.min_p = -0.25f; }),
            "min-p must be in [0, 1], got -0.25");
  EXPECT_EQ(validation_message([](SamplingParams& p) { p.min_p = 2.0f; }),
            "min-p must be in [0, 1], got 2");
  EXPECT_EQ(validation_message([](SamplingParams& p) { p.repeat_last_n = -2; }),
            "repeat-last-n must be >= -1 (0 disables, -1 uses all history), got -2");
  EXPECT_EQ(validation_message([](SamplingParams& p) { p.presence_penalty = 2.5f; }),
            "presence-penalty must be in [-2, 2], got 2.5");
  EXPECT_EQ(validation_message([](SamplingParams& p) { p.frequency_penalty = kNaN; }),
            "frequency-penalty must be in [-2, 2], got nan");

  for (float bad : {kNaN, kInf, -kInf}) {
    SamplingParams p;
    p.temperature = bad;
    EXPECT_NE(p.validate().message().find("temperature"), std::string::npos) << bad;
  }
  for (float bad : {0.0f, -1.0f, kNaN, kInf}) {
    SamplingParams p;
    p.repeat_penalty = bad;
    EXPECT_NE(p.validate().message().find("repeat-penalty"), std::string::npos) << bad;
  }
}

// ------------------------------------------------------------------- greedy

TEST(Sampler, GreedyIsArgmaxWithTiesToLowestId) {
  const std::vector<float> logits = {0.1f, 3.0f, -2.0f, 3.0f, 2.9f};
  for (float temperature : {0.0f, -1.0f}) {
    SamplingParams p = plain_params(1);
    p.temperature = temperature;
    Sampler sampler(p, 5);
    for (int i = 0; i < 10; ++i) {
      std::vector<float> work = logits;
      EXPECT_EQ(sampler.sample(work, {}), 1);
    }
  }
}

TEST(Sampler, TopKOneEqualsGreedyAtAnyTemperature) {
  std::vector<float> logits = wavy_logits(97);
  logits[60] = logits[reference_argmax(logits)];  // a tie with a higher id
  const int32_t expected = reference_argmax(logits);
  for (float temperature : {0.05f, 1.0f, 5.0f, 1000.0f}) {
    SamplingParams p = plain_params(7);
    p.temperature = temperature;
    p.top_k = 1;
    Sampler sampler(p, 97);
    for (int i = 0; i < 50; ++i) {
      std::vector<float> work = logits;
      EXPECT_EQ(sampler.sample(work, {}), expected) << "temperature " << temperature;
    }
  }
}

TEST(Sampler, NaNAndNegativeInfinityAreNeverDrawn) {
  const std::vector<float> logits = {kNaN, 1.0f, kNaN, 2.0f, -kInf, 0.5f};
  {
    SamplingParams p = plain_params(3);
    p.temperature = 0.0f;
    Sampler greedy(p, 6);
    std::vector<float> work = logits;
    EXPECT_EQ(greedy.sample(work, {}), 3);
  }
  Sampler sampler(plain_params(3), 6);
  const std::vector<int64_t> counts = draw_histogram(sampler, logits, 3000);
  EXPECT_EQ(counts[0], 0);
  EXPECT_EQ(counts[2], 0);
  EXPECT_EQ(counts[4], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[3], 0);
  EXPECT_GT(counts[5], 0);
}

TEST(Sampler, NoFiniteLogitGivesLowestId) {
  Sampler sampler(plain_params(3), 4);
  std::vector<float> all_bad = {-kInf, kNaN, -kInf, kNaN};
  EXPECT_EQ(sampler.sample(all_bad, {}), 0);
}

TEST(Sampler, PositiveInfinityWins) {
  Sampler sampler(plain_params(3), 4);
  for (int i = 0; i < 100; ++i) {
    std::vector<float> logits = {1.0f, kInf, 2.0f, 0.0f};
    EXPECT_EQ(sampler.sample(logits, {}), 1);
  }
}

// -------------------------------------------------------------- truncation

TEST(Sampler, NeverDrawsOutsideTopK) {
  const std::vector<float> logits = wavy_logits(64);
  const std::vector<int32_t> allowed = top_ids(logits, 5);
  SamplingParams p = plain_params(11);
  p.top_k = 5;
  p.temperature = 1.5f;
  Sampler sampler(p, 64);
  const std::vector<int64_t> counts = draw_histogram(sampler, logits, 20000);
  // Within the top 5 the draw follows softmax(logits / T) renormalized.
  // 18.47 is the 0.999 quantile of chi-square with 4 degrees of freedom.
  EXPECT_LT(chi_square(counts, reference_softmax(logits, 1.5, allowed)), 18.47);
  for (int32_t id : allowed) EXPECT_GT(counts[id], 0) << id;
}

TEST(Sampler, NeverDrawsOutsideTopPNucleus) {
  // Ids hold probabilities out of order; sorted they are 0.5, 0.3, 0.15, 0.05.
  // The nucleus for top-p 0.75 is {0.5, 0.3}: 0.5 < 0.75 <= 0.8.
  const std::vector<float> logits = logits_from_probabilities({0.15, 0.5, 0.05, 0.3});
  SamplingParams p = plain_params(12);
  p.top_p = 0.75f;
  Sampler sampler(p, 4);
  const std::vector<int64_t> counts = draw_histogram(sampler, logits, 20000);
  EXPECT_EQ(counts[0], 0);
  EXPECT_EQ(counts[2], 0);
  // 10.83: 0.999 quantile of chi-square with 1 degree of freedom.
  EXPECT_LT(chi_square(counts, reference_softmax(logits, 1.0, {1, 3})), 10.83);
}

TEST(Sampler, TopPUsesTemperatureScaledProbabilities) {
  // At T = 1 the top token holds 0.5 < 0.6, so the 0.6 nucleus has two
  // tokens. At T = 0.5 the weights square to 0.25 : 0.09 : 0.0225 : 0.0025 and
  // the top token alone holds 0.25 / 0.365 = 0.68 >= 0.6.
  const std::vector<float> logits = logits_from_probabilities({0.5, 0.3, 0.15, 0.05});
  SamplingParams p = plain_params(13);
  p.top_p = 0.6f;
  p.temperature = 0.5f;
  Sampler sampler(p, 4);
  const std::vector<int64_t> counts = draw_histogram(sampler, logits, 2000);
  EXPECT_EQ(counts[0], 2000);
}

TEST(Sampler, NeverDrawsBelowMinPTimesMaxProbability) {
  // p_max = 0.36, so min-p 0.3 keeps p >= 0.108: ids 0 (0.36), 2 (0.25),
  // 3 (0.14) and 5 (0.11); it drops 1 (0.09) and 4 (0.05).
  const std::vector<float> logits = logits_from_probabilities({0.36, 0.09, 0.25, 0.14, 0.05, 0.11});
  SamplingParams p = plain_params(14);
  p.min_p = 0.3f;
  Sampler sampler(p, 6);
  const std::vector<int64_t> counts = draw_histogram(sampler, logits, 20000);
  // 16.27: 0.999 quantile of chi-square with 3 degrees of freedom.
  EXPECT_LT(chi_square(counts, reference_softmax(logits, 1.0, {0, 2, 3, 5})), 16.27);
}

// ------------------------------------------------------------ distribution

TEST(Sampler, EmpiricalDistributionMatchesSoftmaxOverTemperature) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f, -1.0f, 3.0f, 0.0f};
  for (double temperature : {0.7, 1.0, 2.5}) {
    SamplingParams p = plain_params(2024);
    p.temperature = static_cast<float>(temperature);
    Sampler sampler(p, 6);
    const std::vector<int64_t> counts = draw_histogram(sampler, logits, 30000);
    // 20.52: 0.999 quantile of chi-square with 5 degrees of freedom.
    EXPECT_LT(chi_square(counts, reference_softmax(logits, temperature)), 20.52)
        << "temperature " << temperature;
  }
}

std::vector<int32_t> draw_sequence(Sampler& sampler, const std::vector<float>& logits, int n) {
  std::vector<int32_t> tokens;
  std::vector<float> work;
  for (int i = 0; i < n; ++i) {
    work = logits;
    tokens.push_back(sampler.sample(work, {}));
  }
  return tokens;
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferentTokens) {
  const std::vector<float> logits(50, 0.0f);  // uniform: every draw is informative
  Sampler a(plain_params(42), 50);
  Sampler b(plain_params(42), 50);
  Sampler c(plain_params(43), 50);
  const std::vector<int32_t> seq_a = draw_sequence(a, logits, 200);
  EXPECT_EQ(seq_a, draw_sequence(b, logits, 200));
  EXPECT_NE(seq_a, draw_sequence(c, logits, 200));

  a.reseed(42);
  EXPECT_EQ(a.seed(), 42u);
  EXPECT_EQ(seq_a, draw_sequence(a, logits, 200));
}

TEST(Sampler, RandomSeedIsReportedAndReplayable) {
  Sampler a(plain_params(SamplingParams::kRandomSeed), 50);
  EXPECT_NE(a.seed(), SamplingParams::kRandomSeed);
  Sampler b(plain_params(a.seed()), 50);
  const std::vector<float> logits(50, 0.0f);
  EXPECT_EQ(draw_sequence(a, logits, 100), draw_sequence(b, logits, 100));
}

// ---------------------------------------------------------------- penalties

TEST(Sampler, PenaltiesFollowTheFormulas) {
  SamplingParams p = plain_params(1);
  p.repeat_penalty = 1.5f;
  p.frequency_penalty = 0.1f;
  p.presence_penalty = 0.2f;
  Sampler sampler(p, 6);
  std::vector<float> logits = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 0.0f};
  const std::vector<int32_t> history = {0, 1, 1, 3, 0, 0, 5};
  sampler.apply_penalties(logits, history);
  // count: id 0 -> 3, id 1 -> 2, id 3 -> 1, id 5 -> 1, ids 2 and 4 -> 0.
  EXPECT_FLOAT_EQ(logits[0], 2.0f / 1.5f - 3 * 0.1f - 0.2f);
  EXPECT_FLOAT_EQ(logits[1], -1.0f * 1.5f - 2 * 0.1f - 0.2f);
  EXPECT_FLOAT_EQ(logits[2], 0.5f);
  EXPECT_FLOAT_EQ(logits[3], 3.0f / 1.5f - 1 * 0.1f - 0.2f);
  EXPECT_FLOAT_EQ(logits[4], -2.0f);
  EXPECT_FLOAT_EQ(logits[5], 0.0f - 0.1f - 0.2f);

  // The counts do not leak into the next call.
  std::vector<float> again = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 0.0f};
  sampler.apply_penalties(again, std::vector<int32_t>{4});
  EXPECT_FLOAT_EQ(again[0], 2.0f);
  EXPECT_FLOAT_EQ(again[4], -2.0f * 1.5f - 0.1f - 0.2f);
}

TEST(Sampler, PenaltyWindowIsTheLastRepeatLastNTokens) {
  const std::vector<int32_t> history = {0, 1, 2, 2};
  const std::vector<float> original = {1.0f, 1.0f, 1.0f};
  auto penalized = [&](int32_t repeat_last_n) {
    SamplingParams p = plain_params(1);
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = repeat_last_n;
    Sampler sampler(p, 3);
    std::vector<float> logits = original;
    sampler.apply_penalties(logits, history);
    return logits;
  };
  EXPECT_EQ(penalized(0), original);
  EXPECT_EQ(penalized(2), (std::vector<float>{1.0f, 1.0f, 0.5f}));
  EXPECT_EQ(penalized(3), (std::vector<float>{1.0f, 0.5f, 0.5f}));
  EXPECT_EQ(penalized(-1), (std::vector<float>{0.5f, 0.5f, 0.5f}));
  EXPECT_EQ(penalized(100), (std::vector<float>{0.5f, 0.5f, 0.5f}));
}

TEST(Sampler, ApplyPenaltiesSanitizesNonFiniteLogits) {
  Sampler sampler(plain_params(1), 4);
  std::vector<float> logits = {kNaN, kInf, -kInf, 1.0f};
  sampler.apply_penalties(logits, {});
  EXPECT_EQ(logits[0], -kInf);
  EXPECT_EQ(logits[1], std::numeric_limits<float>::max());
  EXPECT_EQ(logits[2], -kInf);
  EXPECT_EQ(logits[3], 1.0f);
}

TEST(Sampler, RepeatPenaltyChangesTheGreedyChoice) {
  SamplingParams p = plain_params(1);
  p.temperature = 0.0f;
  p.repeat_penalty = 1.2f;
  Sampler sampler(p, 2);
  std::vector<float> logits = {1.0f, 0.9f};
  EXPECT_EQ(sampler.sample(logits, std::vector<int32_t>{0}), 1);  // 1.0 / 1.2 < 0.9
  EXPECT_FLOAT_EQ(logits[0], 1.0f / 1.2f);
}

// --------------------------------------------------------------- allocation

TEST(Sampler, SampleDoesNotAllocate) {
  constexpr int32_t kVocab = 1000;
  const std::vector<float> logits = wavy_logits(kVocab);
  std::vector<int32_t> history(100);
  for (int32_t i = 0; i < 100; ++i) history[i] = (i * 37) % kVocab;

  SamplingParams with_penalties;  // defaults: top-k 40, top-p 0.95, min-p 0.05
  with_penalties.seed = 5;
  with_penalties.repeat_penalty = 1.1f;
  with_penalties.presence_penalty = 0.5f;
  with_penalties.frequency_penalty = 0.5f;
  SamplingParams full_sort = plain_params(6);  // top-p over the whole vocabulary
  full_sort.top_p = 0.9f;
  full_sort.min_p = 0.01f;
  SamplingParams greedy = plain_params(7);
  greedy.temperature = 0.0f;

  Sampler samplers[] = {Sampler(with_penalties, kVocab), Sampler(full_sort, kVocab),
                        Sampler(greedy, kVocab), Sampler(plain_params(8), kVocab)};
  std::vector<float> work(kVocab);

  // The hook is live: an explicit call (not elidable) is counted.
  g_allocation_count = 0;
  g_counting_allocations = true;
  ::operator delete(::operator new(16));
  g_counting_allocations = false;
  ASSERT_EQ(g_allocation_count.load(), 1);

  g_allocation_count = 0;
  g_counting_allocations = true;
  int64_t token_sum = 0;
  for (int i = 0; i < 1000; ++i) {
    Sampler& sampler = samplers[i % 4];
    std::copy(logits.begin(), logits.end(), work.begin());
    token_sum += sampler.sample(work, history);
  }
  g_counting_allocations = false;
  EXPECT_EQ(g_allocation_count.load(), 0);
  EXPECT_GT(token_sum, 0);
}

}  // namespace
}  // namespace kvforge
