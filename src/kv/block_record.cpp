#include "kv/block_record.h"

#include <xxhash.h>

#include <cstring>

#include <fmt/format.h>

namespace kvforge {
namespace {

constexpr char kMagic[8] = {'K', 'V', 'F', 'R', 'E', 'C', '0', '1'};
constexpr uint32_t kVersion = 1;
constexpr size_t kChecksumOffset = 88;

template <class T>
void put(std::vector<uint8_t>& out, size_t offset, T value) {
  std::memcpy(out.data() + offset, &value, sizeof value);
}
template <class T>
T get(std::span<const uint8_t> in, size_t offset) {
  T value;
  std::memcpy(&value, in.data() + offset, sizeof value);
  return value;
}
void put_hash(std::vector<uint8_t>& out, size_t offset, const BlockHash& h) {
  put(out, offset, h.low);
  put(out, offset + 8, h.high);
}
BlockHash get_hash(std::span<const uint8_t> in, size_t offset) {
  return BlockHash{get<uint64_t>(in, offset), get<uint64_t>(in, offset + 8)};
}

// XXH3-64 of the record without its checksum field.
uint64_t record_checksum(std::span<const uint8_t> bytes) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  XXH3_64bits_update(state, bytes.data(), kChecksumOffset);
  XXH3_64bits_update(state, bytes.data() + kBlockRecordHeaderBytes,
                     bytes.size() - kBlockRecordHeaderBytes);
  const uint64_t digest = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return digest;
}

}  // namespace

TierRecord encode_block_record(const BlockRecordHeader& header, std::span<const int32_t> tokens,
                               std::span<const std::span<const uint8_t>> payload) {
  size_t payload_bytes = 0;
  for (const auto& piece : payload) payload_bytes += piece.size();
  const size_t token_bytes = tokens.size() * sizeof(int32_t);
  auto out =
      std::make_shared<std::vector<uint8_t>>(kBlockRecordHeaderBytes + token_bytes + payload_bytes);
  std::vector<uint8_t>& b = *out;
  std::memcpy(b.data(), kMagic, sizeof kMagic);
  put(b, 8, kVersion);
  put(b, 12, static_cast<uint32_t>(header.kind));
  put_hash(b, 16, header.key);
  put_hash(b, 32, header.cache_namespace.value);
  put_hash(b, 48, header.parent);
  put(b, 64, header.layout);
  put(b, 72, header.first_position);
  put(b, 76, static_cast<uint32_t>(tokens.size()));
  put(b, 80, static_cast<uint64_t>(payload_bytes));
  if (token_bytes > 0) std::memcpy(b.data() + kBlockRecordHeaderBytes, tokens.data(), token_bytes);
  size_t at = kBlockRecordHeaderBytes + token_bytes;
  for (const auto& piece : payload) {
    if (!piece.empty()) std::memcpy(b.data() + at, piece.data(), piece.size());
    at += piece.size();
  }
  put(b, kChecksumOffset, record_checksum(b));
  return out;
}

Result<DecodedBlockRecord> decode_block_record(std::span<const uint8_t> bytes) {
  if (bytes.size() < kBlockRecordHeaderBytes) {
    return corrupt(fmt::format("KV record of {} bytes is shorter than its header", bytes.size()));
  }
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    return corrupt("KV record has no KVFREC01 magic");
  }
  const auto version = get<uint32_t>(bytes, 8);
  if (version != kVersion)
    return corrupt(fmt::format("KV record version {} (expected 1)", version));
  const auto kind = get<uint32_t>(bytes, 12);
  if (kind > static_cast<uint32_t>(TierRecordKind::kStagedWindow)) {
    return corrupt(fmt::format("KV record of unknown kind {}", kind));
  }
  const auto n_tokens = get<uint32_t>(bytes, 76);
  const auto payload_bytes = get<uint64_t>(bytes, 80);
  const uint64_t expected = kBlockRecordHeaderBytes + uint64_t{n_tokens} * sizeof(int32_t);
  if (payload_bytes > bytes.size() || expected + payload_bytes != bytes.size()) {
    return corrupt(
        fmt::format("KV record of {} bytes, but its header announces {} tokens and {} "
                    "payload bytes",
                    bytes.size(), n_tokens, payload_bytes));
  }
  if (get<uint64_t>(bytes, kChecksumOffset) != record_checksum(bytes)) {
    return corrupt("KV record checksum mismatch");
  }
  DecodedBlockRecord d;
  d.header.kind = static_cast<TierRecordKind>(kind);
  d.header.key = get_hash(bytes, 16);
  d.header.cache_namespace.value = get_hash(bytes, 32);
  d.header.parent = get_hash(bytes, 48);
  d.header.layout = get<uint64_t>(bytes, 64);
  d.header.first_position = get<int32_t>(bytes, 72);
  d.tokens.resize(n_tokens);
  if (n_tokens > 0) {
    std::memcpy(d.tokens.data(), bytes.data() + kBlockRecordHeaderBytes,
                n_tokens * sizeof(int32_t));
  }
  d.payload = bytes.subspan(static_cast<size_t>(expected));
  return d;
}

}  // namespace kvforge
