// RegexSplitter: the pre-tokenization step of byte-level BPE, splitting text
// into words with a sequence of regular expressions (PCRE2, Unicode mode).
//
// Each expression in turn splits every piece produced by the previous one:
// a match becomes a piece and so does each stretch of text between matches
// (the "Isolated" split behaviour of the Hugging Face tokenizers library).
// Expressions see one piece at a time, so look-arounds and $ stop at the piece
// boundary. Bytes that are not valid UTF-8 never match a character class and
// end up in the gaps, so any input splits without error.
//
// Owns its compiled patterns; split() is const and thread-safe (match state
// is per call).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvforge/status.h"

namespace kvforge::tokenizer {

class RegexSplitter {
 public:
  // Compiles the patterns (Perl syntax, \p{..} Unicode properties).
  [[nodiscard]] static Result<std::unique_ptr<RegexSplitter>> create(
      std::span<const std::string_view> patterns);

  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;
  ~RegexSplitter();

  // Appends the pieces of text (views into it), in order, covering it exactly.
  void split(std::string_view text, std::vector<std::string_view>& pieces) const;

 private:
  struct CompiledPattern;
  RegexSplitter() = default;
  void split_with(const CompiledPattern& pattern, std::string_view text,
                  std::vector<std::string_view>& pieces) const;

  std::vector<std::unique_ptr<CompiledPattern>> patterns_;
};

}  // namespace kvforge::tokenizer
