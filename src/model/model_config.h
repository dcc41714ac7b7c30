// ModelConfig: a model's hyperparameters, read from GGUF metadata and
// validated once. Nothing about a model is hard-coded elsewhere.
#pragma once

#include <cstdint>
#include <string>

#include "kvforge/status.h"
#include "model/architecture.h"

namespace kvforge {

namespace gguf {
class GgufFile;
}

struct ModelConfig {
  const Architecture* arch = nullptr;
  std::string name;  // general.name, or the architecture
  int32_t n_vocab = 0;
  int32_t n_embd = 0;  // model width
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;     // key/value length per head
  int32_t n_ff = 0;         // feed-forward hidden width
  int32_t n_ctx_train = 0;  // context length the model was trained with
  float rms_eps = 1e-5f;
  float rope_freq_base = 10000.0f;
  int32_t rope_dim = 0;  // leading elements of each head that rotate

  [[nodiscard]] int32_t q_dim() const { return n_heads * head_dim; }
  [[nodiscard]] int32_t kv_dim() const { return n_kv_heads * head_dim; }
};

// Reads and validates the hyperparameters of `file`'s architecture. The
// vocabulary size comes from {arch}.vocab_size, else from token_embd.weight.
[[nodiscard]] Result<ModelConfig> read_model_config(const gguf::GgufFile& file);

}  // namespace kvforge
