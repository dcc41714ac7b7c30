// ContiguousKvCache: the simplest KvCache. Each sequence slot owns, per layer,
// one contiguous region of capacity_tokens positions per KV head, in f32 or
// f16. Memory for all slots is allocated once at construction.
//
// Layout per (slot, layer): [n_kv_heads][capacity_tokens][head_dim] so the
// keys of one head are contiguous for the attention kernel.
//
// This is the reference storage against which the paged, quantized caches
// are compared (f32 here gives exactly the model's own keys and values).
// Thread-safety: none (one forward pass at a time).
#pragma once

#include <cstdint>
#include <vector>

#include "kv/kv_cache.h"

namespace kvforge {

enum class ContiguousKvType { kF32, kF16 };

class ContiguousKvCache final : public KvCache {
 public:
  ContiguousKvCache(const KvShape& shape, int32_t n_seq_slots, int32_t capacity_tokens,
                    ContiguousKvType type);

  [[nodiscard]] const KvShape& shape() const override { return shape_; }
  [[nodiscard]] Status begin_append(SeqId seq, int32_t pos0,
                                    std::span<const int32_t> tokens) override;
  void store(SeqId seq, LayerId layer, int32_t pos0, int32_t n_tokens, const float* k,
             const float* v) override;
  void attend(SeqId seq, LayerId layer, int32_t pos0, int32_t n_tokens, const float* q, float scale,
              float* out, ThreadPool& pool) override;
  [[nodiscard]] int32_t n_tokens(SeqId seq) const override;
  [[nodiscard]] Status truncate(SeqId seq, int32_t n_tokens) override;
  [[nodiscard]] size_t bytes_per_token() const override;
  [[nodiscard]] size_t bytes_used() const override;
  [[nodiscard]] std::string describe() const override;

  [[nodiscard]] int32_t capacity_tokens() const { return capacity_tokens_; }

 private:
  [[nodiscard]] size_t region_offset(SeqId seq, LayerId layer) const;
  [[nodiscard]] size_t element_bytes() const { return type_ == ContiguousKvType::kF32 ? 4 : 2; }

  KvShape shape_;
  int32_t n_seq_slots_;
  int32_t capacity_tokens_;
  ContiguousKvType type_;
  size_t region_elems_;  // elements per (slot, layer) for K (and again for V)
  std::vector<uint8_t> keys_;
  std::vector<uint8_t> values_;
  std::vector<int32_t> seq_tokens_;
};

}  // namespace kvforge
