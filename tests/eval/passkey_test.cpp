// Pass-key prompts and runs: the needle lands at the requested depth in
// tokens (checked against the layout computed here from the pieces), the
// filler is read cyclically from its offset, keys are deterministic digits,
// the retrieval check, and runs on stories260K where identical caches agree
// on every answer and a full-budget press changes no answer.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "eval/passkey.h"
#include "eval/passkey_filler.h"
#include "kv/kv_cache_factory.h"
#include "model/model.h"
#include "stories_fixture.h"
#include "tokenizer/tokenizer.h"

namespace kvforge {
namespace {

std::vector<int32_t> iota_tokens(int32_t first, int32_t n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = first + i;
  return v;
}

TEST(PasskeyPrompt, NeedleAtTheRequestedDepth) {
  // Distinct id ranges make every part recognisable.
  const std::vector<int32_t> head = iota_tokens(1000, 7), needle = iota_tokens(2000, 5),
                             question = iota_tokens(3000, 4), filler = iota_tokens(0, 97);
  const PasskeyPieces pieces{head, needle, question, filler};
  for (const int32_t length : {20, 64, 200}) {
    const int32_t f = length - 7 - 5 - 4;  // filler tokens in the prompt
    for (const double depth : {0.0, 10.0, 25.0, 33.3, 50.0, 99.0, 100.0}) {
      for (const int64_t offset : {int64_t{0}, int64_t{13}, int64_t{96}, int64_t{500}}) {
        PasskeyLayout layout;
        auto prompt = assemble_passkey_prompt(pieces, length, depth, offset, &layout);
        ASSERT_TRUE(prompt.ok()) << prompt.status().to_string();
        ASSERT_EQ(static_cast<int32_t>(prompt->size()), length);
        const auto before = static_cast<int32_t>(std::floor(depth / 100 * f + 0.5));
        EXPECT_EQ(layout.filler_tokens, f);
        EXPECT_EQ(layout.filler_before, before) << length << " " << depth;
        EXPECT_EQ(layout.needle_begin, 7 + before);
        // Head, then filler, needle, filler, question.
        const std::vector<int32_t>& p = *prompt;
        EXPECT_EQ(std::vector<int32_t>(p.begin(), p.begin() + 7), head);
        EXPECT_EQ(std::vector<int32_t>(p.begin() + 7 + before, p.begin() + 12 + before), needle);
        EXPECT_EQ(std::vector<int32_t>(p.end() - 4, p.end()), question);
        // The filler is consecutive from the offset, around the needle, wrapping at 97.
        int32_t k = 0;
        for (int32_t i = 0; i < length; ++i) {
          if (i < 7 || (i >= 7 + before && i < 12 + before) || i >= length - 4) continue;
          EXPECT_EQ(p[static_cast<size_t>(i)], static_cast<int32_t>((offset + k) % 97)) << i;
          ++k;
        }
        EXPECT_EQ(k, f);
      }
    }
  }
}

TEST(PasskeyPrompt, EdgesAndErrors) {
  const std::vector<int32_t> head = {1, 2}, needle = {7, 7}, question = {9}, filler = {4, 5};
  const PasskeyPieces pieces{head, needle, question, filler};
  PasskeyLayout layout;
  // Depth 0: right after the head; 100: right before the question.
  auto at0 = assemble_passkey_prompt(pieces, 10, 0, 0, &layout);
  ASSERT_TRUE(at0.ok());
  EXPECT_EQ(*at0, (std::vector<int32_t>{1, 2, 7, 7, 4, 5, 4, 5, 4, 9}));
  auto at100 = assemble_passkey_prompt(pieces, 10, 100, 1, &layout);
  ASSERT_TRUE(at100.ok());
  EXPECT_EQ(*at100, (std::vector<int32_t>{1, 2, 5, 4, 5, 4, 5, 7, 7, 9}));
  // One filler token is the least.
  EXPECT_TRUE(assemble_passkey_prompt(pieces, 6, 50, 0).ok());
  EXPECT_EQ(assemble_passkey_prompt(pieces, 5, 50, 0).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(assemble_passkey_prompt(pieces, 10, -1, 0).ok());
  EXPECT_FALSE(assemble_passkey_prompt(pieces, 10, 100.5, 0).ok());
  EXPECT_FALSE(assemble_passkey_prompt(pieces, 10, std::nan(""), 0).ok());
  const PasskeyPieces no_filler{head, needle, question, {}};
  EXPECT_FALSE(assemble_passkey_prompt(no_filler, 10, 50, 0).ok());
}

TEST(PasskeyDraw, DeterministicDigitsAndOffsets) {
  std::set<std::string> keys;
  for (int32_t trial = 0; trial < 50; ++trial) {
    const PasskeyDraw a = draw_passkey(7, 512, 25, trial, 5, 1000);
    const PasskeyDraw b = draw_passkey(7, 512, 25, trial, 5, 1000);
    EXPECT_EQ(a.key, b.key);
    EXPECT_EQ(a.filler_offset, b.filler_offset);
    ASSERT_EQ(a.key.size(), 5u);
    EXPECT_NE(a.key[0], '0');
    for (char c : a.key) EXPECT_TRUE(c >= '0' && c <= '9');
    EXPECT_GE(a.filler_offset, 0);
    EXPECT_LT(a.filler_offset, 1000);
    keys.insert(a.key);
  }
  EXPECT_GT(keys.size(), 45u);  // 90000 possible keys
  // Every coordinate changes the draw.
  const std::string base = draw_passkey(7, 512, 25, 0, 8, 1000).key;
  EXPECT_NE(draw_passkey(8, 512, 25, 0, 8, 1000).key, base);
  EXPECT_NE(draw_passkey(7, 256, 25, 0, 8, 1000).key, base);
  EXPECT_NE(draw_passkey(7, 512, 50, 0, 8, 1000).key, base);
  EXPECT_NE(draw_passkey(7, 512, 25, 1, 8, 1000).key, base);
}

TEST(PasskeyRetrieved, LeadingSpaceAndPrefix) {
  EXPECT_TRUE(passkey_retrieved("48213", "48213"));
  EXPECT_TRUE(passkey_retrieved(" 48213.", "48213"));
  EXPECT_TRUE(passkey_retrieved("\n 482130", "48213"));
  EXPECT_FALSE(passkey_retrieved("4821", "48213"));
  EXPECT_FALSE(passkey_retrieved("x48213", "48213"));
  EXPECT_FALSE(passkey_retrieved("   ", "48213"));
  EXPECT_FALSE(passkey_retrieved("48213", ""));
}

class PasskeyStories : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = &eval_test::stories_model();
    tok_ = &eval_test::stories_tokenizer();
    filler_ = new std::vector<int32_t>(tok_->encode(default_passkey_filler(), false, false));
  }
  static void TearDownTestSuite() { delete filler_; }
  static std::unique_ptr<KvCache> cache(const std::string& codec, const std::string& press = "") {
    KvCacheOptions o;
    o.codec = codec;
    o.press = press;
    o.n_ctx = 320;
    o.prefix_sharing = false;
    auto kv = make_kv_cache(model_->kv_shape(), o);
    EXPECT_TRUE(kv.ok()) << kv.status().to_string();
    return std::move(kv).value();
  }

  static Model* model_;
  static const tokenizer::Tokenizer* tok_;
  static std::vector<int32_t>* filler_;
};

Model* PasskeyStories::model_ = nullptr;
const tokenizer::Tokenizer* PasskeyStories::tok_ = nullptr;
std::vector<int32_t>* PasskeyStories::filler_ = nullptr;

TEST_F(PasskeyStories, DefaultFillerIsTheShippedText) {
  EXPECT_EQ(default_passkey_filler().size(), 16376u);
  EXPECT_TRUE(default_passkey_filler().starts_with("Once upon a time, there lived a mighty bear."));
  EXPECT_GT(filler_->size(), 4000u);
}

TEST_F(PasskeyStories, TokenizedPromptHoldsTheKeyAtItsDepth) {
  for (const double depth : {0.0, 50.0, 100.0}) {
    auto p = make_passkey_prompt(*tok_, *filler_, "48213", 256, depth, 100);
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    ASSERT_EQ(p->tokens.size(), 256u);
    EXPECT_EQ(p->tokens[0], *tok_->bos_id());
    const std::vector<int32_t> needle(
        p->tokens.begin() + p->layout.needle_begin,
        p->tokens.begin() + p->layout.needle_begin + p->needle_tokens);
    const std::string text = tok_->decode(needle, false);
    EXPECT_NE(text.find("The pass key is 48213. Remember it. 48213 is the pass key."),
              std::string::npos)
        << text;
    // The needle starts after the head and the share of the filler the depth asks.
    const auto head =
        static_cast<int32_t>(1 + tok_->encode(passkey_instruction(), false, false).size());
    EXPECT_EQ(p->layout.needle_begin,
              head + static_cast<int32_t>(std::lround(depth / 100 * p->layout.filler_tokens)));
    const std::string all = tok_->decode(p->tokens, false);
    EXPECT_TRUE(all.ends_with("What is the pass key? The pass key is"))
        << all.substr(all.size() - 60);
    // " 48213" after the question: a space and five digit tokens on this vocabulary.
    EXPECT_EQ(p->n_answer, 6);
  }
}

TEST_F(PasskeyStories, IdenticalCachesAgreeOnEveryAnswer) {
  PasskeyOptions o;
  o.lengths = {192, 256};
  o.depths = {0, 50, 100};
  o.trials = 2;
  auto a = cache("f32"), b = cache("f32");
  std::vector<int32_t> seen;
  auto r = run_passkey(*model_, *tok_, *a, *b, *filler_, o, [&](int32_t done, int32_t total) {
    EXPECT_EQ(total, 6);
    seen.push_back(done);
  });
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->cells.size(), 6u);
  EXPECT_EQ(seen, (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));
  for (size_t i = 0; i < r->cells.size(); ++i) {
    const PasskeyCell& c = r->cells[i];
    EXPECT_EQ(c.length, o.lengths[i / 3]);
    EXPECT_EQ(c.depth, o.depths[i % 3]);
    EXPECT_EQ(c.trials, 2);
    EXPECT_EQ(c.agreement(), 1.0);
    EXPECT_EQ(c.reference_retrieved, c.candidate_retrieved);
    EXPECT_EQ(r->first_answers[i].first, r->first_answers[i].second);
  }
  EXPECT_EQ(a->n_tokens(SeqId{0}), 0);
}

TEST_F(PasskeyStories, FullBudgetPressChangesNoAnswerAndSmallOnesSaveMemory) {
  PasskeyOptions o;
  o.lengths = {256};
  o.depths = {0, 50, 100};
  o.trials = 2;
  auto ref = cache("f32"), full = cache("f32", "snapkv:ratio=1");
  auto r = run_passkey(*model_, *tok_, *ref, *full, *filler_, o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  for (const PasskeyCell& c : r->cells) {
    EXPECT_EQ(c.agreement(), 1.0);
    EXPECT_EQ(c.bytes_per_token(), static_cast<double>(ref->bytes_per_token()));
  }
  auto pressed = cache("f32", "streaming:ratio=0.25");
  auto s = run_passkey(*model_, *tok_, *ref, *pressed, *filler_, o);
  ASSERT_TRUE(s.ok());
  for (const PasskeyCell& c : s->cells) {
    EXPECT_LT(c.bytes_per_token(), 0.5 * static_cast<double>(ref->bytes_per_token()));
  }
}

TEST_F(PasskeyStories, BadOptionsAreErrors) {
  auto a = cache("f32"), b = cache("f16");
  PasskeyOptions o;
  o.lengths = {256};
  o.depths = {50};
  o.trials = 1;
  EXPECT_FALSE(run_passkey(*model_, *tok_, *a, *a, *filler_, o).ok());
  PasskeyOptions no_lengths = o;
  no_lengths.lengths.clear();
  EXPECT_FALSE(run_passkey(*model_, *tok_, *a, *b, *filler_, no_lengths).ok());
  PasskeyOptions no_trials = o;
  no_trials.trials = 0;
  EXPECT_FALSE(run_passkey(*model_, *tok_, *a, *b, *filler_, no_trials).ok());
  PasskeyOptions too_short = o;
  too_short.lengths = {30};
  auto r = run_passkey(*model_, *tok_, *a, *b, *filler_, too_short);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("no room for filler"), std::string::npos);
  // Longer than the caches hold.
  PasskeyOptions too_long = o;
  too_long.lengths = {400};
  EXPECT_FALSE(run_passkey(*model_, *tok_, *a, *b, *filler_, too_long).ok());
  EXPECT_FALSE(run_passkey(*model_, *tok_, *a, *b, std::vector<int32_t>{}, o).ok());
}

}  // namespace
}  // namespace kvforge
