#include "kv/paged_kv_cache.h"

#include "util/system_memory.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "kv/paged_attention.h"
#include "kv/paged_kv_cache_state.h"
#include "kv/selection/block_choice.h"
#include "kv/selection/key_bounds.h"
#include "util/thread_pool.h"

namespace kvforge {

namespace {

bool is_staged(const KvCodec& codec) {
  return !codec.token_granular() || codec.residual_tokens() > 0;
}

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// A released sequence keeps the f32 rows that hits ending at its last this
// many block boundaries need (a next prompt may re-tokenize the end of the
// previous answer differently and so match one block less).
constexpr int32_t kStagedWindowChainEnds = 3;

// "0-3:a,4-15:b": runs of layers with equal names.
std::string layer_runs(const std::vector<std::string>& names) {
  std::string runs;
  size_t run_start = 0;
  for (size_t l = 0; l < names.size(); ++l) {
    if (l + 1 == names.size() || names[l] != names[l + 1]) {
      runs += fmt::format("{}{}-{}:{}", runs.empty() ? "" : ",", run_start, l, names[l]);
      run_start = l + 1;
    }
  }
  return runs;
}

std::string side_plan(const KvCodec& key, const KvCodec& value) {
  return fmt::format("k={}/v={}", key.name(), value.name());
}

}  // namespace

Result<std::unique_ptr<PagedKvCache>> PagedKvCache::create(const KvShape& shape,
                                                           const PagedKvCacheOptions& options) {
  if (static_cast<int32_t>(options.layer_codecs.size()) != shape.n_layers) {
    return invalid_argument(fmt::format("codec plan has {} layers, the model {}",
                                        options.layer_codecs.size(), shape.n_layers));
  }
  if (options.block_tokens < 1 || options.block_tokens > kPagedMaxBlockTokens) {
    return invalid_argument(fmt::format("KV block size {} is outside [1, {}]", options.block_tokens,
                                        kPagedMaxBlockTokens));
  }
  if (shape.head_dim > kPagedMaxHeadDim || shape.n_kv_heads < 1 ||
      shape.n_heads % shape.n_kv_heads != 0 || shape.n_heads / shape.n_kv_heads > kPagedMaxGroup) {
    return unsupported(
        fmt::format("the paged KV cache supports head_dim <= {} and <= {} query heads per KV head",
                    kPagedMaxHeadDim, kPagedMaxGroup));
  }
  if (options.n_ctx < 1 || options.n_seq < 1) {
    return invalid_argument("the KV cache needs n_ctx >= 1 and n_seq >= 1");
  }

  std::unique_ptr<PagedKvCache> cache(new PagedKvCache());
  cache->shape_ = shape;
  cache->block_tokens_ = options.block_tokens;
  cache->n_ctx_ = options.n_ctx;
  cache->model_fingerprint_ = options.model_fingerprint;

  const KvCodecParams params{options.block_tokens, shape.head_dim};
  BlockPoolLayout layout;
  layout.block_tokens = options.block_tokens;
  std::string plan;
  std::vector<std::string> layer_plans;  // canonical "k=.../v=..." of each layer
  for (int32_t l = 0; l < shape.n_layers; ++l) {
    const LayerCodecSpec& spec = options.layer_codecs[static_cast<size_t>(l)];
    LayerCodecs codecs;
    KVF_ASSIGN_OR_RETURN(codecs.key, make_kv_codec(spec.key, KvSide::kKey, params));
    KVF_ASSIGN_OR_RETURN(codecs.value, make_kv_codec(spec.value, KvSide::kValue, params));
    codecs.key_tile_bytes = codecs.key->tile_bytes();
    codecs.value_tile_bytes = codecs.value->tile_bytes();
    codecs.key_staged = is_staged(*codecs.key);
    codecs.value_staged = is_staged(*codecs.value);
    if ((codecs.key_staged && codecs.key->rotated()) ||
        (codecs.value_staged && codecs.value->rotated())) {
      return unsupported("a rotated codec with a full-precision window is not supported");
    }
    cache->needs_staging_ = cache->needs_staging_ || codecs.key_staged || codecs.value_staged;
    // Segments (pool arenas) of this layer: one per KV head for the keys, then
    // one per KV head for the values; see segment().
    layout.segment_bytes.insert(layout.segment_bytes.end(), static_cast<size_t>(shape.n_kv_heads),
                                codecs.key_tile_bytes);
    layout.segment_bytes.insert(layout.segment_bytes.end(), static_cast<size_t>(shape.n_kv_heads),
                                codecs.value_tile_bytes);
    layer_plans.push_back(side_plan(*codecs.key, *codecs.value));
    cache->layers_.push_back(std::move(codecs));
  }
  // Plan name: runs of layers with equal (canonical) codecs, "0-15:k=int8/v=int8".
  plan = layer_runs(layer_plans);
  cache->plan_name_ = plan;

  if (!options.layer_presses.empty()) {
    if (static_cast<int32_t>(options.layer_presses.size()) != shape.n_layers) {
      return invalid_argument(fmt::format("press plan has {} layers, the model {}",
                                          options.layer_presses.size(), shape.n_layers));
    }
    std::vector<std::string> layer_presses;
    for (const std::shared_ptr<const KvPress>& press : options.layer_presses) {
      layer_presses.push_back(press ? press->name() : "none");
      if (press) KVF_RETURN_IF_ERROR(cache->add_demotion_codecs(*press));
    }
    if (std::any_of(options.layer_presses.begin(), options.layer_presses.end(),
                    [](const auto& p) { return p != nullptr; })) {
      cache->press_plan_name_ = layer_runs(layer_presses);
      cache->default_presses_ = options.layer_presses;
    }
  }
  if (cache->default_presses_.empty())
    cache->default_presses_.resize(static_cast<size_t>(shape.n_layers));

  if (options.selection) {
    for (const std::shared_ptr<const KvPress>& press : cache->default_presses_) {
      KVF_RETURN_IF_ERROR(check_press_with_selection(press.get(), *options.selection));
    }
    cache->selection_ = options.selection;
    if (cache->selection_->needs().key_bounds) {
      // One more segment per (layer, KV head): the block's key bounds.
      cache->first_bounds_segment_ = static_cast<int32_t>(layout.segment_bytes.size());
      cache->bounds_bytes_ = key_bounds_bytes(shape.head_dim);
      layout.segment_bytes.insert(
          layout.segment_bytes.end(),
          static_cast<size_t>(shape.n_layers) * static_cast<size_t>(shape.n_kv_heads),
          cache->bounds_bytes_);
    }
  }

  size_t budget = options.memory_bytes;
  if (budget == 0) {
    // Every slot's full context, plus one block per slot for the copy-on-write
    // of a shared partial block.
    size_t block_bytes = 0;
    for (size_t bytes : layout.segment_bytes) block_bytes += bytes;
    const size_t need = block_bytes * static_cast<size_t>(options.n_seq) *
                        static_cast<size_t>(ceil_div(options.n_ctx, options.block_tokens) + 1);
    budget = need;
    const std::optional<size_t> available =
        options.default_budget_fraction > 0 ? available_memory_bytes() : std::nullopt;
    if (available) {
      const auto share =
          static_cast<size_t>(static_cast<double>(*available) * options.default_budget_fraction);
      const size_t most = need > SIZE_MAX / PagedKvCacheOptions::kMaxDefaultBudgetContexts
                              ? need
                              : need * PagedKvCacheOptions::kMaxDefaultBudgetContexts;
      budget = std::clamp(share, need, most);
    }
  }
  KVF_ASSIGN_OR_RETURN(cache->pool_, BlockPool::create(layout, budget));
  for (int32_t segment = 0; segment < cache->pool_->n_segments(); ++segment) {
    cache->segment_arenas_.push_back(cache->pool_->segment_data(BlockId{0}, segment));
  }
  if (options.prefix_sharing) {
    cache->index_ = std::make_unique<PrefixIndex>(*cache->pool_);
  }
  cache->pages_ = std::make_unique<RetainedPageStore>(*cache->pool_);
  if (options.prefix_sharing && cache->staging_start_residual() > 0) {
    size_t window_bytes = options.staged_window_bytes;
    if (window_bytes == 0) {
      // A window holds at most R + (kStagedWindowChainEnds + 1) * B rows.
      size_t row_bytes = 0;
      for (const LayerCodecs& c : cache->layers_) {
        const int32_t staged_sides = (c.key_staged ? 1 : 0) + (c.value_staged ? 1 : 0);
        row_bytes += static_cast<size_t>(staged_sides) * static_cast<size_t>(shape.n_kv_heads) *
                     static_cast<size_t>(shape.head_dim) * sizeof(float);
      }
      row_bytes += sizeof(int32_t);  // the token id
      const auto rows = static_cast<size_t>(cache->staging_start_residual() +
                                            (kStagedWindowChainEnds + 1) * options.block_tokens);
      window_bytes =
          static_cast<size_t>(std::max(options.n_seq, PagedKvCacheOptions::kDefaultStagedWindows)) *
          rows * row_bytes;
    }
    cache->windows_ = std::make_unique<StagedWindowCache>(window_bytes);
  }
  cache->plan_key_ = fmt::format("{}|B={}", plan, options.block_tokens);
  cache->default_salt_ = options.cache_salt;
  cache->layout_fingerprint_ = cache->block_layout_fingerprint();
  // Reserve what decode steps will need, so that a decode step allocates
  // nothing: tokens and block tables of a full context, and the staged rows
  // (trim_staging: a residual window plus kStagedWindowChainEnds + 1 blocks;
  // prefill chunks may grow them once).
  const auto max_blocks = static_cast<size_t>(ceil_div(options.n_ctx, options.block_tokens));
  const size_t staged_floats =
      static_cast<size_t>(cache->staging_start_residual() +
                          (kStagedWindowChainEnds + 1) * options.block_tokens) *
      static_cast<size_t>(shape.n_kv_heads) * static_cast<size_t>(shape.head_dim);
  cache->block_ids_.reserve(max_blocks);
  cache->sequences_.resize(static_cast<size_t>(options.n_seq));
  const auto layer_heads =
      static_cast<size_t>(shape.n_layers) * static_cast<size_t>(shape.n_kv_heads);
  // Selection with reuse keeps up to this many chosen blocks per head.
  size_t reuse_blocks = 0;
  if (cache->selection_) {
    const SelectionBudget& b = cache->selection_->budget();
    cache->max_blocks_ = static_cast<int32_t>(max_blocks);
    cache->max_read_ = max_blocks_read(b, options.block_tokens, cache->max_blocks_);
    const auto heads = static_cast<size_t>(shape.n_kv_heads);
    cache->bounds_rows_.resize(static_cast<size_t>(options.block_tokens + 2) *
                               static_cast<size_t>(shape.head_dim));
    cache->select_scores_.resize(heads * max_blocks);
    cache->select_order_.resize(heads * max_blocks);
    cache->select_lists_.resize(layer_heads * static_cast<size_t>(cache->max_read_));
    cache->select_counts_.assign(layer_heads, 0);
    for (size_t i = 0; i < layer_heads; ++i) {
      cache->select_ptrs_.push_back(cache->select_lists_.data() +
                                    i * static_cast<size_t>(cache->max_read_));
    }
    if (b.reuse > 0) {
      reuse_blocks =
          std::min<size_t>(static_cast<size_t>(b.chosen_blocks(options.block_tokens)), max_blocks);
    }
  }
  for (Sequence& s : cache->sequences_) {
    s.tokens.reserve(static_cast<size_t>(options.n_ctx));
    s.blocks.reserve(max_blocks);
    s.cache_namespace =
        make_cache_namespace(options.model_fingerprint, cache->plan_key_, options.cache_salt);
    s.staged_keys.resize(static_cast<size_t>(shape.n_layers));
    s.staged_values.resize(static_cast<size_t>(shape.n_layers));
    for (size_t l = 0; l < cache->layers_.size(); ++l) {
      if (cache->layers_[l].key_staged) s.staged_keys[l].reserve(staged_floats);
      if (cache->layers_[l].value_staged) s.staged_values[l].reserve(staged_floats);
    }
    if (reuse_blocks > 0) {
      s.chosen_blocks.assign(layer_heads * reuse_blocks, 0);
      s.chosen_queries.assign(layer_heads * static_cast<size_t>(shape.n_heads / shape.n_kv_heads) *
                                  static_cast<size_t>(shape.head_dim),
                              0.0f);
      s.chosen_age.assign(layer_heads, -1);
    }
    const auto heads = static_cast<size_t>(shape.n_layers) * static_cast<size_t>(shape.n_kv_heads);
    s.retained.resize(heads);
    s.demoted.resize(heads);
    s.attention.resize(heads);
    s.captured_queries.resize(static_cast<size_t>(shape.n_layers));
    s.presses = cache->default_presses_;
    // Decode steps that capture attention grow these by a row: reserved
    // here so that a decode step allocates nothing (set_press reserves them
    // for a sequence's own presses).
    if (cache->press_plan_name_ != "none") {
      for (std::vector<float>& rows : s.attention) rows.reserve(static_cast<size_t>(options.n_ctx));
    }
  }
  const auto spans = static_cast<size_t>(kPagedMaxPageSpans);
  const auto kv_heads = static_cast<size_t>(shape.n_kv_heads);
  cache->page_tables_.resize(spans * 2 * kv_heads);
  cache->page_rows_.resize(spans * kv_heads);
  cache->page_bias_.resize(spans * kv_heads);
  return cache;
}

PagedKvCache::~PagedKvCache() {
  // Give every block back so the pool's own checks hold at destruction.
  for (Sequence& s : sequences_) {
    for (BlockId b : s.blocks) {
      if (b != kInvalidBlock) pool_->release(b);
    }
    s.blocks.clear();
    release_retained(s);
  }
  if (index_) index_->clear();
}

PagedKvCache::Sequence& PagedKvCache::sequence(SeqId seq) {
  KVF_CHECK(seq.value >= 0 && seq.value < static_cast<int32_t>(sequences_.size()));
  return sequences_[static_cast<size_t>(seq.value)];
}

const PagedKvCache::Sequence& PagedKvCache::sequence(SeqId seq) const {
  KVF_CHECK(seq.value >= 0 && seq.value < static_cast<int32_t>(sequences_.size()));
  return sequences_[static_cast<size_t>(seq.value)];
}

const KvCodec& PagedKvCache::key_codec(LayerId layer) const {
  return *layers_.at(static_cast<size_t>(layer.value)).key;
}

const KvCodec& PagedKvCache::value_codec(LayerId layer) const {
  return *layers_.at(static_cast<size_t>(layer.value)).value;
}

int32_t PagedKvCache::segment(LayerId layer, bool value_side, int32_t kv_head) const {
  return (layer.value * 2 + (value_side ? 1 : 0)) * shape_.n_kv_heads + kv_head;
}

uint8_t* PagedKvCache::tile(BlockId block, LayerId layer, bool value_side, int32_t kv_head) {
  return pool_->segment_data(block, segment(layer, value_side, kv_head));
}

// The first position any query at or after `next_query_pos` may read from the
// staged rows: the start of the block not yet full, or of the oldest block
// still inside some side's residual window.
int32_t PagedKvCache::staging_start_residual() const {
  int32_t residual = 0;
  for (const LayerCodecs& c : layers_) {
    if (c.key_staged) residual = std::max(residual, c.key->residual_tokens());
    if (c.value_staged) residual = std::max(residual, c.value->residual_tokens());
  }
  return residual;
}

int32_t PagedKvCache::staging_start_for(int32_t n_held, int32_t next_query_pos) const {
  const int32_t residual = staging_start_residual();
  const int32_t open_block_start = n_held / block_tokens_ * block_tokens_;
  const int32_t first_in_window = std::max(0, next_query_pos + 1 - residual);
  return std::min(open_block_start, first_in_window / block_tokens_ * block_tokens_);
}

void PagedKvCache::trim_staging(Sequence& s, int32_t next_query_pos) {
  if (!needs_staging_) {
    s.staged_begin = static_cast<int32_t>(s.tokens.size()) / block_tokens_ * block_tokens_;
    return;
  }
  // With windows kept for prefix hits, rows are kept for a query at the start
  // of the block kStagedWindowChainEnds - 1 blocks before the query's, not
  // only for the query itself: hits ending at those block boundaries read
  // them (keep_staged_window).
  const int32_t oldest_query =
      windows_ ? std::max(0, (next_query_pos / block_tokens_ - (kStagedWindowChainEnds - 1)) *
                                 block_tokens_)
               : next_query_pos;
  const int32_t start = staging_start_for(static_cast<int32_t>(s.tokens.size()), oldest_query);
  if (start <= s.staged_begin) return;
  const size_t drop = static_cast<size_t>(start - s.staged_begin) *
                      static_cast<size_t>(shape_.n_kv_heads) * static_cast<size_t>(shape_.head_dim);
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (auto* rows : {&s.staged_keys[l], &s.staged_values[l]}) {
      if (rows->empty()) continue;
      rows->erase(rows->begin(), rows->begin() + static_cast<std::ptrdiff_t>(drop));
    }
  }
  s.staged_begin = start;
}

// Staged sides hold one f32 row per position in [staged_begin, held).
void PagedKvCache::size_staged_rows(Sequence& s) const {
  const size_t floats = (s.tokens.size() - static_cast<size_t>(s.staged_begin)) *
                        static_cast<size_t>(shape_.n_kv_heads) *
                        static_cast<size_t>(shape_.head_dim);
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (layers_[l].key_staged) s.staged_keys[l].resize(floats);
    if (layers_[l].value_staged) s.staged_values[l].resize(floats);
  }
}

Status PagedKvCache::make_room(int32_t n_blocks) {
  if (pool_->n_free() < n_blocks && index_) index_->evict(n_blocks - pool_->n_free());
  if (pool_->n_free() < n_blocks) {
    return resource_exhausted(fmt::format(
        "the KV cache memory is full: {} more blocks of {} tokens are needed, {} of {} are free "
        "(raise --kv-mem or use a smaller codec)",
        n_blocks, block_tokens_, pool_->n_free(), pool_->n_blocks()));
  }
  return Status();
}

// A block that will be written must belong to this sequence alone.
Status PagedKvCache::ensure_writable_tail(Sequence& s) {
  const auto held = static_cast<int32_t>(s.tokens.size());
  if (held % block_tokens_ == 0 || s.blocks.empty()) return Status();
  BlockId& tail = s.blocks.back();
  if (pool_->ref_count(tail) == 1) return Status();
  KVF_RETURN_IF_ERROR(make_room(1));
  const BlockId copy = *pool_->allocate();
  for (int32_t segment = 0; segment < pool_->n_segments(); ++segment) {
    std::memcpy(pool_->segment_data(copy, segment), pool_->segment_data(tail, segment),
                pool_->segment_bytes(segment));
  }
  pool_->release(tail);
  tail = copy;
  return Status();
}

Status PagedKvCache::check_sequence(SeqId seq) const {
  if (seq.value < 0 || seq.value >= static_cast<int32_t>(sequences_.size())) {
    return invalid_argument(fmt::format("sequence {} does not exist (cache has {} slots)",
                                        seq.value, sequences_.size()));
  }
  return Status();
}

Status PagedKvCache::begin_append(SeqId seq, int32_t pos0, std::span<const int32_t> tokens) {
  KVF_RETURN_IF_ERROR(check_sequence(seq));
  Sequence& s = sequence(seq);
  KVF_CHECK(pos0 == static_cast<int32_t>(s.tokens.size()));
  const auto n = static_cast<int64_t>(tokens.size());
  if (pos0 + n > n_ctx_) {
    return out_of_range(
        fmt::format("the context is full: {} tokens requested, the KV cache holds {} per sequence "
                    "(raise -c/--ctx-size)",
                    pos0 + n, n_ctx_));
  }
  const int64_t new_blocks =
      ceil_div(pos0 + n, block_tokens_) - static_cast<int64_t>(s.blocks.size());
  const bool tail_shared =
      pos0 % block_tokens_ != 0 && !s.blocks.empty() && pool_->ref_count(s.blocks.back()) > 1;
  KVF_RETURN_IF_ERROR(make_room(static_cast<int32_t>(new_blocks) + (tail_shared ? 1 : 0)));
  KVF_RETURN_IF_ERROR(ensure_writable_tail(s));
  for (int64_t i = 0; i < new_blocks; ++i) s.blocks.push_back(*pool_->allocate());

  trim_staging(s, pos0);
  s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
  size_staged_rows(s);
  size_attention(s);
  return Status();
}

void PagedKvCache::store(SeqId seq, LayerId layer, int32_t pos0, int32_t n_tokens, const float* k,
                         const float* v) {
  Sequence& s = sequence(seq);
  KVF_CHECK(pos0 >= s.staged_begin && pos0 + n_tokens <= static_cast<int32_t>(s.tokens.size()));
  const LayerCodecs& c = layers_[static_cast<size_t>(layer.value)];
  const int32_t heads = shape_.n_kv_heads;
  const int32_t d = shape_.head_dim;
  const int64_t row_stride = static_cast<int64_t>(heads) * d;
  const int32_t bt = block_tokens_;

  for (int side = 0; side < 2; ++side) {
    const bool value_side = side == 1;
    const KvCodec& codec = value_side ? *c.value : *c.key;
    const float* src = value_side ? v : k;
    const bool staged = value_side ? c.value_staged : c.key_staged;
    if (staged) {
      // Keep the rows in f32, then encode every block this call completed.
      std::vector<float>& rows = value_side ? s.staged_values[static_cast<size_t>(layer.value)]
                                            : s.staged_keys[static_cast<size_t>(layer.value)];
      std::memcpy(rows.data() + (pos0 - s.staged_begin) * row_stride, src,
                  static_cast<size_t>(n_tokens) * static_cast<size_t>(row_stride) * sizeof(float));
      for (int32_t j = pos0 / bt; (j + 1) * bt <= pos0 + n_tokens; ++j) {
        const BlockId block = s.blocks[static_cast<size_t>(j)];
        const float* block_rows = rows.data() + (j * bt - s.staged_begin) * row_stride;
        for (int32_t h = 0; h < heads; ++h) {
          codec.encode(block_rows + static_cast<int64_t>(h) * d, row_stride, 0, bt,
                       tile(block, layer, value_side, h));
        }
      }
      continue;
    }
    // Token-granular codec: encode rows straight into their blocks.
    for (int32_t p = pos0; p < pos0 + n_tokens;) {
      const int32_t j = p / bt;
      const int32_t first = p % bt;
      const int32_t count = std::min(bt - first, pos0 + n_tokens - p);
      const BlockId block = s.blocks[static_cast<size_t>(j)];
      for (int32_t h = 0; h < heads; ++h) {
        codec.encode(src + (p - pos0) * row_stride + static_cast<int64_t>(h) * d, row_stride, first,
                     count, tile(block, layer, value_side, h));
      }
      p += count;
    }
  }
  if (bounds_bytes_ > 0 && n_tokens > 0) {
    for (int32_t j = pos0 / bt; j <= (pos0 + n_tokens - 1) / bt; ++j) {
      update_key_bounds(s, layer, j);
    }
  }
}

PagedSide PagedKvCache::paged_side(const Sequence& s, LayerId layer, bool value_side) const {
  const auto l = static_cast<size_t>(layer.value);
  const LayerCodecs& c = layers_[l];
  const KvCodec& codec = value_side ? *c.value : *c.key;
  PagedSide side;
  side.codec = &codec;
  side.head_arenas = segment_arenas_.data() + segment(layer, value_side, 0);
  side.tile_bytes = value_side ? c.value_tile_bytes : c.key_tile_bytes;
  side.staged = value_side ? c.value_staged : c.key_staged;
  side.residual = codec.residual_tokens();
  side.staged_rows = (value_side ? s.staged_values[l] : s.staged_keys[l]).data();
  return side;
}

void PagedKvCache::attend(SeqId seq, LayerId layer, int32_t pos0, int32_t n_tokens, const float* q,
                          float scale, float* out, ThreadPool& pool) {
  Sequence& s = sequence(seq);
  KVF_CHECK(pos0 + n_tokens <= static_cast<int32_t>(s.tokens.size()));
  KVF_CHECK(pos0 >= s.compressed_end);
  // The vector keeps its capacity across calls.
  block_ids_.resize(s.blocks.size());
  for (size_t j = 0; j < s.blocks.size(); ++j) block_ids_[j] = s.blocks[j].value;

  PagedAttentionArgs a;
  a.q = q;
  a.out = out;
  a.n_tokens = n_tokens;
  a.first_pos = pos0;
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

  // Retained and demoted rows: one span each, when the sequence was pressed.
  std::array<PagedPages, kPagedMaxPageSpans> spans;
  int32_t n_spans = 0;
  int32_t page_rows_total = 0;  // the largest over heads, for the capture
  if (s.compressed_end > 0) {
    const auto heads = static_cast<size_t>(shape_.n_kv_heads);
    const LayerCodecs& c = layers_[static_cast<size_t>(layer.value)];
    int32_t rows_before[kPagedMaxPageSpans] = {};
    for (int32_t kind = 0; kind < kPagedMaxPageSpans; ++kind) {
      const std::vector<RetainedRows>& lists = kind == 0 ? s.retained : s.demoted;
      const DemotionCodecs* low = demotion_of(s, static_cast<size_t>(layer.value));
      const KvCodec* key_codec = kind == 0 ? c.key.get() : (low ? low->key.get() : nullptr);
      const KvCodec* value_codec = kind == 0 ? c.value.get() : (low ? low->value.get() : nullptr);
      if (key_codec == nullptr) continue;
      const auto span = static_cast<size_t>(n_spans);
      const uint8_t* const** key_tables = page_tables_.data() + (span * 2) * heads;
      const uint8_t* const** value_tables = key_tables + heads;
      int32_t* rows = page_rows_.data() + span * heads;
      const float** bias = page_bias_.data() + span * heads;
      bool any_rows = false;
      bool any_bias = false;
      for (size_t h = 0; h < heads; ++h) {
        const RetainedRows& r = lists[static_cast<size_t>(layer.value) * heads + h];
        key_tables[h] = r.key_tiles.data();
        value_tables[h] = r.value_tiles.data();
        rows[h] = r.size();
        bias[h] = r.bias.empty() ? nullptr : r.bias.data();
        any_rows = any_rows || r.size() > 0;
        any_bias = any_bias || !r.bias.empty();
        rows_before[kind] = std::max(rows_before[kind], r.size());
      }
      if (!any_rows) continue;
      PagedPages& pages = spans[span];
      pages.keys =
          PagedSide{key_codec, nullptr, key_tables, key_codec->tile_bytes(), false, 0, nullptr};
      pages.values = PagedSide{value_codec, nullptr, value_tables, value_codec->tile_bytes(),
                               false,       0,       nullptr};
      pages.head_rows = rows;
      pages.head_bias = any_bias ? bias : nullptr;
      page_rows_total += rows_before[kind];
      ++n_spans;
    }
  }
  a.pages = std::span<const PagedPages>(spans.data(), static_cast<size_t>(n_spans));

  // Attention handed back for the press (kv-compression.md).
  ScoreCapture capture;
  const bool capturing = !s.attention.empty() && !s.attention[0].empty() && pos0 < s.capture_end &&
                         pos0 + n_tokens > s.capture_first;
  int32_t n_rows = 0;
  if (capturing) {
    n_rows = page_rows_total + (pos0 + n_tokens - s.compressed_end);
    const auto threads = static_cast<size_t>(pool.n_threads());
    if (capture_sums_.size() != threads) {
      // Sized once for the longest context; a decode step then allocates nothing.
      capture_sums_.assign(threads, std::vector<float>(static_cast<size_t>(shape_.n_kv_heads) *
                                                       static_cast<size_t>(n_ctx_)));
      capture_rows_.assign(threads, std::vector<float>(static_cast<size_t>(kPagedMaxGroup) *
                                                       static_cast<size_t>(n_ctx_)));
      capture_sum_ptrs_.clear();
      capture_row_ptrs_.clear();
      for (size_t t = 0; t < threads; ++t) {
        capture_sum_ptrs_.push_back(capture_sums_[t].data());
        capture_row_ptrs_.push_back(capture_rows_[t].data());
      }
    }
    for (std::vector<float>& sums : capture_sums_) {
      for (int32_t h = 0; h < shape_.n_kv_heads; ++h) {
        std::fill_n(sums.data() + static_cast<size_t>(h) * static_cast<size_t>(n_ctx_), n_rows,
                    0.0f);
      }
    }
    capture.first_pos = s.capture_first;
    capture.end_pos = s.capture_end;
    capture.max_rows = n_ctx_;
    capture.thread_sums = capture_sum_ptrs_.data();
    capture.row_scratch = capture_row_ptrs_.data();
    a.capture = &capture;
  }
  // Selection: decode steps only; a step whose attention is captured reads
  // every row (the capture numbers rows in span order).
  if (selection_) {
    if (n_tokens != 1 || capturing || !select_blocks(s, layer, pos0, q, pool, a)) {
      std::fill_n(
          select_counts_.begin() + static_cast<std::ptrdiff_t>(layer.value) * shape_.n_kv_heads,
          shape_.n_kv_heads, 0);
    }
  }
  paged_attention(a, pool);
  if (capturing) add_captured(s, layer, pos0, n_tokens, q, n_rows);
}

int32_t PagedKvCache::n_tokens(SeqId seq) const {
  return static_cast<int32_t>(sequence(seq).tokens.size());
}

std::span<const int32_t> PagedKvCache::tokens(SeqId seq) const {
  return sequence(seq).tokens;
}

Status PagedKvCache::truncate(SeqId seq, int32_t n_tokens) {
  Sequence& s = sequence(seq);
  KVF_CHECK(n_tokens >= 0);
  const auto held = static_cast<int32_t>(s.tokens.size());
  if (n_tokens >= held) return Status();
  forget_selection(s);
  if (n_tokens > 0 && n_tokens < s.compressed_end) {
    return unsupported(fmt::format(
        "cannot roll back to position {}: positions before {} were pressed (roll back to 0 and "
        "recompute)",
        n_tokens, s.compressed_end));
  }
  if (n_tokens > 0 && needs_staging_ && staging_start_for(n_tokens, n_tokens) < s.staged_begin) {
    return unsupported(fmt::format(
        "cannot roll back to position {}: the codec's full-precision rows before position {} "
        "are gone (roll back to 0 and recompute)",
        n_tokens, s.staged_begin));
  }
  const auto keep_blocks = static_cast<size_t>(ceil_div(n_tokens, block_tokens_));
  for (size_t j = keep_blocks; j < s.blocks.size(); ++j) {
    if (s.blocks[j] != kInvalidBlock) pool_->release(s.blocks[j]);
  }
  s.blocks.resize(keep_blocks);
  s.tokens.resize(static_cast<size_t>(n_tokens));
  if (n_tokens <= s.approximate_from) s.approximate_from = INT32_MAX;
  if (n_tokens == 0) {
    release_retained(s);
    for (std::vector<float>& rows : s.attention) rows.clear();
    s.capture_first = s.capture_end = 0;
  }
  size_attention(s);
  if (n_tokens == 0 || !needs_staging_) s.staged_begin = n_tokens / block_tokens_ * block_tokens_;
  size_staged_rows(s);
  return Status();
}

int32_t PagedKvCache::reuse_prefix(SeqId seq, std::span<const int32_t> prompt) {
  Sequence& s = sequence(seq);
  if (!index_ || !s.tokens.empty() || prompt.size() < 2) return 0;
  const auto max_blocks = static_cast<int32_t>((prompt.size() - 1) / block_tokens_);
  // Under a residual window a hit must also find the f32 rows its first
  // query reads.
  std::shared_ptr<const StagedWindow> window;
  PrefixIndex::HitFilter has_rows;
  if (windows_) {
    has_rows = [&](int32_t n_blocks, const BlockHash& chain_end) {
      const int32_t end = n_blocks * block_tokens_;
      const int32_t start = hit_staging_start(end);
      if (start == end) return true;
      std::shared_ptr<const StagedWindow> found = windows_->find(chain_end);
      if (found == nullptr || !found->holds(prompt, start, end)) return false;
      window = std::move(found);
      return true;
    };
  }
  const std::vector<BlockId> hit = index_->match(s.cache_namespace, prompt, max_blocks, has_rows);
  const auto n = static_cast<int32_t>(hit.size()) * block_tokens_;
  s.blocks = hit;
  s.tokens.assign(prompt.begin(), prompt.begin() + n);
  s.staged_begin = n;
  if (n > 0 && hit_staging_start(n) < n) load_staged_window(s, *window);
  return n;
}

// A sequence just matched n tokens: its staged rows start where the first
// query after the hit reads f32 rows, copied from the window.
void PagedKvCache::load_staged_window(Sequence& s, const StagedWindow& window) {
  s.staged_begin = hit_staging_start(static_cast<int32_t>(s.tokens.size()));
  size_staged_rows(s);
  const size_t skip = static_cast<size_t>(s.staged_begin - window.begin) *
                      static_cast<size_t>(shape_.n_kv_heads) * static_cast<size_t>(shape_.head_dim);
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (const bool value_side : {false, true}) {
      std::vector<float>& rows = value_side ? s.staged_values[l] : s.staged_keys[l];
      if (rows.empty()) continue;  // a side without staging
      const std::vector<float>& kept = value_side ? window.values[l] : window.keys[l];
      KVF_CHECK(kept.size() >= skip + rows.size());
      std::copy_n(kept.begin() + static_cast<std::ptrdiff_t>(skip), rows.size(), rows.begin());
    }
  }
}

// Keeps, for the next prompt that continues this sequence, the staged rows
// that hits ending at its last kStagedWindowChainEnds full blocks read.
// chain_hashes[j]: the chain hash of the sequence's block j (PrefixIndex::insert).
void PagedKvCache::keep_staged_window(const Sequence& s, std::span<const BlockHash> chain_hashes) {
  const int32_t bt = block_tokens_;
  const int32_t last = static_cast<int32_t>(chain_hashes.size()) * bt;
  if (last == 0) return;
  const int32_t oldest_end = std::max(bt, last - (kStagedWindowChainEnds - 1) * bt);
  const int32_t first = std::max(s.staged_begin, hit_staging_start(oldest_end));
  std::vector<BlockHash> chain_ends;
  for (int32_t end = oldest_end; end <= last; end += bt) {
    if (hit_staging_start(end) < first) continue;
    const BlockHash& chain_end = chain_hashes[static_cast<size_t>(end / bt - 1)];
    chain_ends.push_back(chain_end);
    if (window_sink_) {
      window_sink_(RecordEvent::kCached, TierKey{chain_end, TierRecordKind::kStagedWindow},
                   encode_window(s, end, chain_end));
    }
  }
  if (chain_ends.empty()) return;

  auto window = std::make_shared<StagedWindow>();
  window->begin = first;
  window->tokens.assign(s.tokens.begin() + first, s.tokens.begin() + last);
  const size_t row = static_cast<size_t>(shape_.n_kv_heads) * static_cast<size_t>(shape_.head_dim);
  const auto skip = static_cast<std::ptrdiff_t>(static_cast<size_t>(first - s.staged_begin) * row);
  const auto count = static_cast<std::ptrdiff_t>(static_cast<size_t>(last - first) * row);
  window->keys.resize(layers_.size());
  window->values.resize(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (const bool value_side : {false, true}) {
      const std::vector<float>& rows = value_side ? s.staged_values[l] : s.staged_keys[l];
      if (rows.empty()) continue;
      (value_side ? window->values[l] : window->keys[l])
          .assign(rows.begin() + skip, rows.begin() + skip + count);
    }
  }
  windows_->insert(std::move(window), chain_ends);
}

void PagedKvCache::offer_full_blocks(const Sequence& s, int32_t n_blocks) {
  const auto n = static_cast<size_t>(n_blocks);
  const auto bt = static_cast<size_t>(block_tokens_);
  const std::span<const BlockId> blocks = std::span<const BlockId>(s.blocks).first(n);
  std::vector<BlockHash> chain_hashes;
  std::vector<size_t> recorded;
  index_->insert(s.cache_namespace, std::span<const int32_t>(s.tokens).first(n * bt), blocks,
                 (windows_ || record_sink_) ? &chain_hashes : nullptr, s.next_use_steps,
                 record_sink_ ? &recorded : nullptr);
  if (windows_) keep_staged_window(s, chain_hashes);
  for (const size_t j : recorded) {
    record_sink_(
        RecordEvent::kCached, TierKey{chain_hashes[j], TierRecordKind::kBlock},
        encode_block(blocks[j], chain_hashes[j], j > 0 ? chain_hashes[j - 1] : kRootChainHash,
                     s.cache_namespace, static_cast<int32_t>(j),
                     std::span<const int32_t>(s.tokens).subspan(j * bt, bt)));
  }
}

void PagedKvCache::release(SeqId seq) {
  Sequence& s = sequence(seq);
  // Blocks with reused, not recomputed KV (relay) are never offered.
  const int32_t full_blocks =
      std::min(static_cast<int32_t>(s.tokens.size()), s.approximate_from) / block_tokens_;
  // A pressed sequence offered its full prompt blocks when it was pressed;
  // what it holds now is not a complete chain.
  if (index_ && full_blocks > 0 && s.compressed_end == 0) offer_full_blocks(s, full_blocks);
  KVF_CHECK(truncate(seq, 0).ok());
  s.presses = default_presses_;
  s.next_use_steps = -1;
  // The slot may next serve another tenant: back to the cache-wide salt.
  s.cache_namespace = make_cache_namespace(model_fingerprint_, plan_key_, default_salt_);
}

Status PagedKvCache::set_salt(SeqId seq, std::string_view salt) {
  KVF_RETURN_IF_ERROR(check_sequence(seq));
  Sequence& s = sequence(seq);
  if (!s.tokens.empty()) return invalid_argument("set_salt: the sequence is not empty");
  s.cache_namespace = make_cache_namespace(model_fingerprint_, plan_key_, salt);
  return Status();
}

Status PagedKvCache::fork(SeqId src, SeqId dst) {
  if (src == dst) return invalid_argument("fork: source and destination are the same sequence");
  const Sequence& from = sequence(src);
  Sequence& to = sequence(dst);
  if (!to.tokens.empty()) return invalid_argument("fork: the destination sequence is not empty");
  to = from;
  for (BlockId b : to.blocks) {
    if (b != kInvalidBlock) pool_->add_ref(b);
  }
  // Pages are immutable: the fork shares them.
  for (const std::vector<RetainedRows>* lists : {&to.retained, &to.demoted}) {
    for (const RetainedRows& r : *lists) {
      for (PageRef page : r.key_pages) pages_->add_ref(page);
      for (PageRef page : r.value_pages) pages_->add_ref(page);
    }
  }
  return Status();
}

size_t PagedKvCache::bytes_per_token() const {
  double bytes = 0;
  for (const LayerCodecs& c : layers_) {
    bytes += shape_.n_kv_heads * (c.key->bytes_per_row() + c.value->bytes_per_row());
  }
  // Selection's key bounds: per block, layer and KV head.
  bytes += static_cast<double>(bounds_bytes_) * shape_.n_layers * shape_.n_kv_heads / block_tokens_;
  return static_cast<size_t>(bytes + 0.5);
}

size_t PagedKvCache::bytes_used() const {
  size_t bytes =
      static_cast<size_t>(pool_->n_blocks() - pool_->n_free()) * pool_->bytes_per_block();
  for (const Sequence& s : sequences_) {
    for (size_t l = 0; l < layers_.size(); ++l) {
      bytes += (s.staged_keys[l].size() + s.staged_values[l].size()) * sizeof(float);
    }
  }
  return bytes + (windows_ ? windows_->bytes() : 0);
}

int64_t PagedKvCache::free_capacity_tokens() const {
  const int64_t blocks = pool_->n_free() + (index_ ? index_->n_evictable() : 0);
  return blocks * block_tokens_;
}

CacheStats PagedKvCache::cache_stats() const {
  CacheStats c;
  c.blocks_total = pool_->n_blocks();
  c.blocks_free = pool_->n_free();
  c.blocks_cached = pool_->n_cached();
  c.bytes_capacity = static_cast<int64_t>(pool_->capacity_bytes());
  c.bytes_used = static_cast<int64_t>(bytes_used());
  const PrefixCacheStats p = prefix_stats();
  c.prefix_lookups = p.lookups;
  c.prefix_hits = p.hits;
  c.prefix_lookup_tokens = p.lookup_tokens;
  c.prefix_hit_tokens = p.hit_tokens;
  c.prefix_evicted_blocks = p.evicted_blocks;
  return c;
}

PrefixCacheStats PagedKvCache::prefix_stats() const {
  return index_ ? index_->stats() : PrefixCacheStats{};
}

std::string PagedKvCache::describe() const {
  std::string sharing = index_ ? "on" : "off";
  if (windows_) {
    sharing += fmt::format(" (up to {:.1f} MiB of f32 windows kept for exact hits)",
                           static_cast<double>(windows_->capacity_bytes()) / (1 << 20));
  }
  std::string selection;
  if (selection_) {
    selection = fmt::format(", selection {}", selection_->name());
    if (bounds_bytes_ > 0) {
      selection +=
          fmt::format(" ({} bytes of key bounds per block, layer and KV head)", bounds_bytes_);
    }
  }
  return fmt::format(
      "paged cache: {}, blocks of {} tokens, {} blocks ({:.1f} MiB), {} bytes/token, "
      "prefix sharing {}{}",
      plan_name_, block_tokens_, pool_->n_blocks(),
      static_cast<double>(pool_->capacity_bytes()) / (1 << 20), bytes_per_token(), sharing,
      selection);
}

void PagedKvCache::check_invariants() const {
  pool_->check_invariants();
  if (index_) index_->check_invariants();
  if (windows_) windows_->check_invariants();
  if (pages_) pages_->check_invariants();
  std::vector<int32_t> seq_refs(static_cast<size_t>(pool_->n_blocks()), 0);
  std::map<PageRef, int32_t> page_refs;
  const size_t row_floats =
      static_cast<size_t>(shape_.n_kv_heads) * static_cast<size_t>(shape_.head_dim);
  const auto heads = static_cast<size_t>(shape_.n_kv_heads);
  for (const Sequence& s : sequences_) {
    const auto held = static_cast<int64_t>(s.tokens.size());
    KVF_CHECK(static_cast<int64_t>(s.blocks.size()) == ceil_div(held, block_tokens_));
    KVF_CHECK(held <= n_ctx_);
    KVF_CHECK(s.staged_begin % block_tokens_ == 0 && s.staged_begin <= held);
    KVF_CHECK(s.compressed_end % block_tokens_ == 0 && s.compressed_end <= held);
    for (size_t j = 0; j < s.blocks.size(); ++j) {
      const BlockId b = s.blocks[j];
      // Exactly the blocks before the pressed boundary are gone.
      KVF_CHECK((b == kInvalidBlock) ==
                (static_cast<int64_t>(j) < s.compressed_end / block_tokens_));
      if (b == kInvalidBlock) continue;
      KVF_CHECK(b.value >= 0 && b.value < pool_->n_blocks());
      ++seq_refs[static_cast<size_t>(b.value)];
    }
    for (size_t l = 0; l < layers_.size(); ++l) {
      const size_t staged = static_cast<size_t>(held - s.staged_begin) * row_floats;
      KVF_CHECK(s.staged_keys[l].size() == (layers_[l].key_staged ? staged : 0));
      KVF_CHECK(s.staged_values[l].size() == (layers_[l].value_staged ? staged : 0));
    }
    KVF_CHECK(s.compressed_end == 0 || pages_ != nullptr);
    for (size_t i = 0; i < s.retained.size(); ++i) {
      for (const RetainedRows* r : {&s.retained[i], &s.demoted[i]}) {
        const int32_t n = r->size();
        KVF_CHECK(s.compressed_end > 0 || n == 0);
        const auto pages = static_cast<size_t>(ceil_div(n, block_tokens_));
        KVF_CHECK(r->key_pages.size() == pages && r->value_pages.size() == pages);
        KVF_CHECK(r->key_tiles.size() == pages && r->value_tiles.size() == pages);
        KVF_CHECK(r->counts.size() == r->positions.size());
        KVF_CHECK(r->bias.empty() || r->bias.size() == r->positions.size());
        for (int32_t k = 0; k < n; ++k) {
          const int32_t pos = r->positions[static_cast<size_t>(k)];
          KVF_CHECK(pos >= 0 && pos < s.compressed_end);
          KVF_CHECK(k == 0 || r->positions[static_cast<size_t>(k - 1)] < pos);
          KVF_CHECK(r->counts[static_cast<size_t>(k)] >= 1.0f);
        }
        for (size_t p = 0; p < pages; ++p) {
          KVF_CHECK(r->key_tiles[p] == pages_->data(r->key_pages[p]));
          KVF_CHECK(r->value_tiles[p] == pages_->data(r->value_pages[p]));
          ++page_refs[r->key_pages[p]];
          ++page_refs[r->value_pages[p]];
        }
      }
      if (!s.attention.empty() && !s.attention[i].empty()) {
        KVF_CHECK(static_cast<int64_t>(s.attention[i].size()) ==
                  s.retained[i].size() + s.demoted[i].size() + held - s.compressed_end);
      }
    }
    (void)heads;
  }
  if (selection_) {
    const auto layer_heads = static_cast<size_t>(shape_.n_layers) * heads;
    const int32_t reuse = selection_->budget().reuse;
    for (const Sequence& s : sequences_) {
      KVF_CHECK(s.chosen_age.size() == (reuse > 0 ? layer_heads : 0));
      for (int32_t age : s.chosen_age) KVF_CHECK(age >= -1 && age <= reuse);
    }
    for (size_t i = 0; i < layer_heads; ++i) {
      const int32_t n = select_counts_[i];
      KVF_CHECK(n >= 0 && n <= max_read_);
      KVF_CHECK(std::is_sorted(select_ptrs_[i], select_ptrs_[i] + n));
    }
  }
  if (pages_) {
    int64_t live = 0;
    for (const auto& [page, refs] : page_refs) {
      KVF_CHECK(pages_->ref_count(page) == refs);
      ++live;
    }
    KVF_CHECK(live == pages_->n_live_pages());
  }
  // Every reference is a sequence's, the prefix index's one per cached block,
  // or the page store's one per block it holds.
  for (int32_t b = 0; b < pool_->n_blocks(); ++b) {
    const int32_t cached = pool_->is_cached(BlockId{b}) ? 1 : 0;
    const int32_t paged = pages_ && pages_->holds_block(BlockId{b}) ? 1 : 0;
    KVF_CHECK(index_ || cached == 0);
    KVF_CHECK(cached + paged <= 1 || seq_refs[static_cast<size_t>(b)] == 0);
    KVF_CHECK(pool_->ref_count(BlockId{b}) == seq_refs[static_cast<size_t>(b)] + cached + paged);
  }
}

}  // namespace kvforge
