// Llama 2, Llama 3.x, Mistral (GGUF architecture "llama").
// GGUF files store Q/K weights for the interleaved RoPE pairing (2i, 2i+1);
// converters permute Hugging Face's rotate-half layout into it. Llama 3.1+
// frequency scaling arrives as the rope_freqs.weight tensor (model.cpp).
#include "model/architecture.h"

namespace kvforge {

void register_llama() {
  static ArchitectureRegistrar reg({.name = "llama",
                                    .rope_layout = kernels::RopeLayout::kInterleaved,
                                    .qkv_bias = false,
                                    .qk_norm = false});
}

}  // namespace kvforge
