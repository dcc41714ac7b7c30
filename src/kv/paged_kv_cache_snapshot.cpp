// Save and restore of one sequence of a PagedKvCache.
//
// File layout (little-endian, as the machine writes it; the magic's byte
// order check refuses files from a machine of the other endianness):
//   "KVFSNAP\0"                     8 bytes
//   u32 version (5; version 1 stored f16 and int8 key tiles by row, 2 int4 and KIVI key
//   tiles, 3 int4 key tiles by column and int4 and KIVI value tiles by row,
//   4 bf16 key tiles by row)
//   u64 model fingerprint
//   u32 length, codec plan text     e.g. "0-15:k=int8/v=int8"
//   i32 block_tokens, n_layers, n_kv_heads, head_dim
//   i32 n_tokens, then n_tokens token ids, then n_tokens positions
//   i32 staged_begin
//   per block, per layer: the layer's block bytes (all K and V tiles)
//   per layer: u64 count + f32 staged key rows, u64 count + f32 staged value rows
//   u64 XXH3-64 of every byte before it
// The encoded bytes are stored as they are, so a restored sequence computes
// exactly what the saved one would have.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include <fmt/format.h>
#include <xxhash.h>

#include "kv/paged_kv_cache.h"
#include "kv/paged_kv_cache_state.h"

namespace kvforge {
namespace {

constexpr char kMagic[8] = {'K', 'V', 'F', 'S', 'N', 'A', 'P', '\0'};
constexpr uint32_t kVersion = 5;

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
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// Bounds-checked reads; every failure names the field.
class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  Status read(void* out, size_t n, const char* what) {
    if (n > bytes_.size() - at_) {
      return corrupt(fmt::format("the prompt cache file is truncated (reading {})", what));
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
  [[nodiscard]] size_t remaining() const { return bytes_.size() - at_; }

 private:
  std::span<const uint8_t> bytes_;
  size_t at_ = 0;
};

}  // namespace

Status PagedKvCache::save(SeqId seq, const std::string& path) const {
  const Sequence& s = sequence(seq);
  if (s.compressed_end > 0) {
    return unsupported("saving a pressed sequence (retained rows in pages) is not supported");
  }
  ByteWriter w;
  w.append(kMagic, sizeof(kMagic));
  w.put(kVersion);
  w.put(model_fingerprint_);
  w.put(static_cast<uint32_t>(plan_name_.size()));
  w.append(plan_name_.data(), plan_name_.size());
  for (int32_t v : {block_tokens_, shape_.n_layers, shape_.n_kv_heads, shape_.head_dim}) w.put(v);
  const auto n = static_cast<int32_t>(s.tokens.size());
  w.put(n);
  w.append(s.tokens.data(), s.tokens.size() * sizeof(int32_t));
  for (int32_t p = 0; p < n; ++p) w.put(p);
  w.put(s.staged_begin);
  // Per block: every segment (layer, keys then values, KV head) in order.
  for (BlockId b : s.blocks) {
    for (int32_t segment = 0; segment < pool_->n_segments(); ++segment) {
      w.append(pool_->segment_data(b, segment), pool_->segment_bytes(segment));
    }
  }
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (const auto* rows : {&s.staged_keys[l], &s.staged_values[l]}) {
      w.put(static_cast<uint64_t>(rows->size()));
      w.append(rows->data(), rows->size() * sizeof(float));
    }
  }
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
  ByteReader r(std::span<const uint8_t>(bytes).first(bytes.size() - sizeof(uint64_t)));
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
  KVF_ASSIGN_OR_RETURN(const uint32_t plan_size, r.get<uint32_t>("codec plan length"));
  if (plan_size > r.remaining()) return corrupt(where + "codec plan length is past the end");
  std::string plan(plan_size, '\0');
  KVF_RETURN_IF_ERROR(r.read(plan.data(), plan_size, "codec plan"));
  if (plan != plan_name_) {
    return invalid_argument(
        where +
        fmt::format("it holds KV in codec plan '{}', this run uses '{}'", plan, plan_name_));
  }
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
  KVF_ASSIGN_OR_RETURN(const int32_t staged_begin, r.get<int32_t>("staged start"));
  if (staged_begin < 0 || staged_begin > n || staged_begin % block_tokens_ != 0) {
    return corrupt(where + "bad staged start");
  }

  const auto n_blocks = static_cast<int32_t>((n + block_tokens_ - 1) / block_tokens_);
  KVF_RETURN_IF_ERROR(make_room(n_blocks));
  std::vector<BlockId> blocks;
  Status status;
  for (int32_t j = 0; j < n_blocks && status.ok(); ++j) {
    blocks.push_back(*pool_->allocate());
    for (int32_t segment = 0; segment < pool_->n_segments() && status.ok(); ++segment) {
      status = r.read(pool_->segment_data(blocks.back(), segment), pool_->segment_bytes(segment),
                      "KV blocks");
    }
  }
  std::vector<std::vector<float>> staged_keys(layers_.size());
  std::vector<std::vector<float>> staged_values(layers_.size());
  const size_t expected_floats = static_cast<size_t>(n - staged_begin) *
                                 static_cast<size_t>(shape_.n_kv_heads) *
                                 static_cast<size_t>(shape_.head_dim);
  for (size_t l = 0; l < layers_.size() && status.ok(); ++l) {
    const bool staged_side[2] = {layers_[l].key_staged, layers_[l].value_staged};
    std::vector<float>* targets[2] = {&staged_keys[l], &staged_values[l]};
    for (int side = 0; side < 2 && status.ok(); ++side) {
      auto count = r.get<uint64_t>("staged rows");
      if (!count.ok()) {
        status = count.status();
        break;
      }
      if (*count != (staged_side[side] ? expected_floats : 0)) {
        status = corrupt(where + "staged row count does not match");
        break;
      }
      targets[side]->resize(*count);
      status = r.read(targets[side]->data(), *count * sizeof(float), "staged rows");
    }
  }
  if (status.ok() && r.remaining() != 0) status = corrupt(where + "trailing bytes");
  if (!status.ok()) {
    for (BlockId b : blocks) pool_->release(b);
    return status;
  }
  s.tokens = std::move(tokens);
  s.blocks = std::move(blocks);
  s.staged_begin = staged_begin;
  s.staged_keys = std::move(staged_keys);
  s.staged_values = std::move(staged_values);
  return Status();
}

}  // namespace kvforge
