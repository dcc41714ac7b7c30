// Converts llama2.c float32 checkpoints ("version 0", the legacy export) and
// their tokenizer.bin into a GGUF file of architecture "llama" with F32
// tensors and a SentencePiece-style ("llama") vocabulary.
//
// Checkpoint layout: a 7 x int32 header (dim, hidden_dim, n_layers, n_heads,
// n_kv_heads, vocab_size, seq_len; a negative vocab_size means a separate
// output matrix follows), then float32 arrays with every per-layer tensor
// stacked over layers, then two RoPE tables that are skipped. Every size is
// checked: the file must be exactly as long as its header implies.
//
// No weight permutation is needed. llama2.c rotates adjacent pairs (2i, 2i+1)
// of each head, which is what a GGUF "llama" reader expects (llama.cpp only
// permutes Hugging Face checkpoints, whose "rotate half" layout differs);
// tests/reference/check_reference.py confirms it on stories260K.
//
// The output is a pure function of the inputs and the model name, so the
// committed models/stories260K.gguf can be reproduced byte for byte.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kvforge/status.h"

namespace kvforge::convert {

struct Llama2cConfig {
  int32_t dim = 0;
  int32_t hidden_dim = 0;
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t vocab_size = 0;  // always positive here; see shared_classifier
  int32_t seq_len = 0;
  bool shared_classifier = true;  // false when the header's vocab_size was negative

  [[nodiscard]] int32_t head_dim() const { return dim / n_heads; }
  [[nodiscard]] int32_t kv_dim() const { return head_dim() * n_kv_heads; }
};

// Parses and validates the header, and checks that `checkpoint` has exactly
// the size the header implies.
[[nodiscard]] Result<Llama2cConfig> parse_llama2c_config(std::span<const uint8_t> checkpoint);

// Converts in memory. `model_name` becomes general.name.
[[nodiscard]] Result<std::vector<uint8_t>> convert_llama2c_bytes(
    std::span<const uint8_t> checkpoint, std::span<const uint8_t> tokenizer,
    const std::string& model_name);

// Reads both files and writes `out_path`. general.name is the checkpoint's
// file name without directory and extension ("stories260K").
[[nodiscard]] Status convert_llama2c(const std::string& model_path,
                                     const std::string& tokenizer_path,
                                     const std::string& out_path);

}  // namespace kvforge::convert
