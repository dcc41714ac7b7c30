// Causal multi-head attention over keys and values stored contiguously per
// KV head, with grouped-query sharing and an online (streaming) softmax, so
// no score matrix of the full context is ever materialized.
//
// Layout of the stored keys (values alike), element type T (float or f16 bits):
//   k + kv_head * head_stride + pos * head_dim   -> head_dim elements
// Queries/outputs: [n_tokens, n_heads, head_dim] f32. Query i attends to
// positions [0, first_pos + i]. Query head h reads KV head h / (n_heads / n_kv_heads).
#pragma once

#include <cstdint>

namespace kvforge {
class ThreadPool;
}

namespace kvforge::kernels {

enum class KvElement { kF32, kF16 };

struct AttentionArgs {
  const float* q = nullptr;
  float* out = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  KvElement element = KvElement::kF32;
  int64_t head_stride = 0;  // elements between consecutive KV heads
  int32_t n_tokens = 0;
  int32_t first_pos = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  float scale = 1.0f;
};

void attention(const AttentionArgs& args, ThreadPool& pool);

// Straightforward two-pass reference (full scores, then softmax) in double.
void attention_reference(const AttentionArgs& args);

}  // namespace kvforge::kernels
