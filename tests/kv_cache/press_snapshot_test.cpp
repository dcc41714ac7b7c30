// Snapshots of pressed sequences (stories260K): a sequence pressed into
// retained (and demoted) rows is saved and restored into another cache, and
// continues with bit-identical logits, presses during decode included (the
// captured attention and the press schedule travel with it). Files of
// another press plan are refused, and so are damaged ones: each structural
// check is reached by a file whose checksum was recomputed after the damage.
#include <unistd.h>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <xxhash.h>

#include "kv/kv_codec_plan.h"
#include "kv/paged_kv_cache.h"
#include "model/model.h"

namespace kvforge {
namespace press_snapshot {
namespace {

Model& snapshot_model() {
  static std::unique_ptr<Model> m = [] {
    ModelOptions o;
    o.n_threads = 2;
    o.max_batch = 64;
    auto loaded = Model::load(std::string(KVFORGE_SOURCE_DIR) + "/models/stories260K.gguf", o);
    KVF_CHECK(loaded.ok());
    return std::move(loaded).value();
  }();
  return *m;
}

std::vector<int32_t> snapshot_tokens(int32_t n, int32_t salt) {
  std::vector<int32_t> ids = {1};
  for (int32_t i = 1; i < n; ++i) ids.push_back(60 + (i * 31 + salt * 13) % 380);
  return ids;
}

std::unique_ptr<PagedKvCache> pressed_cache(const std::string& press, const std::string& codec,
                                            int32_t block, const std::string& select = "") {
  const int32_t layers = snapshot_model().config().n_layers;
  PagedKvCacheOptions o;
  o.layer_codecs = *plan_kv_codecs(codec, "", layers);
  o.block_tokens = block;
  o.n_ctx = 256;
  o.n_seq = 2;
  o.model_fingerprint = snapshot_model().fingerprint();
  if (!press.empty()) o.layer_presses = *plan_kv_presses(press, "", layers);
  if (!select.empty()) o.selection = *plan_kv_selection(select);
  auto cache = PagedKvCache::create(snapshot_model().kv_shape(), o);
  KVF_CHECK(cache.ok());
  return std::move(cache).value();
}

void prefill(PagedKvCache& kv, SeqId seq, const std::vector<int32_t>& prompt) {
  std::vector<float> logits(static_cast<size_t>(snapshot_model().config().n_vocab));
  kv.begin_prompt(seq, static_cast<int32_t>(prompt.size()));
  KVF_CHECK(
      snapshot_model().forward(prompt, 0, kv, seq, LogitsFor::kLastToken, logits.data()).ok());
  KVF_CHECK(kv.end_prompt(seq).ok());
}

// Logits of each decode step, with the decode hook after each.
std::vector<float> decode(PagedKvCache& kv, SeqId seq, const std::vector<int32_t>& ids) {
  const auto v = static_cast<size_t>(snapshot_model().config().n_vocab);
  std::vector<float> logits(ids.size() * v);
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t one[1] = {ids[i]};
    KVF_CHECK(
        snapshot_model()
            .forward(one, kv.n_tokens(seq), kv, seq, LogitsFor::kLastToken, logits.data() + i * v)
            .ok());
    KVF_CHECK(kv.end_decode_step(seq).ok());
  }
  return logits;
}

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, std::vector<char> bytes, bool fix_checksum) {
  if (fix_checksum) {
    const uint64_t sum = XXH3_64bits(bytes.data(), bytes.size() - sizeof(uint64_t));
    std::memcpy(bytes.data() + bytes.size() - sizeof(uint64_t), &sum, sizeof sum);
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

struct Case {
  std::string press;
  std::string codec;
  int32_t block;
  std::string select;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.press << " / " << c.codec << " / B=" << c.block << " / " << c.select;
}

class PressSnapshotTest : public ::testing::TestWithParam<Case> {
 protected:
  std::string path_ = (std::filesystem::temp_directory_path() /
                       ("kvforge-press-snapshot-" + std::to_string(::getpid()) + ".kvs"))
                          .string();
  void TearDown() override { std::filesystem::remove(path_); }
};

TEST_P(PressSnapshotTest, ARestoredPressedSequenceContinuesExactly) {
  const Case& c = GetParam();
  auto kv = pressed_cache(c.press, c.codec, c.block, c.select);
  const SeqId seq{0};
  prefill(*kv, seq, snapshot_tokens(150, 1));
  decode(*kv, seq, snapshot_tokens(5, 2));
  const int32_t pressed = kv->compressed_end(seq);
  ASSERT_GT(pressed, 0);
  ASSERT_TRUE(kv->save(seq, path_).ok());
  // 24 more steps: decode-time presses (every=8) run in them.
  const std::vector<int32_t> more = snapshot_tokens(24, 3);
  const std::vector<float> want = decode(*kv, seq, more);

  auto other = pressed_cache(c.press, c.codec, c.block, c.select);
  const Status restored = other->restore(SeqId{1}, path_);
  ASSERT_TRUE(restored.ok()) << restored.to_string();
  other->check_invariants();
  EXPECT_EQ(other->compressed_end(SeqId{1}), pressed);
  const std::vector<float> got = decode(*other, SeqId{1}, more);
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
  EXPECT_EQ(other->compressed_end(SeqId{1}), kv->compressed_end(seq));
  other->check_invariants();
  other->release(SeqId{1});
  other->check_invariants();
}

INSTANTIATE_TEST_SUITE_P(Presses, PressSnapshotTest,
                         ::testing::Values(Case{"streaming:tokens=48:window=16", "f16", 16, ""},
                                           Case{"snapkv:ratio=0.4:window=16", "int8", 16, ""},
                                           Case{"h2o:tokens=64:window=16:every=8", "int4h", 16, ""},
                                           Case{"streaming:tokens=64:window=16:every=8",
                                                "kivi2:g=16:r=32", 16, ""},
                                           Case{"snapkv:ratio=0.4:window=16:every=8", "f16", 8,
                                                "quest:tokens=24:window=8:reuse=2:sim=0.5"}),
                         [](const auto& info) { return "case" + std::to_string(info.index); });

TEST_F(PressSnapshotTest, ForeignAndDamagedFilesAreRefused) {
  constexpr int32_t kB = 16;
  auto kv = pressed_cache("streaming:tokens=48:window=16", "f16", kB);
  const SeqId seq{0};
  const int32_t n = 120;
  prefill(*kv, seq, snapshot_tokens(n, 4));
  const int32_t pressed = kv->compressed_end(seq);
  ASSERT_GT(pressed, 0);
  ASSERT_TRUE(kv->save(seq, path_).ok());
  const std::vector<char> bytes = read_bytes(path_);

  // Offsets of the fields the damage goes to (the layout in
  // paged_kv_cache_snapshot.cpp): after magic, version and fingerprint, the
  // three plans; then the shape, the tokens and their positions, the staged
  // start and the pressed end.
  size_t at = 8 + 4 + 8;
  for (int text = 0; text < 3; ++text) {
    uint32_t size = 0;
    std::memcpy(&size, bytes.data() + at, 4);
    at += 4 + size;
  }
  at += 4 * 4 + 4 + 8 * static_cast<size_t>(n) + 4;
  const size_t pressed_end_at = at;
  int32_t stored_end = 0;
  std::memcpy(&stored_end, bytes.data() + pressed_end_at, 4);
  ASSERT_EQ(stored_end, pressed);
  // Then the key bounds size, the block part (f16: no staged rows, 8 bytes
  // of counts per layer and side) and the first retained list.
  const int32_t layers = snapshot_model().config().n_layers;
  const size_t rows_at =
      pressed_end_at + 4 + 4 +
      static_cast<size_t>((n + kB - 1) / kB - pressed / kB) * kv->pool().bytes_per_block() +
      static_cast<size_t>(layers) * 2 * 8;
  int32_t rows = 0;
  std::memcpy(&rows, bytes.data() + rows_at, 4);
  ASSERT_EQ(rows, static_cast<int32_t>(kv->retained_positions(seq, LayerId{0}, 0).size()));
  ASSERT_GE(rows, 2);

  auto fresh = pressed_cache("streaming:tokens=48:window=16", "f16", kB);
  auto expect_refused = [&](const std::vector<char>& file, bool fix, StatusCode code,
                            const std::string& words) {
    write_bytes(path_, file, fix);
    const Status s = fresh->restore(SeqId{0}, path_);
    EXPECT_EQ(s.code(), code) << s.to_string();
    EXPECT_NE(s.message().find(words), std::string::npos) << s.message();
    EXPECT_EQ(fresh->n_tokens(SeqId{0}), 0);
    EXPECT_EQ(fresh->pool().n_free(), fresh->pool().n_blocks());
    fresh->check_invariants();
  };
  auto with_i32 = [&](size_t offset, int32_t value) {
    std::vector<char> b = bytes;
    std::memcpy(b.data() + offset, &value, 4);
    return b;
  };

  std::vector<char> damaged = bytes;
  damaged[rows_at + 8] ^= 0x01;
  expect_refused(damaged, false, StatusCode::kCorrupt, "checksum");
  expect_refused(std::vector<char>(bytes.begin(), bytes.end() - 40), true, StatusCode::kCorrupt,
                 "truncated");
  expect_refused(with_i32(8, 5), true, StatusCode::kUnsupported,
                 "format version 5 (this build reads 6)");
  expect_refused(with_i32(pressed_end_at, pressed + 1), true, StatusCode::kCorrupt,
                 "bad pressed end");
  expect_refused(with_i32(pressed_end_at, n + kB), true, StatusCode::kCorrupt, "bad pressed end");
  expect_refused(with_i32(rows_at, pressed + 1), true, StatusCode::kCorrupt,
                 "bad retained row count");
  expect_refused(with_i32(rows_at, -1), true, StatusCode::kCorrupt, "bad retained row count");
  int32_t first_position = 0;
  std::memcpy(&first_position, bytes.data() + rows_at + 4, 4);
  expect_refused(with_i32(rows_at + 8, first_position), true, StatusCode::kCorrupt,
                 "not ascending");
  expect_refused(with_i32(rows_at + 4, pressed), true, StatusCode::kCorrupt, "not ascending");
  // A count of tokens below 1 for the first row.
  std::vector<char> bad_count = bytes;
  const float zero = 0.0f;
  std::memcpy(bad_count.data() + rows_at + 4 + 4 * static_cast<size_t>(rows), &zero, 4);
  expect_refused(bad_count, true, StatusCode::kCorrupt, "count of tokens");
  expect_refused(
      [&] {
        std::vector<char> b = bytes;
        b.insert(b.end() - 8, 4, '\0');
        return b;
      }(),
      true, StatusCode::kCorrupt, "trailing bytes");

  // Another press plan, or none: the retained rows would not be what it keeps.
  write_bytes(path_, bytes, false);
  for (const std::string other : {"streaming:tokens=64:window=16", ""}) {
    auto foreign = pressed_cache(other, "f16", kB);
    const Status s = foreign->restore(SeqId{0}, path_);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
    EXPECT_NE(s.message().find("press plan"), std::string::npos) << s.message();
    EXPECT_EQ(foreign->pool().n_free(), foreign->pool().n_blocks());
  }
  // The intact file restores.
  ASSERT_TRUE(fresh->restore(SeqId{0}, path_).ok());
  fresh->check_invariants();
  EXPECT_EQ(fresh->compressed_end(SeqId{0}), pressed);
}

}  // namespace
}  // namespace press_snapshot
}  // namespace kvforge
