#include "convert/synth_model.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "convert/random_normal.h"
#include "gguf/gguf.h"
#include "kernels/quant.h"

namespace kvforge::convert {
namespace {

constexpr double kLogitSpread = 6.0;  // std of logits of a unit-RMS hidden state
constexpr double kNormWeightSpread = 0.1;
constexpr double kBiasStd = 0.1;
// Attention and MLP outputs are drawn larger than 1/sqrt(fan_in) so that the
// residual stream is not dominated by the token's own embedding: with a tied
// output that would make every model predict its input token again.
constexpr double kResidualBranchGain = 3.0;

// llama.cpp's llama_ftype numbers for general.file_type.
uint32_t file_type_for(TensorType type) {
  switch (type) {
    case TensorType::kF32:
      return 0;
    case TensorType::kF16:
      return 1;
    case TensorType::kQ4_0:
      return 2;
    case TensorType::kQ4_1:
      return 3;
    case TensorType::kQ8_0:
      return 7;
    case TensorType::kQ4_K:
      return 14;  // Q4_K_S: every matrix q4_K
    case TensorType::kQ5_K:
      return 16;  // Q5_K_S
    case TensorType::kQ6_K:
      return 18;
    case TensorType::kBF16:
      return 32;
    default:
      return 0;
  }
}

bool fits_rows(TensorType type, uint64_t row_length) {
  const auto traits = tensor_type_traits(static_cast<uint32_t>(type));
  return traits && row_length % traits->block_elems == 0;
}

// The requested type if the rows are whole blocks of it; else q8_0, else f16.
TensorType matrix_type(TensorType requested, uint64_t row_length) {
  for (TensorType t : {requested, TensorType::kQ8_0, TensorType::kF16}) {
    if (fits_rows(t, row_length)) return t;
  }
  return TensorType::kF32;
}

Status validate_shape(const ModelShape& s, uint32_t n_vocab) {
  if (s.n_embd == 0 || s.n_layer == 0 || s.n_head == 0 || s.n_head_kv == 0 || s.head_dim == 0 ||
      s.n_ff == 0 || n_vocab == 0) {
    return invalid_argument("preset '" + s.preset + "' has a zero dimension");
  }
  if (s.n_head % s.n_head_kv != 0 || s.head_dim % 2 != 0) {
    return invalid_argument("preset '" + s.preset +
                            "': n_head must be a multiple of n_head_kv and head_dim even");
  }
  return {};
}

struct Vocabulary {
  std::vector<std::pair<std::string, gguf::Value>> tokenizer_keys;
  uint32_t n_tokens = 0;
};

Result<Vocabulary> load_vocabulary(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    return not_found("vocabulary '" + path +
                     "' not found; pass --vocab with a GGUF file that has tokenizer.ggml.* keys");
  }
  auto file = gguf::GgufFile::open(path);
  if (!file.ok()) return file.status().with_context("vocabulary '" + path + "'");
  Vocabulary vocab;
  for (const auto& [key, value] : (*file)->metadata()) {
    if (key.rfind("tokenizer.", 0) == 0) vocab.tokenizer_keys.emplace_back(key, value);
  }
  auto tokens = (*file)->get_string_array("tokenizer.ggml.tokens");
  if (!tokens.ok()) return tokens.status().with_context("vocabulary '" + path + "'");
  if (tokens->empty()) return corrupt("vocabulary '" + path + "' has no tokens");
  vocab.n_tokens = static_cast<uint32_t>(tokens->size());
  return vocab;
}

gguf::Value make_scalar(gguf::ValueType type, std::variant<uint64_t, int64_t, double> v) {
  gguf::Value value;
  value.type = type;
  std::visit([&](auto x) { value.data = x; }, v);
  return value;
}

// Appends padding entries to the per-token arrays (tokens, scores, types).
void pad_vocabulary(Vocabulary& vocab, uint32_t n_vocab) {
  for (auto& [key, value] : vocab.tokenizer_keys) {
    auto* array = std::get_if<gguf::Array>(&value.data);
    if (array == nullptr || array->items.size() != vocab.n_tokens) continue;
    for (uint32_t id = vocab.n_tokens; id < n_vocab; ++id) {
      if (key == "tokenizer.ggml.tokens") {
        gguf::Value piece;
        piece.type = gguf::ValueType::kString;
        piece.data = "<extra_" + std::to_string(id - vocab.n_tokens) + ">";
        array->items.push_back(std::move(piece));
      } else if (key == "tokenizer.ggml.scores") {
        array->items.push_back(make_scalar(array->elem_type, 0.0));
      } else if (key == "tokenizer.ggml.token_type") {
        array->items.push_back(make_scalar(array->elem_type, int64_t{5}));  // unused
      }
    }
  }
}

void set_model_metadata(const ModelShape& s, uint32_t n_vocab, TensorType type,
                        const SynthOptions& options, gguf::GgufWriter& w) {
  const std::string a = s.arch + ".";
  w.set_string("general.architecture", s.arch);
  w.set_string("general.name", "synth-" + s.preset + "-" + s.arch);
  w.set_string("general.description", "random weights: synth --arch " + s.arch + " --preset " +
                                          s.preset + " --type " + options.type + " --seed " +
                                          std::to_string(options.seed));
  w.set_uint32("general.file_type", file_type_for(type));
  w.set_uint32(a + "context_length", s.context_length);
  w.set_uint32(a + "embedding_length", s.n_embd);
  w.set_uint32(a + "block_count", s.n_layer);
  w.set_uint32(a + "feed_forward_length", s.n_ff);
  w.set_uint32(a + "attention.head_count", s.n_head);
  w.set_uint32(a + "attention.head_count_kv", s.n_head_kv);
  w.set_float32(a + "attention.layer_norm_rms_epsilon", s.rms_norm_eps);
  w.set_float32(a + "rope.freq_base", s.rope_freq_base);
  w.set_uint32(a + "rope.dimension_count", s.head_dim);
  w.set_uint32(a + "attention.key_length", s.head_dim);
  w.set_uint32(a + "attention.value_length", s.head_dim);
  w.set_uint32(a + "vocab_size", n_vocab);
}

// Draws one tensor's values row by row and converts each row to its type.
Status fill_tensor(const SynthTensor& t, const ModelShape& shape, uint64_t seed,
                   std::span<uint8_t> out) {
  const uint64_t row_length = t.dims[0];
  uint64_t n_rows = 1;
  for (size_t i = 1; i < t.dims.size(); ++i) n_rows *= t.dims[i];
  const size_t row_bytes = tensor_row_bytes(t.type, row_length);
  if (out.size() != row_bytes * n_rows) {
    return internal_error("tensor '" + t.name + "': buffer size does not match its shape");
  }
  std::vector<float> row(row_length);
  if (t.init == SynthInit::kRopeFactors) {
    row = llama3_rope_factors(*shape.rope_scaling, shape.rope_freq_base, shape.head_dim);
    std::memcpy(out.data(), row.data(), out.size());
    return {};
  }
  NormalGenerator rng(seed, t.name);
  const double mean = t.init == SynthInit::kNearOne ? 1.0 : 0.0;
  for (uint64_t r = 0; r < n_rows; ++r) {
    for (float& v : row) v = static_cast<float>(mean + t.std * rng.next_standard_normal());
    kernels::quantize_row(t.type, row.data(), out.data() + r * row_bytes,
                          static_cast<int64_t>(row_length));
  }
  return {};
}

struct SynthPlan {
  ModelShape shape;
  std::vector<SynthTensor> tensors;
};

Result<SynthPlan> plan_model(const SynthOptions& options, gguf::GgufWriter& writer) {
  const auto type = parse_tensor_type(options.type);
  if (!type) {
    return invalid_argument("unknown weight type '" + options.type +
                            "' (expected f32, f16, bf16, q8_0, q4_0, q4_1, q4_k, q5_k or q6_k)");
  }
  KVF_ASSIGN_OR_RETURN(const ModelShape shape, find_synth_preset(options.preset, options.arch));
  const std::string vocab_path =
      options.vocab_path.empty() ? default_vocab_path(shape.arch) : options.vocab_path;
  KVF_ASSIGN_OR_RETURN(Vocabulary vocab, load_vocabulary(vocab_path));
  const uint32_t n_vocab = shape.n_vocab == 0 ? vocab.n_tokens : shape.n_vocab;
  if (vocab.n_tokens > n_vocab) {
    return invalid_argument("vocabulary '" + vocab_path + "' has " +
                            std::to_string(vocab.n_tokens) + " tokens, more than preset '" +
                            shape.preset + "' has (" + std::to_string(n_vocab) + ")");
  }
  pad_vocabulary(vocab, n_vocab);
  KVF_ASSIGN_OR_RETURN(std::vector<SynthTensor> tensors, plan_synth_tensors(shape, n_vocab, *type));

  set_model_metadata(shape, n_vocab, *type, options, writer);
  for (auto& [key, value] : vocab.tokenizer_keys) writer.set_value(key, std::move(value));
  return SynthPlan{shape, std::move(tensors)};
}

void add_tensors(const SynthPlan& plan, uint64_t seed, gguf::GgufWriter& writer) {
  for (const SynthTensor& t : plan.tensors) {
    writer.add_tensor_fill(t.name, t.type, t.dims, [&t, &plan, seed](std::span<uint8_t> out) {
      return fill_tensor(t, plan.shape, seed, out);
    });
  }
}

}  // namespace

std::string default_vocab_path(const std::string& arch) {
  const std::string file = arch == "llama" ? "ggml-vocab-llama-spm.gguf" : "ggml-vocab-gpt-2.gguf";
  return std::string(kDefaultVocabDir) + "/" + file;
}

Result<std::vector<SynthTensor>> plan_synth_tensors(const ModelShape& s, uint32_t n_vocab,
                                                    TensorType type) {
  KVF_RETURN_IF_ERROR(validate_shape(s, n_vocab));
  const uint64_t embd = s.n_embd, ff = s.n_ff, vocab = n_vocab;
  const uint64_t q_width = uint64_t{s.n_head} * s.head_dim;
  const uint64_t kv_width = uint64_t{s.n_head_kv} * s.head_dim;
  const double embedding_std = kLogitSpread / std::sqrt(double(embd));
  std::vector<SynthTensor> out;
  auto matrix = [&](std::string name, uint64_t in, uint64_t n_out, double std) {
    out.push_back({std::move(name), {in, n_out}, matrix_type(type, in), SynthInit::kNormal, std});
  };
  auto vector = [&](std::string name, uint64_t n, SynthInit init, double std) {
    out.push_back({std::move(name), {n}, TensorType::kF32, init, std});
  };

  matrix("token_embd.weight", embd, vocab, embedding_std);
  if (s.rope_scaling) vector("rope_freqs.weight", s.head_dim / 2, SynthInit::kRopeFactors, 0.0);
  for (uint32_t i = 0; i < s.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    vector(p + "attn_norm.weight", embd, SynthInit::kNearOne, kNormWeightSpread);
    matrix(p + "attn_q.weight", embd, q_width, 1.0 / std::sqrt(double(embd)));
    matrix(p + "attn_k.weight", embd, kv_width, 1.0 / std::sqrt(double(embd)));
    matrix(p + "attn_v.weight", embd, kv_width, 1.0 / std::sqrt(double(embd)));
    if (s.qkv_bias) {
      vector(p + "attn_q.bias", q_width, SynthInit::kNormal, kBiasStd);
      vector(p + "attn_k.bias", kv_width, SynthInit::kNormal, kBiasStd);
      vector(p + "attn_v.bias", kv_width, SynthInit::kNormal, kBiasStd);
    }
    if (s.qk_norm) {
      vector(p + "attn_q_norm.weight", s.head_dim, SynthInit::kNearOne, kNormWeightSpread);
      vector(p + "attn_k_norm.weight", s.head_dim, SynthInit::kNearOne, kNormWeightSpread);
    }
    matrix(p + "attn_output.weight", q_width, embd,
           kResidualBranchGain / std::sqrt(double(q_width)));
    vector(p + "ffn_norm.weight", embd, SynthInit::kNearOne, kNormWeightSpread);
    matrix(p + "ffn_gate.weight", embd, ff, 1.0 / std::sqrt(double(embd)));
    matrix(p + "ffn_up.weight", embd, ff, 1.0 / std::sqrt(double(embd)));
    matrix(p + "ffn_down.weight", ff, embd, kResidualBranchGain / std::sqrt(double(ff)));
  }
  vector("output_norm.weight", embd, SynthInit::kNearOne, kNormWeightSpread);
  if (!s.tied_output) matrix("output.weight", embd, vocab, embedding_std);
  return out;
}

Result<std::vector<SynthTensor>> plan_synth_model(const SynthOptions& options,
                                                  gguf::GgufWriter& writer) {
  KVF_ASSIGN_OR_RETURN(SynthPlan plan, plan_model(options, writer));
  return std::move(plan.tensors);
}

Status synth_model(const SynthOptions& options, const std::string& out_path) {
  gguf::GgufWriter writer;
  KVF_ASSIGN_OR_RETURN(const SynthPlan plan, plan_model(options, writer));
  add_tensors(plan, options.seed, writer);
  KVF_RETURN_IF_ERROR(writer.validate());
  return writer.write(out_path);
}

Result<std::vector<uint8_t>> synth_model_bytes(const SynthOptions& options) {
  gguf::GgufWriter writer;
  KVF_ASSIGN_OR_RETURN(const SynthPlan plan, plan_model(options, writer));
  add_tensors(plan, options.seed, writer);
  KVF_RETURN_IF_ERROR(writer.validate());
  return writer.serialize();
}

}  // namespace kvforge::convert
