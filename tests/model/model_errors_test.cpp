// Bad input to the model layer gives a Status naming the problem, never a
// crash: out-of-vocabulary ids, a full context, files that are not models,
// and every check of the hyperparameters (model_config.cpp) and of the
// tensors (weights.cpp), each triggered by one change to a valid tiny model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>

#include "gguf/gguf.h"
#include "kv/contiguous_kv_cache.h"
#include "model/model.h"
#include "test_models.h"
#include "util/tensor_type.h"

namespace kvforge {
namespace {

TEST(ModelErrors, TokenOutsideVocabulary) {
  auto m = Model::load(testing::stories260k_gguf(), ModelOptions{1, 16});
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  ContiguousKvCache kv((*m)->kv_shape(), 1, 16, ContiguousKvType::kF32);
  std::vector<float> logits(512);
  const int32_t bad[2] = {1, 512};
  Status s = (*m)->forward(bad, 0, kv, SeqId{0}, LogitsFor::kLastToken, logits.data());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("512"), std::string::npos);
  EXPECT_EQ(kv.n_tokens(SeqId{0}), 0);  // nothing was appended
}

TEST(ModelErrors, ContextFullIsReportedAndLeavesCacheUnchanged) {
  auto m = Model::load(testing::stories260k_gguf(), ModelOptions{1, 16});
  ASSERT_TRUE(m.ok());
  ContiguousKvCache kv((*m)->kv_shape(), 1, 8, ContiguousKvType::kF32);
  std::vector<int32_t> ids(6, 300);
  ASSERT_TRUE((*m)->forward(ids, 0, kv, SeqId{0}, LogitsFor::kNone, nullptr).ok());
  Status s = (*m)->forward(ids, 6, kv, SeqId{0}, LogitsFor::kNone, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("ctx-size"), std::string::npos);
  EXPECT_EQ(kv.n_tokens(SeqId{0}), 6);
}

TEST(ModelErrors, VocabularyOnlyFileIsNotAModel) {
  auto m = Model::load(std::string(KVFORGE_SHARED_DIR) + "/vocab/ggml-vocab-gpt-2.gguf",
                       ModelOptions{1, 16});
  ASSERT_FALSE(m.ok());
  // The vocab file declares architecture gpt2, which is not a supported model.
  EXPECT_NE(m.status().message().find("gpt2"), std::string::npos) << m.status().to_string();
}

TEST(ModelErrors, TruncatedModelFile) {
  std::ifstream in(testing::stories260k_gguf(), std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(bytes.size(), 1000u);
  const std::string path = ::testing::TempDir() + "/truncated.gguf";
  for (size_t keep : {size_t(10), bytes.size() / 2, bytes.size() - 1}) {
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(keep));
    auto m = Model::load(path, ModelOptions{1, 4});
    EXPECT_FALSE(m.ok()) << keep;
  }
  std::remove(path.c_str());
}

TEST(ModelErrors, MissingFile) {
  auto m = Model::load(::testing::TempDir() + "/no-such-model.gguf", ModelOptions{1, 4});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
  EXPECT_NE(m.status().message().find("no-such-model.gguf"), std::string::npos);
}

// ---------------------------------------------------------------------------
// A valid tiny model as editable data: metadata in file order and tensor
// descriptions (zero-filled data of the right size), for one architecture.

struct TensorSpec {
  std::string name;
  TensorType type = TensorType::kF32;
  std::vector<uint64_t> dims;
};

gguf::Value u32(uint64_t v) {
  return {gguf::ValueType::kUint32, v};
}
gguf::Value u64(uint64_t v) {
  return {gguf::ValueType::kUint64, v};
}
gguf::Value f32(double v) {
  return {gguf::ValueType::kFloat32, v};
}
gguf::Value str(std::string v) {
  return {gguf::ValueType::kString, std::move(v)};
}

struct ModelSpec {
  std::string arch;
  std::vector<std::pair<std::string, gguf::Value>> metadata;
  std::vector<TensorSpec> tensors;
  uint32_t alignment = gguf::kDefaultAlignment;

  // Width 8, 2 query heads sharing 1 KV head of size 4, FFN 16, 4 tokens,
  // context 32, one layer.
  explicit ModelSpec(std::string arch_name) : arch(std::move(arch_name)) {
    set("general.architecture", str(arch));
    set(arch + ".embedding_length", u32(8));
    set(arch + ".block_count", u32(1));
    set(arch + ".attention.head_count", u32(2));
    set(arch + ".attention.head_count_kv", u32(1));
    set(arch + ".feed_forward_length", u32(16));
    set(arch + ".context_length", u32(32));
    add("token_embd.weight", {8, 4});
    add("output_norm.weight", {8});
    add("blk.0.attn_norm.weight", {8});
    add("blk.0.attn_q.weight", {8, 8});
    add("blk.0.attn_k.weight", {8, 4});
    add("blk.0.attn_v.weight", {8, 4});
    add("blk.0.attn_output.weight", {8, 8});
    if (arch == "qwen2") {
      add("blk.0.attn_q.bias", {8});
      add("blk.0.attn_k.bias", {4});
      add("blk.0.attn_v.bias", {4});
    }
    if (arch == "qwen3") {
      add("blk.0.attn_q_norm.weight", {4});
      add("blk.0.attn_k_norm.weight", {4});
    }
    add("blk.0.ffn_norm.weight", {8});
    add("blk.0.ffn_gate.weight", {8, 16});
    add("blk.0.ffn_up.weight", {8, 16});
    add("blk.0.ffn_down.weight", {16, 8});
  }

  void set(const std::string& key, gguf::Value value) {
    for (auto& [k, v] : metadata) {
      if (k == key) {
        v = std::move(value);
        return;
      }
    }
    metadata.emplace_back(key, std::move(value));
  }
  void set_arch(const std::string& suffix, gguf::Value value) {
    set(arch + "." + suffix, std::move(value));
  }
  void erase(const std::string& key) {
    std::erase_if(metadata, [&](const auto& kv) { return kv.first == key; });
  }
  void add(std::string name, std::vector<uint64_t> dims, TensorType type = TensorType::kF32) {
    tensors.push_back({std::move(name), type, std::move(dims)});
  }
  TensorSpec& tensor(const std::string& name) {
    for (TensorSpec& t : tensors) {
      if (t.name == name) return t;
    }
    ADD_FAILURE() << "no tensor " << name;
    return tensors.front();
  }
  void erase_tensor(const std::string& name) {
    std::erase_if(tensors, [&](const TensorSpec& t) { return t.name == name; });
  }
};

// Serializes `spec` and loads it as a model.
Status load_status(const ModelSpec& spec) {
  gguf::GgufWriter w;
  for (const auto& [key, value] : spec.metadata) w.set_value(key, value);
  for (const TensorSpec& t : spec.tensors) {
    size_t bytes = tensor_row_bytes(t.type, t.dims[0]);
    for (size_t d = 1; d < t.dims.size(); ++d) bytes *= t.dims[d];
    w.add_tensor(t.name, t.type, t.dims, std::vector<uint8_t>(bytes, 0));
  }
  const Status valid = w.validate(spec.alignment);
  if (!valid.ok()) return valid.with_context("test model does not serialize");
  const std::vector<uint8_t> bytes = w.serialize(spec.alignment);
  auto file = gguf::GgufFile::from_memory(bytes);
  if (!file.ok()) return file.status().with_context("test model does not parse");
  auto model = Model::from_file(std::move(file).value(), ModelOptions{1, 4});
  return model.ok() ? Status::ok_status() : model.status();
}

TEST(ModelErrors, TinyModelsOfEveryArchitectureLoad) {
  for (const char* arch : {"llama", "qwen2", "qwen3"}) {
    const Status s = load_status(ModelSpec(arch));
    EXPECT_TRUE(s.ok()) << arch << ": " << s.to_string();
  }
}

struct ErrorCase {
  std::string name;
  std::string arch;
  std::function<void(ModelSpec&)> edit;
  StatusCode code;
  std::string message;  // a fragment the message must contain
};

void expect_error(const ErrorCase& c) {
  ModelSpec spec(c.arch);
  c.edit(spec);
  const Status s = load_status(spec);
  EXPECT_FALSE(s.ok()) << c.name << ": the model loaded";
  if (s.ok()) return;
  EXPECT_EQ(s.code(), c.code) << c.name << ": " << s.to_string();
  EXPECT_NE(s.message().find(c.message), std::string::npos)
      << c.name << ": '" << s.message() << "' does not contain '" << c.message << "'";
  EXPECT_EQ(s.message().find('\n'), std::string::npos) << c.name << ": not one line";
}

TEST(ModelErrors, EveryHyperparameterCheck) {
  using enum StatusCode;
  const std::vector<ErrorCase> cases = {
      {"no architecture", "llama", [](ModelSpec& m) { m.erase("general.architecture"); }, kNotFound,
       "not a model file: metadata key 'general.architecture' is missing"},
      {"architecture not a string", "llama",
       [](ModelSpec& m) { m.set("general.architecture", u32(1)); }, kCorrupt,
       "key 'general.architecture' has type uint32, expected string"},
      {"unknown architecture", "llama",
       [](ModelSpec& m) { m.set("general.architecture", str("mamba")); }, kUnsupported,
       "architecture 'mamba' is not supported (supported: llama, qwen2, qwen3)"},
      {"name not a string", "llama", [](ModelSpec& m) { m.set("general.name", u32(7)); }, kCorrupt,
       "key 'general.name' has type uint32, expected string"},
      {"no width", "llama", [](ModelSpec& m) { m.erase("llama.embedding_length"); }, kNotFound,
       "model metadata: metadata key 'llama.embedding_length' is missing"},
      {"width 0", "llama", [](ModelSpec& m) { m.set_arch("embedding_length", u32(0)); }, kCorrupt,
       "llama.embedding_length = 0 is out of range [1, 1048576]"},
      {"width too large", "llama",
       [](ModelSpec& m) { m.set_arch("embedding_length", u64(uint64_t{1} << 33)); }, kCorrupt,
       "llama.embedding_length = 8589934592 is out of range [1, 1048576]"},
      {"width not an integer", "llama",
       [](ModelSpec& m) { m.set_arch("embedding_length", str("8")); }, kCorrupt,
       "key 'llama.embedding_length' has type string, expected an unsigned integer"},
      {"no layers", "llama", [](ModelSpec& m) { m.erase("llama.block_count"); }, kNotFound,
       "'llama.block_count' is missing"},
      {"too many layers", "llama", [](ModelSpec& m) { m.set_arch("block_count", u32(5000)); },
       kCorrupt, "llama.block_count = 5000 is out of range [1, 4096]"},
      {"no heads", "llama", [](ModelSpec& m) { m.erase("llama.attention.head_count"); }, kNotFound,
       "'llama.attention.head_count' is missing"},
      {"0 heads", "llama", [](ModelSpec& m) { m.set_arch("attention.head_count", u32(0)); },
       kCorrupt, "llama.attention.head_count = 0 is out of range [1, 4096]"},
      {"no FFN width", "llama", [](ModelSpec& m) { m.erase("llama.feed_forward_length"); },
       kNotFound, "'llama.feed_forward_length' is missing"},
      {"FFN too wide", "llama",
       [](ModelSpec& m) { m.set_arch("feed_forward_length", u32(1u << 23)); }, kCorrupt,
       "llama.feed_forward_length = 8388608 is out of range [1, 4194304]"},
      {"no context", "llama", [](ModelSpec& m) { m.erase("llama.context_length"); }, kNotFound,
       "'llama.context_length' is missing"},
      {"context 0", "llama", [](ModelSpec& m) { m.set_arch("context_length", u32(0)); }, kCorrupt,
       "llama.context_length = 0 is out of range [1, 1073741824]"},
      {"KV heads not an integer", "llama",
       [](ModelSpec& m) { m.set_arch("attention.head_count_kv", f32(1)); }, kCorrupt,
       "key 'llama.attention.head_count_kv' has type float32, expected an unsigned integer"},
      {"0 KV heads", "llama", [](ModelSpec& m) { m.set_arch("attention.head_count_kv", u32(0)); },
       kCorrupt, "2 query heads cannot share 0 KV heads"},
      {"more KV heads than heads", "llama",
       [](ModelSpec& m) { m.set_arch("attention.head_count_kv", u32(4)); }, kCorrupt,
       "2 query heads cannot share 4 KV heads"},
      {"KV heads not a divisor", "llama",
       [](ModelSpec& m) {
         m.set_arch("attention.head_count", u32(4));
         m.set_arch("attention.head_count_kv", u32(3));
       },
       kCorrupt, "4 query heads cannot share 3 KV heads"},
      // 2^32 + 1 would read as 1 KV head if it were truncated to int32.
      {"KV heads beyond int32", "llama",
       [](ModelSpec& m) { m.set_arch("attention.head_count_kv", u64((uint64_t{1} << 32) + 1)); },
       kCorrupt, "llama.attention.head_count_kv = 4294967297 is out of range [0, 4096]"},
      {"key length not an integer", "llama",
       [](ModelSpec& m) { m.set_arch("attention.key_length", str("4")); }, kCorrupt,
       "key 'llama.attention.key_length' has type string"},
      {"key length beyond int32", "llama",
       [](ModelSpec& m) { m.set_arch("attention.key_length", u64((uint64_t{1} << 32) + 4)); },
       kCorrupt, "llama.attention.key_length = 4294967300 is out of range [0, 65536]"},
      {"value length not an integer", "llama",
       [](ModelSpec& m) { m.set_arch("attention.value_length", str("4")); }, kCorrupt,
       "key 'llama.attention.value_length' has type string"},
      {"width not a multiple of heads", "llama",
       [](ModelSpec& m) {
         m.set_arch("attention.head_count", u32(3));
         m.set_arch("attention.head_count_kv", u32(3));
       },
       kCorrupt, "width 8 is not a multiple of 3 heads"},
      {"key and value lengths differ", "llama",
       [](ModelSpec& m) {
         m.set_arch("attention.key_length", u32(4));
         m.set_arch("attention.value_length", u32(8));
       },
       kUnsupported, "key length 4 differs from value length 8"},
      {"odd head size", "llama", [](ModelSpec& m) { m.set_arch("attention.key_length", u32(3)); },
       kUnsupported, "head size 3 is not supported (supported: even, up to 256)"},
      {"head size 0", "llama", [](ModelSpec& m) { m.set_arch("attention.key_length", u32(0)); },
       kUnsupported, "head size 0 is not supported"},
      {"head size too large", "llama",
       [](ModelSpec& m) { m.set_arch("attention.key_length", u32(512)); }, kUnsupported,
       "head size 512 is not supported"},
      {"too many query heads per KV head", "llama",
       [](ModelSpec& m) {
         m.set_arch("attention.head_count", u32(32));
         m.set_arch("attention.key_length", u32(4));
       },
       kUnsupported, "32 query heads per KV head are not supported (supported: up to 16)"},
      {"epsilon not a number", "llama",
       [](ModelSpec& m) { m.set_arch("attention.layer_norm_rms_epsilon", str("1e-5")); }, kCorrupt,
       "key 'llama.attention.layer_norm_rms_epsilon' has type string, expected a number"},
      {"epsilon 0", "llama",
       [](ModelSpec& m) { m.set_arch("attention.layer_norm_rms_epsilon", f32(0)); }, kCorrupt,
       "rope.freq_base must be > 1 and rms epsilon > 0"},
      {"RoPE base not a number", "llama",
       [](ModelSpec& m) { m.set_arch("rope.freq_base", str("10000")); }, kCorrupt,
       "key 'llama.rope.freq_base' has type string, expected a number"},
      {"RoPE base 1", "llama", [](ModelSpec& m) { m.set_arch("rope.freq_base", f32(1)); }, kCorrupt,
       "rope.freq_base must be > 1 and rms epsilon > 0"},
      {"RoPE dimensions not an integer", "llama",
       [](ModelSpec& m) { m.set_arch("rope.dimension_count", str("4")); }, kCorrupt,
       "key 'llama.rope.dimension_count' has type string"},
      {"RoPE dimensions 0", "llama",
       [](ModelSpec& m) { m.set_arch("rope.dimension_count", u32(0)); }, kCorrupt,
       "rope dimension 0 does not fit head size 4"},
      {"RoPE dimensions above head size", "llama",
       [](ModelSpec& m) { m.set_arch("rope.dimension_count", u32(6)); }, kCorrupt,
       "rope dimension 6 does not fit head size 4"},
      {"odd RoPE dimensions", "llama",
       [](ModelSpec& m) { m.set_arch("rope.dimension_count", u32(3)); }, kCorrupt,
       "rope dimension 3 does not fit head size 4"},
      {"RoPE dimensions beyond int32", "llama",
       [](ModelSpec& m) { m.set_arch("rope.dimension_count", u64((uint64_t{1} << 32) + 2)); },
       kCorrupt, "llama.rope.dimension_count = 4294967298 is out of range [0, 65536]"},
      {"RoPE scaling not a string", "llama",
       [](ModelSpec& m) { m.set_arch("rope.scaling.type", u32(1)); }, kCorrupt,
       "key 'llama.rope.scaling.type' has type uint32, expected string"},
      {"unsupported RoPE scaling", "llama",
       [](ModelSpec& m) { m.set_arch("rope.scaling.type", str("yarn")); }, kUnsupported,
       "RoPE scaling type 'yarn' is not supported (supported: none, llama3)"},
      {"no token embeddings", "llama", [](ModelSpec& m) { m.erase_tensor("token_embd.weight"); },
       kCorrupt, "model has no token_embd.weight tensor"},
      {"vocabulary size not an integer", "llama",
       [](ModelSpec& m) { m.set_arch("vocab_size", str("4")); }, kCorrupt,
       "key 'llama.vocab_size' has type string"},
      {"vocabulary size 0", "llama", [](ModelSpec& m) { m.set_arch("vocab_size", u32(0)); },
       kCorrupt, "vocabulary size 0 is out of range"},
      {"vocabulary too large", "llama",
       [](ModelSpec& m) { m.set_arch("vocab_size", u32((1u << 24) + 1)); }, kCorrupt,
       "vocabulary size 16777217 is out of range"},
      // Without vocab_size the size comes from token_embd.weight, which must
      // then be a matrix.
      {"token embeddings not a matrix", "llama",
       [](ModelSpec& m) { m.tensor("token_embd.weight").dims = {32}; }, kCorrupt,
       "vocabulary size 0 is out of range"},
  };
  for (const ErrorCase& c : cases) expect_error(c);
}

TEST(ModelErrors, EveryTensorCheck) {
  using enum StatusCode;
  const std::vector<ErrorCase> cases = {
      {"missing layer tensor", "llama",
       [](ModelSpec& m) { m.erase_tensor("blk.0.attn_norm.weight"); }, kNotFound,
       "model is missing tensor 'blk.0.attn_norm.weight'"},
      {"missing output norm", "llama", [](ModelSpec& m) { m.erase_tensor("output_norm.weight"); },
       kNotFound, "model is missing tensor 'output_norm.weight'"},
      {"missing FFN matrix", "llama", [](ModelSpec& m) { m.erase_tensor("blk.0.ffn_down.weight"); },
       kNotFound, "model is missing tensor 'blk.0.ffn_down.weight'"},
      {"matrix of the wrong shape", "llama",
       [](ModelSpec& m) {
         m.tensor("blk.0.attn_k.weight").dims = {8, 8};
       },
       kCorrupt, "tensor 'blk.0.attn_k.weight' has shape [8, 8], expected [8, 4]"},
      {"token embeddings disagree with vocab_size", "llama",
       [](ModelSpec& m) { m.set_arch("vocab_size", u32(5)); }, kCorrupt,
       "tensor 'token_embd.weight' has shape [8, 4], expected [8, 5]"},
      {"output matrix of the wrong shape", "llama",
       [](ModelSpec& m) {
         m.add("output.weight", {8, 3});
       },
       kCorrupt, "tensor 'output.weight' has shape [8, 3], expected [8, 4]"},
      {"matrix of a type we cannot compute with", "llama",
       [](ModelSpec& m) { m.tensor("blk.0.ffn_up.weight").type = TensorType::kF64; }, kUnsupported,
       "tensor 'blk.0.ffn_up.weight' has type f64, which kvforge cannot compute with"},
      {"vector of the wrong shape", "llama",
       [](ModelSpec& m) {
         m.tensor("blk.0.ffn_norm.weight").dims = {4, 2};
       },
       kCorrupt, "tensor 'blk.0.ffn_norm.weight' has shape [4, 2], expected [8]"},
      {"vector not f32", "llama",
       [](ModelSpec& m) { m.tensor("output_norm.weight").type = TensorType::kF16; }, kUnsupported,
       "tensor 'output_norm.weight' must be f32, it is f16"},
      {"RoPE frequencies of the wrong shape", "llama",
       [](ModelSpec& m) { m.add("rope_freqs.weight", {4}); }, kCorrupt,
       "tensor 'rope_freqs.weight' has shape [4], expected [2]"},
      {"Qwen2 without a projection bias", "qwen2",
       [](ModelSpec& m) { m.erase_tensor("blk.0.attn_k.bias"); }, kNotFound,
       "model is missing tensor 'blk.0.attn_k.bias'"},
      {"Qwen2 bias of the wrong size", "qwen2",
       [](ModelSpec& m) { m.tensor("blk.0.attn_v.bias").dims = {8}; }, kCorrupt,
       "tensor 'blk.0.attn_v.bias' has shape [8], expected [4]"},
      {"Qwen3 without a query norm", "qwen3",
       [](ModelSpec& m) { m.erase_tensor("blk.0.attn_q_norm.weight"); }, kNotFound,
       "model is missing tensor 'blk.0.attn_q_norm.weight'"},
      {"Qwen3 key norm of the wrong size", "qwen3",
       [](ModelSpec& m) { m.tensor("blk.0.attn_k_norm.weight").dims = {8}; }, kCorrupt,
       "tensor 'blk.0.attn_k_norm.weight' has shape [8], expected [4]"},
  };
  for (const ErrorCase& c : cases) expect_error(c);
}

// With general.alignment 1, a pad tensor of 1 to 3 bytes in front moves the
// f32 vectors off 4-byte boundaries for at least two of the three sizes
// (where the data section starts depends on the header).
TEST(ModelErrors, VectorDataNotAligned) {
  int misaligned = 0;
  for (uint64_t pad = 1; pad <= 3; ++pad) {
    ModelSpec spec("llama");
    spec.alignment = 1;
    spec.tensors.insert(spec.tensors.begin(), TensorSpec{"pad", TensorType::kI8, {pad}});
    const Status s = load_status(spec);
    if (s.ok()) continue;
    ++misaligned;
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.to_string();
    EXPECT_NE(s.message().find("tensor 'output_norm.weight' data is not 4-byte aligned"),
              std::string::npos)
        << s.to_string();
  }
  EXPECT_GE(misaligned, 2);
}

TEST(ModelErrors, BadModelOptions) {
  ModelSpec spec("llama");
  gguf::GgufWriter w;
  for (const auto& [key, value] : spec.metadata) w.set_value(key, value);
  const std::vector<uint8_t> bytes = w.serialize();
  for (ModelOptions options : {ModelOptions{1, 0}, ModelOptions{-1, 4}}) {
    auto file = gguf::GgufFile::from_memory(bytes);
    ASSERT_TRUE(file.ok());
    auto m = Model::from_file(std::move(file).value(), options);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(m.status().message().find("max_batch must be > 0 and n_threads >= 0"),
              std::string::npos);
  }
}

// The file path is named in errors of Model::load.
TEST(ModelErrors, LoadNamesTheFile) {
  ModelSpec spec("llama");
  spec.set_arch("rope.scaling.type", str("yarn"));
  gguf::GgufWriter w;
  for (const auto& [key, value] : spec.metadata) w.set_value(key, value);
  const std::string path = ::testing::TempDir() + "/yarn-model.gguf";
  ASSERT_TRUE(w.write(path).ok());
  auto m = Model::load(path, ModelOptions{1, 4});
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("yarn-model.gguf"), std::string::npos)
      << m.status().to_string();
  EXPECT_NE(m.status().message().find("'yarn'"), std::string::npos);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace kvforge
