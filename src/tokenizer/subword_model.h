// SubwordModel: the internal interface behind Tokenizer, one implementation
// per tokenizer.ggml.model value, chosen by name from a small registry.
//
// A model turns raw text (no special tokens in it) into ids and says what
// bytes its normal and byte tokens stand for; special-token matching, BOS/EOS
// and decoding of control tokens stay in Tokenizer. A model keeps a reference
// to the Vocabulary it was made from, which must outlive it (Tokenizer owns
// both). Const methods are thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kvforge/status.h"
#include "tokenizer/vocabulary.h"

namespace kvforge::tokenizer {

class SubwordModel {
 public:
  virtual ~SubwordModel() = default;

  // Appends the ids of one fragment of raw text. `starts_text` is true at the
  // start of the input and right after a special token: SentencePiece puts
  // its dummy space prefix there.
  virtual void encode_fragment(std::string_view text, bool starts_text,
                               std::vector<TokenId>& ids) const = 0;

  // Appends the bytes a normal or byte token stands for.
  virtual void append_piece(TokenId id, std::string& out) const = 0;

  // True when encode_fragment adds a space at starts_text, so decoding should
  // drop one leading space there.
  [[nodiscard]] virtual bool adds_space_prefix() const = 0;

  // Whether BOS is added when the metadata does not say
  // (tokenizer.ggml.add_bos_token absent).
  [[nodiscard]] virtual bool adds_bos_by_default() const = 0;
};

using SubwordModelFactory = Result<std::unique_ptr<SubwordModel>> (*)(const Vocabulary&);

// The model for vocabulary.model, or kUnsupported naming the known models.
[[nodiscard]] Result<std::unique_ptr<SubwordModel>> create_subword_model(
    const Vocabulary& vocabulary);

// Factories, defined next to each implementation.
[[nodiscard]] Result<std::unique_ptr<SubwordModel>> create_sentencepiece_bpe_model(
    const Vocabulary& vocabulary);
[[nodiscard]] Result<std::unique_ptr<SubwordModel>> create_byte_level_bpe_model(
    const Vocabulary& vocabulary);

}  // namespace kvforge::tokenizer
