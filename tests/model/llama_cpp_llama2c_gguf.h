// A GGUF file laid out as llama.cpp's convert-llama2c-to-ggml example writes
// one, built from a llama2.c model that kvforge converted (the bundled
// models/stories260K.gguf): the same vocabulary and weights under the keys,
// types and order llama.cpp uses:
//
//   tokenizer.ggml.tokens / scores / token_type, tokenizer.ggml.model "llama"
//     (no tokenizer.ggml.pre, no add_bos/add_eos/add_space_prefix flags)
//   general.architecture "llama", general.name "llama"
//   tokenizer.ggml.unknown/bos/eos_token_id (uint32 0, 1, 2) and
//   tokenizer.ggml.seperator_token_id and padding_token_id = uint32
//     4294967295 (-1, llama.cpp's "no token", written unsigned)
//   llama.context_length (uint32, the tool's default 128), embedding_length,
//     feed_forward_length, attention.head_count, attention.head_count_kv,
//     block_count, rope.dimension_count, attention.layer_norm_rms_epsilon
//     (float32 1e-5); no rope.freq_base, vocab_size, key/value lengths
//   tensors in the order token_embd, output_norm, output (written even when
//     llama2.c shares it with the embedding), then per layer attn_q, attn_k,
//     attn_v, attn_output, attn_norm, ffn_gate, ffn_down, ffn_up, ffn_norm;
//     all f32.
//
// For ../shared/models/stories260K the result is byte for byte the file
// llama.cpp's tool writes from stories260K.bin and tok512.bin (compared when
// this was written, with the llama.cpp bundled in node-llama-cpp 3.21.1;
// llama.cpp's output is not kept in this repository).
//
// Used by the model tests and, through tests/cli/write_llama_cpp_llama2c.cpp,
// by the command-line tests.
#pragma once

#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "gguf/gguf.h"
#include "kvforge/status.h"

namespace kvforge::testing {

// Fills `out` from `ours`; tensor data is borrowed from `ours`, which must
// outlive out.write()/serialize().
inline Status llama_cpp_llama2c_gguf(const gguf::GgufFile& ours, gguf::GgufWriter& out) {
  auto copy = [&](const std::string& key) -> Status {
    const gguf::Value* v = ours.find(key);
    if (v == nullptr) return not_found("source model lacks " + key);
    out.set_value(key, *v);
    return Status::ok_status();
  };
  auto copy_uint32 = [&](const std::string& key) -> Status {
    KVF_ASSIGN_OR_RETURN(const uint64_t v, ours.get_uint(key));
    out.set_uint32(key, static_cast<uint32_t>(v));
    return Status::ok_status();
  };
  KVF_RETURN_IF_ERROR(copy("tokenizer.ggml.tokens"));
  KVF_RETURN_IF_ERROR(copy("tokenizer.ggml.scores"));
  KVF_RETURN_IF_ERROR(copy("tokenizer.ggml.token_type"));
  out.set_string("tokenizer.ggml.model", "llama");
  out.set_string("general.architecture", "llama");
  out.set_string("general.name", "llama");
  out.set_uint32("tokenizer.ggml.unknown_token_id", 0);
  out.set_uint32("tokenizer.ggml.bos_token_id", 1);
  out.set_uint32("tokenizer.ggml.eos_token_id", 2);
  out.set_uint32("tokenizer.ggml.seperator_token_id", 0xFFFFFFFFu);
  out.set_uint32("tokenizer.ggml.padding_token_id", 0xFFFFFFFFu);
  out.set_uint32("llama.context_length", 128);
  KVF_RETURN_IF_ERROR(copy_uint32("llama.embedding_length"));
  KVF_RETURN_IF_ERROR(copy_uint32("llama.feed_forward_length"));
  KVF_RETURN_IF_ERROR(copy_uint32("llama.attention.head_count"));
  KVF_RETURN_IF_ERROR(copy_uint32("llama.attention.head_count_kv"));
  KVF_RETURN_IF_ERROR(copy_uint32("llama.block_count"));
  KVF_RETURN_IF_ERROR(copy_uint32("llama.rope.dimension_count"));
  out.set_float32("llama.attention.layer_norm_rms_epsilon", 1e-5f);

  auto tensor = [&](const std::string& name, const std::string& as) -> Status {
    const gguf::TensorInfo* t = ours.find_tensor(name);
    if (t == nullptr) return not_found("source model lacks tensor " + name);
    if (t->type != TensorType::kF32) return unsupported(name + " is not f32");
    out.add_tensor_view(as, t->type, t->dims, {t->data, t->n_bytes});
    return Status::ok_status();
  };
  KVF_RETURN_IF_ERROR(tensor("token_embd.weight", "token_embd.weight"));
  KVF_RETURN_IF_ERROR(tensor("output_norm.weight", "output_norm.weight"));
  KVF_RETURN_IF_ERROR(tensor(
      ours.find_tensor("output.weight") ? "output.weight" : "token_embd.weight", "output.weight"));
  KVF_ASSIGN_OR_RETURN(const uint64_t n_layers, ours.get_uint("llama.block_count"));
  for (uint64_t i = 0; i < n_layers; ++i) {
    for (const char* part : {"attn_q", "attn_k", "attn_v", "attn_output", "attn_norm", "ffn_gate",
                             "ffn_down", "ffn_up", "ffn_norm"}) {
      const std::string name = fmt::format("blk.{}.{}.weight", i, part);
      KVF_RETURN_IF_ERROR(tensor(name, name));
    }
  }
  return Status::ok_status();
}

}  // namespace kvforge::testing
