// RawGguf: builds GGUF byte images field by field, independently of
// GgufWriter, so reader tests can state exactly which bytes they feed in,
// including malformed ones (wrong counts, bad offsets, unknown types).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace kvforge::gguf::testing {

class RawGguf {
 public:
  RawGguf& u8(uint8_t v) { return put(v); }
  RawGguf& u32(uint32_t v) { return put(v); }
  RawGguf& u64(uint64_t v) { return put(v); }
  RawGguf& i32(int32_t v) { return put(v); }
  RawGguf& f32(float v) { return put(v); }
  RawGguf& str(std::string_view s) {
    u64(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
    return *this;
  }
  RawGguf& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bytes.insert(bytes.end(), {'G', 'G', 'U', 'F'});
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  // Key, value type 4 (uint32), value.
  RawGguf& kv_u32(std::string_view key, uint32_t v) { return str(key).u32(4).u32(v); }
  // Key, value type 8 (string), value.
  RawGguf& kv_string(std::string_view key, std::string_view v) { return str(key).u32(8).str(v); }
  RawGguf& tensor_info(std::string_view name, const std::vector<uint64_t>& dims, uint32_t type,
                       uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }
  RawGguf& pad_to(uint64_t alignment) {
    while (bytes.size() % alignment != 0) bytes.push_back(0);
    return *this;
  }
  RawGguf& zeros(size_t n) {
    bytes.insert(bytes.end(), n, 0);
    return *this;
  }

  std::vector<uint8_t> bytes;

 private:
  template <class T>
  RawGguf& put(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // the test host is little-endian, like the format
    bytes.insert(bytes.end(), b, b + sizeof(T));
    return *this;
  }
};

}  // namespace kvforge::gguf::testing
