#include "tokenizer/byte_unicode_map.h"

#include <array>

#include "tokenizer/utf8.h"

namespace kvforge::tokenizer {
namespace {

bool stands_for_itself(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) ||
         (byte >= 0xAE && byte <= 0xFF);
}

struct ByteUnicodeTables {
  std::array<std::string, 256> byte_to_text;
  std::array<int16_t, 324> code_point_to_byte;  // all mapped code points are < 256 + 68

  ByteUnicodeTables() {
    code_point_to_byte.fill(-1);
    uint32_t next_shifted = 256;
    for (int byte = 0; byte < 256; ++byte) {
      const uint32_t code_point = stands_for_itself(byte) ? byte : next_shifted++;
      append_utf8(code_point, byte_to_text[byte]);
      code_point_to_byte[code_point] = static_cast<int16_t>(byte);
    }
  }
};

const ByteUnicodeTables& tables() {
  static const ByteUnicodeTables kTables;
  return kTables;
}

}  // namespace

std::string_view byte_to_unicode_text(uint8_t byte) {
  return tables().byte_to_text[byte];
}

void append_bytes_as_unicode(std::string_view bytes, std::string& out) {
  const auto& byte_to_text = tables().byte_to_text;
  for (char c : bytes) out += byte_to_text[static_cast<uint8_t>(c)];
}

std::optional<uint8_t> unicode_to_byte(uint32_t code_point) {
  const auto& map = tables().code_point_to_byte;
  if (code_point >= map.size() || map[code_point] < 0) return std::nullopt;
  return static_cast<uint8_t>(map[code_point]);
}

}  // namespace kvforge::tokenizer
