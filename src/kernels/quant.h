// Row conversions between f32 and every supported weight type, in the block
// layouts that GGUF files use (ggml's block_q4_0, block_q4_K, ...).
//
// quantize_row follows the published rounding rules of each format closely
// enough that files we write are read correctly by other GGUF readers; it is
// used by `kvforge synth`, the llama2.c converter and tests.
// dequantize_row is the exact inverse mapping (the values a reader sees).
#pragma once

#include <cstdint>

#include "util/tensor_type.h"

namespace kvforge::kernels {

// n must be a multiple of the type's block_elems.
void dequantize_row(TensorType type, const void* src, float* dst, int64_t n);
void quantize_row(TensorType type, const float* src, void* dst, int64_t n);

}  // namespace kvforge::kernels
