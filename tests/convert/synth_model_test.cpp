// `kvforge synth`: determinism, preset shapes and metadata, vocabulary
// padding, the Llama 3.1 RoPE factors, and errors for bad options.
#include "convert/synth_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "convert/random_normal.h"
#include "gguf/gguf.h"

namespace kvforge::convert {
namespace {

const std::string kVocabDir = std::string(KVFORGE_SHARED_DIR) + "/vocab";
const std::string kLlamaVocab = kVocabDir + "/ggml-vocab-llama-spm.gguf";
const std::string kGpt2Vocab = kVocabDir + "/ggml-vocab-gpt-2.gguf";

SynthOptions tiny(const std::string& arch, const std::string& type, uint64_t seed) {
  SynthOptions o;
  o.arch = arch;
  o.preset = "tiny";
  o.type = type;
  o.seed = seed;
  o.vocab_path = arch == "llama" ? kLlamaVocab : kGpt2Vocab;
  return o;
}

std::map<std::string, std::vector<uint64_t>> shapes_of(const std::vector<SynthTensor>& tensors) {
  std::map<std::string, std::vector<uint64_t>> shapes;
  for (const SynthTensor& t : tensors) shapes[t.name] = t.dims;
  return shapes;
}

TEST(NormalGenerator, DeterministicWithUnitVariance) {
  NormalGenerator a(7, "x"), b(7, "x"), c(7, "y");
  double sum = 0, sum_sq = 0;
  bool differs = false;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double v = a.next_standard_normal();
    EXPECT_EQ(v, b.next_standard_normal());
    differs |= v != c.next_standard_normal();
    sum += v;
    sum_sq += v * v;
  }
  EXPECT_TRUE(differs);
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sum_sq / n, 1.0, 0.01);
}

TEST(NormalGenerator, KnownFirstValues) {
  // Pins the stream: a change here changes every synthetic model and fixture.
  NormalGenerator g(42, "token_embd.weight");
  const double first = g.next_standard_normal();
  NormalGenerator again(42, "token_embd.weight");
  EXPECT_EQ(first, again.next_standard_normal());
  EXPECT_EQ(std::fmod(first * 131072.0, 1.0), 0.0);  // a multiple of 2^-17: exact arithmetic
}

TEST(SynthModel, SameSeedSameBytesDifferentSeedDifferentBytes) {
  auto a = synth_model_bytes(tiny("llama", "q8_0", 1));
  auto b = synth_model_bytes(tiny("llama", "q8_0", 1));
  auto c = synth_model_bytes(tiny("llama", "q8_0", 2));
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ASSERT_TRUE(b.ok() && c.ok());
  EXPECT_TRUE(*a == *b);
  EXPECT_EQ(a->size(), c->size());
  EXPECT_FALSE(*a == *c);
}

TEST(SynthModel, TinyModelsReadBackWithArchitectureSpecificTensors) {
  for (const std::string arch : {"llama", "qwen2", "qwen3"}) {
    SCOPED_TRACE(arch);
    auto bytes = synth_model_bytes(tiny(arch, "f16", 3));
    ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
    auto file = gguf::GgufFile::from_memory(*bytes);
    ASSERT_TRUE(file.ok()) << file.status().to_string();
    const gguf::GgufFile& f = **file;
    EXPECT_EQ(f.get_string("general.architecture").value(), arch);
    EXPECT_EQ(f.get_uint(arch + ".embedding_length").value(), 64u);
    EXPECT_EQ(f.get_uint(arch + ".block_count").value(), 2u);
    const uint64_t head_dim = arch == "qwen3" ? 32 : 16;
    EXPECT_EQ(f.get_uint(arch + ".attention.key_length").value(), head_dim);
    const uint64_t n_vocab = arch == "llama" ? 32000 : 50257;
    EXPECT_EQ(f.get_uint(arch + ".vocab_size").value(), n_vocab);
    EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").value().size(), n_vocab);
    EXPECT_EQ(f.find_tensor("token_embd.weight")->dims, (std::vector<uint64_t>{64, n_vocab}));
    EXPECT_EQ(f.find_tensor("token_embd.weight")->type, TensorType::kF16);
    EXPECT_EQ(f.find_tensor("blk.1.attn_q.weight")->dims,
              (std::vector<uint64_t>{64, 4 * head_dim}));
    EXPECT_EQ(f.find_tensor("blk.1.attn_output.weight")->dims,
              (std::vector<uint64_t>{4 * head_dim, 64}));
    EXPECT_EQ(f.find_tensor("blk.0.ffn_norm.weight")->type, TensorType::kF32);
    EXPECT_EQ(f.find_tensor("output.weight") != nullptr, arch == "llama");
    EXPECT_EQ(f.find_tensor("blk.0.attn_k.bias") != nullptr, arch == "qwen2");
    EXPECT_EQ(f.find_tensor("blk.0.attn_k_norm.weight") != nullptr, arch == "qwen3");
    EXPECT_EQ(f.get_string("tokenizer.ggml.model").value(), arch == "llama" ? "llama" : "gpt2");
  }
}

TEST(SynthModel, NormWeightsAreNearOne) {
  auto bytes = synth_model_bytes(tiny("llama", "f32", 5));
  ASSERT_TRUE(bytes.ok());
  auto file = gguf::GgufFile::from_memory(*bytes);
  ASSERT_TRUE(file.ok());
  const auto* norm = (*file)->find_tensor("blk.0.attn_norm.weight");
  const auto* values = reinterpret_cast<const float*>(norm->data);
  std::set<float> distinct;
  for (int i = 0; i < 64; ++i) {
    EXPECT_GT(values[i], 0.4f);
    EXPECT_LT(values[i], 1.6f);
    distinct.insert(values[i]);
  }
  EXPECT_GT(distinct.size(), 32u);
}

TEST(SynthModel, KQuantRowsThatAreNotWholeBlocksFallBackToQ8) {
  auto shape = find_synth_preset("tiny", "llama");
  ASSERT_TRUE(shape.ok());
  auto tiny_plan = plan_synth_tensors(*shape, 32000, TensorType::kQ4_K);
  ASSERT_TRUE(tiny_plan.ok());
  for (const SynthTensor& t : *tiny_plan) {
    if (t.dims.size() == 2) {
      EXPECT_EQ(t.type, TensorType::kQ8_0) << t.name;
    }
  }
  auto k_shape = find_synth_preset("tiny-k", "llama");
  ASSERT_TRUE(k_shape.ok());
  auto k_plan = plan_synth_tensors(*k_shape, 32000, TensorType::kQ4_K);
  ASSERT_TRUE(k_plan.ok());
  for (const SynthTensor& t : *k_plan) {
    if (t.dims.size() == 2) {
      EXPECT_EQ(t.type, TensorType::kQ4_K) << t.name;
    }
  }
}

TEST(SynthModel, RealPresetShapes) {
  struct Expected {
    std::string preset, arch;
    uint64_t embd, layers, q_width, kv_width, ff, vocab;
    bool output, bias, qk_norm, rope_freqs;
  };
  const std::vector<Expected> expected = {
      {"llama3.2-1b", "llama", 2048, 16, 2048, 512, 8192, 128256, false, false, false, true},
      {"llama2-7b", "llama", 4096, 32, 4096, 4096, 11008, 32000, true, false, false, false},
      {"mistral-7b", "llama", 4096, 32, 4096, 1024, 14336, 32000, true, false, false, false},
      {"qwen2.5-0.5b", "qwen2", 896, 24, 896, 128, 4864, 151936, false, true, false, false},
      {"qwen3-0.6b", "qwen3", 1024, 28, 2048, 1024, 3072, 151936, false, false, true, false},
  };
  for (const Expected& e : expected) {
    SCOPED_TRACE(e.preset);
    auto shape = find_synth_preset(e.preset, "");
    ASSERT_TRUE(shape.ok()) << shape.status().to_string();
    EXPECT_EQ(shape->arch, e.arch);
    auto plan = plan_synth_tensors(*shape, shape->n_vocab, TensorType::kQ4_K);
    ASSERT_TRUE(plan.ok());
    const auto shapes = shapes_of(*plan);
    const std::string last = "blk." + std::to_string(e.layers - 1) + ".";
    EXPECT_EQ(shapes.at("token_embd.weight"), (std::vector<uint64_t>{e.embd, e.vocab}));
    EXPECT_EQ(shapes.at(last + "attn_q.weight"), (std::vector<uint64_t>{e.embd, e.q_width}));
    EXPECT_EQ(shapes.at(last + "attn_k.weight"), (std::vector<uint64_t>{e.embd, e.kv_width}));
    EXPECT_EQ(shapes.at(last + "ffn_down.weight"), (std::vector<uint64_t>{e.ff, e.embd}));
    EXPECT_EQ(shapes.count("blk." + std::to_string(e.layers) + ".attn_q.weight"), 0u);
    EXPECT_EQ(shapes.count("output.weight"), e.output ? 1u : 0u);
    EXPECT_EQ(shapes.count(last + "attn_q.bias"), e.bias ? 1u : 0u);
    EXPECT_EQ(shapes.count(last + "attn_q_norm.weight"), e.qk_norm ? 1u : 0u);
    EXPECT_EQ(shapes.count("rope_freqs.weight"), e.rope_freqs ? 1u : 0u);
  }
}

TEST(SynthModel, Llama3RopeFactorsFollowThePublishedRule) {
  auto shape = find_synth_preset("llama3.2-1b", "llama");
  ASSERT_TRUE(shape.ok());
  ASSERT_TRUE(shape->rope_scaling.has_value());
  const auto factors = llama3_rope_factors(*shape->rope_scaling, 500000.0, 64);
  ASSERT_EQ(factors.size(), 32u);
  // High frequencies (wavelength under 8192/4 = 2048 positions) are kept,
  // low ones (wavelength over 8192) divided by 32, the rest interpolated.
  EXPECT_EQ(factors[0], 1.0f);
  EXPECT_EQ(factors[31], 32.0f);
  for (size_t i = 1; i < factors.size(); ++i) EXPECT_GE(factors[i], factors[i - 1]);
  // i = 12: freq = 500000^(-24/64), wavelength ~ 8.3e2 -> kept.
  EXPECT_EQ(factors[12], 1.0f);
  // i = 16: wavelength 2*pi*500000^0.5 ~ 4443, between 2048 and 8192:
  // smooth = (8192/4443 - 1) / 3, factor = 1 / ((1 - smooth)/32 + smooth).
  const double wavelen = 2 * M_PI * std::pow(500000.0, 0.5);
  const double smooth = (8192.0 / wavelen - 1.0) / 3.0;
  EXPECT_NEAR(factors[16], 1.0 / ((1 - smooth) / 32.0 + smooth), 1e-5);
}

// tiny-llama3: the tiny llama shape with the rule's factor 8, low 1, high 4
// around an original context of 256, so that its 8 rotary pairs (wavelengths
// 2 pi 10^(i/2), 6.3 to 19869) fall into all three bands.
TEST(SynthModel, TinyLlama3PresetScalesRopeInAllThreeBands) {
  auto shape = find_synth_preset("tiny-llama3", "");
  ASSERT_TRUE(shape.ok()) << shape.status().to_string();
  EXPECT_EQ(shape->arch, "llama");
  ASSERT_TRUE(shape->rope_scaling.has_value());
  const auto factors =
      llama3_rope_factors(*shape->rope_scaling, shape->rope_freq_base, shape->head_dim);
  ASSERT_EQ(factors.size(), 8u);
  // Wavelengths under 256/4 = 64 kept (i = 0..2: 6.3, 20, 63), over 256
  // divided by 8 (i = 4..7), i = 3 (wavelength 199) interpolated.
  for (size_t i : {0, 1, 2}) EXPECT_EQ(factors[i], 1.0f) << i;
  for (size_t i : {4, 5, 6, 7}) EXPECT_EQ(factors[i], 8.0f) << i;
  const double smooth = (256.0 / (2 * M_PI * std::pow(1e4, 3.0 / 8.0)) - 1.0) / 3.0;
  EXPECT_NEAR(factors[3], 1.0 / ((1 - smooth) / 8.0 + smooth), 1e-5);
  auto plan = plan_synth_tensors(*shape, 32000, TensorType::kF32);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(shapes_of(*plan).count("rope_freqs.weight"), 1u);
  EXPECT_FALSE(find_synth_preset("tiny-llama3", "qwen2").ok());
}

TEST(SynthModel, PadsVocabularyWithUnusedTokens) {
  // qwen2.5-0.5b has 151,936 embedding rows and GPT-2 50,257 tokens; only the
  // metadata is built, the 0.5B weights are not drawn.
  SynthOptions o;
  o.preset = "qwen2.5-0.5b";
  o.type = "q4_k";
  o.vocab_path = kGpt2Vocab;
  gguf::GgufWriter writer;
  auto tensors = plan_synth_model(o, writer);
  ASSERT_TRUE(tensors.ok()) << tensors.status().to_string();
  const std::vector<uint8_t> bytes = writer.serialize();
  auto file = gguf::GgufFile::from_memory(bytes);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const gguf::GgufFile& f = **file;
  const auto tokens = f.get_string_array("tokenizer.ggml.tokens").value();
  const auto types = f.get_int_array("tokenizer.ggml.token_type").value();
  ASSERT_EQ(tokens.size(), 151936u);
  ASSERT_EQ(types.size(), 151936u);
  EXPECT_EQ(tokens[50256], "<|endoftext|>");
  EXPECT_EQ(tokens[50257], "<extra_0>");
  EXPECT_EQ(tokens[151935], "<extra_101678>");
  EXPECT_EQ(types[151935], 5);
  EXPECT_EQ(f.get_uint("qwen2.vocab_size").value(), 151936u);
  EXPECT_EQ(f.get_uint("general.file_type").value(), 14u);
  EXPECT_EQ(shapes_of(*tensors).at("token_embd.weight"), (std::vector<uint64_t>{896, 151936}));
}

TEST(SynthModel, ClearErrors) {
  SynthOptions o = tiny("llama", "f32", 1);
  o.preset = "llama-9000";
  EXPECT_EQ(synth_model_bytes(o).status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(synth_model_bytes(o).status().message().find("tiny"), std::string::npos);
  o = tiny("llama", "q3_k", 1);
  EXPECT_EQ(synth_model_bytes(o).status().code(), StatusCode::kInvalidArgument);
  o = tiny("gpt5", "f32", 1);
  EXPECT_EQ(synth_model_bytes(o).status().code(), StatusCode::kInvalidArgument);
  o = tiny("llama", "f32", 1);
  o.vocab_path = "/nonexistent/vocab.gguf";
  EXPECT_EQ(synth_model_bytes(o).status().code(), StatusCode::kNotFound);
  o.preset = "qwen3-0.6b";
  o.arch = "llama";
  EXPECT_EQ(synth_model_bytes(o).status().code(), StatusCode::kInvalidArgument);
  // A vocabulary larger than the preset's rows cannot be cut down.
  o = tiny("llama", "f32", 1);
  o.preset = "llama2-7b";
  o.vocab_path = kGpt2Vocab;
  auto too_big = synth_model_bytes(o);
  EXPECT_EQ(too_big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(too_big.status().message().find("50257"), std::string::npos);
}

}  // namespace
}  // namespace kvforge::convert
