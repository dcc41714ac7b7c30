// `kvforge synth`: writes a GGUF model of a real architecture and shape with
// random weights and a real vocabulary, for tests and benchmarks that need a
// model of a given size without downloading one.
//
// Weights are drawn from a seeded, platform-independent normal generator
// (random_normal.h), one independent stream per tensor, scaled like a trained
// model's initialisation: matrices N(0, 1/fan_in), attention and MLP output
// projections 3 times larger (see kResidualBranchGain); token embedding and output
// N(0, (6 / sqrt(n_embd))^2) so that logits have a spread of about 6 and the
// next-token distribution is peaked (greedy decoding stays stable under small
// numeric differences); norm weights 1 + N(0, 0.1^2); biases N(0, 0.1^2).
// Matrices and the embedding use the requested type; norms, biases and
// rope_freqs stay F32. A matrix whose rows are not whole blocks of the type
// (k-quants need multiples of 256) falls back to q8_0, then f16.
//
// The vocabulary's tokenizer.* keys are copied unchanged from a vocab GGUF;
// when the preset's n_vocab is larger, tokens "<extra_N>" of type unused are
// appended so that the embedding and output have the real model's shape.
// The file is written tensor by tensor: memory use is one tensor, not the model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "convert/synth_presets.h"
#include "kvforge/status.h"
#include "util/tensor_type.h"

namespace kvforge::gguf {
class GgufWriter;
}

namespace kvforge::convert {

struct SynthOptions {
  std::string arch;          // "llama", "qwen2", "qwen3"; empty: the preset's own
  std::string preset;        // see synth_preset_names()
  std::string type = "f32";  // f32 f16 bf16 q8_0 q4_0 q4_1 q4_k q5_k q6_k
  uint64_t seed = 0;
  std::string vocab_path;  // empty: default_vocab_path(arch)
};

// Where the default vocabularies are looked up: ../shared/vocab relative to
// the working directory (the repository root).
inline constexpr const char* kDefaultVocabDir = "../shared/vocab";

// ggml-vocab-llama-spm.gguf (SentencePiece) for llama, ggml-vocab-gpt-2.gguf
// (byte-level BPE) for qwen2/qwen3.
[[nodiscard]] std::string default_vocab_path(const std::string& arch);

// How a tensor's values are drawn.
enum class SynthInit {
  kNormal,       // N(0, std^2)
  kNearOne,      // 1 + N(0, std^2): norm weights
  kRopeFactors,  // llama3_rope_factors(), not random
};

struct SynthTensor {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order
  TensorType type = TensorType::kF32;
  SynthInit init = SynthInit::kNormal;
  double std = 0.0;
};

// The tensors of a model of `shape` with `n_vocab` tokens, in file order.
// Pure: used to check shapes of big presets without writing them.
[[nodiscard]] Result<std::vector<SynthTensor>> plan_synth_tensors(const ModelShape& shape,
                                                                  uint32_t n_vocab,
                                                                  TensorType type);

// Sets all metadata of the model described by `options` on `writer` (no
// tensors) and returns the tensor plan: everything but the weights, cheap
// even for the 7B presets.
[[nodiscard]] Result<std::vector<SynthTensor>> plan_synth_model(const SynthOptions& options,
                                                                gguf::GgufWriter& writer);

// Writes the model to `out_path`.
[[nodiscard]] Status synth_model(const SynthOptions& options, const std::string& out_path);

// The whole file in memory, for tests with small presets.
[[nodiscard]] Result<std::vector<uint8_t>> synth_model_bytes(const SynthOptions& options);

}  // namespace kvforge::convert
