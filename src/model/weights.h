// ModelWeights: views of a model's tensors inside its memory-mapped GGUF file.
// Nothing is copied; views stay valid while the GgufFile lives (Model owns both).
// Every tensor's presence, shape and type is checked when the views are built.
#pragma once

#include <vector>

#include "kernels/matmul.h"
#include "kvforge/status.h"
#include "model/model_config.h"

namespace kvforge {

namespace gguf {
class GgufFile;
}

struct LayerWeights {
  const float* attn_norm = nullptr;  // [n_embd]
  kernels::MatrixView wq, wk, wv, wo;
  const float* q_bias = nullptr;    // [q_dim]   (qkv_bias architectures)
  const float* k_bias = nullptr;    // [kv_dim]
  const float* v_bias = nullptr;    // [kv_dim]
  const float* q_norm = nullptr;    // [head_dim] (qk_norm architectures)
  const float* k_norm = nullptr;    // [head_dim]
  const float* ffn_norm = nullptr;  // [n_embd]
  kernels::MatrixView w_gate, w_up, w_down;
};

struct ModelWeights {
  kernels::MatrixView token_embd;  // [n_vocab rows, n_embd cols]
  kernels::MatrixView output;      // token_embd when the output is tied
  bool output_tied = false;
  const float* output_norm = nullptr;
  const float* rope_freqs = nullptr;  // optional [rope_dim/2] frequency divisors (Llama 3.1+)
  std::vector<LayerWeights> layers;
};

[[nodiscard]] Result<ModelWeights> bind_weights(const gguf::GgufFile& file,
                                                const ModelConfig& config);

}  // namespace kvforge
