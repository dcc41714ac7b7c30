#include "convert/llama2c_converter.h"

#include <bit>
#include <climits>
#include <cstring>
#include <filesystem>

#include "convert/file_bytes.h"
#include "convert/llama2c_tokenizer.h"
#include "gguf/gguf.h"

namespace kvforge::convert {
namespace {

static_assert(std::endian::native == std::endian::little,
              "llama2.c checkpoints are little-endian and are copied as they are");

constexpr size_t kHeaderBytes = 7 * sizeof(int32_t);
constexpr float kRmsNormEpsilon = 1e-5f;   // llama2.c's fixed RMSNorm epsilon
constexpr float kRopeFreqBase = 10000.0f;  // llama2.c's fixed RoPE theta
constexpr uint32_t kFileTypeAllF32 = 0;    // llama.cpp's LLAMA_FTYPE_ALL_F32

// Multiplies sizes, failing instead of wrapping around.
Result<uint64_t> checked_product(std::initializer_list<uint64_t> factors) {
  uint64_t product = 1;
  for (uint64_t f : factors) {
    if (__builtin_mul_overflow(product, f, &product)) {
      return corrupt("llama2.c header implies a model larger than 2^64 bytes");
    }
  }
  return product;
}

// Where each array of the checkpoint starts, in floats after the header.
struct Llama2cLayout {
  uint64_t token_embedding = 0;
  uint64_t attention_norm = 0;
  uint64_t wq = 0;
  uint64_t wk = 0;
  uint64_t wv = 0;
  uint64_t wo = 0;
  uint64_t ffn_norm = 0;
  uint64_t w1 = 0;
  uint64_t w2 = 0;
  uint64_t w3 = 0;
  uint64_t final_norm = 0;
  uint64_t classifier = 0;  // only meaningful when the classifier is not shared
  uint64_t total_floats = 0;
};

Result<Llama2cLayout> compute_layout(const Llama2cConfig& c) {
  const uint64_t dim = c.dim, hidden = c.hidden_dim, layers = c.n_layers, kv_dim = c.kv_dim();
  const uint64_t vocab = c.vocab_size, head_dim = c.head_dim(), seq = c.seq_len;
  Llama2cLayout layout;
  uint64_t cursor = 0;
  auto take = [&](uint64_t& field, std::initializer_list<uint64_t> shape) -> Status {
    field = cursor;
    KVF_ASSIGN_OR_RETURN(const uint64_t n, checked_product(shape));
    if (__builtin_add_overflow(cursor, n, &cursor)) {
      return corrupt("llama2.c header implies a model larger than 2^64 bytes");
    }
    return {};
  };
  uint64_t rope_tables = 0;
  KVF_RETURN_IF_ERROR(take(layout.token_embedding, {vocab, dim}));
  KVF_RETURN_IF_ERROR(take(layout.attention_norm, {layers, dim}));
  KVF_RETURN_IF_ERROR(take(layout.wq, {layers, dim, dim}));
  KVF_RETURN_IF_ERROR(take(layout.wk, {layers, kv_dim, dim}));
  KVF_RETURN_IF_ERROR(take(layout.wv, {layers, kv_dim, dim}));
  KVF_RETURN_IF_ERROR(take(layout.wo, {layers, dim, dim}));
  KVF_RETURN_IF_ERROR(take(layout.ffn_norm, {layers, dim}));
  KVF_RETURN_IF_ERROR(take(layout.w1, {layers, hidden, dim}));
  KVF_RETURN_IF_ERROR(take(layout.w2, {layers, dim, hidden}));
  KVF_RETURN_IF_ERROR(take(layout.w3, {layers, hidden, dim}));
  KVF_RETURN_IF_ERROR(take(layout.final_norm, {dim}));
  // Precomputed cos and sin tables, (seq_len, head_dim / 2) each: skipped.
  KVF_RETURN_IF_ERROR(take(rope_tables, {2, seq, head_dim / 2}));
  if (!c.shared_classifier) KVF_RETURN_IF_ERROR(take(layout.classifier, {vocab, dim}));
  layout.total_floats = cursor;
  return layout;
}

// A tensor of the output and where its floats are in the checkpoint.
struct PlannedTensor {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order
  uint64_t first_float = 0;
};

std::vector<PlannedTensor> plan_tensors(const Llama2cConfig& c, const Llama2cLayout& l) {
  const uint64_t dim = c.dim, hidden = c.hidden_dim, kv_dim = c.kv_dim(), vocab = c.vocab_size;
  std::vector<PlannedTensor> out;
  auto add = [&](std::string name, std::vector<uint64_t> dims, uint64_t first_float) {
    out.push_back({std::move(name), std::move(dims), first_float});
  };
  // llama2.c matrices are row-major (out, in), which is ggml's {in, out}:
  // the bytes are copied unchanged.
  add("token_embd.weight", {dim, vocab}, l.token_embedding);
  for (uint64_t i = 0; i < static_cast<uint64_t>(c.n_layers); ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    add(p + "attn_norm.weight", {dim}, l.attention_norm + i * dim);
    add(p + "attn_q.weight", {dim, dim}, l.wq + i * dim * dim);
    add(p + "attn_k.weight", {dim, kv_dim}, l.wk + i * kv_dim * dim);
    add(p + "attn_v.weight", {dim, kv_dim}, l.wv + i * kv_dim * dim);
    add(p + "attn_output.weight", {dim, dim}, l.wo + i * dim * dim);
    add(p + "ffn_norm.weight", {dim}, l.ffn_norm + i * dim);
    add(p + "ffn_gate.weight", {dim, hidden}, l.w1 + i * hidden * dim);
    add(p + "ffn_down.weight", {hidden, dim}, l.w2 + i * dim * hidden);
    add(p + "ffn_up.weight", {dim, hidden}, l.w3 + i * hidden * dim);
  }
  add("output_norm.weight", {dim}, l.final_norm);
  if (!c.shared_classifier) add("output.weight", {dim, vocab}, l.classifier);
  return out;
}

void set_metadata(const Llama2cConfig& c, const SpmVocab& vocab, const std::string& model_name,
                  gguf::GgufWriter& m) {
  const auto u32 = [](int32_t v) { return static_cast<uint32_t>(v); };
  m.set_string("general.architecture", "llama");
  m.set_string("general.name", model_name);
  m.set_uint32("general.file_type", kFileTypeAllF32);
  m.set_uint32("llama.context_length", u32(c.seq_len));
  m.set_uint32("llama.embedding_length", u32(c.dim));
  m.set_uint32("llama.block_count", u32(c.n_layers));
  m.set_uint32("llama.feed_forward_length", u32(c.hidden_dim));
  m.set_uint32("llama.attention.head_count", u32(c.n_heads));
  m.set_uint32("llama.attention.head_count_kv", u32(c.n_kv_heads));
  m.set_float32("llama.attention.layer_norm_rms_epsilon", kRmsNormEpsilon);
  m.set_float32("llama.rope.freq_base", kRopeFreqBase);
  m.set_uint32("llama.rope.dimension_count", u32(c.head_dim()));
  m.set_uint32("llama.attention.key_length", u32(c.head_dim()));
  m.set_uint32("llama.attention.value_length", u32(c.head_dim()));
  m.set_uint32("llama.vocab_size", u32(c.vocab_size));
  m.set_string("tokenizer.ggml.model", "llama");
  m.set_string("tokenizer.ggml.pre", "default");
  m.set_string_array("tokenizer.ggml.tokens", vocab.pieces);
  m.set_float32_array("tokenizer.ggml.scores", vocab.scores);
  m.set_int32_array("tokenizer.ggml.token_type", vocab.types);
  m.set_uint32("tokenizer.ggml.bos_token_id", kLlama2cBosId);
  m.set_uint32("tokenizer.ggml.eos_token_id", kLlama2cEosId);
  m.set_uint32("tokenizer.ggml.unknown_token_id", kLlama2cUnkId);
  m.set_bool("tokenizer.ggml.add_bos_token", true);
  m.set_bool("tokenizer.ggml.add_eos_token", false);
  m.set_bool("tokenizer.ggml.add_space_prefix", true);
}

// Fills `writer` with the metadata and views of the tensors inside
// `checkpoint`, which must stay alive until the writer has written.
Status plan_conversion(std::span<const uint8_t> checkpoint, std::span<const uint8_t> tokenizer,
                       const std::string& model_name, gguf::GgufWriter& writer) {
  KVF_ASSIGN_OR_RETURN(const Llama2cConfig config, parse_llama2c_config(checkpoint));
  KVF_ASSIGN_OR_RETURN(const Llama2cLayout layout, compute_layout(config));
  auto vocab = parse_llama2c_tokenizer(tokenizer, config.vocab_size);
  if (!vocab.ok()) return vocab.status().with_context("tokenizer");
  set_metadata(config, *vocab, model_name, writer);
  for (PlannedTensor& t : plan_tensors(config, layout)) {
    uint64_t n_floats = 1;
    for (uint64_t d : t.dims) n_floats *= d;  // cannot overflow: the layout fit in the file
    const auto bytes =
        checkpoint.subspan(kHeaderBytes + t.first_float * sizeof(float), n_floats * sizeof(float));
    writer.add_tensor_view(std::move(t.name), TensorType::kF32, std::move(t.dims), bytes);
  }
  return writer.validate();
}

}  // namespace

Result<Llama2cConfig> parse_llama2c_config(std::span<const uint8_t> checkpoint) {
  if (checkpoint.size() < kHeaderBytes) {
    return corrupt("llama2.c checkpoint is " + std::to_string(checkpoint.size()) +
                   " bytes, shorter than its 28-byte header");
  }
  int32_t header[7];
  std::memcpy(header, checkpoint.data(), kHeaderBytes);
  Llama2cConfig c;
  c.dim = header[0];
  c.hidden_dim = header[1];
  c.n_layers = header[2];
  c.n_heads = header[3];
  c.n_kv_heads = header[4];
  c.shared_classifier = header[5] > 0;
  c.vocab_size = header[5] == INT32_MIN ? 0 : (header[5] < 0 ? -header[5] : header[5]);
  c.seq_len = header[6];
  const std::string values =
      "header (dim " + std::to_string(c.dim) + ", hidden_dim " + std::to_string(c.hidden_dim) +
      ", n_layers " + std::to_string(c.n_layers) + ", n_heads " + std::to_string(c.n_heads) +
      ", n_kv_heads " + std::to_string(c.n_kv_heads) + ", vocab_size " + std::to_string(header[5]) +
      ", seq_len " + std::to_string(c.seq_len) + ")";
  if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
      c.vocab_size <= 0 || c.seq_len <= 0) {
    return corrupt("llama2.c " + values + " has a value that is not positive");
  }
  if (c.dim % c.n_heads != 0 || c.head_dim() % 2 != 0) {
    return corrupt("llama2.c " + values + ": dim must be n_heads times an even head size");
  }
  if (c.n_kv_heads > c.n_heads || c.n_heads % c.n_kv_heads != 0) {
    return corrupt("llama2.c " + values + ": n_heads must be a multiple of n_kv_heads");
  }
  KVF_ASSIGN_OR_RETURN(const Llama2cLayout layout, compute_layout(c));
  uint64_t expected = 0;
  if (__builtin_mul_overflow(layout.total_floats, sizeof(float), &expected) ||
      __builtin_add_overflow(expected, kHeaderBytes, &expected)) {
    return corrupt("llama2.c " + values + " implies a model larger than 2^64 bytes");
  }
  if (checkpoint.size() != expected) {
    return corrupt(
        "llama2.c checkpoint is " + std::to_string(checkpoint.size()) + " bytes but its " + values +
        " implies " + std::to_string(expected) +
        (checkpoint.size() < expected ? " (truncated?)" : " (not a float32 legacy-format file?)"));
  }
  return c;
}

Result<std::vector<uint8_t>> convert_llama2c_bytes(std::span<const uint8_t> checkpoint,
                                                   std::span<const uint8_t> tokenizer,
                                                   const std::string& model_name) {
  gguf::GgufWriter writer;
  KVF_RETURN_IF_ERROR(plan_conversion(checkpoint, tokenizer, model_name, writer));
  return writer.serialize();
}

Status convert_llama2c(const std::string& model_path, const std::string& tokenizer_path,
                       const std::string& out_path) {
  KVF_ASSIGN_OR_RETURN(const std::vector<uint8_t> checkpoint, read_file_bytes(model_path));
  KVF_ASSIGN_OR_RETURN(const std::vector<uint8_t> tokenizer, read_file_bytes(tokenizer_path));
  const std::string name = std::filesystem::path(model_path).stem().string();
  gguf::GgufWriter writer;
  const Status planned = plan_conversion(checkpoint, tokenizer, name, writer);
  if (!planned.ok()) return planned.with_context(model_path);
  return writer.write(out_path);
}

}  // namespace kvforge::convert
