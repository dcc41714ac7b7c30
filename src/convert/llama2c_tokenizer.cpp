#include "convert/llama2c_tokenizer.h"

#include <cstring>

namespace kvforge::convert {
namespace {

constexpr const char* kSentencePieceSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's word marker

bool is_byte_piece(const std::string& piece) {
  // "<0xHH>" with upper-case hex digits, as SentencePiece writes byte fallbacks.
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return false;
  for (int i = 3; i < 5; ++i) {
    const char c = piece[i];
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

bool is_valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto lead = static_cast<uint8_t>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      n = 1;
      cp = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      n = 2;
      cp = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      n = 3;
      cp = lead & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // continuation bytes run past the end
    for (size_t k = 1; k <= n; ++k) {
      const auto c = static_cast<uint8_t>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = cp << 6 | (c & 0x3F);
    }
    // Reject overlong forms, surrogates and values past U+10FFFF.
    static constexpr uint32_t kMinForLength[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[n] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    i += n + 1;
  }
  return true;
}

std::string spaces_to_word_markers(const std::string& piece) {
  std::string out;
  for (char c : piece) {
    if (c == ' ') {
      out += kSentencePieceSpace;
    } else {
      out += c;
    }
  }
  return out;
}

// Bounds-checked little-endian reads over the tokenizer bytes.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  [[nodiscard]] bool read(void* dst, size_t n) {
    if (bytes_.size() - pos_ < n) return false;
    std::memcpy(dst, bytes_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  [[nodiscard]] size_t pos() const { return pos_; }
  [[nodiscard]] size_t remaining() const { return bytes_.size() - pos_; }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

}  // namespace

Result<SpmVocab> parse_llama2c_tokenizer(std::span<const uint8_t> bytes, int32_t vocab_size) {
  if (vocab_size < 3) {
    return invalid_argument("a llama2.c vocabulary needs at least <unk>, <s> and </s>; got " +
                            std::to_string(vocab_size) + " tokens");
  }
  Reader reader(bytes);
  int32_t max_token_length = 0;
  if (!reader.read(&max_token_length, sizeof max_token_length)) {
    return corrupt("tokenizer file is shorter than its 4-byte header");
  }
  if (max_token_length <= 0 || max_token_length > (1 << 16)) {
    return corrupt("tokenizer header gives an implausible max token length " +
                   std::to_string(max_token_length) + " (not a llama2.c tokenizer.bin?)");
  }
  SpmVocab vocab;
  vocab.pieces.reserve(vocab_size);
  for (int32_t id = 0; id < vocab_size; ++id) {
    float score = 0;
    int32_t length = 0;
    if (!reader.read(&score, sizeof score) || !reader.read(&length, sizeof length)) {
      return corrupt("tokenizer file ends at token " + std::to_string(id) + " of " +
                     std::to_string(vocab_size) + " (wrong tokenizer for this model?)");
    }
    if (length <= 0 || length > max_token_length) {
      return corrupt("token " + std::to_string(id) + " has length " + std::to_string(length) +
                     ", outside 1.." + std::to_string(max_token_length));
    }
    std::string text(static_cast<size_t>(length), '\0');
    if (!reader.read(text.data(), text.size())) {
      return corrupt("tokenizer file ends inside token " + std::to_string(id));
    }
    TokenType type = TokenType::kNormal;
    if (id == kLlama2cUnkId) {
      text = "<unk>";
      type = TokenType::kUnknown;
    } else if (id == kLlama2cBosId) {
      text = "<s>";
      type = TokenType::kControl;
    } else if (id == kLlama2cEosId) {
      text = "</s>";
      type = TokenType::kControl;
    } else if (is_byte_piece(text)) {
      type = TokenType::kByte;
    } else {
      if (!is_valid_utf8(text)) {
        return corrupt("token " + std::to_string(id) + " is not valid UTF-8");
      }
      text = spaces_to_word_markers(text);
    }
    vocab.pieces.push_back(std::move(text));
    vocab.scores.push_back(score);
    vocab.types.push_back(static_cast<int32_t>(type));
  }
  if (reader.remaining() != 0) {
    return corrupt("tokenizer file has " + std::to_string(reader.remaining()) +
                   " bytes after its " + std::to_string(vocab_size) +
                   " tokens (made for a larger vocabulary?)");
  }
  return vocab;
}

}  // namespace kvforge::convert
