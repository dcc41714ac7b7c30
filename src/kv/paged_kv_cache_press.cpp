// PagedKvCache: retention — capturing the attention presses need and
// pressing a sequence's rows into pages (docs/kv-compression.md).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "kv/hadamard.h"
#include "kv/paged_kv_cache.h"
#include "kv/paged_kv_cache_state.h"

namespace kvforge {
namespace {

// Rows [0, n) of a tile, decoded and, for a rotated codec, rotated back: the
// rows as the model computed them (what encode() takes).
void decode_plain(const KvCodec& codec, const uint8_t* tile, int32_t n, float* out) {
  codec.decode(tile, n, out);
  if (!codec.rotated()) return;
  for (int32_t r = 0; r < n; ++r)
    hadamard_transform(out + static_cast<size_t>(r) * codec.head_dim(), codec.head_dim());
}

// One (layer, KV head)'s candidates and where they came from.
struct Candidate {
  int32_t position = 0;
  float count = 1;
  float attention = 0;
  bool from_demoted = false;
};

// One head's new lists before they are written: f32 rows, positions, counts.
struct NewRows {
  std::vector<int32_t> positions;
  std::vector<float> counts;
  std::vector<float> attention;
  std::vector<float> keys;    // [rows][head_dim]
  std::vector<float> values;  // [rows][head_dim]

  void add(int32_t position, float count, float attention_sum, const float* key, const float* value,
           int32_t d) {
    positions.push_back(position);
    counts.push_back(count);
    attention.push_back(attention_sum);
    keys.insert(keys.end(), key, key + d);
    values.insert(values.end(), value, value + d);
  }
  // Sorts the rows by position (each list is kept in position order).
  void sort_by_position(int32_t d) {
    std::vector<size_t> order(positions.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return positions[a] < positions[b]; });
    NewRows sorted;
    for (size_t i : order) {
      sorted.add(positions[i], counts[i], attention[i], keys.data() + i * static_cast<size_t>(d),
                 values.data() + i * static_cast<size_t>(d), d);
    }
    *this = std::move(sorted);
  }
};

}  // namespace

void PagedKvCache::release_retained_pages(Sequence& s) {
  for (std::vector<RetainedRows>* lists : {&s.retained, &s.demoted}) {
    for (RetainedRows& r : *lists) {
      for (PageRef page : r.key_pages) pages_->release(page);
      for (PageRef page : r.value_pages) pages_->release(page);
      r = RetainedRows();
    }
  }
}

void PagedKvCache::release_retained(Sequence& s) {
  if (pages_) release_retained_pages(s);
  s.compressed_end = 0;
}

// Captured attention covers every row the sequence holds now.
void PagedKvCache::size_attention(Sequence& s) const {
  if (s.attention.empty() || s.capture_end <= s.capture_first) return;
  const auto heads = static_cast<size_t>(shape_.n_kv_heads);
  const int32_t block_rows = static_cast<int32_t>(s.tokens.size()) - s.compressed_end;
  for (size_t i = 0; i < s.attention.size(); ++i) {
    const int32_t rows = (s.retained.empty() ? 0 : s.retained[i].size()) +
                         (s.demoted.empty() ? 0 : s.demoted[i].size()) + block_rows;
    s.attention[i].resize(static_cast<size_t>(rows), 0.0f);
  }
  (void)heads;
}

// Layers whose press wants the newest query's attention only (TOVA) start
// the next query from zero.
void PagedKvCache::forget_older_queries(Sequence& s) const {
  if (s.attention.empty()) return;
  const auto heads = static_cast<size_t>(shape_.n_kv_heads);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const KvPress* press = press_of(s, l);
    if (press == nullptr || !press->needs().newest_query_only) continue;
    for (size_t h = 0; h < heads; ++h) {
      std::vector<float>& rows = s.attention[l * heads + h];
      std::fill(rows.begin(), rows.end(), 0.0f);
    }
  }
}

void PagedKvCache::add_captured(Sequence& s, LayerId layer, int32_t pos0, int32_t n_tokens,
                                const float* q, int32_t n_rows) {
  const auto heads = static_cast<size_t>(shape_.n_kv_heads);
  for (size_t h = 0; h < heads; ++h) {
    std::vector<float>& rows = s.attention[static_cast<size_t>(layer.value) * heads + h];
    const auto n = std::min(static_cast<size_t>(n_rows), rows.size());
    for (const std::vector<float>& sums : capture_sums_) {
      const float* from = sums.data() + h * static_cast<size_t>(n_ctx_);
      for (size_t r = 0; r < n; ++r) rows[r] += from[r];
    }
  }
  const KvPress* press = press_of(s, static_cast<size_t>(layer.value));
  if (press == nullptr || !press->needs().queries) return;
  // The prompt's captured queries themselves (decode queries are not kept).
  const size_t row = static_cast<size_t>(shape_.n_heads) * static_cast<size_t>(shape_.head_dim);
  std::vector<float>& kept = s.captured_queries[static_cast<size_t>(layer.value)];
  for (int32_t t = 0; t < n_tokens; ++t) {
    const int32_t pos = pos0 + t;
    if (pos < s.capture_first || pos >= s.prompt_end) continue;
    kept.insert(kept.end(), q + static_cast<size_t>(t) * row, q + static_cast<size_t>(t + 1) * row);
  }
}

void PagedKvCache::begin_prompt(SeqId seq, int32_t prompt_end) {
  if (!check_sequence(seq).ok()) return;
  Sequence& s = sequence(seq);
  int32_t window = 0;
  bool decode = false;
  for (const auto& press : s.presses) {
    if (!press) continue;
    const PressNeeds needs = press->needs();
    if (needs.prompt_queries < 0) window = std::numeric_limits<int32_t>::max();
    window = std::max(window, needs.prompt_queries);
    decode = decode || needs.decode_queries;
  }
  for (std::vector<float>& rows : s.attention) rows.clear();
  for (std::vector<float>& queries : s.captured_queries) queries.clear();
  s.capture_first = 0;
  s.capture_end = 0;
  s.prompt_end = prompt_end;
  s.decode_steps = 0;
  if (window == 0) return;
  const int32_t held = static_cast<int32_t>(s.tokens.size());
  s.capture_first =
      window == std::numeric_limits<int32_t>::max() ? held : std::max(held, prompt_end - window);
  s.capture_end = decode ? std::numeric_limits<int32_t>::max() : prompt_end;
  size_attention(s);
}

Status PagedKvCache::end_prompt(SeqId seq) {
  KVF_RETURN_IF_ERROR(check_sequence(seq));
  Sequence& s = sequence(seq);
  if (!has_presses(s)) return Status();
  const Status pressed = run_press(s);
  // Only decode queries are captured from now on (if the presses want them).
  if (s.capture_end != std::numeric_limits<int32_t>::max()) {
    s.capture_first = s.capture_end = 0;
    for (std::vector<float>& rows : s.attention) rows.clear();
  } else {
    s.capture_first = static_cast<int32_t>(s.tokens.size());
    forget_older_queries(s);
  }
  return pressed;
}

Status PagedKvCache::end_decode_step(SeqId seq) {
  KVF_RETURN_IF_ERROR(check_sequence(seq));
  Sequence& s = sequence(seq);
  if (!has_presses(s)) return Status();
  ++s.decode_steps;
  bool due = false;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const KvPress* press = press_of(s, l);
    if (press == nullptr) continue;
    const PressBudget& b = press->budget();
    if (b.every > 0 && s.decode_steps % b.every == 0) due = true;
    if (b.max_rows > 0) {
      // Demoted rows (MiKV) do not count against the budget.
      const size_t i0 = l * static_cast<size_t>(shape_.n_kv_heads);
      for (int32_t h = 0; h < shape_.n_kv_heads && !due; ++h) {
        const int32_t demoted =
            s.demoted.empty() ? 0 : s.demoted[i0 + static_cast<size_t>(h)].size();
        due = rows_held(seq, LayerId{static_cast<int32_t>(l)}, h) - demoted > b.max_rows;
      }
    }
  }
  const Status pressed = due ? run_press(s) : Status();
  forget_older_queries(s);
  return pressed;
}

Status PagedKvCache::press(SeqId seq) {
  KVF_RETURN_IF_ERROR(check_sequence(seq));
  if (!has_presses(sequence(seq))) return Status();
  return run_press(sequence(seq));
}

const KvPress* PagedKvCache::press_of(const Sequence& s, size_t layer) const {
  return s.presses[layer].get();
}

bool PagedKvCache::has_presses(const Sequence& s) const {
  return std::any_of(s.presses.begin(), s.presses.end(),
                     [](const auto& p) { return p != nullptr; });
}

const PagedKvCache::DemotionCodecs* PagedKvCache::demotion_of(const Sequence& s,
                                                              size_t layer) const {
  const KvPress* press = press_of(s, layer);
  if (press == nullptr) return nullptr;
  const std::string name = press->demotion_codec();
  if (name.empty()) return nullptr;
  return demotion_codecs_.at(name).get();
}

Status PagedKvCache::add_demotion_codecs(const KvPress& press) {
  const std::string name = press.demotion_codec();
  if (name.empty() || demotion_codecs_.contains(name)) return Status();
  const KvCodecParams params{block_tokens_, shape_.head_dim};
  auto codecs = std::make_unique<DemotionCodecs>();
  KVF_ASSIGN_OR_RETURN(codecs->key, make_kv_codec(name, KvSide::kKey, params));
  KVF_ASSIGN_OR_RETURN(codecs->value, make_kv_codec(name, KvSide::kValue, params));
  if (!codecs->key->token_granular() || codecs->key->residual_tokens() > 0 ||
      codecs->value->residual_tokens() > 0) {
    return invalid_argument(fmt::format(
        "press '{}': the demotion codec '{}' must encode rows one by one, with no full-precision "
        "window",
        press.name(), name));
  }
  demotion_codecs_.emplace(name, std::move(codecs));
  return Status();
}

Status PagedKvCache::set_press(SeqId seq, std::string_view spec) {
  KVF_RETURN_IF_ERROR(check_sequence(seq));
  Sequence& s = sequence(seq);
  if (!s.tokens.empty()) return invalid_argument("set_press: the sequence is not empty");
  if (spec.empty()) {
    s.presses = default_presses_;
    return Status();
  }
  KVF_ASSIGN_OR_RETURN(auto plan, plan_kv_presses(spec, "", shape_.n_layers));
  for (const auto& press : plan) {
    if (selection_) KVF_RETURN_IF_ERROR(check_press_with_selection(press.get(), *selection_));
  }
  for (const auto& press : plan) {
    if (press) KVF_RETURN_IF_ERROR(add_demotion_codecs(*press));
  }
  s.presses = std::move(plan);
  for (std::vector<float>& rows : s.attention) rows.reserve(static_cast<size_t>(n_ctx_));
  return Status();
}

int32_t PagedKvCache::compressed_end(SeqId seq) const {
  return sequence(seq).compressed_end;
}

int32_t PagedKvCache::rows_held(SeqId seq, LayerId layer, int32_t kv_head) const {
  const Sequence& s = sequence(seq);
  int32_t rows = static_cast<int32_t>(s.tokens.size()) - s.compressed_end;
  if (!s.retained.empty()) {
    const size_t i = static_cast<size_t>(layer.value) * static_cast<size_t>(shape_.n_kv_heads) +
                     static_cast<size_t>(kv_head);
    rows += s.retained[i].size() + s.demoted[i].size();
  }
  return rows;
}

std::span<const int32_t> PagedKvCache::retained_positions(SeqId seq, LayerId layer,
                                                          int32_t kv_head) const {
  const Sequence& s = sequence(seq);
  if (s.retained.empty()) return {};
  return s
      .retained[static_cast<size_t>(layer.value) * static_cast<size_t>(shape_.n_kv_heads) +
                static_cast<size_t>(kv_head)]
      .positions;
}

size_t PagedKvCache::sequence_bytes(SeqId seq) const {
  const Sequence& s = sequence(seq);
  size_t bytes = 0;
  for (BlockId b : s.blocks) {
    if (b != kInvalidBlock) bytes += pool_->bytes_per_block();
  }
  for (size_t l = 0; l < layers_.size(); ++l) {
    bytes += (s.staged_keys[l].size() + s.staged_values[l].size()) * sizeof(float);
  }
  const auto heads = static_cast<size_t>(shape_.n_kv_heads);
  for (size_t i = 0; i < s.retained.size(); ++i) {
    const LayerCodecs& c = layers_[i / heads];
    bytes += s.retained[i].key_pages.size() * c.key_tile_bytes +
             s.retained[i].value_pages.size() * c.value_tile_bytes;
    if (const DemotionCodecs* low = demotion_of(s, i / heads)) {
      bytes += s.demoted[i].key_pages.size() * low->key->tile_bytes() +
               s.demoted[i].value_pages.size() * low->value->tile_bytes();
    }
  }
  return bytes;
}

void PagedKvCache::read_rows(SeqId seq, LayerId layer, int32_t kv_head,
                             std::vector<int32_t>& positions, std::vector<float>& keys,
                             std::vector<float>& values) const {
  const Sequence& s = sequence(seq);
  const LayerCodecs& c = layers_.at(static_cast<size_t>(layer.value));
  const int32_t bt = block_tokens_;
  const auto d = static_cast<size_t>(shape_.head_dim);
  positions.clear();
  keys.clear();
  values.clear();
  std::vector<float> rows(static_cast<size_t>(bt) * d);
  auto append = [&](const KvCodec& codec, const uint8_t* tile, int32_t n, std::vector<float>& to) {
    decode_plain(codec, tile, n, rows.data());
    to.insert(to.end(), rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(n * d));
  };
  if (!s.retained.empty()) {
    const size_t i = static_cast<size_t>(layer.value) * static_cast<size_t>(shape_.n_kv_heads) +
                     static_cast<size_t>(kv_head);
    for (int32_t kind = 0; kind < 2; ++kind) {
      const RetainedRows& r = kind == 0 ? s.retained[i] : s.demoted[i];
      const DemotionCodecs* low = demotion_of(s, static_cast<size_t>(layer.value));
      if (kind == 1 && low == nullptr) continue;
      const KvCodec* kc = kind == 0 ? c.key.get() : low->key.get();
      const KvCodec* vc = kind == 0 ? c.value.get() : low->value.get();
      for (size_t p = 0; p < r.key_tiles.size(); ++p) {
        const int32_t n = std::min(bt, r.size() - static_cast<int32_t>(p) * bt);
        append(*kc, r.key_tiles[p], n, keys);
        append(*vc, r.value_tiles[p], n, values);
      }
      positions.insert(positions.end(), r.positions.begin(), r.positions.end());
    }
  }
  const auto held = static_cast<int32_t>(s.tokens.size());
  const int32_t next_query = held;  // rows as the next query reads them
  for (int32_t j = s.compressed_end / bt; j * bt < held; ++j) {
    const int32_t n = std::min(bt, held - j * bt);
    const BlockId block = s.blocks[static_cast<size_t>(j)];
    for (const bool value_side : {false, true}) {
      std::vector<float>& to = value_side ? values : keys;
      const PagedSide side = paged_side(s, layer, value_side);
      if (reads_encoded(side, j, bt, next_query)) {
        append(value_side ? *c.value : *c.key,
               const_cast<PagedKvCache*>(this)->tile(block, layer, value_side, kv_head), n, to);
      } else {
        const std::vector<float>& staged = value_side
                                               ? s.staged_values[static_cast<size_t>(layer.value)]
                                               : s.staged_keys[static_cast<size_t>(layer.value)];
        const size_t stride = static_cast<size_t>(shape_.n_kv_heads) * d;
        for (int32_t r = 0; r < n; ++r) {
          const float* src = staged.data() +
                             static_cast<size_t>(j * bt + r - s.staged_begin) * stride +
                             static_cast<size_t>(kv_head) * d;
          to.insert(to.end(), src, src + d);
        }
      }
    }
    for (int32_t r = 0; r < n; ++r) positions.push_back(j * bt + r);
  }
}

Status PagedKvCache::make_room_for_pages() {
  if (index_ && index_->evict(1) > 0) return Status();
  return resource_exhausted(fmt::format(
      "the KV cache memory is full while pressing: no free block for retained rows ({} of {} "
      "blocks free; raise --kv-mem)",
      pool_->n_free(), pool_->n_blocks()));
}

namespace {

// Encodes n rows (head_dim floats each, in the codec's stored space: as its
// decode() returns them) into tiles of `codec`, appended to `tiles`. A codec
// that only encodes whole tiles gets the last row repeated (a grid over rows
// does not change when a row repeats).
void encode_tiles(const KvCodec& codec, const std::vector<float>& rows, int32_t n,
                  std::vector<std::vector<uint8_t>>& tiles) {
  const int32_t bt = codec.block_tokens();
  const auto d = static_cast<size_t>(codec.head_dim());
  std::vector<float> pad(static_cast<size_t>(bt) * d);
  for (int32_t first = 0; first < n; first += bt) {
    const int32_t count = std::min(bt, n - first);
    std::vector<uint8_t>& tile = tiles.emplace_back(codec.tile_bytes(), 0);
    const float* src = rows.data() + static_cast<size_t>(first) * d;
    if (codec.token_granular()) {
      codec.encode_stored(src, static_cast<int64_t>(d), 0, count, tile.data());
      continue;
    }
    std::copy_n(src, static_cast<size_t>(count) * d, pad.begin());
    for (int32_t r = count; r < bt; ++r) {
      std::copy_n(src + static_cast<size_t>(count - 1) * d, d,
                  pad.begin() + static_cast<std::ptrdiff_t>(r * static_cast<int32_t>(d)));
    }
    codec.encode_stored(pad.data(), static_cast<int64_t>(d), 0, bt, tile.data());
  }
}

// Rows of one codec's stored space in another's: a rotation by H where one
// stores H·x and the other x (H is its own inverse).
// (to_rotated false: the plain space the model computed rows in.)
void convert_space(const KvCodec& from, bool to_rotated, std::vector<float>& rows) {
  if (from.rotated() == to_rotated) return;
  const int32_t d = from.head_dim();
  for (size_t r = 0; r < rows.size() / static_cast<size_t>(d); ++r) {
    hadamard_transform(rows.data() + r * static_cast<size_t>(d), d);
  }
}

}  // namespace

// One layer of a press: per head, the candidates are the retained rows and
// the block part's rows in [compressed_end, boundary) (decoded); sinks stay,
// the press chooses among the others, and the new retained and demoted lists
// are encoded into host tiles.
void PagedKvCache::press_layer(const Sequence& s, LayerId layer, int32_t boundary,
                               std::vector<StagedRows>& retained,
                               std::vector<StagedRows>& demoted) const {
  const int32_t bt = block_tokens_;
  const int32_t d = shape_.head_dim;
  const auto ud = static_cast<size_t>(d);
  const int32_t heads = shape_.n_kv_heads;
  const auto uheads = static_cast<size_t>(heads);
  const auto held = static_cast<int32_t>(s.tokens.size());
  const LayerCodecs& c = layers_[static_cast<size_t>(layer.value)];
  const KvPress* press = press_of(s, static_cast<size_t>(layer.value));
  const DemotionCodecs* low_codecs = demotion_of(s, static_cast<size_t>(layer.value));
  const bool have_attention = !s.attention.empty() && !s.attention[0].empty();
  const int32_t sinks = press ? press->budget().sinks : 0;

  std::vector<std::vector<Candidate>> candidates(uheads);
  std::vector<std::vector<float>> keys(uheads), values(uheads);
  std::vector<float> tile_rows(static_cast<size_t>(bt) * ud);
  // Rows stay in the codecs' stored space (decode() as it is), so that kept
  // rows re-encode to their own codes.
  auto append_decoded = [&](const KvCodec& codec, const uint8_t* tile, int32_t n,
                            std::vector<float>& to) {
    codec.decode(tile, n, tile_rows.data());
    to.insert(to.end(), tile_rows.begin(), tile_rows.begin() + static_cast<std::ptrdiff_t>(n) * d);
  };
  for (size_t h = 0; h < uheads; ++h) {
    const size_t i = static_cast<size_t>(layer.value) * uheads + h;
    const RetainedRows& old = s.retained[i];
    for (size_t p = 0; p < old.key_tiles.size(); ++p) {
      const int32_t n = std::min(bt, old.size() - static_cast<int32_t>(p) * bt);
      append_decoded(*c.key, old.key_tiles[p], n, keys[h]);
      append_decoded(*c.value, old.value_tiles[p], n, values[h]);
    }
    for (int32_t r = 0; r < old.size(); ++r) {
      candidates[h].push_back(
          {old.positions[static_cast<size_t>(r)], old.counts[static_cast<size_t>(r)],
           have_attention ? s.attention[i][static_cast<size_t>(r)] : 0.0f, false});
    }
    const int32_t block_row0 = old.size() + s.demoted[i].size();
    for (int32_t j = s.compressed_end / bt; j < boundary / bt; ++j) {
      const BlockId block = s.blocks[static_cast<size_t>(j)];
      auto* self = const_cast<PagedKvCache*>(this);
      append_decoded(*c.key, self->tile(block, layer, false, static_cast<int32_t>(h)), bt, keys[h]);
      append_decoded(*c.value, self->tile(block, layer, true, static_cast<int32_t>(h)), bt,
                     values[h]);
      for (int32_t r = 0; r < bt; ++r) {
        const int32_t pos = j * bt + r;
        const float a =
            have_attention
                ? s.attention[i][static_cast<size_t>(block_row0 + pos - s.compressed_end)]
                : 0.0f;
        candidates[h].push_back({pos, 1.0f, a, false});
      }
    }
  }

  // The press chooses among the candidates after the sinks (a layer without
  // a press keeps them all).
  std::vector<int32_t> first_free(uheads);
  int64_t sink_rows = 0;
  for (size_t h = 0; h < uheads; ++h) {
    int32_t f = 0;
    while (f < static_cast<int32_t>(candidates[h].size()) &&
           candidates[h][static_cast<size_t>(f)].position < sinks) {
      ++f;
    }
    first_free[h] = f;
    sink_rows += f;
  }
  std::vector<HeadChoice> choices(uheads);
  if (press == nullptr) {
    for (size_t h = 0; h < uheads; ++h) {
      for (int32_t r = 0; r + first_free[h] < static_cast<int32_t>(candidates[h].size()); ++r) {
        choices[h].keep.push_back(r);
      }
    }
  } else {
    const PressNeeds needs = press->needs();
    std::vector<std::vector<int32_t>> positions(uheads);
    std::vector<std::vector<float>> attention(uheads), counts(uheads);
    std::vector<PressCandidates> inputs(uheads);
    std::vector<std::vector<float>> plain_keys(uheads), plain_values(uheads);
    for (size_t h = 0; h < uheads; ++h) {
      const auto f = static_cast<size_t>(first_free[h]);
      for (size_t r = f; r < candidates[h].size(); ++r) {
        positions[h].push_back(candidates[h][r].position);
        attention[h].push_back(candidates[h][r].attention);
        counts[h].push_back(candidates[h][r].count);
      }
      inputs[h].positions = positions[h];
      if (have_attention) inputs[h].attention = attention[h];
      inputs[h].counts = counts[h];
      // The press sees the rows as the model computed them (rotated back).
      if (needs.keys) {
        plain_keys[h].assign(keys[h].begin() + static_cast<std::ptrdiff_t>(f * ud), keys[h].end());
        convert_space(*c.key, false, plain_keys[h]);
        inputs[h].keys = plain_keys[h];
      }
      if (needs.values) {
        plain_values[h].assign(values[h].begin() + static_cast<std::ptrdiff_t>(f * ud),
                               values[h].end());
        convert_space(*c.value, false, plain_values[h]);
        inputs[h].values = plain_values[h];
      }
    }
    PressLayer input;
    input.layer = layer.value;
    input.n_layers = static_cast<int32_t>(layers_.size());
    input.head_dim = d;
    input.n_heads = shape_.n_heads;
    input.n_kv_heads = heads;
    input.n_positions = held;
    input.captured_first = s.capture_first;
    input.captured_end = std::min(s.capture_end, held);
    const int64_t protected_rows = (held - boundary) + sink_rows / heads;
    input.rows =
        static_cast<int32_t>(std::max<int64_t>(0, press->budget().rows_for(held) - protected_rows));
    input.heads = inputs;
    input.queries = s.captured_queries[static_cast<size_t>(layer.value)];
    press->choose(input, choices);
  }

  for (size_t h = 0; h < uheads; ++h) {
    const size_t i = static_cast<size_t>(layer.value) * uheads + h;
    const std::vector<Candidate>& cand = candidates[h];
    const int32_t f = first_free[h];
    const auto n_free = static_cast<int32_t>(cand.size()) - f;
    const HeadChoice& choice = choices[h];
    std::vector<bool> used(static_cast<size_t>(n_free), false);
    // A press names each candidate at most once (a programmer error otherwise).
    auto claim = [&](int32_t r) {
      KVF_CHECK(r >= 0 && r < n_free && !used[static_cast<size_t>(r)]);
      used[static_cast<size_t>(r)] = true;
    };
    const float* k = keys[h].data();
    const float* v = values[h].data();
    auto add = [&](NewRows& to, int32_t row) {
      const Candidate& x = cand[static_cast<size_t>(row)];
      to.add(x.position, x.count, x.attention, k + static_cast<size_t>(row) * ud,
             v + static_cast<size_t>(row) * ud, d);
    };
    NewRows kept;
    for (int32_t r = 0; r < f; ++r) add(kept, r);
    for (int32_t r : choice.keep) {
      claim(r);
      add(kept, f + r);
    }
    for (const std::vector<int32_t>& group : choice.merged) {
      KVF_CHECK(group.size() >= 2);
      std::vector<float> key(ud, 0.0f), value(ud, 0.0f);
      float count = 0;
      float attention_sum = 0;
      int32_t position = -1;
      for (int32_t r : group) {
        claim(r);
        const Candidate& x = cand[static_cast<size_t>(f + r)];
        for (size_t e = 0; e < ud; ++e) {
          key[e] += x.count * k[static_cast<size_t>(f + r) * ud + e];
          value[e] += x.count * v[static_cast<size_t>(f + r) * ud + e];
        }
        count += x.count;
        attention_sum += x.attention;
        position = std::max(position, x.position);
      }
      for (size_t e = 0; e < ud; ++e) {
        key[e] /= count;
        value[e] /= count;
      }
      kept.add(position, count, attention_sum, key.data(), value.data(), d);
    }
    kept.sort_by_position(d);

    // Demoted rows: the old ones (decoded from their low-bit codec) and the
    // new ones, in position order.
    NewRows low;
    const RetainedRows& old_low = s.demoted[i];
    if (old_low.size() > 0) {
      std::vector<float> dk, dv;
      for (size_t p = 0; p < old_low.key_tiles.size(); ++p) {
        const int32_t n = std::min(bt, old_low.size() - static_cast<int32_t>(p) * bt);
        append_decoded(*low_codecs->key, old_low.key_tiles[p], n, dk);
        append_decoded(*low_codecs->value, old_low.value_tiles[p], n, dv);
      }
      const int32_t row0 = s.retained[i].size();
      for (int32_t r = 0; r < old_low.size(); ++r) {
        const float a = have_attention ? s.attention[i][static_cast<size_t>(row0 + r)] : 0.0f;
        low.add(old_low.positions[static_cast<size_t>(r)], old_low.counts[static_cast<size_t>(r)],
                a, dk.data() + static_cast<size_t>(r) * ud, dv.data() + static_cast<size_t>(r) * ud,
                d);
      }
    }
    KVF_CHECK(choice.demote.empty() || low_codecs != nullptr);
    if (!choice.demote.empty()) {
      NewRows fresh;
      for (int32_t r : choice.demote) {
        claim(r);
        add(fresh, f + r);
      }
      convert_space(*c.key, low_codecs->key->rotated(), fresh.keys);
      convert_space(*c.value, low_codecs->value->rotated(), fresh.values);
      for (size_t r = 0; r < fresh.positions.size(); ++r) {
        low.add(fresh.positions[r], fresh.counts[r], fresh.attention[r], fresh.keys.data() + r * ud,
                fresh.values.data() + r * ud, d);
      }
    }
    low.sort_by_position(d);

    auto stage = [](const KvCodec& kc, const KvCodec& vc, NewRows& from, StagedRows& to) {
      const auto n = static_cast<int32_t>(from.positions.size());
      encode_tiles(kc, from.keys, n, to.key_tiles);
      encode_tiles(vc, from.values, n, to.value_tiles);
      to.positions = std::move(from.positions);
      to.counts = std::move(from.counts);
      to.attention = std::move(from.attention);
    };
    stage(*c.key, *c.value, kept, retained[i]);
    retained[i].old_rows = s.retained[i].size() + s.demoted[i].size();
    if (!low.positions.empty()) stage(*low_codecs->key, *low_codecs->value, low, demoted[i]);
  }
}

// An upper bound of the pool blocks that pages of these sizes take: per
// size, the pages over the slots of one block that fit it, one page per slot
// (smaller pages share a slot, so fewer), plus one block per size for the
// rounding.
int32_t PagedKvCache::blocks_for_pages(const std::map<size_t, int64_t>& pages_by_size) const {
  int64_t blocks = 0;
  for (const auto& [bytes, pages] : pages_by_size) {
    int64_t slots = 0;
    for (int32_t seg = 0; seg < pool_->n_segments(); ++seg) {
      if (pool_->segment_bytes(seg) >= bytes) ++slots;
    }
    KVF_CHECK(slots > 0);
    blocks += (pages + slots - 1) / slots + 1;
  }
  return static_cast<int32_t>(std::min<int64_t>(blocks, INT32_MAX));
}

Status PagedKvCache::write_pages(const StagedRows& from, RetainedRows& to) {
  for (const bool value_side : {false, true}) {
    const auto& tiles = value_side ? from.value_tiles : from.key_tiles;
    auto& pages = value_side ? to.value_pages : to.key_pages;
    auto& pointers = value_side ? to.value_tiles : to.key_tiles;
    for (const std::vector<uint8_t>& tile : tiles) {
      std::optional<PageRef> page = pages_->allocate(tile.size());
      while (!page) {
        KVF_RETURN_IF_ERROR(make_room_for_pages());
        page = pages_->allocate(tile.size());
      }
      uint8_t* data = pages_->data(*page);
      std::memcpy(data, tile.data(), tile.size());
      pages.push_back(*page);
      pointers.push_back(data);
    }
  }
  to.positions = from.positions;
  to.counts = from.counts;
  to.bias.clear();
  if (std::any_of(to.counts.begin(), to.counts.end(), [](float n) { return n != 1.0f; })) {
    for (float n : to.counts) to.bias.push_back(std::log(n));
  }
  return Status();
}

// The press of one sequence, in two phases. First every layer's candidates
// (retained rows and the block part's rows before the new boundary) go to
// the layer's press and the rows it keeps are encoded into tiles in host
// memory; nothing in the pool changes. Then, if the pool can take the new
// pages once the pressed blocks and old pages are gone, those are released
// and the tiles copied into pages. A press that cannot fit leaves the
// sequence as it was.
Status PagedKvCache::run_press(Sequence& s) {
  const int32_t bt = block_tokens_;
  const auto held = static_cast<int32_t>(s.tokens.size());
  const auto heads = static_cast<size_t>(shape_.n_kv_heads);

  // The new boundary: past it the newest `window` positions stay in blocks,
  // and every block before it is read encoded by all later queries (KIVI's
  // residual window).
  int32_t window = 0;
  for (const auto& press : s.presses) {
    if (press) window = std::max(window, press->budget().window);
  }
  const int32_t limit = std::min(held - window, held + 1 - staging_start_residual());
  const int32_t boundary = limit <= 0 ? 0 : limit / bt * bt;
  if (boundary <= s.compressed_end) return Status();

  // Would any press drop (or demote) a row? If not, storage stays as it is:
  // a budget at or above the context reproduces the uncompressed cache exactly.
  // Rows already demoted (MiKV) stay demoted and do not count against the
  // budget, which is the budget of full-precision rows.
  bool acts = false;
  for (size_t l = 0; l < layers_.size() && !acts; ++l) {
    const KvPress* press = press_of(s, l);
    if (press == nullptr) continue;
    const int32_t keep = press->budget().rows_for(held);
    for (size_t h = 0; h < heads && !acts; ++h) {
      const size_t i = l * heads + h;
      acts = held - s.compressed_end + s.retained[i].size() > keep;
    }
  }
  if (!acts) return Status();

  // Phase 1: choose, and encode what stays into host tiles.
  std::vector<StagedRows> retained(layers_.size() * heads);
  std::vector<StagedRows> demoted(layers_.size() * heads);
  for (int32_t l = 0; l < static_cast<int32_t>(layers_.size()); ++l) {
    press_layer(s, LayerId{l}, boundary, retained, demoted);
  }

  // Phase 2: room for the pages once the pressed blocks are given up?
  std::map<size_t, int64_t> pages_by_size;
  for (const std::vector<StagedRows>* lists : {&retained, &demoted}) {
    for (const StagedRows& r : *lists) {
      if (r.key_tiles.empty()) continue;
      pages_by_size[r.key_tiles.front().size()] += static_cast<int64_t>(r.key_tiles.size());
      pages_by_size[r.value_tiles.front().size()] += static_cast<int64_t>(r.value_tiles.size());
    }
  }
  const int32_t needed = blocks_for_pages(pages_by_size);
  const int32_t first_pressed = s.compressed_end / bt;
  const int32_t end_pressed = boundary / bt;
  const int32_t evictable = index_ ? index_->n_evictable() : 0;
  // Before the first press the uncompressed prompt is offered to the prefix
  // cache, where later prompts find it in full form, when the pool has room
  // for the pages besides it (cached blocks are evicted when the pool runs
  // short, least recently used first).
  const int32_t exact_blocks = std::min(end_pressed, s.approximate_from / bt);
  if (s.compressed_end == 0 && index_ && exact_blocks > 0 &&
      pool_->n_free() + evictable >= needed) {
    offer_full_blocks(s, exact_blocks);
  }
  int32_t freed = 0;  // pressed blocks only this sequence holds, uncached
  for (int32_t j = first_pressed; j < end_pressed; ++j) {
    const BlockId b = s.blocks[static_cast<size_t>(j)];
    if (pool_->ref_count(b) == 1 && !pool_->is_cached(b)) ++freed;
  }
  const int32_t available = pool_->n_free() + (index_ ? index_->n_evictable() : 0) + freed;
  if (available < needed) {
    return resource_exhausted(fmt::format(
        "the KV cache memory is full while pressing: the kept rows need up to {} blocks, {} are "
        "free or freeable (raise --kv-mem)",
        needed, available));
  }

  // Commit: the old pages and the pressed blocks go, the new pages come.
  release_retained_pages(s);
  for (int32_t j = first_pressed; j < end_pressed; ++j) {
    pool_->release(s.blocks[static_cast<size_t>(j)]);
    s.blocks[static_cast<size_t>(j)] = kInvalidBlock;
  }
  const int32_t old_end = s.compressed_end;
  s.compressed_end = boundary;
  for (size_t i = 0; i < retained.size(); ++i) {
    const Status written = write_pages(retained[i], s.retained[i]);
    const Status written_demoted = written.ok() ? write_pages(demoted[i], s.demoted[i]) : written;
    if (!written_demoted.ok()) {
      // blocks_for_pages is an upper bound, so this is not expected; the
      // sequence cannot be kept half pressed.
      KVF_CHECK(truncate(SeqId{static_cast<int32_t>(&s - sequences_.data())}, 0).ok());
      return Status(written_demoted.code(),
                    fmt::format("{} (the sequence was dropped and must be recomputed)",
                                written_demoted.message()));
    }
  }
  if (!s.attention.empty() && !s.attention[0].empty()) {
    // Span order: retained, demoted, then the block part's rows from the boundary.
    for (size_t i = 0; i < s.attention.size(); ++i) {
      std::vector<float>& a = s.attention[i];
      const auto old_block_row0 = static_cast<size_t>(retained[i].old_rows);
      const std::vector<float> tail(
          a.begin() + static_cast<std::ptrdiff_t>(old_block_row0 + (boundary - old_end)), a.end());
      a.assign(retained[i].attention.begin(), retained[i].attention.end());
      a.insert(a.end(), demoted[i].attention.begin(), demoted[i].attention.end());
      a.insert(a.end(), tail.begin(), tail.end());
    }
  }
  s.decode_steps = 0;
  return Status();
}

}  // namespace kvforge
