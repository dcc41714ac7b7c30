// TextStream: turns a request's generated token pieces into the text a
// client may be sent, as the pieces arrive.
//
// Two things keep text back until more arrives:
//   - stop sequences: a tail of the text that could be the start of a stop
//     sequence is held until it either completes one or cannot any more; so
//     a stop sequence split across tokens is found, and streamed and
//     non-streamed outputs are the same text. The text ends as soon as a
//     stop sequence has appeared, before the earliest one in the text so far
//     (the stop sequence itself is never sent);
//   - UTF-8: a character whose bytes come in several tokens (byte-fallback
//     tokens) is sent whole. Bytes that cannot be valid UTF-8 are sent as
//     U+FFFD, so every piece of text sent is valid UTF-8.
// Not thread-safe; one per choice.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kvforge::server {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop_sequences);

  // Adds a token's bytes and returns the text that can now be sent (maybe
  // empty). Once a stop sequence is found, stopped() is true, the text
  // returned ends just before it, and later calls return nothing.
  [[nodiscard]] std::string push(std::string_view piece);
  // Generation ended: returns whatever was held back (a partial stop
  // sequence is ordinary text then; an incomplete character becomes U+FFFD).
  [[nodiscard]] std::string flush();

  [[nodiscard]] bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;  // received, not yet sent
  bool stopped_ = false;
};

// Bytes at the end of `s` that begin a UTF-8 sequence it does not complete
// (0 to 3).
[[nodiscard]] size_t incomplete_utf8_tail(std::string_view s);
// `s` with every byte that is not part of a valid UTF-8 sequence replaced by
// U+FFFD.
[[nodiscard]] std::string valid_utf8(std::string_view s);

}  // namespace kvforge::server
