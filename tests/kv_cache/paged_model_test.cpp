// The paged cache under a real model (stories260K): the f32 codec against the
// plain contiguous cache; prefix hits, forks, rollbacks and save/restore
// against computing the same tokens cold (bit-exact where the computation is
// the same, which it is when both paths run the same forward chunks).
#include <unistd.h>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <xxhash.h>

#include "kv/contiguous_kv_cache.h"
#include "kv/kv_codec_plan.h"
#include "kv/paged_kv_cache.h"
#include "model/model.h"

namespace kvforge {
namespace {

constexpr int32_t kBlock = 16;

std::string model_path() {
  return std::string(KVFORGE_SOURCE_DIR) + "/models/stories260K.gguf";
}

// Chunks of one block: every path runs the same forward chunks, so the same
// tokens give bit-identical results however a sequence was built.
Model& model() {
  static std::unique_ptr<Model> m = [] {
    ModelOptions o;
    o.n_threads = 2;
    o.max_batch = kBlock;
    auto loaded = Model::load(model_path(), o);
    KVF_CHECK(loaded.ok());
    return std::move(loaded).value();
  }();
  return *m;
}

std::vector<int32_t> prompt_tokens(int32_t n, int32_t salt) {
  std::vector<int32_t> ids;
  ids.push_back(1);
  for (int32_t i = 1; i < n; ++i) ids.push_back(100 + (i * 37 + salt * 11) % 300);
  return ids;
}

std::unique_ptr<PagedKvCache> make_cache(const std::string& codec, int32_t n_seq = 2,
                                         size_t memory = 0, int32_t block = kBlock) {
  PagedKvCacheOptions o;
  auto plan = plan_kv_codecs(codec, "", model().config().n_layers);
  KVF_CHECK(plan.ok());
  o.layer_codecs = *plan;
  o.block_tokens = block;
  o.n_ctx = 256;
  o.n_seq = n_seq;
  o.memory_bytes = memory;
  o.model_fingerprint = model().fingerprint();
  auto cache = PagedKvCache::create(model().kv_shape(), o);
  KVF_CHECK(cache.ok());
  return std::move(cache).value();
}

// Logits of every token of `ids` appended to `seq` at its current end.
std::vector<float> run(KvCache& kv, SeqId seq, std::span<const int32_t> ids) {
  std::vector<float> logits(ids.size() * static_cast<size_t>(model().config().n_vocab));
  const Status s =
      model().forward(ids, kv.n_tokens(seq), kv, seq, LogitsFor::kAllTokens, logits.data());
  KVF_CHECK(s.ok());
  return logits;
}

std::vector<float> last_rows(const std::vector<float>& logits, size_t n_rows) {
  const auto v = static_cast<size_t>(model().config().n_vocab);
  return std::vector<float>(logits.end() - static_cast<std::ptrdiff_t>(n_rows * v), logits.end());
}

// "k=int8,v=int4h" -> "k_int8_v_int4h": test names allow [A-Za-z0-9_] only.
std::string codec_test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

TEST(PagedModel, F32CodecMatchesContiguousCache) {
  const auto ids = prompt_tokens(90, 1);
  ContiguousKvCache plain(model().kv_shape(), 1, 256, ContiguousKvType::kF32);
  auto paged = make_cache("f32");
  const auto a = run(plain, SeqId{0}, ids);
  const auto b = run(*paged, SeqId{0}, ids);
  ASSERT_EQ(a.size(), b.size());
  // Same keys and values; only the order of the softmax sums differs
  // (blocks of 16 here, chunks of 128 there).
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  EXPECT_LE(worst, 1e-4f);
}

class PrefixHitTest : public ::testing::TestWithParam<std::string> {};

TEST_P(PrefixHitTest, HitGivesExactlyTheColdLogits) {
  const std::string codec = GetParam();
  auto cache = make_cache(codec);
  ASSERT_TRUE(cache->prefix_sharing_enabled());
  const auto first = prompt_tokens(70, 1);
  run(*cache, SeqId{0}, first);
  cache->release(SeqId{0});
  cache->check_invariants();

  // Shares 52 tokens with the first prompt: 3 whole blocks can be reused.
  std::vector<int32_t> second(first.begin(), first.begin() + 52);
  for (int32_t t : prompt_tokens(30, 2)) second.push_back(t);
  const int32_t reused = cache->reuse_prefix(SeqId{1}, second);
  EXPECT_EQ(reused, 48);
  cache->check_invariants();
  const auto hit = run(*cache, SeqId{1}, std::span<const int32_t>(second).subspan(48));

  auto cold_cache = make_cache(codec);
  const auto cold = last_rows(run(*cold_cache, SeqId{0}, second), second.size() - 48);
  ASSERT_EQ(hit.size(), cold.size());
  EXPECT_EQ(std::memcmp(hit.data(), cold.data(), hit.size() * sizeof(float)), 0)
      << "the cached path must quantize exactly like the cold path";

  const PrefixCacheStats stats = cache->prefix_stats();
  EXPECT_EQ(stats.hits, 1);
  EXPECT_EQ(stats.hit_tokens, 48);
  cache->release(SeqId{1});
  cache->check_invariants();
}

INSTANTIATE_TEST_SUITE_P(Codecs, PrefixHitTest,
                         ::testing::Values("f32", "f16", "bf16", "int8", "int4", "int4h",
                                           "k=int8,v=int4h", "kivi2:g=16:r=0", "kivi4:g=8:r=0",
                                           "kivi2:g=16:r=32", "kivi4:g=8:r=40",
                                           "k=kivi2:g=16:r=32,v=int8"),
                         codec_test_name);

// A prompt of `prompt` tokens, then one decode step per token up to `held`.
void prefill_then_decode(KvCache& kv, SeqId seq, std::span<const int32_t> ids, size_t prompt,
                         size_t held) {
  run(kv, seq, ids.first(prompt));
  for (size_t i = prompt; i < held; ++i) run(kv, seq, ids.subspan(i, 1));
}

// The next turn of a conversation: the previous sequence (prompt + decoded
// answer) plus a new message. Its hit needs the released sequence's
// full-precision rows.
TEST(PagedModel, ResidualWindowHitContinuesAReleasedSequenceExactly) {
  const std::string codec = "kivi2:g=16:r=32";
  const auto ids = prompt_tokens(80, 8);
  auto cache = make_cache(codec);
  prefill_then_decode(*cache, SeqId{0}, ids, 40, 70);
  cache->release(SeqId{0});
  cache->check_invariants();
  ASSERT_NE(cache->staged_windows(), nullptr);
  EXPECT_EQ(cache->staged_windows()->n_windows(), 1);
  EXPECT_GT(cache->bytes_used(), cache->staged_windows()->bytes());

  ASSERT_EQ(cache->reuse_prefix(SeqId{1}, ids), 64);
  cache->check_invariants();
  const auto hit = run(*cache, SeqId{1}, std::span<const int32_t>(ids).subspan(64));

  // Cold, with the same forward chunks: positions 40..63 decoded one by one.
  auto cold_cache = make_cache(codec);
  prefill_then_decode(*cold_cache, SeqId{0}, ids, 40, 64);
  const auto cold = run(*cold_cache, SeqId{0}, std::span<const int32_t>(ids).subspan(64));
  ASSERT_EQ(hit.size(), cold.size());
  EXPECT_EQ(std::memcmp(hit.data(), cold.data(), hit.size() * sizeof(float)), 0);
  EXPECT_EQ(cache->prefix_stats().hit_tokens, 64);
}

TEST(PagedModel, ResidualWindowHitEndsOnlyWhereRowsWereKept) {
  const auto ids = prompt_tokens(100, 9);
  auto cache = make_cache("kivi2:g=16:r=32");
  prefill_then_decode(*cache, SeqId{0}, ids, 40, 100);
  cache->release(SeqId{0});
  // Rows were kept for hits ending at the last three block boundaries (64,
  // 80, 96); an earlier boundary has cached blocks but no rows.
  std::vector<int32_t> early(ids.begin(), ids.begin() + 50);
  early.push_back(7);
  EXPECT_EQ(cache->reuse_prefix(SeqId{1}, early), 0);
  EXPECT_EQ(cache->prefix_stats().misses, 1);
  const std::vector<int32_t> later(ids.begin(), ids.begin() + 85);
  EXPECT_EQ(cache->reuse_prefix(SeqId{0}, later), 80);
  cache->check_invariants();
  EXPECT_EQ(cache->prefix_stats().hit_tokens, 80);
}

TEST(PagedModel, SaltsIsolateTenants) {
  auto cache = make_cache("int8");
  const auto ids = prompt_tokens(70, 3);
  ASSERT_TRUE(cache->set_salt(SeqId{0}, "tenant-a").ok());
  run(*cache, SeqId{0}, ids);
  cache->release(SeqId{0});
  ASSERT_TRUE(cache->set_salt(SeqId{1}, "tenant-b").ok());
  EXPECT_EQ(cache->reuse_prefix(SeqId{1}, ids), 0);
  ASSERT_TRUE(cache->set_salt(SeqId{0}, "tenant-a").ok());
  EXPECT_EQ(cache->reuse_prefix(SeqId{0}, ids), 64);
  cache->check_invariants();
}

TEST(PagedModel, ForkSharesBlocksAndCopiesOnWrite) {
  auto cache = make_cache("int8", 3);
  const auto ids = prompt_tokens(40, 4);  // 2.5 blocks: the tail block is partial
  run(*cache, SeqId{0}, ids);
  const int32_t free_before = cache->pool().n_free();
  ASSERT_TRUE(cache->fork(SeqId{0}, SeqId{1}).ok());
  EXPECT_EQ(cache->pool().n_free(), free_before);  // nothing copied yet
  cache->check_invariants();

  const int32_t a[1] = {200};
  const int32_t b[1] = {300};
  const auto fork_a = run(*cache, SeqId{0}, a);
  const auto fork_b = run(*cache, SeqId{1}, b);
  EXPECT_EQ(cache->pool().n_free(), free_before - 1);  // one copy of the shared tail
  cache->check_invariants();

  for (const auto* next : {&a, &b}) {
    auto cold = make_cache("int8", 1);
    run(*cold, SeqId{0}, ids);
    const auto expected = run(*cold, SeqId{0}, *next);
    const auto& got = next == &a ? fork_a : fork_b;
    EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)), 0);
  }
}

TEST(PagedModel, RollbackThenContinueEqualsCold) {
  for (const std::string codec : {"int4h", "kivi2:g=16:r=32"}) {
    auto cache = make_cache(codec);
    // 40 tokens, then 8 more that fill block 2 (so KIVI encodes it), rolled
    // back into the middle of that block; the residual window still covers it.
    const auto ids = prompt_tokens(48, 5);
    run(*cache, SeqId{0}, std::span<const int32_t>(ids).first(40));
    run(*cache, SeqId{0}, std::span<const int32_t>(ids).subspan(40));
    ASSERT_TRUE(cache->truncate(SeqId{0}, 40).ok()) << codec;
    cache->check_invariants();
    const auto other = prompt_tokens(12, 6);
    const auto got = run(*cache, SeqId{0}, other);

    auto cold = make_cache(codec);
    run(*cold, SeqId{0}, std::span<const int32_t>(ids).first(40));
    const auto expected = run(*cold, SeqId{0}, other);
    EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)), 0) << codec;
  }
}

TEST(PagedModel, RollbackPastTheFullPrecisionWindowIsRefused) {
  auto cache = make_cache("kivi2:g=16:r=16");
  const auto ids = prompt_tokens(100, 7);
  run(*cache, SeqId{0}, ids);
  const Status s = cache->truncate(SeqId{0}, 20);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.to_string();
  EXPECT_EQ(cache->n_tokens(SeqId{0}), 100);
  cache->check_invariants();
  EXPECT_TRUE(cache->truncate(SeqId{0}, 0).ok());
  cache->check_invariants();
}

TEST(PagedModel, DefaultBudgetGrowsForCachedPrefixesWithinItsBounds) {
  // Without a fraction: the two sequences' full contexts (256 / 16 blocks)
  // plus one copy-on-write block each.
  auto exact = make_cache("int8");
  EXPECT_EQ(exact->pool().n_blocks(), 2 * (256 / kBlock + 1));
  PagedKvCacheOptions o;
  o.layer_codecs = *plan_kv_codecs("int8", "", model().config().n_layers);
  o.block_tokens = kBlock;
  o.n_ctx = 256;
  o.n_seq = 2;
  o.default_budget_fraction = 0.25;
  auto grown = PagedKvCache::create(model().kv_shape(), o);
  ASSERT_TRUE(grown.ok());
  // This tiny model's contexts need far less than a quarter of any machine's
  // memory, so the pool reaches its cap of 16 contexts' worth.
  EXPECT_EQ((*grown)->pool().n_blocks(),
            static_cast<int32_t>(PagedKvCacheOptions::kMaxDefaultBudgetContexts) *
                exact->pool().n_blocks());
  o.default_budget_fraction = 1e-12;  // a sliver of memory: never below the need
  auto floor = PagedKvCache::create(model().kv_shape(), o);
  ASSERT_TRUE(floor.ok());
  EXPECT_EQ((*floor)->pool().n_blocks(), exact->pool().n_blocks());
}

TEST(PagedModel, RunningOutOfBlocksIsReportedAndChangesNothing) {
  auto probe = make_cache("int8");
  const size_t block_bytes = probe->pool().bytes_per_block();
  auto cache = make_cache("int8", 2, 4 * block_bytes);
  ASSERT_EQ(cache->pool().n_blocks(), 4);
  const auto ids = prompt_tokens(100, 8);  // 7 blocks
  std::vector<float> logits(static_cast<size_t>(model().config().n_vocab));
  const Status s = model().forward(ids, 0, *cache, SeqId{0}, LogitsFor::kLastToken, logits.data());
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.to_string();
  EXPECT_EQ(cache->n_tokens(SeqId{0}), 0);
  EXPECT_EQ(cache->pool().n_free(), 4);
  cache->check_invariants();
}

TEST(PagedModel, EvictsExactlyTheShortfallFromThePrefixCache) {
  auto probe = make_cache("int8");
  auto cache = make_cache("int8", 2, 6 * probe->pool().bytes_per_block());
  const auto first = prompt_tokens(64, 9);  // 4 full blocks, then cached
  run(*cache, SeqId{0}, first);
  cache->release(SeqId{0});
  EXPECT_EQ(cache->pool().n_free(), 2);
  EXPECT_EQ(cache->prefix_stats().cached_blocks, 4);
  const auto second = prompt_tokens(48, 10);  // 3 blocks: 1 short
  run(*cache, SeqId{1}, second);
  EXPECT_EQ(cache->prefix_stats().evicted_blocks, 1);
  EXPECT_EQ(cache->prefix_stats().cached_blocks, 3);
  EXPECT_EQ(cache->pool().n_free(), 0);
  cache->check_invariants();
}

TEST(PagedModel, BytesAreAccountedPerBlock) {
  auto cache = make_cache("f32");
  const KvShape shape = model().kv_shape();
  EXPECT_EQ(cache->bytes_per_token(),
            2u * shape.n_layers * shape.n_kv_heads * shape.head_dim * sizeof(float));
  run(*cache, SeqId{0}, prompt_tokens(40, 1));
  EXPECT_EQ(cache->bytes_used(), 3 * cache->pool().bytes_per_block());
  EXPECT_EQ(cache->pool().bytes_per_block(), cache->bytes_per_token() * kBlock);
}

class SaveRestoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::string path_ = (std::filesystem::temp_directory_path() /
                       ("kvforge-snapshot-" + std::to_string(::getpid()) + ".kvs"))
                          .string();
  void TearDown() override { std::filesystem::remove(path_); }
};

TEST_P(SaveRestoreTest, RestoredSequenceContinuesExactly) {
  const std::string codec = GetParam();
  auto cache = make_cache(codec);
  const auto ids = prompt_tokens(75, 11);
  run(*cache, SeqId{0}, ids);
  ASSERT_TRUE(cache->save(SeqId{0}, path_).ok());
  const int32_t next[1] = {321};
  const auto expected = run(*cache, SeqId{0}, next);

  auto other = make_cache(codec);  // as another process would
  ASSERT_TRUE(other->restore(SeqId{1}, path_).ok());
  other->check_invariants();
  EXPECT_EQ(other->n_tokens(SeqId{1}), 75);
  const auto got = run(*other, SeqId{1}, next);
  EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)), 0);
}

INSTANTIATE_TEST_SUITE_P(Codecs, SaveRestoreTest,
                         ::testing::Values("f16", "int8", "int4h", "kivi2:g=16:r=32"),
                         codec_test_name);

TEST_F(SaveRestoreTest, RefusesForeignAndDamagedFiles) {
  auto cache = make_cache("int8");
  run(*cache, SeqId{0}, prompt_tokens(40, 12));
  ASSERT_TRUE(cache->save(SeqId{0}, path_).ok());
  std::vector<char> bytes;
  {
    std::ifstream in(path_, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto write = [&](const std::vector<char>& b) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(b.data(), static_cast<std::streamsize>(b.size()));
  };

  auto other_codec = make_cache("int4");
  Status s = other_codec->restore(SeqId{0}, path_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("codec plan"), std::string::npos) << s.message();

  PagedKvCacheOptions o;
  o.layer_codecs = *plan_kv_codecs("int8", "", model().config().n_layers);
  o.block_tokens = kBlock;
  o.n_ctx = 256;
  o.model_fingerprint = model().fingerprint() + 1;
  auto other_model = std::move(PagedKvCache::create(model().kv_shape(), o)).value();
  s = other_model->restore(SeqId{0}, path_);
  EXPECT_NE(s.message().find("another model"), std::string::npos) << s.message();

  // Files of earlier format versions, checksum intact: version 1 stored f16 and int8
  // key tiles by row, version 2 int4 and KIVI key tiles, version 3 int4 key tiles by column
  // and int4 and KIVI value tiles by row, version 4 bf16 key tiles by row, version 5
  // neither pressed rows nor key bounds.
  auto fresh = make_cache("int8");
  for (const uint32_t old_format : {1u, 2u, 3u, 4u, 5u}) {
    std::vector<char> old_version = bytes;
    std::memcpy(old_version.data() + 8, &old_format, sizeof old_format);  // after the 8-byte magic
    const uint64_t sum = XXH3_64bits(old_version.data(), old_version.size() - sizeof(uint64_t));
    std::memcpy(old_version.data() + old_version.size() - sizeof(uint64_t), &sum, sizeof sum);
    write(old_version);
    s = fresh->restore(SeqId{0}, path_);
    EXPECT_EQ(s.code(), StatusCode::kUnsupported);
    const std::string expected =
        "format version " + std::to_string(old_format) + " (this build reads 6)";
    EXPECT_NE(s.message().find(expected), std::string::npos) << s.message();
  }

  std::vector<char> damaged = bytes;
  damaged[damaged.size() / 2] ^= 0x10;
  write(damaged);
  EXPECT_EQ(fresh->restore(SeqId{0}, path_).code(), StatusCode::kCorrupt);
  write(std::vector<char>(bytes.begin(), bytes.begin() + 100));
  EXPECT_EQ(fresh->restore(SeqId{0}, path_).code(), StatusCode::kCorrupt);
  write({});
  EXPECT_EQ(fresh->restore(SeqId{0}, path_).code(), StatusCode::kCorrupt);
  std::filesystem::remove(path_);
  EXPECT_EQ(fresh->restore(SeqId{0}, path_).code(), StatusCode::kNotFound);
  EXPECT_EQ(fresh->n_tokens(SeqId{0}), 0);
  EXPECT_EQ(fresh->pool().n_free(), fresh->pool().n_blocks());
  fresh->check_invariants();
}

}  // namespace
}  // namespace kvforge
