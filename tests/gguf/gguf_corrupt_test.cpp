// Hostile and damaged inputs: every one must yield a Status naming the
// problem, never a crash, an out-of-bounds read or a huge allocation. Run
// under ASan/UBSan (KVFORGE_SANITIZE) these tests also prove the absence of
// out-of-bounds reads: each image is copied into a buffer of exactly its size.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gguf/gguf.h"
#include "raw_gguf.h"

namespace kvforge::gguf {
namespace {

using testing::RawGguf;

Status parse(const std::vector<uint8_t>& bytes) {
  // A heap copy of exactly bytes.size() so any overread hits a redzone.
  std::vector<uint8_t> exact(bytes.begin(), bytes.end());
  exact.shrink_to_fit();
  return GgufFile::from_memory(exact).status();
}

// Asserts the code and that the message mentions each fragment.
void expect_error(const std::vector<uint8_t>& bytes, StatusCode code,
                  std::initializer_list<std::string_view> fragments) {
  Status s = parse(bytes);
  EXPECT_EQ(s.code(), code) << s.to_string();
  for (std::string_view fragment : fragments) {
    EXPECT_NE(s.message().find(fragment), std::string::npos)
        << "message '" << s.message() << "' does not mention '" << fragment << "'";
  }
}

// A small valid file with every kind of field, whose last tensor ends exactly
// at the end of the file (its size is a multiple of the alignment), so every
// strict prefix is missing something.
std::vector<uint8_t> small_valid_file() {
  GgufWriter writer;
  writer.set_string("general.architecture", "llama");
  writer.set_uint32("llama.context_length", 128);
  writer.set_string_array("tokenizer.ggml.tokens", {"<s>", "", "b"});
  writer.set_float32_array("tokenizer.ggml.scores", {0.0f, -1.0f, -2.0f});
  writer.set_bool("flag", true);
  writer.set_value("nested", Value{ValueType::kArray,
                                   Array{ValueType::kArray,
                                         {Value{ValueType::kArray, Array{ValueType::kInt8, {}}}}}});
  const std::vector<uint8_t> q8(34, 1);
  const std::vector<uint8_t> f32(32, 2);
  writer.add_tensor("q", TensorType::kQ8_0, {32}, q8);
  writer.add_tensor("last", TensorType::kF32, {8}, f32);  // 32 bytes: no trailing padding
  return writer.serialize();
}

TEST(GgufCorrupt, EveryTruncationFailsCleanly) {
  const std::vector<uint8_t> full = small_valid_file();
  ASSERT_TRUE(parse(full).ok()) << parse(full).to_string();
  for (size_t n = 0; n < full.size(); ++n) {
    Status s = parse(std::vector<uint8_t>(full.begin(), full.begin() + n));
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << "prefix of " << n << " bytes: " << s.to_string();
    EXPECT_FALSE(s.message().empty());
  }
}

TEST(GgufCorrupt, HeaderProblems) {
  RawGguf bad_magic;
  bad_magic.bytes = {'G', 'G', 'M', 'L', 3, 0, 0, 0};
  bad_magic.u64(0).u64(0);
  expect_error(bad_magic.bytes, StatusCode::kCorrupt, {"not a GGUF file", "47 47 4d 4c"});

  RawGguf v1;
  v1.header(1, 0, 0);
  expect_error(v1.bytes, StatusCode::kUnsupported, {"version 1", "32-bit"});
  RawGguf v4;
  v4.header(4, 0, 0);
  expect_error(v4.bytes, StatusCode::kUnsupported, {"version 4"});
  RawGguf big_endian;
  big_endian.header(0x03000000, 0, 0);
  expect_error(big_endian.bytes, StatusCode::kUnsupported, {"big-endian"});

  RawGguf huge_kv_count;
  huge_kv_count.header(3, 0, uint64_t{1} << 60).kv_u32("a", 1);
  expect_error(huge_kv_count.bytes, StatusCode::kCorrupt, {"metadata count 1152921504606846976"});
  RawGguf huge_tensor_count;
  huge_tensor_count.header(3, ~uint64_t{0}, 1).kv_u32("a", 1);
  expect_error(huge_tensor_count.bytes, StatusCode::kCorrupt, {"tensor count"});
}

TEST(GgufCorrupt, MetadataProblems) {
  RawGguf huge_key;
  huge_key.header(3, 0, 1).u64(uint64_t{1} << 62).u32(4).u32(1);
  expect_error(huge_key.bytes, StatusCode::kCorrupt, {"string length 4611686018427387904"});

  RawGguf huge_string;
  huge_string.header(3, 0, 1).str("general.name").u32(8).u64(~uint64_t{0} - 3);
  expect_error(huge_string.bytes, StatusCode::kCorrupt, {"general.name", "string length"});

  RawGguf huge_array;
  huge_array.header(3, 0, 1).str("tokenizer.ggml.scores").u32(9).u32(6).u64(uint64_t{1} << 61);
  huge_array.zeros(64);
  expect_error(huge_array.bytes, StatusCode::kCorrupt, {"tokenizer.ggml.scores", "array of"});

  // Arrays of arrays, one level deeper than allowed.
  RawGguf deep;
  deep.header(3, 0, 1).str("bomb").u32(9);
  for (uint32_t level = 0; level < kMaxArrayNesting; ++level) deep.u32(9).u64(1);
  deep.u32(0).u64(0);
  expect_error(deep.bytes, StatusCode::kUnsupported, {"bomb", "nested"});

  // Wide bomb: a count of empty arrays that the remaining bytes cannot hold.
  RawGguf wide;
  wide.header(3, 0, 1).str("bomb").u32(9).u32(9).u64(uint64_t{1} << 40).zeros(120);
  expect_error(wide.bytes, StatusCode::kCorrupt, {"bomb", "1099511627776"});

  // Fits in the file, but beyond the element budget.
  RawGguf budget;
  budget.header(3, 0, 1).str("many").u32(9).u32(0).u64(kMaxMetadataElements + 1);
  budget.zeros(kMaxMetadataElements + 1);
  expect_error(budget.bytes, StatusCode::kUnsupported, {"many", "elements"});

  RawGguf bad_value_type;
  bad_value_type.header(3, 0, 1).str("k").u32(13).u32(0);
  expect_error(bad_value_type.bytes, StatusCode::kCorrupt, {"'k'", "value type"});
  RawGguf bad_elem_type;
  bad_elem_type.header(3, 0, 1).str("k").u32(9).u32(1000).u64(0);
  expect_error(bad_elem_type.bytes, StatusCode::kCorrupt, {"'k'", "1000"});
  RawGguf bad_bool;
  bad_bool.header(3, 0, 1).str("k").u32(7).u8(2);
  expect_error(bad_bool.bytes, StatusCode::kCorrupt, {"'k'", "bool"});
  RawGguf empty_key;
  empty_key.header(3, 0, 1).str("").u32(4).u32(1);
  expect_error(empty_key.bytes, StatusCode::kCorrupt, {"empty key"});

  RawGguf duplicate;
  duplicate.header(3, 0, 2).kv_u32("llama.block_count", 1).kv_u32("llama.block_count", 2);
  expect_error(duplicate.bytes, StatusCode::kCorrupt, {"duplicate key 'llama.block_count'"});
}

TEST(GgufCorrupt, AlignmentProblems) {
  for (uint32_t bad : {0u, 3u, 48u}) {
    RawGguf raw;
    raw.header(3, 0, 1).kv_u32("general.alignment", bad);
    expect_error(raw.bytes, StatusCode::kCorrupt, {"general.alignment", "power of two"});
  }
  RawGguf wrong_type;
  wrong_type.header(3, 0, 1).str("general.alignment").u32(10).u64(32);
  expect_error(wrong_type.bytes, StatusCode::kCorrupt, {"general.alignment", "uint64"});
}

// One tensor info followed by `data_bytes` of data, with the data section
// aligned to 32.
std::vector<uint8_t> one_tensor(const std::vector<uint64_t>& dims, uint32_t type, uint64_t offset,
                                size_t data_bytes) {
  RawGguf raw;
  raw.header(3, 1, 0).tensor_info("blk.0.attn_q.weight", dims, type, offset).pad_to(32);
  raw.zeros(data_bytes);
  return raw.bytes;
}

TEST(GgufCorrupt, TensorProblems) {
  ASSERT_TRUE(parse(one_tensor({4, 2}, 0, 0, 32)).ok());

  expect_error(one_tensor({4, 2}, 0, 16, 64), StatusCode::kCorrupt,
               {"'blk.0.attn_q.weight'", "offset 16", "alignment 32"});
  expect_error(one_tensor({256, 4}, 0, 1024, 2048), StatusCode::kCorrupt,
               {"'blk.0.attn_q.weight'", "[offset 1024, 4096 bytes]", "2048 bytes of tensor data"});
  expect_error(one_tensor({uint64_t{1} << 32, uint64_t{1} << 32}, 0, 0, 32), StatusCode::kCorrupt,
               {"'blk.0.attn_q.weight'", "overflow"});
  // Element count fits, byte count does not: 2^62 f32 values.
  expect_error(one_tensor({uint64_t{1} << 31, uint64_t{1} << 31}, 0, 0, 32), StatusCode::kCorrupt,
               {"'blk.0.attn_q.weight'", "2^64 bytes"});
  expect_error(one_tensor({}, 0, 0, 32), StatusCode::kCorrupt,
               {"'blk.0.attn_q.weight'", "n_dims is 0"});
  expect_error(one_tensor({1, 1, 1, 1, 1}, 0, 0, 32), StatusCode::kCorrupt,
               {"'blk.0.attn_q.weight'", "n_dims is 5"});
  expect_error(one_tensor({4, 0}, 0, 0, 32), StatusCode::kCorrupt,
               {"'blk.0.attn_q.weight'", "dimension 1 is 0"});
  expect_error(one_tensor({32}, 4, 0, 32), StatusCode::kUnsupported,
               {"'blk.0.attn_q.weight'", "type id 4"});
  expect_error(one_tensor({32}, 1000, 0, 32), StatusCode::kUnsupported,
               {"'blk.0.attn_q.weight'", "type id 1000"});
  expect_error(one_tensor({48}, 8, 0, 64), StatusCode::kCorrupt,
               {"'blk.0.attn_q.weight'", "row length 48", "q8_0 block size 32"});

  // Infos claim a tensor but the file ends before the data section begins.
  RawGguf no_data;
  no_data.header(3, 1, 0).tensor_info("t", {1}, 0, 0);
  expect_error(no_data.bytes, StatusCode::kCorrupt, {"data section"});

  RawGguf duplicate;
  duplicate.header(3, 2, 0).tensor_info("t", {1}, 0, 0).tensor_info("t", {1}, 0, 32).pad_to(32);
  duplicate.zeros(64);
  expect_error(duplicate.bytes, StatusCode::kCorrupt, {"duplicate tensor name 't'"});

  RawGguf empty_name;
  empty_name.header(3, 1, 0).tensor_info("", {1}, 0, 0).pad_to(32).zeros(32);
  expect_error(empty_name.bytes, StatusCode::kCorrupt, {"empty name"});
}

// The committed corpus: files written by tests/data/gguf/make_gguf_corpus.py,
// an implementation independent of this reader, with the expected outcome of
// each in manifest.tsv (file, status code name or "ok", message fragment).
TEST(GgufCorrupt, CommittedCorpus) {
  const std::string dir = std::string(KVFORGE_TEST_DATA_DIR) + "/gguf";
  std::ifstream manifest(dir + "/manifest.tsv");
  ASSERT_TRUE(manifest.good()) << "missing " << dir << "/manifest.tsv";
  std::string line;
  int n_checked = 0;
  while (std::getline(manifest, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string name, code, fragment;
    ASSERT_TRUE(std::getline(fields, name, '\t') && std::getline(fields, code, '\t'));
    std::getline(fields, fragment);
    SCOPED_TRACE(name);
    auto file = GgufFile::open(dir + "/" + name);
    if (code == "ok") {
      EXPECT_TRUE(file.ok()) << file.status().to_string();
    } else {
      EXPECT_EQ(status_code_name(file.status().code()), code) << file.status().to_string();
      EXPECT_NE(file.status().message().find(fragment), std::string::npos)
          << file.status().message();
    }
    ++n_checked;
  }
  // Every .gguf in the corpus is listed, so none is silently skipped.
  int n_files = 0;
  for (const char* sub : {"/corrupt", "/valid"}) {
    for (const auto& e : std::filesystem::directory_iterator(dir + sub)) {
      n_files += e.path().extension() == ".gguf";
    }
  }
  EXPECT_EQ(n_checked, n_files);
  EXPECT_GE(n_checked, 10);
}

// The valid corpus file written by the Python encoder reads back with the
// values and tensor bytes that script put in (tensor i, byte j = (31 i + j) % 251).
TEST(GgufCorrupt, IndependentlyWrittenFileReadsBack) {
  auto file = GgufFile::open(std::string(KVFORGE_TEST_DATA_DIR) + "/gguf/valid/tiny_model.gguf");
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const GgufFile& f = **file;
  EXPECT_EQ(f.get_string("general.architecture").value(), "llama");
  EXPECT_EQ(f.get_uint("llama.context_length").value(), 256u);
  EXPECT_EQ(f.get_float("llama.rope.freq_base").value(), 10000.0);
  EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token").value());
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").value(),
            (std::vector<std::string>{"<unk>", "<s>", "</s>",
                                      "\xe2\x96\x81"
                                      "a"}));
  EXPECT_EQ(f.get_float_array("tokenizer.ggml.scores").value(),
            (std::vector<float>{0.0f, 0.0f, 0.0f, -1.5f}));
  ASSERT_EQ(f.tensors().size(), 2u);
  const std::vector<uint64_t> expected_bytes = {8 * 4 * 4, 2 * 34};
  for (size_t t = 0; t < 2; ++t) {
    const TensorInfo& info = f.tensors()[t];
    ASSERT_EQ(info.n_bytes, expected_bytes[t]) << info.name;
    for (uint64_t j = 0; j < info.n_bytes; ++j) {
      ASSERT_EQ(info.data[j], (31 * t + j) % 251) << info.name << " byte " << j;
    }
  }
  EXPECT_EQ(f.tensors()[1].offset, 128u);  // 128 bytes of f32, already aligned
}

}  // namespace
}  // namespace kvforge::gguf
