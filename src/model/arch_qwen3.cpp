// Qwen3 dense models (GGUF architecture "qwen3"): no projection biases, but
// an RMSNorm over each head of q and k before RoPE (attn_q_norm /
// attn_k_norm), head_dim set independently of the model width, and the
// rotate-half ("NeoX") RoPE pairing.
#include "model/architecture.h"

namespace kvforge {

void register_qwen3() {
  static ArchitectureRegistrar reg({.name = "qwen3",
                                    .rope_layout = kernels::RopeLayout::kHalves,
                                    .qkv_bias = false,
                                    .qk_norm = true});
}

}  // namespace kvforge
