// Model shapes for `kvforge synth`: tiny test models and the shapes of real
// released models (hyperparameters from their published configurations), so
// that random-weight files have the real memory footprint and traffic.
//
// "tiny" exists for all three architectures; "tiny-k" is the same idea with
// every matrix row a multiple of 256 so that the k-quant types (q4_K, q5_K,
// q6_K) apply to every matrix; "tiny-llama3" is tiny llama with Llama 3.1
// RoPE scaling (rope_freqs). The real presets have a fixed architecture.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kvforge/status.h"

namespace kvforge::convert {

// Llama 3.1's rotary frequency scaling (published with the model's
// reference code): long wavelengths are slowed by `factor`, short ones kept,
// and those in between interpolated.
struct Llama3RopeScaling {
  double factor = 32.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  double original_context_length = 8192.0;
};

struct ModelShape {
  std::string preset;
  std::string arch;  // "llama", "qwen2" or "qwen3"
  uint32_t n_embd = 0;
  uint32_t n_layer = 0;
  uint32_t n_head = 0;
  uint32_t n_head_kv = 0;
  uint32_t head_dim = 0;
  uint32_t n_ff = 0;
  uint32_t n_vocab = 0;  // 0: the size of the vocabulary used
  uint32_t context_length = 0;
  float rope_freq_base = 10000.0f;
  float rms_norm_eps = 1e-5f;
  bool tied_output = false;  // no output.weight; the embedding is reused
  bool qkv_bias = false;     // qwen2
  bool qk_norm = false;      // qwen3
  std::optional<Llama3RopeScaling> rope_scaling;
};

// The preset names, for help texts.
[[nodiscard]] std::vector<std::string> synth_preset_names();

// Looks up a preset. `arch` may be empty for presets with a fixed
// architecture; "tiny" and "tiny-k" default to llama.
[[nodiscard]] Result<ModelShape> find_synth_preset(const std::string& preset,
                                                   const std::string& arch);

// Per rotary pair i (head_dim / 2 of them), the factor by which Llama 3.1
// scaling divides the frequency freq_base^(-2i/head_dim): what GGUF files
// store as rope_freqs.weight.
[[nodiscard]] std::vector<float> llama3_rope_factors(const Llama3RopeScaling& scaling,
                                                     double freq_base, uint32_t head_dim);

}  // namespace kvforge::convert
