// PagedKvCache: what reuse with selective recomputation needs (relay,
// docs/relay.md): rewriting rows, attention at scattered positions, reading
// rows out.
#include <algorithm>
#include <climits>

#include "kv/hadamard.h"
#include "kv/paged_kv_cache.h"
#include "kv/paged_kv_cache_state.h"

namespace kvforge {

// Rows can be rewritten one at a time only where every side encodes rows
// independently and keeps no full-precision window.
bool PagedKvCache::can_rewrite_rows() const {
  return !needs_staging_;
}

void PagedKvCache::store_at(SeqId seq, LayerId layer, std::span<const int32_t> positions,
                            const float* k, const float* v) {
  KVF_CHECK(can_rewrite_rows());
  Sequence& s = sequence(seq);
  const LayerCodecs& c = layers_[static_cast<size_t>(layer.value)];
  const int32_t heads = shape_.n_kv_heads;
  const int32_t d = shape_.head_dim;
  const int64_t row_stride = static_cast<int64_t>(heads) * d;
  for (size_t i = 0; i < positions.size(); ++i) {
    const int32_t p = positions[i];
    KVF_CHECK(p >= s.compressed_end && p < static_cast<int32_t>(s.tokens.size()));
    const BlockId block = s.blocks[static_cast<size_t>(p / block_tokens_)];
    // A shared block (prefix cache, fork) is never rewritten.
    KVF_CHECK(pool_->ref_count(block) == 1 && !pool_->is_cached(block));
    for (int32_t h = 0; h < heads; ++h) {
      const int64_t off = static_cast<int64_t>(i) * row_stride + static_cast<int64_t>(h) * d;
      c.key->encode(k + off, row_stride, p % block_tokens_, 1, tile(block, layer, false, h));
      c.value->encode(v + off, row_stride, p % block_tokens_, 1, tile(block, layer, true, h));
    }
  }
}

void PagedKvCache::attend_at(SeqId seq, LayerId layer, std::span<const int32_t> positions,
                             const float* q, float scale, float* out, ThreadPool& pool) {
  const Sequence& s = sequence(seq);
  KVF_CHECK(!positions.empty() && positions.back() < static_cast<int32_t>(s.tokens.size()));
  KVF_CHECK(positions.front() >= s.compressed_end);
  block_ids_.resize(s.blocks.size());
  for (size_t j = 0; j < s.blocks.size(); ++j) block_ids_[j] = s.blocks[j].value;
  PagedAttentionArgs a;
  a.q = q;
  a.out = out;
  a.n_tokens = static_cast<int32_t>(positions.size());
  a.first_pos = positions.front();
  a.query_positions = positions.data();
  a.n_heads = shape_.n_heads;
  a.n_kv_heads = shape_.n_kv_heads;
  a.head_dim = shape_.head_dim;
  a.scale = scale;
  a.block_tokens = block_tokens_;
  a.block_ids = block_ids_;
  a.first_block = s.compressed_end / block_tokens_;
  a.staged_begin = s.staged_begin;
  a.keys = paged_side(s, layer, false);
  a.values = paged_side(s, layer, true);
  // Retained rows of a pressed sequence are not supported here: relay
  // reuses into a sequence's block part, before any press.
  KVF_CHECK(s.compressed_end == 0);
  paged_attention(a, pool);
}

bool PagedKvCache::export_rows(SeqId seq, LayerId layer, int32_t first, int32_t n, float* k,
                               float* v) const {
  const Sequence& s = sequence(seq);
  if (first < s.compressed_end || n < 0 || first + n > static_cast<int32_t>(s.tokens.size())) {
    return false;
  }
  const LayerCodecs& c = layers_[static_cast<size_t>(layer.value)];
  const int32_t heads = shape_.n_kv_heads;
  const auto d = static_cast<size_t>(shape_.head_dim);
  const size_t row = static_cast<size_t>(heads) * d;
  std::vector<float> rows(static_cast<size_t>(block_tokens_) * d);
  auto* self = const_cast<PagedKvCache*>(this);
  for (int32_t p = first; p < first + n;) {
    const int32_t j = p / block_tokens_;
    const int32_t r0 = p % block_tokens_;
    const int32_t count = std::min(block_tokens_ - r0, first + n - p);
    const BlockId block = s.blocks[static_cast<size_t>(j)];
    for (const bool value_side : {false, true}) {
      const KvCodec& codec = value_side ? *c.value : *c.key;
      const bool staged = value_side ? c.value_staged : c.key_staged;
      const std::vector<float>& staged_rows =
          value_side ? s.staged_values[static_cast<size_t>(layer.value)]
                     : s.staged_keys[static_cast<size_t>(layer.value)];
      float* dst = value_side ? v : k;
      for (int32_t h = 0; h < heads; ++h) {
        if (staged && p >= s.staged_begin) {  // full-precision rows: as computed
          for (int32_t r = 0; r < count; ++r) {
            const float* src = staged_rows.data() +
                               static_cast<size_t>(p + r - s.staged_begin) * row +
                               static_cast<size_t>(h) * d;
            std::copy_n(src, d, dst + static_cast<size_t>(p - first + r) * row + h * d);
          }
          continue;
        }
        if (staged && !codec.token_granular() && r0 + count < block_tokens_) return false;
        codec.decode(self->tile(block, layer, value_side, h), r0 + count, rows.data());
        for (int32_t r = 0; r < count; ++r) {
          float* out = dst + static_cast<size_t>(p - first + r) * row + static_cast<size_t>(h) * d;
          std::copy_n(rows.data() + static_cast<size_t>(r0 + r) * d, d, out);
          if (codec.rotated()) hadamard_transform(out, static_cast<int32_t>(d));
        }
      }
    }
    p += count;
  }
  return true;
}

void PagedKvCache::mark_approximate(SeqId seq, int32_t pos) {
  Sequence& s = sequence(seq);
  s.approximate_from = std::min(s.approximate_from, std::max(0, pos));
}

}  // namespace kvforge
