// Tiering of the paged cache (docs/tiers.md): prefix-cache blocks and the
// staged windows that make hits on them exact, encoded as block records
// (kv/block_record.h) on the way to the tiers, and verified and loaded back
// into the prefix index on the way up.
#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "kv/block_record.h"
#include "kv/paged_kv_cache.h"
#include "kv/paged_kv_cache_state.h"

namespace kvforge {
namespace {

// A window record's payload: u32 layer count, then per layer the u64 float
// counts of its staged keys and values, then all keys and values in order.
struct WindowPayloadHeader {
  std::vector<uint8_t> bytes;
  void add_u32(uint32_t v) { append(&v, sizeof v); }
  void add_u64(uint64_t v) { append(&v, sizeof v); }
  void append(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + n);
  }
};

template <class T>
bool read_value(std::span<const uint8_t>& in, T& out) {
  if (in.size() < sizeof out) return false;
  std::memcpy(&out, in.data(), sizeof out);
  in = in.subspan(sizeof out);
  return true;
}

std::span<const uint8_t> as_bytes_of(const float* data, size_t n) {
  return {reinterpret_cast<const uint8_t*>(data), n * sizeof(float)};
}

}  // namespace

uint64_t PagedKvCache::block_layout_fingerprint() const {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  XXH3_64bits_update(state, plan_key_.data(), plan_key_.size());
  const int32_t dims[] = {shape_.n_layers, shape_.n_heads, shape_.n_kv_heads,
                          shape_.head_dim, block_tokens_,  pool_->n_segments()};
  XXH3_64bits_update(state, dims, sizeof dims);
  for (int32_t seg = 0; seg < pool_->n_segments(); ++seg) {
    const uint64_t bytes = pool_->segment_bytes(seg);
    XXH3_64bits_update(state, &bytes, sizeof bytes);
  }
  const uint64_t digest = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return digest;
}

CacheNamespace PagedKvCache::namespace_for(std::string_view salt) const {
  return make_cache_namespace(model_fingerprint_, plan_key_, salt);
}

void PagedKvCache::set_record_sink(RecordSink sink, bool on_cache, bool on_evict) {
  record_sink_ = on_cache ? sink : nullptr;
  // Windows go to every tier: a block loaded without its window cannot
  // serve a hit under a residual window.
  window_sink_ = on_cache || on_evict ? sink : nullptr;
  if (!index_) return;
  if (!on_evict || !sink) {
    index_->set_evict_observer(nullptr);
    return;
  }
  index_->set_evict_observer([this, sink](const PrefixIndex::EvictedBlock& e) {
    // The block's index in its chain: its cached ancestors.
    int32_t index = 0;
    for (auto p = pool_->cached_parent(e.block); p; p = pool_->cached_parent(*p)) ++index;
    sink(RecordEvent::kEvicted, TierKey{e.chain_hash, TierRecordKind::kBlock},
         encode_block(e.block, e.chain_hash, e.parent_hash, e.cache_namespace, index, e.tokens));
  });
}

TierRecord PagedKvCache::encode_block(BlockId block, const BlockHash& chain_hash,
                                      const BlockHash& parent, const CacheNamespace& ns,
                                      int32_t index, std::span<const int32_t> tokens) const {
  BlockRecordHeader h;
  h.kind = TierRecordKind::kBlock;
  h.key = chain_hash;
  h.cache_namespace = ns;
  h.parent = parent;
  h.layout = layout_fingerprint_;
  h.first_position = index * block_tokens_;
  std::vector<std::span<const uint8_t>> payload;
  for (int32_t seg = 0; seg < pool_->n_segments(); ++seg) {
    payload.emplace_back(pool_->segment_data(block, seg), pool_->segment_bytes(seg));
  }
  return encode_block_record(h, tokens, payload);
}

TierRecord PagedKvCache::encode_window(const Sequence& s, int32_t end,
                                       const BlockHash& chain_end) const {
  const int32_t first = hit_staging_start(end);
  const size_t row = static_cast<size_t>(shape_.n_kv_heads) * static_cast<size_t>(shape_.head_dim);
  const size_t skip = static_cast<size_t>(first - s.staged_begin) * row;
  const size_t count = static_cast<size_t>(end - first) * row;
  WindowPayloadHeader sizes;
  sizes.add_u32(static_cast<uint32_t>(layers_.size()));
  std::vector<std::span<const uint8_t>> payload(1);
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (const bool value_side : {false, true}) {
      const std::vector<float>& rows = value_side ? s.staged_values[l] : s.staged_keys[l];
      const size_t n = rows.empty() ? 0 : count;
      sizes.add_u64(n);
      if (n > 0) payload.push_back(as_bytes_of(rows.data() + skip, n));
    }
  }
  payload[0] = sizes.bytes;
  BlockRecordHeader h;
  h.kind = TierRecordKind::kStagedWindow;
  h.key = chain_end;
  h.cache_namespace = s.cache_namespace;
  h.layout = layout_fingerprint_;
  h.first_position = first;
  return encode_block_record(h,
                             std::span<const int32_t>(s.tokens).subspan(
                                 static_cast<size_t>(first), static_cast<size_t>(end - first)),
                             payload);
}

TierLookup PagedKvCache::tier_lookup(std::string_view salt, std::span<const int32_t> prompt) const {
  TierLookup lookup;
  if (!index_ || prompt.size() < 2) return lookup;
  const CacheNamespace ns = namespace_for(salt);
  const auto max_blocks = static_cast<int32_t>((prompt.size() - 1) / block_tokens_);
  std::vector<BlockHash> hashes;
  lookup.cached_blocks = static_cast<int32_t>(index_->peek(ns, prompt, max_blocks, &hashes).size());
  BlockHash parent = hashes.empty() ? kRootChainHash : hashes.back();
  const auto bt = static_cast<size_t>(block_tokens_);
  for (int32_t j = lookup.cached_blocks; j < max_blocks; ++j) {
    parent = chain_block_hash(parent, ns, prompt.subspan(static_cast<size_t>(j) * bt, bt));
    lookup.blocks.push_back(parent);
  }
  lookup.windows = windows_ != nullptr;
  lookup.block_tokens = block_tokens_;
  lookup.block_record_bytes = static_cast<int64_t>(kBlockRecordHeaderBytes + bt * sizeof(int32_t) +
                                                   pool_->bytes_per_block());
  return lookup;
}

Status PagedKvCache::load_block(const CacheNamespace& ns, std::span<const int32_t> tokens,
                                int32_t block, const BlockHash& parent, const BlockHash& key,
                                const TierRecord& record, std::vector<BlockId>& chain) {
  KVF_ASSIGN_OR_RETURN(DecodedBlockRecord d, decode_block_record(*record));
  if (d.header.kind != TierRecordKind::kBlock || d.header.key != key ||
      d.header.cache_namespace != ns || d.header.parent != parent ||
      d.header.first_position != block * block_tokens_ ||
      !std::equal(tokens.begin(), tokens.end(), d.tokens.begin(), d.tokens.end())) {
    return corrupt(fmt::format("KV record for block {} holds another block", block));
  }
  if (d.header.layout != layout_fingerprint_ || d.payload.size() != pool_->bytes_per_block()) {
    return corrupt(fmt::format("KV record for block {} has another cache layout", block));
  }
  KVF_RETURN_IF_ERROR(make_room(1));
  const std::optional<BlockId> id = pool_->allocate();
  if (!id) return resource_exhausted("no free block for a loaded KV record");
  size_t at = 0;
  for (int32_t seg = 0; seg < pool_->n_segments(); ++seg) {
    const size_t n = pool_->segment_bytes(seg);
    std::memcpy(pool_->segment_data(*id, seg), d.payload.data() + at, n);
    at += n;
  }
  chain.push_back(*id);
  return Status();
}

Status PagedKvCache::load_window(const CacheNamespace& ns, std::span<const int32_t> prompt,
                                 std::span<const BlockHash> chain_hashes,
                                 const TierRecord& record) {
  KVF_ASSIGN_OR_RETURN(DecodedBlockRecord d, decode_block_record(*record));
  const int32_t first = d.header.first_position;
  const int64_t end = int64_t{first} + static_cast<int64_t>(d.tokens.size());
  if (d.header.kind != TierRecordKind::kStagedWindow || d.header.cache_namespace != ns ||
      d.header.layout != layout_fingerprint_ || end % block_tokens_ != 0 ||
      end / block_tokens_ < 1 || end / block_tokens_ > static_cast<int64_t>(chain_hashes.size()) ||
      static_cast<int64_t>(prompt.size()) < end ||
      d.header.key != chain_hashes[static_cast<size_t>(end / block_tokens_ - 1)] ||
      first != hit_staging_start(static_cast<int32_t>(end)) ||
      !std::equal(d.tokens.begin(), d.tokens.end(), prompt.begin() + first)) {
    return corrupt("KV window record does not belong to this prompt");
  }
  std::span<const uint8_t> in = d.payload;
  uint32_t n_layers = 0;
  if (!read_value(in, n_layers) || n_layers != layers_.size()) {
    return corrupt("KV window record has another layer count");
  }
  const size_t rows = static_cast<size_t>(end - first) * static_cast<size_t>(shape_.n_kv_heads) *
                      static_cast<size_t>(shape_.head_dim);
  std::vector<uint64_t> counts(2 * n_layers);
  for (size_t i = 0; i < counts.size(); ++i) {
    const bool staged = i % 2 == 0 ? layers_[i / 2].key_staged : layers_[i / 2].value_staged;
    if (!read_value(in, counts[i]) || counts[i] != (staged ? rows : 0)) {
      return corrupt("KV window record has another staging layout");
    }
  }
  auto window = std::make_shared<StagedWindow>();
  window->begin = first;
  window->tokens = std::move(d.tokens);
  window->keys.resize(n_layers);
  window->values.resize(n_layers);
  for (size_t i = 0; i < counts.size(); ++i) {
    std::vector<float>& out = i % 2 == 0 ? window->keys[i / 2] : window->values[i / 2];
    out.resize(counts[i]);
    const size_t bytes = counts[i] * sizeof(float);
    if (in.size() < bytes) return corrupt("KV window record is truncated");
    if (bytes > 0) std::memcpy(out.data(), in.data(), bytes);
    in = in.subspan(bytes);
  }
  if (!in.empty()) return corrupt("KV window record has trailing bytes");
  const BlockHash key = d.header.key;
  windows_->insert(std::move(window), std::span<const BlockHash>(&key, 1));
  return Status();
}

TierImport PagedKvCache::import_records(std::string_view salt, std::span<const int32_t> prompt,
                                        int32_t first_block, std::span<const TierRecord> blocks,
                                        std::span<const TierRecord> windows) {
  TierImport result;
  if (!index_ || prompt.size() < 2) return result;
  auto refuse = [&](const Status& why) {
    ++result.refused;
    if (result.first_error.empty()) result.first_error = why.to_string();
  };
  const CacheNamespace ns = namespace_for(salt);
  const auto max_blocks = static_cast<int32_t>((prompt.size() - 1) / block_tokens_);
  std::vector<BlockHash> hashes;
  std::vector<BlockId> chain = index_->peek(ns, prompt, max_blocks, &hashes);
  const auto cached = static_cast<int32_t>(chain.size());
  // The records continue the chain the lookup saw; if the pool has since
  // dropped part of it they cannot be linked.
  if (cached < first_block) return result;
  // References keep the cached chain from being evicted to make room.
  for (const BlockId b : chain) pool_->add_ref(b);
  const auto bt = static_cast<size_t>(block_tokens_);
  const int32_t end = std::min(max_blocks, first_block + static_cast<int32_t>(blocks.size()));
  for (int32_t j = cached; j < end; ++j) {
    const TierRecord& record = blocks[static_cast<size_t>(j - first_block)];
    if (record == nullptr) break;
    const std::span<const int32_t> tokens = prompt.subspan(static_cast<size_t>(j) * bt, bt);
    const BlockHash parent = hashes.empty() ? kRootChainHash : hashes.back();
    const BlockHash key = chain_block_hash(parent, ns, tokens);
    const Status loaded = load_block(ns, tokens, j, parent, key, record, chain);
    if (!loaded.ok()) {
      if (loaded.code() == StatusCode::kCorrupt) refuse(loaded);
      break;
    }
    hashes.push_back(key);
  }
  if (static_cast<int32_t>(chain.size()) > cached) {
    std::vector<size_t> recorded;
    index_->insert(ns, prompt.first(chain.size() * bt), chain, nullptr, -1, &recorded);
    result.blocks = static_cast<int32_t>(recorded.size());
  }
  for (const BlockId b : chain) pool_->release(b);
  if (windows_) {
    for (size_t i = 0; i < windows.size(); ++i) {
      const TierRecord& record = windows[i];
      // windows[i] serves a hit ending after block first_block + i: useless
      // (not wrong) when the chain stops before it.
      if (record == nullptr || static_cast<size_t>(first_block) + i + 1 > hashes.size()) continue;
      const Status loaded = load_window(ns, prompt, hashes, record);
      if (loaded.ok()) {
        ++result.windows;
      } else {
        refuse(loaded);
      }
    }
  }
  return result;
}

}  // namespace kvforge
