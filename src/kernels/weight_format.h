// The registry of weight formats: for each supported TensorType, its block
// geometry and the scalar functions that convert whole blocks to and from f32.
//
// Each format lives in its own file (format_<type>.cpp) and defines one
// constant WeightFormat; weight_format.cpp lists them in a table keyed by
// TensorType. Code that needs per-type behaviour looks the type up here
// instead of switching on it.
//
// The entries are immutable constants: safe to use from any thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "util/tensor_type.h"

namespace kvforge::kernels {

struct WeightFormat {
  TensorType type;
  int64_t block_elems;  // elements per block (1 for plain float types)
  size_t block_bytes;   // bytes per block, as stored in GGUF files
  // Decodes n_blocks consecutive blocks into n_blocks * block_elems floats.
  void (*dequantize_blocks)(const uint8_t* src, float* dst, int64_t n_blocks);
  // Encodes n_blocks * block_elems floats (round to nearest).
  void (*quantize_blocks)(const float* src, uint8_t* dst, int64_t n_blocks);
};

// nullptr when kvforge cannot compute with `type`.
[[nodiscard]] const WeightFormat* find_weight_format(TensorType type);

// The entries, one per format file.
extern const WeightFormat kF32Format;
extern const WeightFormat kF16Format;
extern const WeightFormat kBF16Format;
extern const WeightFormat kQ8_0Format;
extern const WeightFormat kQ4_0Format;
extern const WeightFormat kQ4_1Format;
extern const WeightFormat kQ4_KFormat;
extern const WeightFormat kQ5_KFormat;
extern const WeightFormat kQ6_KFormat;

}  // namespace kvforge::kernels
