// Vocabulary: the plain data a tokenizer is built from, as GGUF stores it
// under the tokenizer.ggml.* keys.
//
// A Vocabulary is a value: tokens, their scores and types, BPE merges and the
// special token ids. It can come from a GGUF file (load_vocabulary) or be
// filled in directly (tests, converters). validate_vocabulary() checks its
// internal consistency; Tokenizer::from_vocabulary calls it, so a Tokenizer
// never sees an inconsistent one. Thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kvforge/status.h"

namespace kvforge::gguf {
class GgufFile;
}

namespace kvforge::tokenizer {

using TokenId = int32_t;

// Values of tokenizer.ggml.token_type (the llama.cpp/SentencePiece numbering).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // <s>, </s>, <|endoftext|>: matched in text only on request
  kUserDefined = 4,  // always matched in text as a whole
  kUnused = 5,
  kByte = 6,  // <0xHH> byte-fallback token
};

struct Vocabulary {
  std::string model;  // tokenizer.ggml.model: "llama" (SentencePiece), "gpt2" (byte-level BPE)
  std::string pre;    // tokenizer.ggml.pre; empty when absent (means "default")
  std::vector<std::string> tokens;
  std::vector<float> scores;        // empty, or one per token
  std::vector<TokenType> types;     // empty (all normal), or one per token
  std::vector<std::string> merges;  // "left right", highest priority first

  std::optional<TokenId> bos_id;
  std::optional<TokenId> eos_id;
  std::optional<TokenId> unknown_id;
  std::optional<TokenId> padding_id;
  std::optional<TokenId> eot_id;  // end of turn
  std::optional<TokenId> eom_id;  // end of message

  // Unset means: the model family's default (see docs/tokenizer.md).
  std::optional<bool> add_bos;
  std::optional<bool> add_eos;
  std::optional<bool> add_space_prefix;

  // What load_vocabulary ignored in the file, one line each, e.g.
  // "tokenizer.ggml.padding_token_id = 4294967295: treated as absent"
  // (`kvforge info` prints them).
  std::vector<std::string> notes;
};

// Reads the tokenizer.ggml.* keys. Fails with kNotFound when a required key
// (model, tokens) is missing and kCorrupt when a key has the wrong type; the
// result is not yet validated. Special-token ids are optional: one that is
// negative, all ones (llama.cpp writes -1 as uint32 4294967295 for "none") or
// not a token of the vocabulary is left unset, with a line in `notes`.
[[nodiscard]] Result<Vocabulary> load_vocabulary(const gguf::GgufFile& file);

// Checks sizes of the per-token arrays, token type values and that every
// special id is a token. Model-specific checks live in the models.
[[nodiscard]] Status validate_vocabulary(const Vocabulary& vocabulary);

}  // namespace kvforge::tokenizer
