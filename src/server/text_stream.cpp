#include "server/text_stream.h"

#include <algorithm>

namespace kvforge::server {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the UTF-8 sequence that starts with byte b (0: not a lead byte).
size_t sequence_length(unsigned char b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

// Whether s[i..i+n) is a valid n-byte sequence (no overlongs, surrogates or
// code points past U+10FFFF), given enough bytes.
bool valid_sequence(std::string_view s, size_t i, size_t n) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return false;
  }
  if (n == 3) {
    if (b(0) == 0xE0 && b(1) < 0xA0) return false;   // overlong
    if (b(0) == 0xED && b(1) >= 0xA0) return false;  // surrogate
  }
  if (n == 4) {
    if (b(0) == 0xF0 && b(1) < 0x90) return false;   // overlong
    if (b(0) == 0xF4 && b(1) >= 0x90) return false;  // past U+10FFFF
  }
  return true;
}

}  // namespace

size_t incomplete_utf8_tail(std::string_view s) {
  // A lead byte in the last three bytes whose sequence runs past the end,
  // with only continuation bytes after it.
  for (size_t back = 1; back <= std::min<size_t>(3, s.size()); ++back) {
    const auto b = static_cast<unsigned char>(s[s.size() - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation: look further back
    const size_t n = sequence_length(b);
    if (n > back) {
      // Would the bytes present be a valid start? Check what we have.
      for (size_t k = 1; k < back; ++k) {
        if ((static_cast<unsigned char>(s[s.size() - back + k]) & 0xC0) != 0x80) return 0;
      }
      return back;
    }
    return 0;
  }
  return 0;
}

std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const size_t n = sequence_length(static_cast<unsigned char>(s[i]));
    if (n > 0 && i + n <= s.size() && valid_sequence(s, i, n)) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append(kReplacement);
      ++i;
    }
  }
  return out;
}

TextStream::TextStream(std::vector<std::string> stop_sequences)
    : stops_(std::move(stop_sequences)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string TextStream::push(std::string_view piece) {
  if (stopped_) return {};
  pending_.append(piece);
  // The earliest stop sequence in what is held. Everything sent before could
  // not start one, so a match lies entirely in pending_.
  size_t stop_at = std::string::npos;
  for (const std::string& stop : stops_) stop_at = std::min(stop_at, pending_.find(stop));
  if (stop_at != std::string::npos) {
    stopped_ = true;
    std::string out = valid_utf8(std::string_view(pending_).substr(0, stop_at));
    pending_.clear();
    return out;
  }
  // Hold back the longest tail that a stop sequence could begin with.
  size_t hold = 0;
  for (const std::string& stop : stops_) {
    for (size_t len = std::min(stop.size() - 1, pending_.size()); len > hold; --len) {
      if (std::string_view(pending_).substr(pending_.size() - len) ==
          std::string_view(stop).substr(0, len)) {
        hold = len;
        break;
      }
    }
  }
  hold = std::max(hold, incomplete_utf8_tail(pending_));
  const size_t send = pending_.size() - hold;
  std::string out = valid_utf8(std::string_view(pending_).substr(0, send));
  pending_.erase(0, send);
  return out;
}

std::string TextStream::flush() {
  std::string out = valid_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace kvforge::server
