// Architecture descriptions: what distinguishes one Llama-family model from
// another, as data. Each supported `general.architecture` value has one file
// (arch_llama.cpp, arch_qwen2.cpp, arch_qwen3.cpp) that registers an
// Architecture; the forward pass is shared (model.cpp) and consults only
// these fields, never the architecture name.
#pragma once

#include <string_view>
#include <vector>

#include "kernels/ops.h"

namespace kvforge {

struct Architecture {
  std::string_view name;            // general.architecture
  kernels::RopeLayout rope_layout;  // which head elements rotate together
  bool qkv_bias = false;            // attn_{q,k,v}.bias tensors (Qwen2)
  bool qk_norm = false;             // per-head RMSNorm of q and k before RoPE (Qwen3)
};

// All registered architectures.
[[nodiscard]] const std::vector<Architecture>& architectures();
// nullptr when `name` is not supported.
[[nodiscard]] const Architecture* find_architecture(std::string_view name);

struct ArchitectureRegistrar {
  explicit ArchitectureRegistrar(Architecture arch);
};

}  // namespace kvforge
