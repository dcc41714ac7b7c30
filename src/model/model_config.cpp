#include "model/model_config.h"

#include <optional>

#include <fmt/format.h>

#include "gguf/gguf.h"

namespace kvforge {
namespace {

// Reads a positive integer hyperparameter that must fit an int32.
Result<int32_t> read_count(const gguf::GgufFile& f, const std::string& key, int64_t max) {
  auto v = f.get_uint(key);
  if (!v.ok()) return v.status().with_context("model metadata");
  if (v.value() == 0 || v.value() > static_cast<uint64_t>(max)) {
    return corrupt(
        fmt::format("model metadata: {} = {} is out of range [1, {}]", key, v.value(), max));
  }
  return static_cast<int32_t>(v.value());
}

// Reads an optional non-negative integer hyperparameter; a value above `max`
// is an error rather than a silently truncated int32.
Result<std::optional<int32_t>> read_optional_count(const gguf::GgufFile& f, const std::string& key,
                                                   int64_t max) {
  auto v = f.find_uint(key);
  if (!v.ok()) return v.status().with_context("model metadata");
  if (!v.value()) return std::optional<int32_t>();
  if (*v.value() > static_cast<uint64_t>(max)) {
    return corrupt(
        fmt::format("model metadata: {} = {} is out of range [0, {}]", key, *v.value(), max));
  }
  return std::optional<int32_t>(static_cast<int32_t>(*v.value()));
}

}  // namespace

Result<ModelConfig> read_model_config(const gguf::GgufFile& f) {
  ModelConfig c;
  auto arch_name = f.get_string("general.architecture");
  if (!arch_name.ok()) return arch_name.status().with_context("not a model file");
  c.arch = find_architecture(arch_name.value());
  if (c.arch == nullptr) {
    std::string known;
    for (const Architecture& a : architectures())
      known += (known.empty() ? "" : ", ") + std::string(a.name);
    return unsupported(fmt::format("architecture '{}' is not supported (supported: {})",
                                   arch_name.value(), known));
  }
  const std::string a = arch_name.value();
  auto name = f.find_string("general.name");
  if (!name.ok()) return name.status();
  c.name = name.value().value_or(a);

  KVF_ASSIGN_OR_RETURN(c.n_embd, read_count(f, a + ".embedding_length", 1 << 20));
  KVF_ASSIGN_OR_RETURN(c.n_layers, read_count(f, a + ".block_count", 4096));
  KVF_ASSIGN_OR_RETURN(c.n_heads, read_count(f, a + ".attention.head_count", 4096));
  KVF_ASSIGN_OR_RETURN(c.n_ff, read_count(f, a + ".feed_forward_length", 1 << 22));
  KVF_ASSIGN_OR_RETURN(c.n_ctx_train, read_count(f, a + ".context_length", 1 << 30));

  KVF_ASSIGN_OR_RETURN(const std::optional<int32_t> kv_heads,
                       read_optional_count(f, a + ".attention.head_count_kv", 4096));
  c.n_kv_heads = kv_heads.value_or(c.n_heads);
  if (c.n_kv_heads <= 0 || c.n_kv_heads > c.n_heads || c.n_heads % c.n_kv_heads != 0) {
    return corrupt(fmt::format("model metadata: {} query heads cannot share {} KV heads", c.n_heads,
                               c.n_kv_heads));
  }

  KVF_ASSIGN_OR_RETURN(const std::optional<int32_t> key_len,
                       read_optional_count(f, a + ".attention.key_length", 1 << 16));
  KVF_ASSIGN_OR_RETURN(const std::optional<int32_t> value_len,
                       read_optional_count(f, a + ".attention.value_length", 1 << 16));
  if (key_len) {
    c.head_dim = *key_len;
  } else {
    if (c.n_embd % c.n_heads != 0) {
      return corrupt(fmt::format("model metadata: width {} is not a multiple of {} heads", c.n_embd,
                                 c.n_heads));
    }
    c.head_dim = c.n_embd / c.n_heads;
  }
  if (value_len && *value_len != c.head_dim) {
    return unsupported(fmt::format(
        "model metadata: key length {} differs from value length {} (different K and V head "
        "sizes are not supported)",
        c.head_dim, *value_len));
  }
  if (c.head_dim <= 0 || c.head_dim > 256 || c.head_dim % 2 != 0) {
    return unsupported(fmt::format(
        "model metadata: head size {} is not supported (supported: even, up to 256)", c.head_dim));
  }
  if (c.n_heads / c.n_kv_heads > 16) {
    return unsupported(
        fmt::format("model metadata: {} query heads per KV head are not supported (supported: up "
                    "to 16)",
                    c.n_heads / c.n_kv_heads));
  }

  auto eps = f.find_float(a + ".attention.layer_norm_rms_epsilon");
  if (!eps.ok()) return eps.status();
  c.rms_eps = static_cast<float>(eps.value().value_or(1e-5));
  auto base = f.find_float(a + ".rope.freq_base");
  if (!base.ok()) return base.status();
  c.rope_freq_base = static_cast<float>(base.value().value_or(10000.0));
  if (!(c.rope_freq_base > 1.0f) || !(c.rms_eps > 0.0f)) {
    return corrupt("model metadata: rope.freq_base must be > 1 and rms epsilon > 0");
  }
  KVF_ASSIGN_OR_RETURN(const std::optional<int32_t> rope_dim,
                       read_optional_count(f, a + ".rope.dimension_count", 1 << 16));
  c.rope_dim = rope_dim.value_or(c.head_dim);
  if (c.rope_dim <= 0 || c.rope_dim > c.head_dim || c.rope_dim % 2 != 0) {
    return corrupt(fmt::format("model metadata: rope dimension {} does not fit head size {}",
                               c.rope_dim, c.head_dim));
  }
  auto scaling = f.find_string(a + ".rope.scaling.type");
  if (!scaling.ok()) return scaling.status();
  if (scaling.value() && *scaling.value() != "none" && *scaling.value() != "llama3") {
    return unsupported(fmt::format(
        "model metadata: RoPE scaling type '{}' is not supported (supported: none, llama3)",
        *scaling.value()));
  }

  const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
  if (embd == nullptr) return corrupt("model has no token_embd.weight tensor");
  auto vocab = f.find_uint(a + ".vocab_size");
  if (!vocab.ok()) return vocab.status();
  const uint64_t n_vocab = vocab.value().value_or(embd->dims.size() == 2 ? embd->dims[1] : 0);
  if (n_vocab == 0 || n_vocab > (1u << 24)) {
    return corrupt(fmt::format("model metadata: vocabulary size {} is out of range", n_vocab));
  }
  c.n_vocab = static_cast<int32_t>(n_vocab);
  return c;
}

}  // namespace kvforge
