// UTF-8 helpers shared by the tokenizers.
//
// The tokenizers accept arbitrary bytes: a valid UTF-8 sequence counts as one
// code point, and every byte that does not start a valid sequence counts as a
// unit of its own. Nothing here allocates except the functions that return a
// std::string. Free functions, thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kvforge::tokenizer {

// Length in bytes of the unit that starts at text[pos]: 1 to 4 for a valid
// UTF-8 sequence (shortest form, no surrogates, at most U+10FFFF), 1 for an
// invalid byte. pos must be < text.size().
[[nodiscard]] size_t utf8_unit_length(std::string_view text, size_t pos);

// True when every byte of text belongs to a valid UTF-8 sequence.
[[nodiscard]] bool is_valid_utf8(std::string_view text);

// Appends the UTF-8 encoding of a code point (must be <= 0x10FFFF).
void append_utf8(uint32_t code_point, std::string& out);

// Decodes the valid sequence of `length` bytes at text[pos].
[[nodiscard]] uint32_t decode_utf8_unit(std::string_view text, size_t pos, size_t length);

}  // namespace kvforge::tokenizer
