#include "kv/contiguous_kv_cache.h"

#include <cstring>

#include <fmt/format.h>

#include "kernels/attention.h"
#include "util/fp16.h"

namespace kvforge {

ContiguousKvCache::ContiguousKvCache(const KvShape& shape, int32_t n_seq_slots,
                                     int32_t capacity_tokens, ContiguousKvType type)
    : shape_(shape),
      n_seq_slots_(n_seq_slots),
      capacity_tokens_(capacity_tokens),
      type_(type),
      region_elems_(static_cast<size_t>(shape.n_kv_heads) * static_cast<size_t>(capacity_tokens) *
                    static_cast<size_t>(shape.head_dim)),
      seq_tokens_(static_cast<size_t>(n_seq_slots), 0) {
  KVF_CHECK(n_seq_slots > 0 && capacity_tokens > 0);
  const size_t total = region_elems_ * static_cast<size_t>(shape.n_layers) *
                       static_cast<size_t>(n_seq_slots) * element_bytes();
  keys_.assign(total, 0);
  values_.assign(total, 0);
}

size_t ContiguousKvCache::region_offset(SeqId seq, LayerId layer) const {
  KVF_CHECK(seq.value >= 0 && seq.value < n_seq_slots_);
  KVF_CHECK(layer.value >= 0 && layer.value < shape_.n_layers);
  return (static_cast<size_t>(seq.value) * static_cast<size_t>(shape_.n_layers) +
          static_cast<size_t>(layer.value)) *
         region_elems_ * element_bytes();
}

Status ContiguousKvCache::begin_append(SeqId seq, int32_t pos0, std::span<const int32_t> tokens) {
  const auto n_tokens = static_cast<int32_t>(tokens.size());
  if (seq.value < 0 || seq.value >= n_seq_slots_) {
    return invalid_argument(
        fmt::format("sequence {} does not exist (cache has {} slots)", seq.value, n_seq_slots_));
  }
  KVF_CHECK(pos0 == seq_tokens_[static_cast<size_t>(seq.value)]);
  if (n_tokens < 0 || static_cast<int64_t>(pos0) + n_tokens > capacity_tokens_) {
    return out_of_range(
        fmt::format("the context is full: {} tokens requested, the KV cache holds {} per sequence "
                    "(raise -c/--ctx-size)",
                    static_cast<int64_t>(pos0) + n_tokens, capacity_tokens_));
  }
  seq_tokens_[static_cast<size_t>(seq.value)] = pos0 + n_tokens;
  return Status();
}

void ContiguousKvCache::store(SeqId seq, LayerId layer, int32_t pos0, int32_t n_tokens,
                              const float* k, const float* v) {
  KVF_CHECK(pos0 >= 0 && pos0 + n_tokens <= seq_tokens_[static_cast<size_t>(seq.value)]);
  const size_t base = region_offset(seq, layer);
  const int32_t d = shape_.head_dim;
  for (int32_t t = 0; t < n_tokens; ++t) {
    for (int32_t h = 0; h < shape_.n_kv_heads; ++h) {
      const size_t elem = (static_cast<size_t>(h) * static_cast<size_t>(capacity_tokens_) +
                           static_cast<size_t>(pos0 + t)) *
                          static_cast<size_t>(d);
      const float* ks = k + (static_cast<int64_t>(t) * shape_.n_kv_heads + h) * d;
      const float* vs = v + (static_cast<int64_t>(t) * shape_.n_kv_heads + h) * d;
      if (type_ == ContiguousKvType::kF32) {
        std::memcpy(keys_.data() + base + elem * 4, ks, static_cast<size_t>(d) * 4);
        std::memcpy(values_.data() + base + elem * 4, vs, static_cast<size_t>(d) * 4);
      } else {
        auto* kd = reinterpret_cast<uint16_t*>(keys_.data() + base) + elem;
        auto* vd = reinterpret_cast<uint16_t*>(values_.data() + base) + elem;
        for (int32_t i = 0; i < d; ++i) {
          kd[i] = fp32_to_fp16(ks[i]);
          vd[i] = fp32_to_fp16(vs[i]);
        }
      }
    }
  }
}

void ContiguousKvCache::attend(SeqId seq, LayerId layer, int32_t pos0, int32_t n_tokens,
                               const float* q, float scale, float* out, ThreadPool& pool) {
  KVF_CHECK(pos0 + n_tokens <= seq_tokens_[static_cast<size_t>(seq.value)]);
  const size_t base = region_offset(seq, layer);
  kernels::AttentionArgs args;
  args.q = q;
  args.out = out;
  args.k = keys_.data() + base;
  args.v = values_.data() + base;
  args.element =
      type_ == ContiguousKvType::kF32 ? kernels::KvElement::kF32 : kernels::KvElement::kF16;
  args.head_stride = static_cast<int64_t>(capacity_tokens_) * shape_.head_dim;
  args.n_tokens = n_tokens;
  args.first_pos = pos0;
  args.n_heads = shape_.n_heads;
  args.n_kv_heads = shape_.n_kv_heads;
  args.head_dim = shape_.head_dim;
  args.scale = scale;
  kernels::attention(args, pool);
}

int32_t ContiguousKvCache::n_tokens(SeqId seq) const {
  KVF_CHECK(seq.value >= 0 && seq.value < n_seq_slots_);
  return seq_tokens_[static_cast<size_t>(seq.value)];
}

Status ContiguousKvCache::truncate(SeqId seq, int32_t n_tokens) {
  KVF_CHECK(seq.value >= 0 && seq.value < n_seq_slots_);
  int32_t& held = seq_tokens_[static_cast<size_t>(seq.value)];
  KVF_CHECK(n_tokens >= 0);
  if (n_tokens < held) held = n_tokens;
  return Status();
}

size_t ContiguousKvCache::bytes_per_token() const {
  return 2 * static_cast<size_t>(shape_.n_layers) * static_cast<size_t>(shape_.n_kv_heads) *
         static_cast<size_t>(shape_.head_dim) * element_bytes();
}

size_t ContiguousKvCache::bytes_used() const {
  size_t tokens = 0;
  for (int32_t n : seq_tokens_) tokens += static_cast<size_t>(n);
  return tokens * bytes_per_token();
}

std::string ContiguousKvCache::describe() const {
  return fmt::format("contiguous {} cache, {} slot(s) x {} tokens, {} bytes/token",
                     type_ == ContiguousKvType::kF32 ? "f32" : "f16", n_seq_slots_,
                     capacity_tokens_, bytes_per_token());
}

}  // namespace kvforge
