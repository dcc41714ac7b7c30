// Reads llama2.c's tokenizer.bin and turns it into the GGUF "llama"
// (SentencePiece-style) vocabulary: pieces with U+2581 for spaces, scores,
// and token types.
//
// File layout: int32 max_token_length, then for each of vocab_size tokens
// (the count comes from the model header, not the file): float32 score,
// int32 byte length, the bytes. The file must end right after the last token.
// llama2.c stores BOS/EOS as "\n<s>\n" / "\n</s>\n" and turned SentencePiece's
// U+2581 into a plain space; both are undone here.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kvforge/status.h"

namespace kvforge::convert {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct SpmVocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<int32_t> types;  // TokenType values
};

// Ids of the special tokens, fixed by llama2.c's export.
inline constexpr int32_t kLlama2cUnkId = 0;
inline constexpr int32_t kLlama2cBosId = 1;
inline constexpr int32_t kLlama2cEosId = 2;

[[nodiscard]] Result<SpmVocab> parse_llama2c_tokenizer(std::span<const uint8_t> bytes,
                                                       int32_t vocab_size);

}  // namespace kvforge::convert
