// Tokenizer: text <-> token ids for a model, built from the tokenizer.ggml.*
// metadata of a GGUF file (or from a Vocabulary filled in by hand).
//
// Supported tokenizer.ggml.model values: "llama" (SentencePiece-style BPE with
// byte fallback) and "gpt2" (byte-level BPE with the pre-tokenizer named by
// tokenizer.ggml.pre); see docs/tokenizer.md. Encoding first cuts special
// tokens written out in the text (user-defined ones always, control ones when
// parse_special is set), then hands each piece of raw text to the subword
// model. decode(encode(s)) == s for any byte string s (valid UTF-8 or not)
// when the vocabulary can spell every byte, which byte fallback and
// byte-level BPE vocabularies can.
//
// A Tokenizer owns a copy of its vocabulary and is immutable after creation:
// every method is const and safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvforge/status.h"
#include "tokenizer/special_token_matcher.h"
#include "tokenizer/vocabulary.h"

namespace kvforge::gguf {
class GgufFile;
}

namespace kvforge::tokenizer {

class SubwordModel;

class Tokenizer {
 public:
  // Reads the tokenizer.ggml.* keys of `file` (which may be closed afterwards).
  // kUnsupported for a model or pre-tokenizer we do not implement, kNotFound
  // or kCorrupt for missing or inconsistent keys.
  [[nodiscard]] static Result<std::unique_ptr<Tokenizer>> from_gguf(const gguf::GgufFile& file);
  [[nodiscard]] static Result<std::unique_ptr<Tokenizer>> from_vocabulary(Vocabulary vocabulary);

  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;
  ~Tokenizer();

  // add_special: put BOS (and EOS) around the ids as the metadata asks
  // (add_bos(), add_eos()). parse_special: text such as "<s>" or
  // "<|endoftext|>" becomes that control token instead of being spelled out.
  [[nodiscard]] std::vector<TokenId> encode(std::string_view text, bool add_special,
                                            bool parse_special) const;

  // The bytes this token contributes on its own: byte tokens give their
  // byte, "▁" gives a space, byte-level BPE code points give their bytes,
  // control and user-defined tokens give their text. Empty for an id outside
  // the vocabulary. No leading space is removed.
  [[nodiscard]] std::string token_to_piece(TokenId id) const;

  // Concatenated pieces. For SentencePiece vocabularies with the dummy
  // prefix, the one space encode() put at the start of the text and after
  // each special token is removed again. skip_special drops control,
  // unknown and unused tokens. Ids outside the vocabulary are skipped.
  [[nodiscard]] std::string decode(std::span<const TokenId> ids, bool skip_special) const;

  [[nodiscard]] int32_t n_vocab() const { return static_cast<int32_t>(vocabulary_.tokens.size()); }
  [[nodiscard]] std::optional<TokenId> bos_id() const { return vocabulary_.bos_id; }
  [[nodiscard]] std::optional<TokenId> eos_id() const { return vocabulary_.eos_id; }
  [[nodiscard]] std::optional<TokenId> unknown_id() const { return vocabulary_.unknown_id; }
  [[nodiscard]] std::optional<TokenId> padding_id() const { return vocabulary_.padding_id; }
  [[nodiscard]] bool add_bos() const { return add_bos_; }
  [[nodiscard]] bool add_eos() const { return add_eos_; }
  // True for EOS, EOT, EOM and the control tokens chat models end a turn
  // with (e.g. "<|eot_id|>", "<|im_end|>", "<|end|>").
  [[nodiscard]] bool is_end_of_generation(TokenId id) const;

  // Token text as stored in the vocabulary ("▁the", "Ġthe", "<0x0A>");
  // empty for an id outside the vocabulary.
  [[nodiscard]] std::string_view token_text(TokenId id) const;
  // kUndefined for an id outside the vocabulary.
  [[nodiscard]] TokenType token_type(TokenId id) const;
  [[nodiscard]] float token_score(TokenId id) const;
  [[nodiscard]] const Vocabulary& vocabulary() const { return vocabulary_; }

 private:
  explicit Tokenizer(Vocabulary vocabulary);
  [[nodiscard]] Status initialize();
  [[nodiscard]] bool contains(TokenId id) const { return id >= 0 && id < n_vocab(); }

  Vocabulary vocabulary_;
  std::unique_ptr<SubwordModel> model_;  // refers to vocabulary_
  SpecialTokenMatcher special_tokens_;
  std::vector<TokenId> end_of_generation_ids_;
  bool add_bos_ = false;
  bool add_eos_ = false;
};

}  // namespace kvforge::tokenizer
