// Element-wise and per-vector kernels of the transformer blocks: RMSNorm,
// rotary position embedding, SwiGLU, residual adds, softmax.
//
// Free functions over plain pointers; callers own all memory. None allocate.
// These are cheap next to matmul and attention (O(n_embd) per token), so
// they are written as plain loops the compiler vectorizes.
#pragma once

#include <cstdint>

namespace kvforge::kernels {

// y = x / sqrt(mean(x^2) + eps) * weight   (weight may be null: no scaling).
// x and y may alias.
void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps);

// Which elements of a head vector rotate together.
enum class RopeLayout {
  kInterleaved,  // pairs (2i, 2i+1): Meta's original Llama layout (GGUF "llama")
  kHalves,       // pairs (i, i + rope_dim/2): "NeoX" layout (Qwen2, Qwen3)
};

// Precomputes cos/sin of pos * inv_freq[i] for i < rope_dim/2 into
// cos_sin[2*i], cos_sin[2*i+1]. Angles are formed in double so that long
// positions keep full f32 precision.
void rope_cos_sin(int64_t pos, const float* inv_freq, int64_t half_dim, float* cos_sin);

// Rotates the first rope_dim elements of each of n_heads head vectors
// (head h at v + h*head_dim) in place by the angles in cos_sin.
void rope_apply(float* v, int64_t n_heads, int64_t head_dim, int64_t rope_dim, RopeLayout layout,
                const float* cos_sin);

// out = silu(gate) * up; out may alias gate or up. Vectorized with a
// polynomial exp (swiglu.cpp): within a few ulp of the exact value.
void swiglu(const float* gate, const float* up, float* out, int64_t n);

// y += x
void add_in_place(float* y, const float* x, int64_t n);

// y += b (bias row added to each of n_rows rows of width n)
void add_bias_rows(float* y, const float* b, int64_t n_rows, int64_t n);

// The lowest index of the largest of x[0, n); -1 if n is 0 or any element
// is NaN or infinite (the caller then takes its careful path). Greedy sampling
// over a vocabulary of 128K logits per token and sequence (sampler.cpp).
[[nodiscard]] int64_t argmax_finite(const float* x, int64_t n);

// Returns log(sum(exp(x))) computed stably.
[[nodiscard]] double log_sum_exp(const float* x, int64_t n);

}  // namespace kvforge::kernels
