// Writer tests: everything written is read back by the reader unchanged, in
// memory (serialize) and on disk (write), for every value type and for
// tensors of several types and alignments.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

#include "gguf/gguf.h"

namespace kvforge::gguf {
namespace {

Value scalar(ValueType type, std::variant<uint64_t, int64_t, double, bool, std::string, Array> d) {
  return Value{type, std::move(d)};
}

Value array_of(ValueType elem_type, std::vector<Value> items) {
  return Value{ValueType::kArray, Array{elem_type, std::move(items)}};
}

// Structural equality of two values: same type tags, same data, recursively.
void expect_same_value(const Value& expected, const Value& actual, const std::string& where) {
  ASSERT_EQ(expected.type, actual.type) << where;
  ASSERT_EQ(expected.data.index(), actual.data.index()) << where;
  if (expected.type != ValueType::kArray) {
    std::visit(
        [&](const auto& e) {
          using T = std::decay_t<decltype(e)>;
          if constexpr (!std::is_same_v<T, Array>) {
            EXPECT_EQ(e, std::get<T>(actual.data)) << where;
          }
        },
        expected.data);
    return;
  }
  const Array& e = std::get<Array>(expected.data);
  const Array& a = std::get<Array>(actual.data);
  ASSERT_EQ(e.elem_type, a.elem_type) << where;
  ASSERT_EQ(e.items.size(), a.items.size()) << where;
  for (size_t i = 0; i < e.items.size(); ++i) {
    expect_same_value(e.items[i], a.items[i], where + "[" + std::to_string(i) + "]");
  }
}

std::vector<uint8_t> iota_bytes(size_t n, uint8_t start) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(start + i * 7);
  return v;
}

std::string temp_path(std::string_view name) {
  return std::string(KVFORGE_BINARY_DIR) + "/" + std::string(name);
}

std::vector<uint8_t> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(GgufWriter, RoundTripsEveryValueType) {
  std::vector<std::pair<std::string, Value>> expected = {
      {"u8", scalar(ValueType::kUint8, uint64_t{255})},
      {"i8", scalar(ValueType::kInt8, int64_t{-128})},
      {"u16", scalar(ValueType::kUint16, uint64_t{65535})},
      {"i16", scalar(ValueType::kInt16, int64_t{-32768})},
      {"u32", scalar(ValueType::kUint32, uint64_t{4000000000u})},
      {"i32", scalar(ValueType::kInt32, int64_t{-2000000000})},
      {"f32", scalar(ValueType::kFloat32, double{-1.5f})},
      {"bool.true", scalar(ValueType::kBool, true)},
      {"bool.false", scalar(ValueType::kBool, false)},
      {"string", scalar(ValueType::kString, std::string("hello\0world", 11))},
      {"string.empty", scalar(ValueType::kString, std::string())},
      {"u64", scalar(ValueType::kUint64, std::numeric_limits<uint64_t>::max())},
      {"i64", scalar(ValueType::kInt64, std::numeric_limits<int64_t>::min())},
      {"f64", scalar(ValueType::kFloat64, 3.141592653589793)},
      {"array.empty", array_of(ValueType::kFloat32, {})},
      {"array.strings",
       array_of(ValueType::kString, {scalar(ValueType::kString, std::string("a")),
                                     scalar(ValueType::kString, std::string()),
                                     scalar(ValueType::kString, std::string("\xe2\x96\x81the"))})},
      {"array.bools", array_of(ValueType::kBool,
                               {scalar(ValueType::kBool, true), scalar(ValueType::kBool, false)})},
      // Arrays of arrays with different element types inside, down to the
      // deepest nesting the reader accepts.
      {"array.nested",
       array_of(ValueType::kArray,
                {array_of(ValueType::kUint8, {scalar(ValueType::kUint8, uint64_t{1})}),
                 array_of(ValueType::kString, {}),
                 array_of(ValueType::kArray,
                          {array_of(ValueType::kArray,
                                    {array_of(ValueType::kInt16,
                                              {scalar(ValueType::kInt16, int64_t{-7})})})})})},
      {"\xc3\xa9t\xc3\xa9.\xe2\x9c\x93.\xf0\x9f\x94\x91",
       scalar(ValueType::kString, std::string("unicode key"))},
  };
  GgufWriter writer;
  for (const auto& [key, value] : expected) writer.set_value(key, value);
  ASSERT_TRUE(writer.validate().ok()) << writer.validate().to_string();

  const std::vector<uint8_t> image = writer.serialize();
  auto file = GgufFile::from_memory(image);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  ASSERT_EQ((*file)->metadata().size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ((*file)->metadata()[i].first, expected[i].first);  // insertion order kept
    expect_same_value(expected[i].second, (*file)->metadata()[i].second, expected[i].first);
  }
  EXPECT_EQ((*file)->version(), 3u);
  EXPECT_TRUE((*file)->tensors().empty());
}

TEST(GgufWriter, TypedSettersAndReplacement) {
  GgufWriter writer;
  writer.set_uint32("a", 1);
  writer.set_string("b", "x");
  writer.set_uint32("a", 2);  // replaces in place: "a" stays first
  writer.set_int32("c", -5);
  writer.set_uint64("d", uint64_t{1} << 40);
  writer.set_float32("e", 0.25f);
  writer.set_bool("f", true);
  writer.set_string_array("g", {"x", "", "z"});
  writer.set_float32_array("h", {1.0f, -2.5f});
  writer.set_int32_array("i", {-1, 0, 7});
  const std::vector<uint8_t> image = writer.serialize();
  auto file = GgufFile::from_memory(image);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const GgufFile& f = **file;
  ASSERT_EQ(f.metadata().size(), 9u);
  EXPECT_EQ(f.metadata()[0].first, "a");
  EXPECT_EQ(f.get_uint("a").value(), 2u);
  EXPECT_EQ(f.find("a")->type, ValueType::kUint32);
  EXPECT_EQ(f.get_int("c").value(), -5);
  EXPECT_EQ(f.find("c")->type, ValueType::kInt32);
  EXPECT_EQ(f.get_uint("d").value(), uint64_t{1} << 40);
  EXPECT_EQ(f.get_float("e").value(), 0.25);
  EXPECT_TRUE(f.get_bool("f").value());
  EXPECT_EQ(f.get_string_array("g").value(), (std::vector<std::string>{"x", "", "z"}));
  EXPECT_EQ(f.get_float_array("h").value(), (std::vector<float>{1.0f, -2.5f}));
  EXPECT_EQ(f.get_int_array("i").value(), (std::vector<int64_t>{-1, 0, 7}));
}

struct TensorCase {
  std::string name;
  TensorType type;
  std::vector<uint64_t> dims;
  size_t n_bytes;  // from the GGUF type table, worked out by hand
};

std::vector<TensorCase> tensor_cases() {
  return {
      {"f32", TensorType::kF32, {5, 3}, 5 * 3 * 4},
      {"f16", TensorType::kF16, {7}, 7 * 2},
      {"q8_0", TensorType::kQ8_0, {64, 2}, 2 * 2 * 34},
      {"q4_0", TensorType::kQ4_0, {32, 1, 3}, 3 * 18},
      {"q4_K", TensorType::kQ4_K, {256, 2}, 2 * 144},
      {"q6_K", TensorType::kQ6_K, {512}, 2 * 210},
      {"bf16", TensorType::kBF16, {3, 2, 2, 2}, 24 * 2},
      {"q5_1 (known, unsupported)", TensorType::kQ5_1, {32}, 24},
  };
}

class GgufWriterAlignment : public ::testing::TestWithParam<uint32_t> {};

TEST_P(GgufWriterAlignment, TensorsRoundTripAtTheRequestedAlignment) {
  const uint32_t alignment = GetParam();
  const std::vector<TensorCase> cases = tensor_cases();
  GgufWriter writer;
  writer.set_string("general.architecture", "test");
  std::vector<std::vector<uint8_t>> payloads;
  for (const TensorCase& c : cases) {
    payloads.push_back(iota_bytes(c.n_bytes, static_cast<uint8_t>(payloads.size())));
    writer.add_tensor(c.name, c.type, c.dims, payloads.back());
  }
  const std::vector<uint8_t> image = writer.serialize(alignment);
  auto file = GgufFile::from_memory(image);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const GgufFile& f = **file;
  EXPECT_EQ(f.alignment(), alignment);
  if (alignment == kDefaultAlignment) {
    EXPECT_EQ(f.find("general.alignment"), nullptr);
  } else {
    EXPECT_EQ(f.get_uint("general.alignment").value(), alignment);
  }
  ASSERT_EQ(f.tensors().size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const TensorCase& c = cases[i];
    const TensorInfo& t = f.tensors()[i];
    EXPECT_EQ(t.name, c.name);
    EXPECT_EQ(t.type, c.type);
    EXPECT_EQ(t.dims, c.dims);
    EXPECT_EQ(t.n_bytes, c.n_bytes);
    EXPECT_EQ(t.offset % alignment, 0u);
    EXPECT_EQ(static_cast<uint64_t>(t.data - image.data()) % alignment, 0u);
    EXPECT_TRUE(std::equal(payloads[i].begin(), payloads[i].end(), t.data)) << c.name;
    EXPECT_EQ(f.find_tensor(c.name), &t);
  }
}

INSTANTIATE_TEST_SUITE_P(Alignments, GgufWriterAlignment, ::testing::Values(32u, 64u, 1u, 4096u));

TEST(GgufWriter, WriteMatchesSerializeAndFillAndViewMatchCopy) {
  const std::vector<uint8_t> weights = iota_bytes(2 * 34, 3);
  GgufWriter copied;
  copied.set_uint32("n", 9);
  copied.add_tensor("w", TensorType::kQ8_0, {32, 2}, weights);
  const std::vector<uint8_t> expected = copied.serialize(64);

  GgufWriter viewed;
  viewed.set_uint32("n", 9);
  viewed.add_tensor_view("w", TensorType::kQ8_0, {32, 2}, weights);
  EXPECT_EQ(viewed.serialize(64), expected);

  GgufWriter filled;
  filled.set_uint32("n", 9);
  int n_calls = 0;
  filled.add_tensor_fill("w", TensorType::kQ8_0, {32, 2}, [&](std::span<uint8_t> out) {
    ++n_calls;
    EXPECT_EQ(out.size(), weights.size());
    std::copy(weights.begin(), weights.end(), out.begin());
    return Status::ok_status();
  });
  const std::string path = temp_path("gguf_writer_fill.gguf");
  ASSERT_TRUE(filled.write(path, 64).ok());
  EXPECT_EQ(n_calls, 1);
  EXPECT_EQ(read_whole_file(path), expected);
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));

  auto file = GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  EXPECT_TRUE(std::equal(weights.begin(), weights.end(), (*file)->find_tensor("w")->data));
  std::filesystem::remove(path);
}

TEST(GgufWriter, ReportsInvalidContentsAndIoErrors) {
  const std::vector<uint8_t> too_short(10);
  GgufWriter wrong_size;
  wrong_size.add_tensor("w", TensorType::kF32, {4}, too_short);
  const std::string path = temp_path("gguf_writer_invalid.gguf");
  Status s = wrong_size.write(path);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'w'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("16"), std::string::npos) << s.message();
  EXPECT_FALSE(std::filesystem::exists(path));

  GgufWriter ok_contents;
  ok_contents.set_uint32("x", 1);
  EXPECT_EQ(ok_contents.validate(3).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ok_contents.validate(0).code(), StatusCode::kInvalidArgument);
  s = ok_contents.write(temp_path("no-such-dir/out.gguf"));
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find("no-such-dir"), std::string::npos) << s.message();

  GgufWriter bad_value;
  bad_value.set_value("byte", Value{ValueType::kUint8, uint64_t{300}});
  EXPECT_EQ(bad_value.validate().code(), StatusCode::kInvalidArgument);
  GgufWriter mismatched;
  mismatched.set_value("s", Value{ValueType::kString, uint64_t{1}});
  EXPECT_EQ(mismatched.validate().code(), StatusCode::kInvalidArgument);
  GgufWriter mixed_array;
  mixed_array.set_value("a", array_of(ValueType::kUint8, {scalar(ValueType::kInt8, int64_t{1})}));
  EXPECT_EQ(mixed_array.validate().code(), StatusCode::kInvalidArgument);

  Value too_deep = scalar(ValueType::kUint8, uint64_t{1});
  for (uint32_t i = 0; i <= kMaxArrayNesting; ++i) too_deep = array_of(too_deep.type, {too_deep});
  GgufWriter deep;
  deep.set_value("deep", too_deep);
  EXPECT_EQ(deep.validate().code(), StatusCode::kInvalidArgument);

  GgufWriter bad_tensors;
  bad_tensors.add_tensor("row", TensorType::kQ8_0, {16}, std::vector<uint8_t>(17));
  EXPECT_EQ(bad_tensors.validate().code(), StatusCode::kInvalidArgument);
  GgufWriter duplicate;
  duplicate.add_tensor("t", TensorType::kF32, {1}, std::vector<uint8_t>(4));
  duplicate.add_tensor("t", TensorType::kF32, {1}, std::vector<uint8_t>(4));
  EXPECT_EQ(duplicate.validate().code(), StatusCode::kInvalidArgument);

  GgufWriter failing_fill;
  failing_fill.add_tensor_fill("t", TensorType::kF32, {2},
                               [](std::span<uint8_t>) { return io_error("source went away"); });
  s = failing_fill.write(path);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find("source went away"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
}

// Found by fuzzing: a metadata-only file with general.alignment 2^31 made the
// writer pad to 2 GiB. Without tensors nothing is padded.
TEST(GgufWriter, MetadataOnlyFileIsNotPadded) {
  GgufWriter writer;
  writer.set_string("k", "v");
  const std::vector<uint8_t> image = writer.serialize(uint32_t{1} << 31);
  // header 24, "k" = "v" (9 + 4 + 9), general.alignment (8 + 17 + 4 + 4)
  EXPECT_EQ(image.size(), 24u + 22u + 33u);
  auto file = GgufFile::from_memory(image);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  EXPECT_EQ((*file)->alignment(), uint64_t{1} << 31);
}

}  // namespace
}  // namespace kvforge::gguf
