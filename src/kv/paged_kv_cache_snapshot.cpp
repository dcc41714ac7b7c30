// Save and restore of one sequence of a PagedKvCache.
//
// File layout (little-endian, as the machine writes it; the magic's byte
// order check refuses files from a machine of the other endianness):
//   "KVFSNAP\0"                     8 bytes
//   u32 version (6; version 1 stored f16 and int8 key tiles by row, 2 int4 and KIVI key
//   tiles, 3 int4 key tiles by column and int4 and KIVI value tiles by row,
//   4 bf16 key tiles by row, 5 neither pressed rows nor key bounds)
//   u64 model fingerprint
//   u32 length, codec plan text     e.g. "0-15:k=int8/v=int8"
//   u32 length, press plan text     e.g. "none", "0-15:snapkv:..."
//   u32 length, demotion plan text  per layer runs of the demoted rows' codecs, or "none"
//   i32 block_tokens, n_layers, n_kv_heads, head_dim
//   i32 n_tokens, then n_tokens token ids, then n_tokens positions
//   i32 staged_begin
//   i32 compressed_end (C: positions before it live in retained and demoted rows)
//   u32 key bounds bytes per block, layer and KV head (selection; 0: none stored)
//   per block from C / B: every K and V tile (layer, keys then values, KV
//   head), then, if stored, every key bounds segment (layer, KV head)
//   per layer: u64 count + f32 staged key rows, u64 count + f32 staged value rows
//   if C > 0, per (layer, KV head), its retained then its demoted rows:
//     i32 rows, rows i32 positions, rows f32 counts,
//     ceil(rows / B) key pages, then as many value pages, as stored
//   press state: i32 decode steps since the last press, first and end of
//   the captured query positions, prompt end; u32 lists (0 or layers x KV
//   heads), each u64 count + f32 captured attention per row; u32 lists (0 or
//   layers), each u64 count + f32 captured prompt queries
//   u64 XXH3-64 of every byte before it
// The encoded bytes are stored as they are, so a restored sequence computes
// exactly what the saved one would have.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <xxhash.h>

#include "kv/paged_kv_cache.h"
#include "kv/paged_kv_cache_state.h"

namespace kvforge {
namespace {

constexpr char kMagic[8] = {'K', 'V', 'F', 'S', 'N', 'A', 'P', '\0'};
constexpr uint32_t kVersion = 6;

class ByteWriter {
 public:
  template <class T>
  void put(const T& value) {
    append(&value, sizeof(T));
  }
  void append(const void* data, size_t n) {
    if (n == 0) return;  // `data` may be null then
    const auto* p = static_cast<const uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + n);
  }
  void put_text(const std::string& text) {
    put(static_cast<uint32_t>(text.size()));
    append(text.data(), text.size());
  }
  template <class T>
  void put_vector(const std::vector<T>& v) {
    put(static_cast<uint64_t>(v.size()));
    append(v.data(), v.size() * sizeof(T));
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// Bounds-checked reads; every failure names the file and the field.
class ByteReader {
 public:
  ByteReader(std::span<const uint8_t> bytes, std::string where)
      : bytes_(bytes), where_(std::move(where)) {}
  Status read(void* out, size_t n, const char* what) {
    if (n > bytes_.size() - at_) {
      return truncated(what);
    }
    if (n > 0) std::memcpy(out, bytes_.data() + at_, n);  // `out` may be null when n == 0
    at_ += n;
    return Status();
  }
  template <class T>
  Result<T> get(const char* what) {
    T value{};
    KVF_RETURN_IF_ERROR(read(&value, sizeof(T), what));
    return value;
  }
  // The next n bytes, in place.
  Result<std::span<const uint8_t>> take(size_t n, const char* what) {
    if (n > bytes_.size() - at_) {
      return truncated(what);
    }
    const std::span<const uint8_t> taken = bytes_.subspan(at_, n);
    at_ += n;
    return taken;
  }
  Result<std::string> get_text(const char* what) {
    KVF_ASSIGN_OR_RETURN(const uint32_t size, get<uint32_t>(what));
    if (size > remaining())
      return corrupt(fmt::format("{}{} length is past the end", where_, what));
    std::string text(size, '\0');
    KVF_RETURN_IF_ERROR(read(text.data(), size, what));
    return text;
  }
  // A u64 count, then that many T (at most what the rest of the file holds).
  template <class T>
  Result<std::vector<T>> get_vector(const char* what) {
    KVF_ASSIGN_OR_RETURN(const uint64_t count, get<uint64_t>(what));
    if (count > remaining() / sizeof(T)) {
      return truncated(what);
    }
    std::vector<T> v(static_cast<size_t>(count));
    KVF_RETURN_IF_ERROR(read(v.data(), v.size() * sizeof(T), what));
    return v;
  }
  [[nodiscard]] size_t remaining() const { return bytes_.size() - at_; }

 private:
  [[nodiscard]] Status truncated(const char* what) const {
    return corrupt(fmt::format("{}the file is truncated (reading {})", where_, what));
  }

  std::span<const uint8_t> bytes_;
  std::string where_;
  size_t at_ = 0;
};

// One retained or demoted list as the file holds it.
struct SavedRows {
  std::vector<int32_t> positions;
  std::vector<float> counts;
  std::span<const uint8_t> key_pages;
  std::span<const uint8_t> value_pages;
};

// "0-3:a,4-15:b": runs of layers with equal names.
std::string snapshot_layer_runs(const std::vector<std::string>& names) {
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

}  // namespace

// Per layer runs of the sequence's presses ("none" without any), and of the
// codecs of its demoted rows ("k=int4/v=int4"), "none" where a layer demotes
// nothing; "none" when no layer does.
std::string PagedKvCache::press_plan_of(const Sequence& s) const {
  if (!has_presses(s)) return "none";
  std::vector<std::string> names;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const KvPress* press = press_of(s, l);
    names.push_back(press ? press->name() : "none");
  }
  return snapshot_layer_runs(names);
}

std::string PagedKvCache::demotion_plan(const Sequence& s) const {
  std::vector<std::string> names;
  bool any = false;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const DemotionCodecs* low = demotion_of(s, l);
    any = any || low != nullptr;
    names.push_back(low ? fmt::format("k={}/v={}", low->key->name(), low->value->name()) : "none");
  }
  return any ? snapshot_layer_runs(names) : "none";
}

Status PagedKvCache::save(SeqId seq, const std::string& path) const {
  KVF_RETURN_IF_ERROR(check_sequence(seq));
  const Sequence& s = sequence(seq);
  ByteWriter w;
  w.append(kMagic, sizeof(kMagic));
  w.put(kVersion);
  w.put(model_fingerprint_);
  w.put_text(plan_name_);
  w.put_text(press_plan_of(s));
  w.put_text(demotion_plan(s));
  for (int32_t v : {block_tokens_, shape_.n_layers, shape_.n_kv_heads, shape_.head_dim}) w.put(v);
  const auto n = static_cast<int32_t>(s.tokens.size());
  w.put(n);
  w.append(s.tokens.data(), s.tokens.size() * sizeof(int32_t));
  for (int32_t p = 0; p < n; ++p) w.put(p);
  w.put(s.staged_begin);
  w.put(s.compressed_end);
  w.put(static_cast<uint32_t>(bounds_bytes_));
  // Per block: every K/V segment (layer, keys then values, KV head), then
  // the key bounds segments (they follow the K/V segments in the pool).
  for (size_t j = static_cast<size_t>(s.compressed_end / block_tokens_); j < s.blocks.size(); ++j) {
    for (int32_t segment = 0; segment < pool_->n_segments(); ++segment) {
      w.append(pool_->segment_data(s.blocks[j], segment), pool_->segment_bytes(segment));
    }
  }
  for (size_t l = 0; l < layers_.size(); ++l) {
    w.put_vector(s.staged_keys[l]);
    w.put_vector(s.staged_values[l]);
  }
  if (s.compressed_end > 0) {
    for (size_t i = 0; i < s.retained.size(); ++i) {
      const size_t layer = i / static_cast<size_t>(shape_.n_kv_heads);
      const LayerCodecs& c = layers_[layer];
      const DemotionCodecs* low = demotion_of(s, layer);
      for (const bool demoted : {false, true}) {
        const RetainedRows& r = demoted ? s.demoted[i] : s.retained[i];
        w.put(r.size());
        w.append(r.positions.data(), r.positions.size() * sizeof(int32_t));
        w.append(r.counts.data(), r.counts.size() * sizeof(float));
        const size_t key_bytes =
            demoted && r.size() > 0 ? low->key->tile_bytes() : c.key_tile_bytes;
        const size_t value_bytes =
            demoted && r.size() > 0 ? low->value->tile_bytes() : c.value_tile_bytes;
        for (const uint8_t* tile : r.key_tiles) w.append(tile, key_bytes);
        for (const uint8_t* tile : r.value_tiles) w.append(tile, value_bytes);
      }
    }
  }
  for (int32_t v : {s.decode_steps, s.capture_first, s.capture_end, s.prompt_end}) w.put(v);
  w.put(static_cast<uint32_t>(s.attention.size()));
  for (const std::vector<float>& rows : s.attention) w.put_vector(rows);
  w.put(static_cast<uint32_t>(s.captured_queries.size()));
  for (const std::vector<float>& queries : s.captured_queries) w.put_vector(queries);
  w.put(static_cast<uint64_t>(XXH3_64bits(w.bytes().data(), w.bytes().size())));

  // Write to a temporary name and rename, so a crash never leaves half a file
  // where a good one was.
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) return io_error(fmt::format("cannot write the prompt cache '{}'", temp));
    out.write(reinterpret_cast<const char*>(w.bytes().data()),
              static_cast<std::streamsize>(w.bytes().size()));
    if (!out.flush()) return io_error(fmt::format("writing the prompt cache '{}' failed", temp));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    return io_error(fmt::format("cannot rename '{}' to '{}'", temp, path));
  }
  return Status();
}

Status PagedKvCache::restore(SeqId seq, const std::string& path) {
  KVF_RETURN_IF_ERROR(check_sequence(seq));
  Sequence& s = sequence(seq);
  if (!s.tokens.empty()) return invalid_argument("restore needs an empty sequence");
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(fmt::format("cannot open the prompt cache '{}'", path));
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  const std::string where = fmt::format("prompt cache '{}': ", path);
  if (bytes.size() < sizeof(kMagic) + sizeof(uint64_t) ||
      std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return corrupt(where + "not a kvforge prompt cache file");
  }
  uint64_t stored_sum = 0;
  std::memcpy(&stored_sum, bytes.data() + bytes.size() - sizeof(uint64_t), sizeof(uint64_t));
  if (stored_sum != XXH3_64bits(bytes.data(), bytes.size() - sizeof(uint64_t))) {
    return corrupt(where + "checksum mismatch (the file is damaged)");
  }
  ByteReader r(std::span<const uint8_t>(bytes).first(bytes.size() - sizeof(uint64_t)), where);
  char magic[sizeof(kMagic)];
  KVF_RETURN_IF_ERROR(r.read(magic, sizeof(magic), "magic"));
  KVF_ASSIGN_OR_RETURN(const uint32_t version, r.get<uint32_t>("version"));
  if (version != kVersion) {
    return unsupported(where +
                       fmt::format("format version {} (this build reads {})", version, kVersion));
  }
  KVF_ASSIGN_OR_RETURN(const uint64_t fingerprint, r.get<uint64_t>("model fingerprint"));
  if (fingerprint != model_fingerprint_) {
    return invalid_argument(where + "it was written for another model");
  }
  KVF_ASSIGN_OR_RETURN(const std::string plan, r.get_text("codec plan"));
  if (plan != plan_name_) {
    return invalid_argument(
        where +
        fmt::format("it holds KV in codec plan '{}', this run uses '{}'", plan, plan_name_));
  }
  KVF_ASSIGN_OR_RETURN(const std::string press_plan, r.get_text("press plan"));
  KVF_ASSIGN_OR_RETURN(const std::string low_plan, r.get_text("demotion plan"));
  // The sequence's presses: the cache's plan, or its own (set_press before restore).
  const std::string this_press_plan = press_plan_of(s);
  const std::string this_low_plan = demotion_plan(s);
  // Captured attention and the press schedule carry over only to the same presses.
  const bool same_presses = press_plan == this_press_plan && low_plan == this_low_plan;
  for (int32_t expected : {block_tokens_, shape_.n_layers, shape_.n_kv_heads, shape_.head_dim}) {
    KVF_ASSIGN_OR_RETURN(const int32_t got, r.get<int32_t>("shape"));
    if (got != expected) {
      return invalid_argument(where + "its block size or KV shape differs from this run's");
    }
  }
  KVF_ASSIGN_OR_RETURN(const int32_t n, r.get<int32_t>("token count"));
  if (n < 0 || n > n_ctx_) {
    return out_of_range(where + fmt::format("it holds {} tokens, the context is {}", n, n_ctx_));
  }
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  KVF_RETURN_IF_ERROR(r.read(tokens.data(), tokens.size() * sizeof(int32_t), "token ids"));
  for (int32_t p = 0; p < n; ++p) {
    KVF_ASSIGN_OR_RETURN(const int32_t pos, r.get<int32_t>("positions"));
    if (pos != p) return unsupported(where + "non-contiguous positions");
  }
  const int32_t bt = block_tokens_;
  KVF_ASSIGN_OR_RETURN(const int32_t staged_begin, r.get<int32_t>("staged start"));
  // The open block's rows are always staged (or there is no open block).
  if (staged_begin < 0 || staged_begin > n / bt * bt || staged_begin % bt != 0) {
    return corrupt(where + "bad staged start");
  }
  // The next query (at position n) reads the staged rows of the block not yet
  // full and of every block inside a residual window: they must all be here.
  const int32_t first_read = needs_staging_ ? staging_start_for(n, n) : staged_begin;
  if (staged_begin > first_read) {
    return corrupt(where + fmt::format("staged rows start at position {}, but the next query "
                                       "reads them from position {}",
                                       staged_begin, first_read));
  }
  KVF_ASSIGN_OR_RETURN(const int32_t compressed_end, r.get<int32_t>("pressed end"));
  if (compressed_end < 0 || compressed_end > n || compressed_end % bt != 0) {
    return corrupt(where + "bad pressed end");
  }
  if (compressed_end > 0 && !has_presses(s) && same_presses) {
    return corrupt(where + "pressed rows without a press plan");
  }
  if (compressed_end > 0 && !same_presses) {
    return invalid_argument(
        where + fmt::format("it holds a sequence pressed under press plan '{}' (demoted rows: "
                            "'{}'), this run uses '{}' ('{}')",
                            press_plan, low_plan, this_press_plan, this_low_plan));
  }
  KVF_ASSIGN_OR_RETURN(const uint32_t file_bounds_bytes, r.get<uint32_t>("key bounds size"));
  const size_t kv_heads = static_cast<size_t>(shape_.n_kv_heads);
  const size_t layer_heads = static_cast<size_t>(shape_.n_layers) * kv_heads;
  if (file_bounds_bytes != 0 && file_bounds_bytes != static_cast<uint32_t>(4 * shape_.head_dim)) {
    return corrupt(where + "bad key bounds size");
  }

  // The block part: its K/V segments (the first ones of the pool), then the
  // file's key bounds segments.
  const int32_t n_blocks = (n + bt - 1) / bt;
  const int32_t first_block = compressed_end / bt;
  size_t kv_block_bytes = 0;
  const int32_t kv_segments = bounds_bytes_ > 0 ? first_bounds_segment_ : pool_->n_segments();
  for (int32_t segment = 0; segment < kv_segments; ++segment) {
    kv_block_bytes += pool_->segment_bytes(segment);
  }
  const size_t file_block_bytes = kv_block_bytes + layer_heads * file_bounds_bytes;
  KVF_ASSIGN_OR_RETURN(
      const std::span<const uint8_t> block_bytes,
      r.take(file_block_bytes * static_cast<size_t>(n_blocks - first_block), "KV blocks"));

  std::vector<std::vector<float>> staged_keys(layers_.size());
  std::vector<std::vector<float>> staged_values(layers_.size());
  const size_t expected_floats =
      static_cast<size_t>(n - staged_begin) * kv_heads * static_cast<size_t>(shape_.head_dim);
  for (size_t l = 0; l < layers_.size(); ++l) {
    KVF_ASSIGN_OR_RETURN(staged_keys[l], r.get_vector<float>("staged rows"));
    KVF_ASSIGN_OR_RETURN(staged_values[l], r.get_vector<float>("staged rows"));
    if (staged_keys[l].size() != (layers_[l].key_staged ? expected_floats : 0) ||
        staged_values[l].size() != (layers_[l].value_staged ? expected_floats : 0)) {
      return corrupt(where + "staged row count does not match");
    }
  }

  // Retained and demoted rows, [layer * n_kv_heads + head].
  std::vector<SavedRows> saved_retained, saved_demoted;
  if (compressed_end > 0) {
    saved_retained.resize(layer_heads);
    saved_demoted.resize(layer_heads);
    for (size_t i = 0; i < layer_heads; ++i) {
      const LayerCodecs& c = layers_[i / kv_heads];
      const DemotionCodecs* low = demotion_of(s, i / kv_heads);
      for (const bool demoted : {false, true}) {
        SavedRows& rows = demoted ? saved_demoted[i] : saved_retained[i];
        KVF_ASSIGN_OR_RETURN(const int32_t count, r.get<int32_t>("retained rows"));
        if (count < 0 || count > compressed_end || (demoted && count > 0 && low == nullptr)) {
          return corrupt(where + "bad retained row count");
        }
        rows.positions.resize(static_cast<size_t>(count));
        rows.counts.resize(static_cast<size_t>(count));
        KVF_RETURN_IF_ERROR(r.read(rows.positions.data(), rows.positions.size() * sizeof(int32_t),
                                   "retained positions"));
        KVF_RETURN_IF_ERROR(
            r.read(rows.counts.data(), rows.counts.size() * sizeof(float), "retained counts"));
        for (size_t k = 0; k < rows.positions.size(); ++k) {
          const int32_t pos = rows.positions[k];
          if (pos < 0 || pos >= compressed_end || (k > 0 && pos <= rows.positions[k - 1])) {
            return corrupt(where + "retained positions are not ascending below the pressed end");
          }
          if (!std::isfinite(rows.counts[k]) || rows.counts[k] < 1.0f) {
            return corrupt(where + "bad retained row count of tokens");
          }
        }
        const size_t pages = static_cast<size_t>((count + bt - 1) / bt);
        const size_t key_bytes = demoted && count > 0 ? low->key->tile_bytes() : c.key_tile_bytes;
        const size_t value_bytes =
            demoted && count > 0 ? low->value->tile_bytes() : c.value_tile_bytes;
        KVF_ASSIGN_OR_RETURN(rows.key_pages, r.take(pages * key_bytes, "retained pages"));
        KVF_ASSIGN_OR_RETURN(rows.value_pages, r.take(pages * value_bytes, "retained pages"));
      }
    }
  }

  // Press state.
  KVF_ASSIGN_OR_RETURN(const int32_t decode_steps, r.get<int32_t>("press state"));
  KVF_ASSIGN_OR_RETURN(const int32_t capture_first, r.get<int32_t>("press state"));
  KVF_ASSIGN_OR_RETURN(const int32_t capture_end, r.get<int32_t>("press state"));
  KVF_ASSIGN_OR_RETURN(const int32_t prompt_end, r.get<int32_t>("press state"));
  if (decode_steps < 0 || capture_first < 0 || capture_end < capture_first || prompt_end < 0) {
    return corrupt(where + "bad press state");
  }
  KVF_ASSIGN_OR_RETURN(const uint32_t n_attention, r.get<uint32_t>("captured attention"));
  if (n_attention != 0 && n_attention != layer_heads) {
    return corrupt(where + "bad captured attention");
  }
  std::vector<std::vector<float>> attention(n_attention);
  for (uint32_t i = 0; i < n_attention; ++i) {
    KVF_ASSIGN_OR_RETURN(attention[i], r.get_vector<float>("captured attention"));
    const size_t rows =
        (compressed_end > 0 ? saved_retained[i].positions.size() + saved_demoted[i].positions.size()
                            : 0) +
        static_cast<size_t>(n - compressed_end);
    if (!attention[i].empty() && attention[i].size() != rows) {
      return corrupt(where + "captured attention does not match the rows held");
    }
  }
  KVF_ASSIGN_OR_RETURN(const uint32_t n_queries, r.get<uint32_t>("captured queries"));
  if (n_queries != 0 && n_queries != static_cast<uint32_t>(shape_.n_layers)) {
    return corrupt(where + "bad captured queries");
  }
  std::vector<std::vector<float>> queries(n_queries);
  const size_t query_floats =
      static_cast<size_t>(shape_.n_heads) * static_cast<size_t>(shape_.head_dim);
  for (uint32_t l = 0; l < n_queries; ++l) {
    KVF_ASSIGN_OR_RETURN(queries[l], r.get_vector<float>("captured queries"));
    if (queries[l].size() % query_floats != 0) return corrupt(where + "bad captured queries");
  }
  if (r.remaining() != 0) return corrupt(where + "trailing bytes");

  // Everything read and checked: now the pool. Blocks first, then pages;
  // on a shortfall everything taken goes back.
  KVF_RETURN_IF_ERROR(make_room(n_blocks - first_block));
  std::vector<BlockId> blocks(static_cast<size_t>(first_block), kInvalidBlock);
  for (int32_t j = first_block; j < n_blocks; ++j) {
    const BlockId b = *pool_->allocate();
    blocks.push_back(b);
    const uint8_t* src =
        block_bytes.data() + static_cast<size_t>(j - first_block) * file_block_bytes;
    for (int32_t segment = 0; segment < kv_segments; ++segment) {
      std::memcpy(pool_->segment_data(b, segment), src, pool_->segment_bytes(segment));
      src += pool_->segment_bytes(segment);
    }
    if (bounds_bytes_ > 0 && file_bounds_bytes == bounds_bytes_) {
      for (size_t i = 0; i < layer_heads; ++i) {
        std::memcpy(pool_->segment_data(b, first_bounds_segment_ + static_cast<int32_t>(i)),
                    src + i * bounds_bytes_, bounds_bytes_);
      }
    }
  }
  std::vector<RetainedRows> retained(saved_retained.size()), demoted(saved_demoted.size());
  Status paged;
  for (size_t i = 0; i < saved_retained.size() && paged.ok(); ++i) {
    for (const bool low : {false, true}) {
      const SavedRows& from = low ? saved_demoted[i] : saved_retained[i];
      RetainedRows& to = low ? demoted[i] : retained[i];
      const size_t pages = (from.positions.size() + static_cast<size_t>(bt) - 1) / bt;
      for (const bool value_side : {false, true}) {
        const std::span<const uint8_t> tiles = value_side ? from.value_pages : from.key_pages;
        const size_t tile_bytes = pages > 0 ? tiles.size() / pages : 0;
        for (size_t p = 0; p < pages && paged.ok(); ++p) {
          std::optional<PageRef> page = pages_->allocate(tile_bytes);
          while (!page && paged.ok()) {
            paged = make_room_for_pages();
            if (paged.ok()) page = pages_->allocate(tile_bytes);
          }
          if (!paged.ok()) break;
          std::memcpy(pages_->data(*page), tiles.data() + p * tile_bytes, tile_bytes);
          (value_side ? to.value_pages : to.key_pages).push_back(*page);
          (value_side ? to.value_tiles : to.key_tiles).push_back(pages_->data(*page));
        }
      }
      to.positions = from.positions;
      to.counts = from.counts;
      if (std::any_of(to.counts.begin(), to.counts.end(), [](float c) { return c != 1.0f; })) {
        for (float c : to.counts) to.bias.push_back(std::log(c));
      }
    }
  }
  if (!paged.ok()) {
    for (std::vector<RetainedRows>* lists : {&retained, &demoted}) {
      for (RetainedRows& rows : *lists) {
        for (PageRef page : rows.key_pages) pages_->release(page);
        for (PageRef page : rows.value_pages) pages_->release(page);
      }
    }
    for (BlockId b : blocks) {
      if (b != kInvalidBlock) pool_->release(b);
    }
    return Status(paged.code(), where + paged.message());
  }

  // Commit, into the sequence's own vectors (they keep the capacity
  // reserved for decode steps).
  s.tokens.assign(tokens.begin(), tokens.end());
  s.blocks.assign(blocks.begin(), blocks.end());
  s.staged_begin = staged_begin;
  for (size_t l = 0; l < layers_.size(); ++l) {
    s.staged_keys[l].assign(staged_keys[l].begin(), staged_keys[l].end());
    s.staged_values[l].assign(staged_values[l].begin(), staged_values[l].end());
  }
  s.compressed_end = compressed_end;
  for (size_t i = 0; i < retained.size(); ++i) {
    s.retained[i] = std::move(retained[i]);
    s.demoted[i] = std::move(demoted[i]);
  }
  if (has_presses(s) && same_presses) {
    s.decode_steps = decode_steps;
    s.capture_first = capture_first;
    s.capture_end = capture_end;
    s.prompt_end = prompt_end;
    for (size_t i = 0; i < s.attention.size(); ++i) {
      if (i < attention.size()) {
        s.attention[i].assign(attention[i].begin(), attention[i].end());
      } else {
        s.attention[i].clear();
      }
    }
    for (size_t l = 0; l < s.captured_queries.size(); ++l) {
      if (l < queries.size()) {
        s.captured_queries[l].assign(queries[l].begin(), queries[l].end());
      } else {
        s.captured_queries[l].clear();
      }
    }
  }
  forget_selection(s);
  if (bounds_bytes_ > 0 && file_bounds_bytes != bounds_bytes_) {
    // Saved without selection: the bounds come from the rows restored.
    for (int32_t l = 0; l < shape_.n_layers; ++l) {
      for (int32_t j = first_block; j < n_blocks; ++j) update_key_bounds(s, LayerId{l}, j);
    }
  }
  return Status();
}

}  // namespace kvforge
