// Tensor element types as numbered by the GGUF format (ggml's type ids), and
// the block geometry of each: a tensor row of n elements of a block-quantized
// type is stored as n / block_elems blocks of block_bytes each.
//
// The numbering is fixed by the file format (GGUF spec, "ggml_type");
// kvforge computes with the types marked supported and reports the others by
// name so that a user knows what to convert.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kvforge {

enum class TensorType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
};

struct TensorTypeTraits {
  std::string_view name;  // "q4_K", as llama.cpp prints it
  uint32_t block_elems;   // elements per block (1 for plain types)
  uint32_t block_bytes;   // bytes per block
  bool supported;         // kvforge can compute with it
};

// Traits of a type id read from a file; nullopt for ids no format version defines.
[[nodiscard]] std::optional<TensorTypeTraits> tensor_type_traits(uint32_t type_id);
[[nodiscard]] std::string_view tensor_type_name(TensorType type);
// Parses "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q4_k", "q5_k", "q6_k" (case-insensitive).
[[nodiscard]] std::optional<TensorType> parse_tensor_type(std::string_view name);

// Bytes of a row of n_elems elements; requires n_elems % block_elems == 0.
[[nodiscard]] size_t tensor_row_bytes(TensorType type, uint64_t n_elems);

}  // namespace kvforge
