// ByteCursor: a bounds-checked, little-endian reader over an immutable byte
// span, used by the GGUF parser so that no read can leave the file image.
//
// Every read either succeeds and advances, or fails with a kCorrupt Status
// that names the field, the offset and how many bytes were missing; on failure
// the position is unchanged. Values are assembled with memcpy, so unaligned
// fields are fine. The cursor does not own the bytes. Not thread-safe (it is a
// position); create one per parse.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "kvforge/status.h"

namespace kvforge::gguf {

class ByteCursor {
 public:
  explicit ByteCursor(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  [[nodiscard]] uint64_t position() const { return pos_; }
  [[nodiscard]] uint64_t remaining() const { return bytes_.size() - pos_; }
  [[nodiscard]] uint64_t size() const { return bytes_.size(); }

  // Reads an unsigned or signed little-endian integer, or an IEEE float, of
  // sizeof(T) bytes. `what` names the field for the error message.
  template <class T>
  [[nodiscard]] Result<T> read(std::string_view what) {
    static_assert(std::is_trivially_copyable_v<T>);
    KVF_RETURN_IF_ERROR(require(sizeof(T), what));
    T value;
    // GGUF is little-endian and kvforge only builds for little-endian hosts
    // (checked below), so a plain copy is the decode.
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  // Returns a view of the next n bytes and advances past them.
  [[nodiscard]] Result<std::span<const uint8_t>> read_bytes(uint64_t n, std::string_view what) {
    KVF_RETURN_IF_ERROR(require(n, what));
    auto view = bytes_.subspan(pos_, n);
    pos_ += n;
    return view;
  }

  // Reads a GGUF string: uint64 byte length, then that many bytes (no NUL).
  [[nodiscard]] Result<std::string> read_string(std::string_view what) {
    KVF_ASSIGN_OR_RETURN(uint64_t length, read<uint64_t>(what));
    if (length > remaining()) {
      pos_ -= sizeof(uint64_t);
      return corrupt(std::string(what) + ": string length " + std::to_string(length) +
                     " at offset " + std::to_string(pos_) + " exceeds the " +
                     std::to_string(remaining() - sizeof(uint64_t)) + " bytes left in the file");
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
    pos_ += length;
    return s;
  }

  // Fails unless n more bytes are available.
  [[nodiscard]] Status require(uint64_t n, std::string_view what) const {
    if (n <= remaining()) return Status::ok_status();
    return corrupt("truncated: " + std::string(what) + " needs " + std::to_string(n) +
                   " bytes at offset " + std::to_string(pos_) + " but the file has only " +
                   std::to_string(remaining()) + " left");
  }

 private:
  std::span<const uint8_t> bytes_;
  uint64_t pos_ = 0;
};

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader decodes by memcpy and needs a little-endian host");

}  // namespace kvforge::gguf
