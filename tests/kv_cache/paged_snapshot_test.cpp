// Save/restore of one sequence of the paged cache (paged_kv_cache_snapshot.cpp)
// under a real model (stories260K):
//
// * round trips for every codec, keys and values apart, and per-layer plans:
//   the restored sequence must decode bit-identically to the original, with
//   sequences that end inside a KIVI residual window, on a block boundary,
//   inside the first block, or hold nothing;
// * files damaged in their structure that carry a valid checksum (the test
//   takes a saved file apart along the documented layout, changes one field
//   and writes it back with a recomputed checksum): every one is refused with
//   its own error, and the cache is left as it was.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <ostream>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <xxhash.h>

#include "kv/kv_codec_plan.h"
#include "kv/paged_kv_cache.h"
#include "model/model.h"

namespace kvforge::snapshot_test {
namespace {

constexpr int32_t kBlock = 16;
constexpr int32_t kCtx = 256;

// Chunks of at most one block per forward call, like paged_model_test.cpp.
Model& model() {
  static std::unique_ptr<Model> m = [] {
    ModelOptions o;
    o.n_threads = 2;
    o.max_batch = kBlock;
    auto loaded = Model::load(std::string(KVFORGE_SOURCE_DIR) + "/models/stories260K.gguf", o);
    KVF_CHECK(loaded.ok());
    return std::move(loaded).value();
  }();
  return *m;
}

std::unique_ptr<PagedKvCache> make_cache(std::string_view codec, std::string_view layers,
                                         int32_t n_seq) {
  PagedKvCacheOptions o;
  auto plan = plan_kv_codecs(codec, layers, model().config().n_layers);
  KVF_CHECK(plan.ok());
  o.layer_codecs = *plan;
  o.block_tokens = kBlock;
  o.n_ctx = kCtx;
  o.n_seq = n_seq;
  o.model_fingerprint = model().fingerprint();
  auto cache = PagedKvCache::create(model().kv_shape(), o);
  KVF_CHECK(cache.ok());
  return std::move(cache).value();
}

std::vector<int32_t> token_ids(int32_t n, int32_t salt) {
  std::vector<int32_t> ids;
  ids.push_back(1);
  for (int32_t i = 1; i < n; ++i) ids.push_back(40 + (i * 53 + salt * 7) % 400);
  return ids;
}

// Appends `ids` at the sequence's end; the logits of the last one.
std::vector<float> append(KvCache& kv, SeqId seq, std::span<const int32_t> ids) {
  std::vector<float> logits(static_cast<size_t>(model().config().n_vocab));
  const Status s =
      model().forward(ids, kv.n_tokens(seq), kv, seq, LogitsFor::kLastToken, logits.data());
  KVF_CHECK(s.ok());
  return logits;
}

std::string temp_path(const char* what) {
  return (std::filesystem::temp_directory_path() /
          (std::string("kvforge-") + what + "-" + std::to_string(::getpid()) + ".kvs"))
      .string();
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// ---------------------------------------------------------------------------
// Round trips.

struct RoundTrip {
  std::string codec;
  std::string layers;  // --kv-codec-layers
  int32_t prefill;     // tokens of the first forward call (in chunks of a block)
  int32_t decoded;     // then this many one-token steps before the save
};

void PrintTo(const RoundTrip& c, std::ostream* os) {
  *os << "codec '" << c.codec << "', layers '" << c.layers << "', " << c.prefill << " + "
      << c.decoded << " tokens";
}

std::string round_trip_name(const ::testing::TestParamInfo<RoundTrip>& info) {
  std::string name = info.param.codec + (info.param.layers.empty() ? "" : "_L_") +
                     info.param.layers + "_" + std::to_string(info.param.prefill) + "_" +
                     std::to_string(info.param.decoded);
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

class SnapshotRoundTrip : public ::testing::TestWithParam<RoundTrip> {
 protected:
  std::string path_ = temp_path("round-trip");
  void TearDown() override { std::filesystem::remove(path_); }
};

// 40 more steps after the save cross two or three block boundaries, so KIVI
// encodes blocks that were in the window (or not yet full) when saved.
constexpr int32_t kStepsAfterRestore = 40;

TEST_P(SnapshotRoundTrip, RestoredSequenceDecodesBitIdentically) {
  const RoundTrip& c = GetParam();
  const int32_t held = c.prefill + c.decoded;
  const auto ids = token_ids(held + kStepsAfterRestore, 3);
  auto original = make_cache(c.codec, c.layers, 1);
  if (c.prefill > 0)
    append(*original, SeqId{0}, std::span(ids).first(static_cast<size_t>(c.prefill)));
  for (int32_t p = c.prefill; p < held; ++p)
    append(*original, SeqId{0}, std::span(ids).subspan(p, 1));
  ASSERT_TRUE(original->save(SeqId{0}, path_).ok());
  const size_t bytes_at_save = original->bytes_used();

  // Into the second slot of another cache, as another process would.
  auto other = make_cache(c.codec, c.layers, 2);
  const Status restored = other->restore(SeqId{1}, path_);
  ASSERT_TRUE(restored.ok()) << restored.to_string();
  other->check_invariants();
  ASSERT_EQ(other->n_tokens(SeqId{1}), held);
  const auto tokens = other->tokens(SeqId{1});
  EXPECT_TRUE(std::equal(tokens.begin(), tokens.end(), ids.begin()));
  EXPECT_EQ(other->bytes_used(), bytes_at_save) << "blocks and staged rows, as saved";

  for (int32_t p = held; p < held + kStepsAfterRestore; ++p) {
    const auto next = std::span(ids).subspan(static_cast<size_t>(p), 1);
    const auto want = append(*original, SeqId{0}, next);
    const auto got = append(*other, SeqId{1}, next);
    ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
        << "position " << p << " (saved with " << held << " tokens)";
  }
  other->check_invariants();
}

// stories260K has 5 layers. 75 held tokens: KIVI with r=32 holds positions
// 43..74 in f32 (the window reaches back into block 2), 64..74 not yet encoded.
INSTANTIATE_TEST_SUITE_P(
    Codecs, SnapshotRoundTrip,
    ::testing::Values(
        RoundTrip{"f32", "", 50, 25}, RoundTrip{"f16", "", 50, 25}, RoundTrip{"bf16", "", 50, 25},
        RoundTrip{"int8", "", 50, 25}, RoundTrip{"int4", "", 50, 25},
        RoundTrip{"int4h", "", 50, 25}, RoundTrip{"kivi2:g=16:r=32", "", 50, 25},
        RoundTrip{"kivi4:g=8:r=40", "", 50, 25}, RoundTrip{"kivi2:g=16:r=0", "", 50, 25},
        RoundTrip{"kivi4:g=16:r=16", "", 70, 5},
        // Keys and values apart.
        RoundTrip{"k=int8,v=int4h", "", 50, 25}, RoundTrip{"k=kivi2:g=16:r=32,v=int8", "", 50, 25},
        RoundTrip{"k=int4,v=kivi4:g=16:r=48", "", 50, 25},
        RoundTrip{"k=bf16,v=kivi2:g=8:r=16", "", 50, 25},
        // Per-layer plans: staged and unstaged layers side by side.
        RoundTrip{"f16", "0-1:int8,2-:kivi2:g=16:r=32", 50, 25},
        RoundTrip{"int4h", "0:k=kivi4:g=16:r=48/v=int8,3-:bf16", 50, 25},
        RoundTrip{"k=int8,v=int4", "1:f32,2-3:v=kivi2:g=16:r=16", 50, 25},
        // Ends: on a block boundary, inside the first block, nothing held.
        RoundTrip{"kivi2:g=16:r=32", "", 48, 16}, RoundTrip{"kivi2:g=16:r=32", "", 10, 0},
        RoundTrip{"int4", "", 48, 16}, RoundTrip{"int4", "", 10, 0},
        RoundTrip{"kivi4:g=8:r=40", "", 0, 0}, RoundTrip{"int8", "", 0, 0}),
    round_trip_name);

// ---------------------------------------------------------------------------
// Damaged files with valid checksums.

// A snapshot file taken apart along the layout documented in
// paged_kv_cache_snapshot.cpp, and put back together with a fresh checksum.
struct SnapshotFields {
  std::array<char, 8> magic{};
  uint32_t version = 0;
  uint64_t fingerprint = 0;
  std::optional<uint32_t> plan_length;  // written instead of plan.size() when set
  std::string plan;
  std::string press_plan;          // "none" here: the sequence is not pressed
  std::string demotion_plan;       // likewise
  std::array<int32_t, 4> shape{};  // block_tokens, n_layers, n_kv_heads, head_dim
  int32_t n_tokens = 0;            // the count as written (may disagree with the arrays)
  std::vector<int32_t> ids;
  std::vector<int32_t> positions;
  int32_t staged_begin = 0;
  int32_t pressed_end = 0;
  uint32_t key_bounds_bytes = 0;
  std::vector<uint8_t> blocks;
  struct StagedRows {
    uint64_t count = 0;  // as written
    std::vector<float> rows;
  };
  std::vector<StagedRows> staged;    // per layer: keys, then values
  std::vector<uint8_t> press_state;  // press counters, captured attention and queries

  [[nodiscard]] std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out;
    auto put = [&out](const void* p, size_t n) {
      const auto* b = static_cast<const uint8_t*>(p);
      out.insert(out.end(), b, b + n);
    };
    put(magic.data(), magic.size());
    put(&version, sizeof version);
    put(&fingerprint, sizeof fingerprint);
    const uint32_t length = plan_length.value_or(static_cast<uint32_t>(plan.size()));
    put(&length, sizeof length);
    put(plan.data(), plan.size());
    for (const std::string* text : {&press_plan, &demotion_plan}) {
      const auto size = static_cast<uint32_t>(text->size());
      put(&size, sizeof size);
      put(text->data(), text->size());
    }
    put(shape.data(), sizeof shape);
    put(&n_tokens, sizeof n_tokens);
    put(ids.data(), ids.size() * sizeof(int32_t));
    put(positions.data(), positions.size() * sizeof(int32_t));
    put(&staged_begin, sizeof staged_begin);
    put(&pressed_end, sizeof pressed_end);
    put(&key_bounds_bytes, sizeof key_bounds_bytes);
    put(blocks.data(), blocks.size());
    for (const StagedRows& s : staged) {
      put(&s.count, sizeof s.count);
      put(s.rows.data(), s.rows.size() * sizeof(float));
    }
    put(press_state.data(), press_state.size());
    const uint64_t sum = XXH3_64bits(out.data(), out.size());
    put(&sum, sizeof sum);
    return out;
  }
};

// Parses a file the cache wrote (so every count is trusted).
SnapshotFields parse_snapshot(const std::vector<uint8_t>& file, const PagedKvCache& cache) {
  SnapshotFields f;
  size_t at = 0;
  auto get = [&](void* out, size_t n) {
    KVF_CHECK(at + n <= file.size());
    if (n > 0) std::memcpy(out, file.data() + at, n);  // `out` may be null when n == 0
    at += n;
  };
  get(f.magic.data(), f.magic.size());
  get(&f.version, sizeof f.version);
  get(&f.fingerprint, sizeof f.fingerprint);
  uint32_t plan_length = 0;
  get(&plan_length, sizeof plan_length);
  f.plan.resize(plan_length);
  get(f.plan.data(), plan_length);
  for (std::string* text : {&f.press_plan, &f.demotion_plan}) {
    uint32_t length = 0;
    get(&length, sizeof length);
    text->resize(length);
    get(text->data(), length);
  }
  get(f.shape.data(), sizeof f.shape);
  get(&f.n_tokens, sizeof f.n_tokens);
  f.ids.resize(static_cast<size_t>(f.n_tokens));
  get(f.ids.data(), f.ids.size() * sizeof(int32_t));
  f.positions.resize(static_cast<size_t>(f.n_tokens));
  get(f.positions.data(), f.positions.size() * sizeof(int32_t));
  get(&f.staged_begin, sizeof f.staged_begin);
  get(&f.pressed_end, sizeof f.pressed_end);
  get(&f.key_bounds_bytes, sizeof f.key_bounds_bytes);
  KVF_CHECK(f.pressed_end == 0 && f.key_bounds_bytes == 0);  // what the fixture writes
  const size_t n_blocks = static_cast<size_t>((f.n_tokens + f.shape[0] - 1) / f.shape[0]);
  f.blocks.resize(n_blocks * cache.pool().bytes_per_block());
  get(f.blocks.data(), f.blocks.size());
  f.staged.resize(2 * static_cast<size_t>(f.shape[1]));
  for (SnapshotFields::StagedRows& s : f.staged) {
    get(&s.count, sizeof s.count);
    s.rows.resize(s.count);
    get(s.rows.data(), s.rows.size() * sizeof(float));
  }
  KVF_CHECK(at + sizeof(uint64_t) <= file.size());
  f.press_state.resize(file.size() - sizeof(uint64_t) - at);
  get(f.press_state.data(), f.press_state.size());
  return f;
}

// keys in KIVI (staged, window of 32), values in int8 (not staged): both
// kinds of staged-row sections. 75 tokens: positions 32..74 are staged.
constexpr std::string_view kDamageCodec = "k=kivi2:g=16:r=32,v=int8";
constexpr int32_t kHeld = 75;

class DamagedSnapshot : public ::testing::Test {
 protected:
  void SetUp() override {
    auto source = make_cache(kDamageCodec, "", 1);
    ids_ = token_ids(kHeld + 1, 5);
    append(*source, SeqId{0}, std::span(ids_).first(40));
    for (int32_t p = 40; p < kHeld; ++p) append(*source, SeqId{0}, std::span(ids_).subspan(p, 1));
    ASSERT_TRUE(source->save(SeqId{0}, path_).ok());
    original_ = read_bytes(path_);
    expected_next_ = append(*source, SeqId{0}, std::span(ids_).subspan(kHeld, 1));
    cache_ = make_cache(kDamageCodec, "", 1);
    fields_ = parse_snapshot(original_, *cache_);
  }
  void TearDown() override { std::filesystem::remove(path_); }

  // Restores `bytes` into the empty sequence 0; on failure the cache must be
  // as it was (no block taken, none evicted from the prefix cache). Returns
  // the status.
  Status restore(const std::vector<uint8_t>& bytes) {
    write_bytes(path_, bytes);
    const int32_t free_before = cache_->pool().n_free();
    const size_t bytes_before = cache_->bytes_used();
    const PrefixCacheStats prefix_before = cache_->prefix_stats();
    const Status s = cache_->restore(SeqId{0}, path_);
    if (!s.ok()) {
      EXPECT_EQ(cache_->n_tokens(SeqId{0}), 0);
      EXPECT_EQ(cache_->pool().n_free(), free_before);
      EXPECT_EQ(cache_->bytes_used(), bytes_before);
      EXPECT_EQ(cache_->prefix_stats().cached_blocks, prefix_before.cached_blocks);
      cache_->check_invariants();
      // One line naming the file.
      EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
      EXPECT_NE(s.message().find(path_), std::string::npos) << s.message();
    }
    return s;
  }

  // Applies `damage` to a copy of the fields; the restore must fail with
  // `code` and a message containing `message`.
  void expect_refused(const char* what, const std::function<void(SnapshotFields&)>& damage,
                      StatusCode code, std::string_view message) {
    SnapshotFields f = fields_;
    damage(f);
    const Status s = restore(f.bytes());
    if (s.ok()) cache_->release(SeqId{0});  // accepted: a failure below; free the slot
    EXPECT_EQ(s.code(), code) << what << ": " << s.to_string();
    EXPECT_NE(s.message().find(message), std::string::npos)
        << what << ": '" << s.message() << "' should say '" << message << "'";
  }

  // Staged rows of every staged side resized for a new staged_begin (counts
  // consistent with it), so that only the start itself is wrong.
  static void move_staged_begin(SnapshotFields& f, int32_t begin) {
    const auto row = static_cast<size_t>(f.shape[2]) * static_cast<size_t>(f.shape[3]);
    const size_t floats = static_cast<size_t>(f.n_tokens - begin) * row;
    for (SnapshotFields::StagedRows& s : f.staged) {
      if (s.count == 0) continue;
      s.rows.assign(floats, 0.25f);
      s.count = floats;
    }
    f.staged_begin = begin;
  }

  std::string path_ = temp_path("damaged");
  std::vector<int32_t> ids_;
  std::vector<uint8_t> original_;
  std::vector<float> expected_next_;
  std::unique_ptr<PagedKvCache> cache_;
  SnapshotFields fields_;
};

// The test's own writer reproduces the file byte for byte, and the file it
// writes restores and continues exactly: the layout the damage cases rely on
// is the documented one.
TEST_F(DamagedSnapshot, LayoutParsesAndRebuildsExactly) {
  EXPECT_EQ(fields_.n_tokens, kHeld);
  // Rows are kept from 0: hits ending at the last block boundaries (64, 48,
  // 32) read the window behind them (paged_kv_cache.cpp, trim_staging).
  EXPECT_EQ(fields_.staged_begin, 0);
  EXPECT_EQ(fields_.staged[0].count, 75u * 4 * 8);  // layer 0 keys: 75 rows x 4 heads x 8
  EXPECT_EQ(fields_.staged[1].count, 0u);           // layer 0 values: int8, not staged
  ASSERT_EQ(fields_.bytes(), original_);
  const Status s = restore(fields_.bytes());
  ASSERT_TRUE(s.ok()) << s.to_string();
  const auto got = append(*cache_, SeqId{0}, std::span(ids_).subspan(kHeld, 1));
  EXPECT_EQ(std::memcmp(got.data(), expected_next_.data(), got.size() * sizeof(float)), 0);
}

TEST_F(DamagedSnapshot, HeaderFields) {
  expect_refused(
      "magic", [](SnapshotFields& f) { f.magic[3] = 'X'; }, StatusCode::kCorrupt,
      "not a kvforge prompt cache file");
  for (const uint32_t version : {0u, 5u, 7u, 0xffffffffu}) {
    expect_refused(
        "version", [version](SnapshotFields& f) { f.version = version; }, StatusCode::kUnsupported,
        "format version " + std::to_string(version));
  }
  expect_refused(
      "fingerprint", [](SnapshotFields& f) { f.fingerprint ^= 1; }, StatusCode::kInvalidArgument,
      "another model");
  expect_refused(
      "plan length past the end", [](SnapshotFields& f) { f.plan_length = 0xffffffffu; },
      StatusCode::kCorrupt, "codec plan length is past the end");
  expect_refused(
      "plan length one too long",
      [](SnapshotFields& f) { f.plan_length = static_cast<uint32_t>(f.plan.size() + 1); },
      StatusCode::kInvalidArgument, "codec plan");
  expect_refused(
      "plan length zero", [](SnapshotFields& f) { f.plan_length = 0; },
      StatusCode::kInvalidArgument, "codec plan");
  expect_refused(
      "unknown codec", [](SnapshotFields& f) { f.plan = "0-4:k=zstd9/v=int8"; },
      StatusCode::kInvalidArgument, "codec plan '0-4:k=zstd9/v=int8'");
  const char* shape_fields[] = {"block size", "layer count", "KV head count", "head size"};
  for (size_t i = 0; i < 4; ++i) {
    expect_refused(
        shape_fields[i], [i](SnapshotFields& f) { f.shape[i] *= 2; }, StatusCode::kInvalidArgument,
        "block size or KV shape");
  }
}

TEST_F(DamagedSnapshot, TokenCountsAndPositions) {
  for (const int32_t n : {-1, -kHeld, kCtx + 1, std::numeric_limits<int32_t>::max(),
                          std::numeric_limits<int32_t>::min()}) {
    expect_refused(
        "token count", [n](SnapshotFields& f) { f.n_tokens = n; }, StatusCode::kOutOfRange,
        "it holds " + std::to_string(n) + " tokens");
  }
  // A count that disagrees with the arrays that follow: the fields after it
  // are read from the wrong place; the first one found wrong refuses it.
  for (const int32_t n : {kHeld - 1, kHeld + 1, kHeld + 16, 0}) {
    SnapshotFields f = fields_;
    f.n_tokens = n;
    const Status s = restore(f.bytes());
    if (s.ok()) cache_->release(SeqId{0});
    EXPECT_FALSE(s.ok()) << "count " << n;
  }
  expect_refused(
      "positions out of order",
      [](SnapshotFields& f) { std::swap(f.positions[3], f.positions[4]); },
      StatusCode::kUnsupported, "non-contiguous positions");
  expect_refused(
      "positions shifted",
      [](SnapshotFields& f) {
        for (int32_t& p : f.positions) ++p;
      },
      StatusCode::kUnsupported, "non-contiguous positions");
}

TEST_F(DamagedSnapshot, StagedStart) {
  for (const int32_t begin : {-16, -1, 33, 80, kHeld + 1}) {
    expect_refused(
        "staged start", [begin](SnapshotFields& f) { f.staged_begin = begin; },
        StatusCode::kCorrupt, "staged");
  }
  // A start after the rows the next query reads in f32 (it reads 48..74 and
  // the window reaches 32..), rows consistent with it: the kernel would read
  // rows before the first one kept.
  for (const int32_t begin : {48, 64}) {
    expect_refused(
        "staged start too late", [begin](SnapshotFields& f) { move_staged_begin(f, begin); },
        StatusCode::kCorrupt, "staged rows start at position " + std::to_string(begin));
  }
  // Later than saved but still covering what the next query reads: a
  // consistent file (other rows), accepted and decodable.
  for (const int32_t begin : {16, 32}) {
    SnapshotFields f = fields_;
    move_staged_begin(f, begin);
    const Status s = restore(f.bytes());
    ASSERT_TRUE(s.ok()) << begin << ": " << s.to_string();
    cache_->check_invariants();
    append(*cache_, SeqId{0}, std::span(ids_).subspan(kHeld, 1));
    cache_->check_invariants();
    ASSERT_TRUE(cache_->truncate(SeqId{0}, 0).ok());
  }
}

// Section sizes follow from the counts before them: a section of the wrong
// size shifts what is read after it, and the first field found wrong refuses
// the file (before any block is taken).
TEST_F(DamagedSnapshot, SectionSizes) {
  const size_t block_bytes = cache_->pool().bytes_per_block();
  constexpr std::string_view kTruncated = "the file is truncated";
  constexpr std::string_view kStagedCount = "staged row count does not match";
  expect_refused(
      "one block missing",
      [&](SnapshotFields& f) { f.blocks.resize(f.blocks.size() - block_bytes); },
      StatusCode::kCorrupt, kTruncated);
  expect_refused(
      "one block too many",
      [&](SnapshotFields& f) { f.blocks.resize(f.blocks.size() + block_bytes, 0); },
      StatusCode::kCorrupt, kStagedCount);
  expect_refused(
      "one staged float too many",
      [](SnapshotFields& f) {
        f.staged[0].rows.push_back(0.0f);
        ++f.staged[0].count;
      },
      StatusCode::kCorrupt, kStagedCount);
  expect_refused(
      "a staged row count on an unstaged side",
      [](SnapshotFields& f) {
        f.staged[1].rows = f.staged[0].rows;
        f.staged[1].count = f.staged[0].count;
      },
      StatusCode::kCorrupt, kStagedCount);
  expect_refused(
      "staged rows moved between layers (same total size)",
      [](SnapshotFields& f) {
        f.staged[2].rows.push_back(f.staged[0].rows.back());
        f.staged[0].rows.pop_back();
        --f.staged[0].count;
        ++f.staged[2].count;
      },
      StatusCode::kCorrupt, kStagedCount);
  // Counts whose byte size wraps around 2^64: 2^62 floats are 0 bytes, and
  // 2^62 + c floats as many bytes as c.
  expect_refused(
      "count that wraps to zero bytes",
      [](SnapshotFields& f) {
        f.staged[0].count = uint64_t{1} << 62;
        f.staged[0].rows.clear();
      },
      StatusCode::kCorrupt, kTruncated);
  expect_refused(
      "count that wraps to the right size",
      [](SnapshotFields& f) { f.staged[0].count += uint64_t{1} << 62; }, StatusCode::kCorrupt,
      kTruncated);
  expect_refused(
      "one staged float past its count",
      [](SnapshotFields& f) { f.staged.back().rows.push_back(1.0f); }, StatusCode::kCorrupt,
      "prompt cache");
  expect_refused(
      "trailing bytes", [](SnapshotFields& f) { f.press_state.insert(f.press_state.end(), 4, 0); },
      StatusCode::kCorrupt, "trailing bytes");
}

// The file cut at every section boundary and inside every section, with a
// checksum over what is left.
TEST_F(DamagedSnapshot, TruncatedAnywhere) {
  const std::vector<uint8_t> whole(original_.begin(), original_.end() - sizeof(uint64_t));
  std::vector<size_t> cuts;
  for (size_t n = 0; n < std::min<size_t>(whole.size(), 512); ++n) cuts.push_back(n);
  for (size_t n = 512; n < whole.size(); n += 61) cuts.push_back(n);
  for (size_t back = 1; back <= 24 && back <= whole.size(); ++back)
    cuts.push_back(whole.size() - back);
  for (const size_t n : cuts) {
    std::vector<uint8_t> cut(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n));
    const uint64_t sum = XXH3_64bits(cut.data(), cut.size());
    cut.insert(cut.end(), reinterpret_cast<const uint8_t*>(&sum),
               reinterpret_cast<const uint8_t*>(&sum) + sizeof sum);
    const Status s = restore(cut);
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << "cut at " << n << ": " << s.to_string();
  }
}

// Random damage to the fixed-size fields and counts, checksum recomputed:
// whatever the reader accepts must be a sequence the cache can hold and
// decode (no crash, invariants hold); the rest is refused.
TEST_F(DamagedSnapshot, RandomFieldDamageNeverCrashes) {
  std::mt19937 rng(11);
  const std::vector<std::function<int32_t*(SnapshotFields&)>> int_fields = {
      [](SnapshotFields& f) { return &f.shape[0]; },
      [](SnapshotFields& f) { return &f.n_tokens; },
      [](SnapshotFields& f) { return &f.staged_begin; },
      [&rng](SnapshotFields& f) { return &f.ids[rng() % f.ids.size()]; },
      [&rng](SnapshotFields& f) { return &f.positions[rng() % f.positions.size()]; },
  };
  const int32_t interesting[] = {0,
                                 1,
                                 -1,
                                 15,
                                 16,
                                 17,
                                 31,
                                 32,
                                 33,
                                 48,
                                 64,
                                 74,
                                 75,
                                 76,
                                 256,
                                 257,
                                 std::numeric_limits<int32_t>::max(),
                                 std::numeric_limits<int32_t>::min()};
  int accepted = 0;
  for (int trial = 0; trial < 300; ++trial) {
    SnapshotFields f = fields_;
    const int32_t value =
        rng() % 2 ? interesting[rng() % std::size(interesting)] : static_cast<int32_t>(rng());
    if (trial % 7 == 6) {
      f.staged[rng() % f.staged.size()].count = value < 0 ? uint64_t{1} << (rng() % 64) : value;
    } else {
      *int_fields[rng() % int_fields.size()](f) = value;
    }
    const Status s = restore(f.bytes());
    if (!s.ok()) continue;
    ++accepted;
    cache_->check_invariants();
    const int32_t next[1] = {7};
    append(*cache_, SeqId{0}, next);
    cache_->check_invariants();
    cache_->release(SeqId{0});
  }
  // Token ids are not checked (they only key the prefix cache): some damage
  // is harmless and accepted.
  EXPECT_GT(accepted, 0);
}

}  // namespace
}  // namespace kvforge::snapshot_test
