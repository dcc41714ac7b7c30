// ModelWeights: views of a model's tensors inside its memory-mapped GGUF file.
// Nothing is copied; views stay valid while the GgufFile lives (Model owns both).
// Every tensor's presence, shape and type is checked when the views are built.
#pragma once

#include <vector>

#include "kernels/matmul.h"
#include "kvforge/status.h"
#include "model/model_config.h"
#include "util/huge_page_buffer.h"

namespace kvforge {

namespace gguf {
class GgufFile;
}
class ThreadPool;

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

// Repacks every Q4_0 matrix the forward pass multiplies by into strips
// (kernels/q4_0_strips.h) and points its view at them: the matmul kernels
// then read the strips (the same bytes, so the same memory, in an order
// that needs no unpacking per call; identical results). The file's pages
// of those matrices are released; a tied output's embedding rows are then
// looked up in its strips (token_embd.strips). Does nothing where the SIMD
// target has no strip kernel or the memory cannot be mapped (the kernels
// then read the file's blocks). The returned buffer must outlive the views.
[[nodiscard]] HugePageBuffer repack_q4_0_matrices(ModelWeights& weights, const gguf::GgufFile& file,
                                                  ThreadPool& pool);

}  // namespace kvforge
