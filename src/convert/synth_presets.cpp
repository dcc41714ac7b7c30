#include "convert/synth_presets.h"

#include <cmath>
#include <numbers>

namespace kvforge::convert {
namespace {

ModelShape tiny_shape(const std::string& preset, const std::string& arch, uint32_t width) {
  // width 64: dim 64, head_dim 16, ffn 192. width 256: dim 256, head_dim 64,
  // ffn 512 (every row length a multiple of 256).
  ModelShape s;
  s.preset = preset;
  s.arch = arch;
  s.n_embd = width;
  s.n_layer = 2;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.head_dim = width / 4;
  s.n_ff = width == 64 ? 192 : 512;
  s.context_length = 2048;
  if (arch == "llama") return s;  // untied output, no biases
  s.rope_freq_base = 1e6f;
  s.rms_norm_eps = 1e-6f;
  s.tied_output = true;
  if (arch == "qwen2") {
    s.qkv_bias = true;
  } else {
    // qwen3: per-head q/k norms and a head size that is not n_embd / n_head.
    s.qk_norm = true;
    s.head_dim = 2 * (width / 4);
  }
  return s;
}

// tiny llama with Llama 3.1 RoPE scaling, its context cut like its width:
// Llama 3.1's factor 8, low 1 and high 4 around an original context of 256
// (so that the tiny model's 8 rotary pairs, with wavelengths 6 to 19869,
// fall into all three bands: pairs 0-2 unscaled, 3 interpolated, 4-7 scaled).
ModelShape tiny_llama3() {
  ModelShape s = tiny_shape("tiny-llama3", "llama", 64);
  s.rope_scaling = Llama3RopeScaling{8.0, 1.0, 4.0, 256.0};
  return s;
}

ModelShape llama32_1b() {
  ModelShape s{"llama3.2-1b", "llama", 2048,      16,    32,   8,     64,    8192,
               128256,        131072,  500000.0f, 1e-5f, true, false, false, Llama3RopeScaling{}};
  return s;
}
ModelShape llama2_7b() {
  return {"llama2-7b", "llama", 4096,     32,    32,    32,    128,   11008,
          32000,       4096,    10000.0f, 1e-5f, false, false, false, std::nullopt};
}
// Mistral-7B-v0.2 shapes (theta 1e6, no sliding window).
ModelShape mistral_7b() {
  return {"mistral-7b", "llama", 4096, 32,    32,    8,     128,   14336,
          32000,        32768,   1e6f, 1e-5f, false, false, false, std::nullopt};
}
ModelShape qwen25_05b() {
  return {"qwen2.5-0.5b", "qwen2", 896,  24,    14,   2,    64,    4864,
          151936,         32768,   1e6f, 1e-6f, true, true, false, std::nullopt};
}
ModelShape qwen3_06b() {
  return {"qwen3-0.6b", "qwen3", 1024, 28,    16,   8,     128,  3072,
          151936,       40960,   1e6f, 1e-6f, true, false, true, std::nullopt};
}

}  // namespace

std::vector<std::string> synth_preset_names() {
  return {"tiny",      "tiny-k",     "tiny-llama3",  "llama3.2-1b",
          "llama2-7b", "mistral-7b", "qwen2.5-0.5b", "qwen3-0.6b"};
}

Result<ModelShape> find_synth_preset(const std::string& preset, const std::string& arch) {
  if (!arch.empty() && arch != "llama" && arch != "qwen2" && arch != "qwen3") {
    return invalid_argument("unknown architecture '" + arch + "' (expected llama, qwen2 or qwen3)");
  }
  if (preset == "tiny" || preset == "tiny-k") {
    return tiny_shape(preset, arch.empty() ? "llama" : arch, preset == "tiny" ? 64 : 256);
  }
  std::optional<ModelShape> shape;
  if (preset == "tiny-llama3") shape = tiny_llama3();
  if (preset == "llama3.2-1b") shape = llama32_1b();
  if (preset == "llama2-7b") shape = llama2_7b();
  if (preset == "mistral-7b") shape = mistral_7b();
  if (preset == "qwen2.5-0.5b") shape = qwen25_05b();
  if (preset == "qwen3-0.6b") shape = qwen3_06b();
  if (!shape) {
    std::string names;
    for (const std::string& name : synth_preset_names())
      names += (names.empty() ? "" : ", ") + name;
    return invalid_argument("unknown preset '" + preset + "' (known: " + names + ")");
  }
  if (!arch.empty() && arch != shape->arch) {
    return invalid_argument("preset '" + preset + "' is a " + shape->arch +
                            " model; drop --arch or pass --arch " + shape->arch);
  }
  return *shape;
}

std::vector<float> llama3_rope_factors(const Llama3RopeScaling& scaling, double freq_base,
                                       uint32_t head_dim) {
  const double low_freq_wavelen = scaling.original_context_length / scaling.low_freq_factor;
  const double high_freq_wavelen = scaling.original_context_length / scaling.high_freq_factor;
  std::vector<float> factors;
  for (uint32_t i = 0; i < head_dim / 2; ++i) {
    const double freq = std::pow(freq_base, -2.0 * i / head_dim);
    const double wavelen = 2.0 * std::numbers::pi / freq;
    double scaled = freq;
    if (wavelen > low_freq_wavelen) {
      scaled = freq / scaling.factor;
    } else if (wavelen >= high_freq_wavelen) {
      const double smooth = (scaling.original_context_length / wavelen - scaling.low_freq_factor) /
                            (scaling.high_freq_factor - scaling.low_freq_factor);
      scaled = (1.0 - smooth) * freq / scaling.factor + smooth * freq;
    }
    factors.push_back(static_cast<float>(freq / scaled));
  }
  return factors;
}

}  // namespace kvforge::convert
