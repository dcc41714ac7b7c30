// Qwen2 / Qwen2.5 (GGUF architecture "qwen2"): Llama blocks with biases on
// the q, k and v projections and the rotate-half ("NeoX") RoPE pairing.
#include "model/architecture.h"

namespace kvforge {

void register_qwen2() {
  static ArchitectureRegistrar reg({.name = "qwen2",
                                    .rope_layout = kernels::RopeLayout::kHalves,
                                    .qkv_bias = true,
                                    .qk_norm = false});
}

}  // namespace kvforge
