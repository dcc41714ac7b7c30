// The reversible byte <-> code point mapping of byte-level BPE (GPT-2).
//
// Byte-level BPE vocabularies store each token as a string of printable code
// points, one per byte: bytes that are printable Latin-1 ('!'..'~', U+00A1..
// U+00AC, U+00AE..U+00FF) stand for themselves and the other 68 bytes are
// shifted, in increasing order, to U+0100 and up (so a space is U+0120 'Ġ' and
// a newline U+010A 'Ċ'). This is the mapping published with OpenAI's GPT-2
// encoder (bytes_to_unicode in encoder.py). Immutable tables; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kvforge::tokenizer {

// UTF-8 text of the code point that stands for `byte`.
[[nodiscard]] std::string_view byte_to_unicode_text(uint8_t byte);

// Appends the mapped text for every byte of `bytes`.
void append_bytes_as_unicode(std::string_view bytes, std::string& out);

// The byte a code point stands for, or nullopt if it is not in the mapping.
[[nodiscard]] std::optional<uint8_t> unicode_to_byte(uint32_t code_point);

}  // namespace kvforge::tokenizer
